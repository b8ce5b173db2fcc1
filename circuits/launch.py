"""The ``circuits`` command's entry point: the command line, with a quiet start.

Importing the command line takes a moment (NumPy, networkx, matplotlib, every rule); a Ctrl-C
in that moment ends the command with one line and exit code 130 instead of a traceback. This
module imports nothing heavy itself, and :mod:`circuits` imports its names lazily, so the
guard is in place before any of that work starts.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]


def main() -> None:
    """Import :mod:`circuits.cli` and run its ``main``, one line on Ctrl-C during the import."""
    try:
        cli = importlib.import_module("circuits.cli")
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted while starting\n")
        sys.exit(130)
    cli.main()


if __name__ == "__main__":
    main()
