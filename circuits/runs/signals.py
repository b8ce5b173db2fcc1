"""SIGTERM as Ctrl-C: what ``timeout``, batch schedulers and ``docker stop`` send ends a run
the way Ctrl-C does (results so far written, status ``interrupted``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "sigterm_interrupts"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see :func:`sigterm_interrupts`)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``).

    Only the main thread may install signal handlers; elsewhere (a run started from a worker
    thread) the block changes nothing and SIGTERM keeps its default action.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
