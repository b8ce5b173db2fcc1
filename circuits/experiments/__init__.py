"""Experiments: many runs described once, run in parallel on Dask, collected into one table.

In a notebook::

    from circuits.experiments import run_experiment, make_report
    results = run_experiment("experiments/fa_vs_bp_digits.toml", out="sweeps/fa-vs-bp")
    results.groupby("variant")["final_test_accuracy"].mean()      # a pandas DataFrame
    report = make_report("sweeps/fa-vs-bp")                         # report.md, curves.png ...

The command line does the same with ``circuits sweep``, ``circuits report`` and
``circuits compare``. Dask (``distributed``) and pandas come with the ``sweep`` extra:
``pip install "circuits[sweep]"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuits.experiments.file import (Experiment, ExperimentError, Variant, load_experiment,
                                       parse_experiment, with_overrides)
from circuits.experiments.plan import RunPlan, plan_runs
from circuits.experiments.progress import RichSweepProgress
from circuits.experiments.report import Report, load_curves, load_results, make_report, report_table
from circuits.experiments.stats import mean_ci
from circuits.experiments.sweep import SweepOutcome, default_sweep_dir, describe_plan, run_sweep
from circuits.overrides import parse_overrides

__all__ = ["Experiment", "ExperimentError", "Variant", "RunPlan", "Report", "RichSweepProgress",
           "SweepOutcome", "comparison", "default_sweep_dir", "describe_plan", "load_curves",
           "load_experiment", "load_results", "make_report", "mean_ci", "parse_experiment",
           "plan_runs", "report_table", "run_experiment", "run_sweep", "with_overrides"]


def comparison(spec: str | os.PathLike[str], rules: Sequence[str], seeds: int | Sequence[int],
               overrides: Mapping[str, Any] | Sequence[str] | None = None) -> Experiment:
    """The experiment of ``circuits compare``: one variant per rule, seeds ``0..n-1``.

    ``overrides`` (``{"task.epochs": 5}`` or ``["task.epochs=5"]``, as ``--set``) apply to
    every variant.
    """
    names = [r.strip() for r in rules if r.strip()]
    if not names:
        raise ExperimentError("--rules: name at least one rule, e.g. --rules backprop,feedback_alignment")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    path = Path(spec).resolve()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).stem) or "spec"
    lines = ["[experiment]", f'name = "{stem}-compare"', f"spec = {_quote(str(path))}",
             f"seeds = {seed_list}"]
    text = "\n".join(lines) + "\n"
    for name in names:
        text += f'[[variants]]\nname = {_quote(name)}\nset = {{ "rule.name" = {_quote(name)} }}\n'
    experiment = parse_experiment(text, source=f"compare {Path(spec).name}")
    from_set = parse_overrides(overrides, source=experiment.source)
    return Experiment(name=experiment.name, spec=experiment.spec, seeds=experiment.seeds,
                      select=experiment.select, variants=experiment.variants, grid=(),
                      overrides=from_set, source=experiment.source)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_experiment(experiment: Experiment | str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                   *, workers: int | None = None, scheduler: str | None = None) -> Any:
    """Run an experiment (skipping finished runs) and return ``results.csv`` as a DataFrame."""
    outcome = run_sweep(experiment, out, workers=workers, scheduler=scheduler)
    return load_results(outcome.out)
