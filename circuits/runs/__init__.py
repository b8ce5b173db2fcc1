"""Run folders: identity, atomic files, a lock, checkpoints and resume.

The package sits above the engine (spec → graph → compile → backends → simulate → model →
training) and below the command line; the experiments layer calls :func:`execute_run`::

    from circuits.runs import execute_run, run_id, default_run_dir
    outcome = execute_run(spec, default_run_dir(spec))
    outcome.status, outcome.summary["final"]

Modules: :mod:`~circuits.runs.files` (atomic writes, lock), :mod:`~circuits.runs.identity`
(run id, default folder), :mod:`~circuits.runs.records` (metrics rows, summary),
:mod:`~circuits.runs.checkpoint`, :mod:`~circuits.runs.folder`, :mod:`~circuits.runs.execute`,
:mod:`~circuits.runs.signals` (SIGTERM as Ctrl-C).
"""

from __future__ import annotations

from circuits.runs.checkpoint import Checkpoint, load_checkpoint
from circuits.runs.execute import SIGTERM_MESSAGE, RunOutcome, execute_run, resolve_run_spec
from circuits.runs.files import FolderLock, FolderLockedError, RunWriteError, write_atomic, write_text
from circuits.runs.folder import RunFolder, RunFolderError, read_summary
from circuits.runs.identity import default_run_dir, expand_out, run_dirs, run_id
from circuits.runs.records import metrics_row, read_metrics, summarize
from circuits.runs.signals import Terminated, sigterm_interrupts

__all__ = [
    "Checkpoint", "FolderLock", "FolderLockedError", "RunFolder", "RunFolderError", "RunOutcome",
    "RunWriteError", "SIGTERM_MESSAGE", "Terminated", "default_run_dir", "execute_run", "expand_out",
    "load_checkpoint", "metrics_row", "read_metrics", "read_summary", "resolve_run_spec", "run_dirs",
    "run_id", "sigterm_interrupts", "summarize", "write_atomic", "write_text",
]
