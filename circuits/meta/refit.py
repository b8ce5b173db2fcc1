"""Refitting the pruned rule: a short search over the coefficients of the terms pruning kept.

Pruning zeroes terms but leaves the kept coefficients where the full search put them, where
they balanced terms that are now gone. ``refit = N`` in a meta file runs N more generations of
the search's own optimizer (same population, σ, step and seed) over the kept terms only,
starting from their pruned values and scored like the search (the inner tasks, the objective
plus the L1 penalty); the zeroed terms stay exactly zero. The optimizer pickles with the
search state after every generation, so ``--resume`` continues it to the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["RefitState", "embed"]


def embed(values: np.ndarray, support: Sequence[int], size: int) -> np.ndarray:
    """Rows of kept coefficients → rows of the full θ (zeros off ``support``)."""
    values = np.atleast_2d(values)
    full = np.zeros((values.shape[0], size))
    full[:, list(support)] = values
    return full


@attrs.define
class RefitState:
    """The refit so far: the pruned rule it started from, the kept terms, optimizer, rows."""

    start: tuple[float, ...]
    support: tuple[int, ...]
    optimizer: Any
    rows: list[dict[str, float]] = attrs.field(factory=list)

    def theta(self) -> np.ndarray:
        """The refitted rule: the optimizer's mean on the kept terms, zeros elsewhere."""
        return embed(np.asarray(self.optimizer.center), self.support, len(self.start))[0]
