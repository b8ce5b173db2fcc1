"""Statistics over seeds: the mean and its confidence interval (Student's t)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from circuits.experiments.optional import require_sweep_extra

__all__ = ["mean_ci"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean, sample standard deviation and half-width of the ``level`` CI of the mean.

    Implements ``half = t((1 + level) / 2, n - 1) · sd / √n`` over the finite values (SciPy's
    t quantile; SciPy comes with scikit-learn). With one value the spread is NaN; with none,
    everything is.
    """
    stats = require_sweep_extra("scipy.stats")
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    if len(data) == 1:
        return float(data[0]), math.nan, math.nan
    sd = float(np.std(data, ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(data) - 1)) * sd / math.sqrt(len(data))
    return float(data.mean()), sd, half
