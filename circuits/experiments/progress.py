"""A rich progress display over a sweep's runs: done, running, failed, time left."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from circuits.experiments.executors import TaskResult

__all__ = ["RichSweepProgress"]


class RichSweepProgress:
    """One bar over the sweep's runs; a line per run that does not complete.

    ``running`` is the number of unfinished runs the cluster can hold at once (its worker
    threads), which is what is executing once the queue is full.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Any = None
        self.failed = 0

    def start(self, total: int, finished: int, to_run: int, slots: int, dashboard: str | None) -> None:
        self.slots, self.left = slots, to_run
        self.console.print(f"{total} runs: {finished} already finished, {to_run} to run on "
                           f"{slots} worker thread{'s' * (slots != 1)}")
        if dashboard:
            self.console.print(f"Dask dashboard: {dashboard}")
        self.bar = Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
        self.bar.__enter__()
        self.task = self.bar.add_task("runs", total=total, completed=finished, info=self._info())

    def _info(self) -> str:
        return f"running {min(self.left, self.slots)} · failed {self.failed}"

    def finished(self, result: TaskResult) -> None:
        self.left -= 1
        if result.status != "completed":
            self.failed += result.status == "failed"
            self.console.print(f"run {result.run_id}: {result.status}: {result.message}",
                               markup=False, highlight=False)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, info=self._info())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
