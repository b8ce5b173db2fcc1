"""A run folder: opened (refused, emptied or resumed) under a lock, written file by file.

Files of a run folder::

    spec.toml       the resolved spec (every default written): repeats the run exactly
    schedule.txt    the compiled schedule
    metrics.csv     one complete row per finished epoch (rewritten whole, atomically)
    alignment.csv   alignment angles, when the spec records them
    params.npz      the parameters after epoch ``params_epoch`` of summary.json
    checkpoint.npz  everything needed to resume after the last finished epoch
    summary.json    status (running, completed, failed, interrupted), final numbers
    curves.png      learning curves
    .lock           the lock file (see :class:`~circuits.runs.files.FolderLock`)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from circuits import plots
from circuits.errors import CircuitsError
from circuits.ir import Program
from circuits.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from circuits.runs.files import LOCK_NAME, FolderLock, replacing, write_atomic, write_error, write_text
from circuits.runs.records import alignment_rows, clean_json, csv_text
from circuits.spec import CircuitSpec
from circuits.spec_writer import dump_spec
from circuits.training import EpochRecord

__all__ = ["RunFolder", "RunFolderError", "read_summary"]

RUN_FILES = ("spec.toml", "summary.json", "metrics.csv", "checkpoint.npz", "params.npz")
"""Any of these marks a folder as a run folder (one ``--overwrite`` may empty)."""


class RunFolderError(CircuitsError):
    """A run folder cannot be used as asked (already holds a run, is not a folder…)."""


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``summary.json`` of the run folder ``path``, or ``None`` when it has none (or it is unreadable)."""
    try:
        with open(Path(path).expanduser() / "summary.json", encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


class RunFolder:
    """One run's folder, locked from :meth:`open` until :meth:`close`.

    Every write is atomic (see :mod:`circuits.runs.files`) and raises
    :class:`~circuits.runs.files.RunWriteError` naming the file when it fails.
    """

    def __init__(self, path: Path, lock: FolderLock) -> None:
        self.path = path
        self._lock = lock
        self.params_epoch: int | None = None
        """The epoch whose parameters ``params.npz`` holds (``None`` before it is written)."""

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False) -> RunFolder:
        """Create or reuse the folder ``path`` and lock it.

        A folder that already holds files is refused unless ``resume`` (its files are kept
        for the caller to continue from) or ``overwrite`` (it is emptied first, but only when
        it looks like a run folder, so a mistyped ``--out ~`` never empties a home folder).

        Raises
        ------
        RunFolderError
            When the folder is used and neither option is given, or ``path`` is a file.
        FolderLockedError
            When another process is writing the folder.
        RunWriteError
            When the folder cannot be created (read-only parent, full disk).
        """
        path = Path(path).expanduser()
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a run folder; choose another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(path, exc) from None
        lock = FolderLock(path)
        try:
            used = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)
            if used and overwrite:
                if not any(name in RUN_FILES for name in used):
                    raise RunFolderError(f"{path} is not a run folder (it holds {', '.join(used[:3])}"
                                         f"{'…' if len(used) > 3 else ''}); --overwrite only empties run "
                                         "folders, so choose another --out")
                _empty(path)
            elif used and not resume:
                raise RunFolderError(f"{path} already holds a run; pass --resume to continue it, "
                                     "--overwrite to replace it, or choose another --out")
        except BaseException:
            lock.release()
            raise
        return cls(path, lock)

    def close(self) -> None:
        """Release the lock."""
        self._lock.release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def saved_spec_text(self) -> str | None:
        """The text of ``spec.toml``, or ``None``."""
        try:
            return (self.path / "spec.toml").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def checkpoint(self) -> Checkpoint | None:
        """The last checkpoint, or ``None`` when there is none.

        Raises
        ------
        RunFolderError
            When ``checkpoint.npz`` exists but cannot be read.
        """
        target = self.path / "checkpoint.npz"
        if not target.exists():
            return None
        try:
            return load_checkpoint(target)
        except (OSError, ValueError, KeyError) as exc:
            raise RunFolderError(f"{target} cannot be read ({exc}); start again with --overwrite") from None

    # -- writing ---------------------------------------------------------------------------------

    def write_start(self, spec: CircuitSpec, program: Program) -> None:
        """The resolved spec (``spec.toml``) and the compiled schedule (``schedule.txt``)."""
        write_text(self.path / "spec.toml", dump_spec(spec) + "\n")
        write_text(self.path / "schedule.txt", program.describe(batch=spec.task.batch_size) + "\n")

    def write_params(self, params: Mapping[str, np.ndarray], epoch: int) -> Path:
        """``params.npz``: parameter name → array, after ``epoch`` finished epochs."""
        target = write_atomic(self.path / "params.npz",
                              lambda handle: np.savez(handle, **{k: np.asarray(v) for k, v in params.items()}))
        self.params_epoch = epoch
        return target

    def write_checkpoint(self, checkpoint: Checkpoint) -> Path:
        """``checkpoint.npz``."""
        return write_atomic(self.path / "checkpoint.npz", lambda handle: save_checkpoint(handle, checkpoint))

    def write_metrics(self, rows: Sequence[Mapping[str, Any]], records: Sequence[EpochRecord]) -> None:
        """``metrics.csv`` (and ``alignment.csv`` when there are alignment records), whole."""
        write_text(self.path / "metrics.csv", csv_text(rows))
        columns, aligned = alignment_rows(records)
        if aligned:
            write_text(self.path / "alignment.csv", csv_text(aligned, columns))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """``summary.json`` (NaN written as null)."""
        clean = clean_json(json.loads(json.dumps(summary, default=float)))
        return write_text(self.path / "summary.json", json.dumps(clean, indent=2) + "\n")

    def write_curves(self, rows: Sequence[Mapping[str, float]], title: str) -> Path:
        """``curves.png``: the learning curves of ``rows``."""
        target = self.path / "curves.png"
        with replacing(target) as tmp:
            plots.plot_curves(rows, tmp, title=title)
        return target

    def remove(self, name: str) -> None:
        """Delete one file of the folder if it is there."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()


def _empty(path: Path) -> None:
    """Delete everything in ``path`` but the lock file (symlinks removed, never followed)."""
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise write_error(entry, exc) from None
