"""Running an experiment: plan, skip what is finished, execute the rest, write the tables.

:func:`run_sweep` works in five stages:

1. expand the experiment into runs and check every one (:func:`plan_runs`), before anything
   runs; a bad override stops here with one line;
2. claim the sweep folder (``DIR/experiment.json``; a folder holding another experiment is
   refused);
3. leave runs whose folder says completed or failed alone; resume interrupted ones; start
   the rest;
4. execute on Dask (:class:`DaskExecutor`), reporting each finished run to ``progress``;
5. write ``results.csv`` and ``curves.csv``, also when the sweep is interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from circuits.rules import RuleRegistry
from circuits.runs import read_summary
from circuits.experiments.executors import FINISHED, DaskExecutor, Task, TaskResult
from circuits.experiments.file import Experiment, ExperimentError, load_experiment
from circuits.experiments.plan import RunPlan, plan_runs
from circuits.experiments.tables import read_manifest, write_manifest, write_tables

__all__ = ["SweepProgress", "SweepOutcome", "default_sweep_dir", "describe_plan", "run_sweep", "sweep_tasks"]


class SweepProgress(Protocol):
    """What a sweep tells its display."""

    def start(self, total: int, finished: int, to_run: int, slots: int, dashboard: str | None) -> None: ...

    def finished(self, result: TaskResult) -> None: ...

    def close(self) -> None: ...


@attrs.frozen
class SweepOutcome:
    """How a sweep went: the folder, the plan, what ran, and the results rows."""

    out: Path
    plans: tuple[RunPlan, ...] = attrs.field(repr=False)
    skipped: int
    ran: int
    rows: tuple[dict[str, Any], ...] = attrs.field(repr=False, default=())

    def count(self, status: str) -> int:
        """Number of runs with ``status`` in ``results.csv``."""
        return sum(1 for row in self.rows if row["status"] == status)


def default_sweep_dir(experiment: Experiment) -> Path:
    """``sweeps/<experiment name>`` under the working directory."""
    return Path("sweeps") / experiment.name


def sweep_tasks(plans: Sequence[RunPlan], out: Path) -> tuple[list[Task], int]:
    """The tasks still to run (one per run id) and how many runs are already finished."""
    tasks, finished, seen = [], 0, set()
    for plan in plans:
        if plan.run_id in seen:
            continue
        seen.add(plan.run_id)
        summary = read_summary(plan.folder(out))
        if summary is not None and summary.get("status") in FINISHED:
            finished += 1
        else:
            tasks.append(Task(plan.run_id, plan.spec, plan.folder(out).resolve()))
    return tasks, finished


def _manifest(experiment: Experiment, plans: Sequence[RunPlan], out: Path) -> dict[str, Any]:
    here = Path.cwd()
    spec = experiment.spec
    return {"name": experiment.name, "source": str(experiment.source),
            "spec": str(spec.relative_to(here) if spec.is_relative_to(here) else spec),
            "out": str(out), "select": experiment.select, "seeds": list(experiment.seeds),
            "grid": {key: list(values) for key, values in experiment.grid},
            "variants": list(dict.fromkeys(plan.variant for plan in plans)),
            "set": experiment.overrides, "runs": len(plans),
            "published": {v.name: v.published for v in experiment.variants if v.published}}


def _claim(out: Path, experiment: Experiment, plans: Sequence[RunPlan]) -> None:
    held = read_manifest(out)
    if held is not None and held.get("name") != experiment.name:
        raise ExperimentError(f"{out} holds the sweep of experiment '{held.get('name')}'; "
                              f"choose another folder with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExperimentError(f"cannot create {out}: {exc.strerror or exc}") from None
    write_manifest(out, _manifest(experiment, plans, out))


def run_sweep(experiment: Experiment | str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
              workers: int | None = None, scheduler: str | None = None,
              progress: SweepProgress | None = None, registry: RuleRegistry | None = None,
              dry_run: bool = False, executor: DaskExecutor | None = None) -> SweepOutcome:
    """Run every run of ``experiment`` that is not finished; write the sweep folder's tables.

    Parameters
    ----------
    experiment
        An :class:`Experiment` or the path of an experiment file.
    out
        The sweep folder (default ``sweeps/<experiment name>``).
    workers, scheduler
        Local cluster size, or the address of an existing Dask scheduler.
    progress
        Told about the plan and each finished run.
    dry_run
        Plan and check only: nothing runs and nothing is written.
    executor
        An executor already entered (its cluster is reused and left running).

    Raises
    ------
    ExperimentError
        For a bad experiment file or override, or a folder that holds another experiment.
    """
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    plans = tuple(plan_runs(experiment, registry))
    out = Path(out) if out is not None else default_sweep_dir(experiment)
    tasks, finished = sweep_tasks(plans, out)
    if dry_run:
        return SweepOutcome(out, plans, skipped=finished, ran=0)
    _claim(out, experiment, plans)
    grid_keys = experiment.grid_keys
    reported: dict[str, tuple[str, str]] = {}
    try:
        if tasks:
            owned = executor is None
            executor = executor or DaskExecutor(workers=workers, scheduler=scheduler)
            if owned:
                executor.__enter__()
            try:
                if progress is not None:
                    progress.start(len({p.run_id for p in plans}), finished, len(tasks),
                                   executor.slots, executor.dashboard)
                for result in executor.run(tasks):
                    reported[result.run_id] = (result.status, result.message)
                    if progress is not None:
                        progress.finished(result)
            finally:
                if owned:
                    executor.__exit__(None, None, None)
    finally:
        if progress is not None:
            progress.close()
        rows = write_tables(plans, out, grid_keys, reported)
    return SweepOutcome(out, plans, skipped=finished, ran=len(tasks), rows=tuple(rows))


def describe_plan(outcome: SweepOutcome) -> list[str]:
    """One line per planned run (variant, grid point, seed, run id, state), then a count."""
    lines = []
    for plan in outcome.plans:
        summary = read_summary(plan.folder(outcome.out))
        state = "new" if summary is None else str(summary.get("status"))
        if state not in FINISHED and summary is not None:
            state += " (resumes)"
        point = " ".join(f"{k}={v!r}" for k, v in plan.point.items())
        lines.append(f"{plan.variant}  {point + '  ' if point else ''}seed {plan.seed}  "
                     f"{plan.run_id}  {state}")
    unique = len({plan.run_id for plan in outcome.plans})
    lines.append(f"{len(outcome.plans)} runs ({unique} distinct), {outcome.skipped} finished, "
                 f"{unique - outcome.skipped} to run in {outcome.out}")
    return lines
