"""The exception hierarchy of circuits.

Every error meant for a user derives from :class:`CircuitsError`; the CLI prints such an
error as one line on stderr and exits with code 2. Anything else is a bug in circuits.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CircuitsError",
    "SpecError",
    "GraphError",
    "CompileError",
    "BackendError",
    "DataError",
    "SimulationError",
    "FixedPointError",
    "RelaxationWarning",
    "did_you_mean",
]


class CircuitsError(Exception):
    """Base class of every error that a user can act on."""


class SpecError(CircuitsError):
    """A circuit spec (TOML file or override) is malformed or inconsistent."""


class GraphError(CircuitsError):
    """The circuit graph is structurally impossible for the chosen rule."""


class CompileError(CircuitsError):
    """A rule cannot be compiled on this circuit, or the compiled program is invalid."""


class BackendError(CircuitsError):
    """The requested array backend is unavailable or cannot run the program."""


class DataError(CircuitsError):
    """A data set cannot be found, read, or does not fit the circuit."""


class SimulationError(CircuitsError):
    """Training or inference failed at run time (for example NaN in the loss)."""


class FixedPointError(SimulationError):
    """A computation that needs a fixed point of a circuit's dynamics (the exact gradient of an
    energy rule) did not reach one."""


class RelaxationWarning(UserWarning):
    """A relaxation phase used its whole step budget without reaching its tolerance."""


def did_you_mean(given: object, allowed: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest allowed name, or ``""``.

    Parameters
    ----------
    given
        What the user wrote.
    allowed
        The names that would have been accepted.
    """
    if not isinstance(given, str):
        return ""
    match = difflib.get_close_matches(given, list(allowed), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""
