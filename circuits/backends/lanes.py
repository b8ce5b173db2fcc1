"""Lanes: the independent pieces of one op run side by side on the NumPy backend's threads.

OpenBLAS splits one GEMM over its threads, and splits small GEMMs badly: the conv ops make
one small product per example, and their copies, pooling and col2im run on one thread in
NumPy, so a LeNet step took as long at two threads as at one. An op that cuts its work into
pieces over examples (runs of the batch) hands the pieces to :meth:`Lanes.run`, which runs one
piece per lane at once, the caller's thread being the first lane, with BLAS held to one thread
meanwhile. NumPy and single-threaded OpenBLAS release the GIL, so the lanes run in parallel.

A program with conv ops runs its whole step under :meth:`Lanes.held`: BLAS on one thread
for every op, the dense products included. OpenBLAS's idle worker threads keep polling a
core for a while after each threaded product, and on a 2-core machine that poll took the
core the second lane needed (a LeNet step measured 16–20 ms with lanes and threaded dense
products, 12–14 ms with everything held; README "Performance").

The number of lanes is the number of BLAS threads when the model is built (``run.threads``),
so a run asks for its cores once; with one thread (or no OpenBLAS found) there is one lane and
every piece runs in order on the caller's thread. A piece computes exactly what it computed in
one pass, so the numbers do not depend on the lanes (the ops' tests check this bit for bit).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

__all__ = ["Lanes", "blas_threads", "split"]

Step = Callable[[], None]


@functools.cache
def _thread_calls() -> tuple[Any, Any] | None:
    """``(get, set)`` of the thread count of NumPy's OpenBLAS, or ``None`` when not found."""
    numpy_root = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    for pool in threadpool_info():
        path = pool.get("filepath") or ""
        if pool.get("user_api") != "blas" or pool.get("internal_api") != "openblas":
            continue
        if os.path.relpath(os.path.abspath(path), numpy_root).split(os.sep)[0] not in ("numpy", "numpy.libs"):
            continue
        try:
            library = ctypes.CDLL(path)
        except OSError:
            return None
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "")):
            get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                return get, put
        return None
    return None


def blas_threads() -> int:
    """The thread count NumPy's OpenBLAS would use now (1 when that library is not found)."""
    calls = _thread_calls()
    return max(1, int(calls[0]())) if calls is not None else 1


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """``count`` items cut into at most ``parts`` contiguous ``(start, stop)`` runs, sizes within one.

    >>> split(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    bounds, start = [], 0
    for part in range(parts):
        stop = start + size + (part < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


class _Worker:
    """One daemon thread running the pieces it is given, one at a time."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="circuits-lane", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while (piece := self.inbox.get()) is not None:
            try:
                piece()
            except BaseException as exc:  # handed to the caller, which raises it
                self.outbox.put(exc)
            else:
                self.outbox.put(None)

    def finish(self) -> BaseException | None:
        """Wait for the piece in hand, even through Ctrl-C: the caller must not go on while it writes."""
        while True:
            try:
                return self.outbox.get()
            except KeyboardInterrupt:
                continue


def _stop(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.inbox.put(None)


class Lanes:
    """``count`` lanes for the pieces of one op: the caller's thread and ``count − 1`` workers.

    Parameters
    ----------
    count
        Lanes (1: every piece runs in order on the caller's thread, with no thread started).
    """

    def __init__(self, count: int = 1) -> None:
        if count < 1:
            raise ValueError(f"lanes: count must be at least 1 (got {count})")
        self.count = count
        self._workers: list[_Worker] = []
        self._finalizer: weakref.finalize | None = None
        self._pid = os.getpid()

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        # A copy gets its own threads, started when it first needs them.
        return (Lanes, (self.count,))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """BLAS on one thread inside (with one lane, or no OpenBLAS found: nothing changes)."""
        calls = _thread_calls() if self.count > 1 else None
        if calls is None:
            yield
            return
        previous = calls[0]()
        calls[1](1)
        try:
            yield
        finally:
            calls[1](previous)

    @classmethod
    def for_blas(cls) -> Lanes:
        """As many lanes as NumPy's BLAS has threads now."""
        return cls(blas_threads())

    def run(self, pieces: Sequence[Step]) -> None:
        """Run ``pieces`` (at most :attr:`count`) at once, one per lane; return when all are done.

        An exception in any piece is raised here, after every piece has finished.
        """
        if len(pieces) > self.count:
            raise ValueError(f"lanes: {len(pieces)} pieces for {self.count} lanes")
        if len(pieces) <= 1:
            for piece in pieces:
                piece()
            return
        calls = _thread_calls()
        if calls is None:  # no OpenBLAS to hold to one thread: stay in order
            for piece in pieces:
                piece()
            return
        workers = self._started(len(pieces) - 1)
        previous = calls[0]()
        calls[1](1)
        failure: BaseException | None = None
        try:
            for worker, piece in zip(workers, pieces[1:]):
                worker.inbox.put(piece)
            try:
                pieces[0]()
            except BaseException as exc:
                failure = exc
            for worker in workers:
                failed = worker.finish()
                failure = failure or failed
        finally:
            calls[1](previous)
        if failure is not None:
            raise failure

    def _started(self, needed: int) -> list[_Worker]:
        if os.getpid() != self._pid:  # a forked child has none of its parent's threads
            self._workers, self._finalizer, self._pid = [], None, os.getpid()
        while len(self._workers) < needed:
            self._workers.append(_Worker())
        if self._finalizer is None:
            self._finalizer = weakref.finalize(self, _stop, self._workers)
        return self._workers[:needed]
