"""Parametrised rate functions: ``φ(u) = scale · f(gain · (u − shift))``.

A population's ``activation`` names the base function ``f`` (``relu``, ``tanh``, ``sigmoid``,
``hard_sigmoid``, ``softplus``); written as a table it also gives the three numbers of
:class:`RateParams`, e.g. the softplus of Sacramento et al. (2018), φ(u) = 0.1·log(1 + e^(u−3)):

    h = { size = 50, activation = { name = "softplus", scale = 0.1, shift = 3 } }

The derivative follows by the chain rule, ``φ'(u) = scale · gain · f'(gain · (u − shift))``.
The default ``RateParams()`` (scale 1, shift 0, gain 1) is the plain ``f``: every kernel and
reference function takes its old code path for it, so circuits that do not use the table
compute exactly what they did before.

This module sits beside :mod:`circuits.spec` at the bottom of the import order: the spec,
the ops, the kernels and the rules' NumPy references all read their parameters from here.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

__all__ = ["RateParams", "PLAIN", "RATE_PARAM_KEYS", "PARAMETRISABLE", "Elementwise"]

RATE_PARAM_KEYS = ("scale", "shift", "gain")
"""The keys an ``activation = { name = ..., ... }`` table may give besides ``name``."""

PARAMETRISABLE = ("relu", "tanh", "sigmoid", "hard_sigmoid", "softplus")
"""Base functions that take parameters (``linear`` and ``softmax`` do not: see the spec reader)."""

Elementwise = Callable[[np.ndarray], np.ndarray]


def _number(value: float) -> str:
    return f"{value:g}"


@attrs.frozen
class RateParams:
    """The numbers of ``φ(u) = scale · f(gain · (u − shift))``.

    ``scale`` and ``gain`` are > 0 (so φ keeps the sign and the monotony of ``f``; a spiking
    population's rate stays ≥ 0); ``shift`` is any finite number. The spec reader checks
    them and says so in one line.
    """

    scale: float = 1.0
    shift: float = 0.0
    gain: float = 1.0

    @property
    def plain(self) -> bool:
        """Whether this is the unparametrised ``f`` (scale 1, shift 0, gain 1)."""
        return self.scale == 1.0 and self.shift == 0.0 and self.gain == 1.0

    @property
    def slope(self) -> float:
        """``scale · gain``: the factor in front of ``f'`` in ``φ'``."""
        return self.scale * self.gain

    def argument(self, u: str) -> str:
        """The text of ``gain · (u − shift)`` with the trivial parts left out."""
        if self.shift:
            sign = "−" if self.shift > 0 else "+"
            u = f"({u} {sign} {_number(abs(self.shift))})" if self.gain != 1.0 else f"{u} {sign} {_number(abs(self.shift))}"
        return u if self.gain == 1.0 else f"{_number(self.gain)}·{u}"

    def formula(self, fn: str, u: str) -> str:
        """``φ(u)`` as text, e.g. ``0.1·softplus(h.pre − 3)``; ``fn(u)`` when plain."""
        body = f"{fn}({self.argument(u)})"
        return body if self.scale == 1.0 else f"{_number(self.scale)}·{body}"

    def derivative_formula(self, fn: str, u: str) -> str:
        """``φ'(u)`` as text, e.g. ``0.1·softplus'(h.pre − 3)``; ``fn'(u)`` when plain."""
        body = f"{fn}'({self.argument(u)})"
        return body if self.slope == 1.0 else f"{_number(self.slope)}·{body}"

    def as_table(self, fn: str) -> dict[str, object]:
        """The spec's ``activation = { name = fn, scale = ..., shift = ..., gain = ... }`` table."""
        return {"name": fn, "scale": self.scale, "shift": self.shift, "gain": self.gain}

    def wrap(self, f: Elementwise, *derivatives: Elementwise) -> tuple[Elementwise, ...]:
        """NumPy references ``(φ, φ', φ'', ...)`` from ``(f, f', f'', ...)``.

        The n-th derivative is ``scale · gainⁿ · f⁽ⁿ⁾(gain · (u − shift))``. When plain the
        given functions come back unchanged (the same objects, the same numbers).
        """
        if self.plain:
            return (f, *derivatives)
        scale, shift, gain = self.scale, self.shift, self.gain

        def lift(g: Elementwise, order: int) -> Elementwise:
            factor = scale * gain ** order
            return lambda u: factor * g(gain * (np.asarray(u) - shift))
        return tuple(lift(g, order) for order, g in enumerate((f, *derivatives)))


PLAIN = RateParams()
"""The unparametrised rate function (scale 1, shift 0, gain 1)."""
