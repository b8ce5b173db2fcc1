"""Estimate what each experiment costs: one epoch of each variant, timed at one BLAS thread.

For every experiment file given, the first run of each variant (first grid point, first
seed) trains for one epoch into a temporary folder with ``threads=1``, as a sweep worker
would; the tool prints the epoch's training seconds, the whole one-epoch run's seconds
(start-up, data loading and evaluation included) and the experiment's estimate: training
seconds per epoch × epochs × runs of that variant, summed over variants, in core-hours.

    OPENBLAS_NUM_THREADS=1 python3 tools/estimate_experiments.py experiments/*.toml

MNIST experiments need the IDX files ($CIRCUITS_DATA). Nothing is written outside a
temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import attrs

from circuits.experiments import load_experiment, plan_runs
from circuits.runs import execute_run


def time_epoch(spec, folder: Path) -> float:
    """Training seconds of one epoch of ``spec`` at one thread (evaluation not included)."""
    one = attrs.evolve(spec, task=attrs.evolve(spec.task, epochs=1))
    outcome = execute_run(one, folder, threads=1)
    if outcome.status != "completed":
        raise SystemExit(f"{folder}: {outcome.status}: {outcome.message}")
    return outcome.records[-1].seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.experiments:
        experiment = load_experiment(path)
        plans = plan_runs(experiment)
        total = 0.0
        print(f"{path}: {len(plans)} runs")
        for variant in dict.fromkeys(p.variant for p in plans):
            mine = [p for p in plans if p.variant == variant]
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                seconds = time_epoch(mine[0].spec, Path(tmp) / "run")
                whole = time.perf_counter() - started
            epochs = mine[0].spec.task.epochs
            total += seconds * epochs * len(mine)
            print(f"  {variant}: {seconds:.2f} s/epoch of training ({whole:.1f} s for the 1-epoch run "
                  f"with start-up and evaluation) × {epochs} epochs × {len(mine)} runs "
                  f"= {seconds * epochs * len(mine) / 3600:.2f} core-hours")
        print(f"  total ≈ {total / 3600:.2f} core-hours of training\n", flush=True)


if __name__ == "__main__":
    main()
