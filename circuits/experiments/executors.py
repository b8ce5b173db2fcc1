"""Where runs execute: Dask, on a local cluster or an existing one.

The unit of work is :func:`run_task`: one run folder, trained (or resumed) by
:func:`circuits.runs.execute_run` with one BLAS thread. :class:`DaskExecutor` sends tasks to
``distributed`` workers and yields their :class:`TaskResult` as they finish:

- without a scheduler address it starts a ``LocalCluster`` of worker *processes*, one per
  core, one thread each (Dask's nannies also set ``OMP/MKL/OPENBLAS_NUM_THREADS=1`` before a
  worker starts), so N runs use N cores without oversubscription;
- with ``scheduler="tcp://host:8786"`` it connects to a running cluster (``dask scheduler``
  plus ``dask worker`` processes, or dask-jobqueue); the sweep folder must then be on a file
  system every worker sees, and every worker needs circuits installed.

A worker that dies mid-run (killed, out of memory) is replaced by its nanny and Dask runs the
task again elsewhere; the task then resumes the run folder from its last finished epoch. A
task that raises (not a training failure, which comes back as a ``failed`` outcome) is tried
again ``retries`` times, then reported as failed with its error.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from circuits.errors import CircuitsError
from circuits.runs import execute_run, read_summary
from circuits.spec import CircuitSpec
from circuits.experiments.file import ExperimentError
from circuits.experiments.optional import require_sweep_extra

__all__ = ["TaskResult", "Task", "run_task", "DaskExecutor", "FINISHED"]

FINISHED = ("completed", "failed")
"""Statuses a sweep does not run again (a failed run failed deterministically: NaN, bad data)."""

@attrs.frozen
class Task:
    """One run to execute: its id, resolved spec and folder (absolute)."""

    run_id: str
    spec: CircuitSpec = attrs.field(repr=False)
    folder: Path


@attrs.frozen
class TaskResult:
    """What came back from a run: the outcome's status and message, epochs finished."""

    run_id: str
    status: str
    message: str = ""
    epochs: int = 0
    host: str = ""


def run_task(task: Task, threads: int = 1) -> TaskResult:
    """Train, resume or skip one run folder; the function a worker executes.

    A folder whose ``summary.json`` says completed or failed is left alone; any other is
    resumed from its last checkpoint (``execute_run(resume=True)`` starts afresh without
    one), which is also what a retry after a worker died does. A bad-input error (data that
    cannot be read, a folder another process holds) comes back as ``failed``.
    """
    host = f"{os.uname().nodename}:{os.getpid()}"
    summary = read_summary(task.folder)
    if summary is not None and summary.get("status") in FINISHED:
        return TaskResult(task.run_id, summary["status"], summary.get("message", ""),
                          int(summary.get("epochs", 0)), host)
    try:
        outcome = execute_run(task.spec, task.folder, resume=True, threads=threads)
    except CircuitsError as exc:
        return TaskResult(task.run_id, "failed", str(exc), 0, host)
    return TaskResult(task.run_id, outcome.status, outcome.message, outcome.epochs, host)


class DaskExecutor:
    """Runs tasks on Dask workers; use as a context manager.

    Parameters
    ----------
    workers
        Worker processes of the local cluster (default: one per core). Ignored with
        ``scheduler``.
    scheduler
        Address of an existing scheduler, e.g. ``tcp://10.0.0.5:8786``.
    retries
        Extra tries of a task that raised an exception.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 retries: int = 2) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.scheduler = scheduler
        self.retries = retries
        self.client: Any = None
        self.cluster: Any = None

    def __enter__(self) -> DaskExecutor:
        distributed = require_sweep_extra("distributed")
        if self.scheduler:
            try:
                self.client = distributed.Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExperimentError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}; "
                                      "start one with `dask scheduler` and workers with "
                                      f"`dask worker {self.scheduler}`") from None
        else:
            self.cluster = distributed.LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    @property
    def dashboard(self) -> str | None:
        """The dashboard's address, when the scheduler serves one (it needs bokeh)."""
        if self.cluster is not None and importlib.util.find_spec("bokeh") is None:
            return None
        return getattr(self.client, "dashboard_link", None)

    @property
    def slots(self) -> int:
        """Threads across the cluster's workers (how many runs go at once)."""
        return max(sum(self.client.nthreads().values()), 1)

    def worker_pids(self) -> dict[str, int]:
        """Worker address → process id (for tests that kill a worker)."""
        return self.client.run(os.getpid)

    def run(self, tasks: Sequence[Task], threads: int = 1) -> Iterator[TaskResult]:
        """Submit every task; yield each one's result as it finishes."""
        distributed = require_sweep_extra("distributed")
        token = uuid.uuid4().hex[:8]
        futures = {self.client.submit(run_task, task, threads, key=f"run-{task.run_id}-{token}",
                                      retries=self.retries, pure=False): task for task in tasks}
        for future in distributed.as_completed(futures):
            task = futures.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - any failure of a task is that run's record
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                result = TaskResult(task.run_id, "failed", message)
            future.release()
            yield result
