"""Atomic files and the folder lock.

Every file of a run folder is written to a fresh temporary file beside its target (created
with ``O_EXCL``, so never through an existing file or symlink), flushed, ``fsync``-ed and
renamed over the target with :func:`os.replace`. A reader (or a crash, a full disk, Ctrl-C)
therefore sees either the old file or the new one, never half of one; a symlink at the
target is replaced by the new file, never followed.

The lock is ``fcntl.flock`` on ``DIR/.lock``: the operating system drops it when its process
ends in any way (SIGKILL included), so a lock never outlives the run that took it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from circuits.errors import CircuitsError, SimulationError

__all__ = ["RunWriteError", "FolderLockedError", "FolderLock", "replacing", "write_atomic",
           "write_error", "write_text"]

LOCK_NAME = ".lock"


class RunWriteError(SimulationError):
    """A file of a run folder could not be written (full disk, read-only folder)."""


class FolderLockedError(CircuitsError):
    """Another process is writing the run folder."""


def _advice(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "; free some space, then continue with `circuits resume` on the run folder"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "; choose a writable folder with --out"
    return ""


def write_error(path: Path, exc: OSError) -> RunWriteError:
    """The one-line error for a file that could not be written."""
    return RunWriteError(f"cannot write {path}: {exc.strerror or exc}{_advice(exc)}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file exists (empty, created exclusively) when the body starts, keeps the
    target's suffix (for writers that choose a format by it) and is removed when the body
    raises.

    Raises
    ------
    RunWriteError
        Naming ``path``, when anything cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by an earlier process with this pid
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except OSError as exc:
        _discard(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: some file systems refuse it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write`` gets a binary handle on the temporary file."""
    path = Path(path)
    with replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


class FolderLock:
    """An exclusive lock on a run folder, held until :meth:`release` (or the process ends).

    Raises
    ------
    FolderLockedError
        When another process holds it.
    RunWriteError
        When the lock file cannot be created (read-only folder).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / LOCK_NAME
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderLockedError(
                    f"{Path(folder)} is in use by another run{holder}; wait for it to end or "
                    "choose another --out") from None
            raise write_error(self.path, exc) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def _holder(self) -> str:
        try:
            pid = os.pread(self._fd, 32, 0).decode().strip() if self._fd is not None else ""
        except OSError:
            pid = ""
        return f" (process {pid})" if pid.isdigit() else ""

    def release(self) -> None:
        """Drop the lock (the file stays: removing it could let two processes lock two files)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
