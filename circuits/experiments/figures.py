"""A sweep's figures: overlaid learning curves and alignment curves with 95 % bands.

Each variant is drawn at its selected grid point: the mean over its completed seeds per
epoch, and a band of the 95 % confidence interval of that mean (Student's t; no band with
one seed). Drawn under the settings of :mod:`circuits.render`, like the single-run plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# The figure conventions are render's, as in circuits.plots.
from circuits.render import _LEGEND_PT, _RC, _TITLE_PT, _save
from circuits.experiments.stats import mean_ci

if TYPE_CHECKING:
    from circuits.experiments.report import Report

__all__ = ["plot_report", "band"]

_PANELS = (("test_accuracy", "test accuracy (%)", 100.0, (0.0, 100.0)),
           ("test_loss", "test loss", 1.0, (0.0, np.inf)),
           ("validation_accuracy", "validation accuracy (%)", 100.0, (0.0, 100.0)))


def band(curves: Any, run_ids: Sequence[str], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and 95 % CI half-width of ``column`` over the runs ``run_ids``.

    An epoch's statistics use the runs that reached it.
    """
    mine = curves[curves["run_id"].astype(str).isin(list(run_ids))]
    if column not in mine or mine[column].isna().all():
        return np.array([]), np.array([]), np.array([])
    epochs = np.array(sorted(mine["epoch"].dropna().unique()))
    stats = [mean_ci(mine.loc[mine["epoch"] == e, column].astype(float).tolist()) for e in epochs]
    return epochs, np.array([s[0] for s in stats]), np.array([s[2] for s in stats])


def _draw(ax: Any, epochs: np.ndarray, mean: np.ndarray, half: np.ndarray, scale: float,
          label: str, color: Any, limits: tuple[float, float] = (-np.inf, np.inf)) -> None:
    """The mean line and its band, the band clipped to the values the quantity can take."""
    ax.plot(epochs, scale * mean, lw=1.5, label=label, color=color)
    finite = np.isfinite(half)
    if finite.any():
        low = np.clip(scale * (mean - half)[finite], *limits)
        high = np.clip(scale * (mean + half)[finite], *limits)
        ax.fill_between(epochs[finite], low, high, color=color, alpha=0.2, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_report(report: Report, curves: Any) -> list[Path]:
    """Write ``curves.png`` and, where alignment was recorded, ``alignment.png``; return the paths."""
    written = [_plot_curves(report, curves)]
    aligned = [c for c in curves.columns if str(c).startswith("align.") and not curves[c].isna().all()]
    if aligned:
        written.append(_plot_alignment(report, curves, aligned))
    return written


def _plot_curves(report: Report, curves: Any) -> Path:
    panels = [p for p in _PANELS if p[0] in curves and not curves[p[0]].isna().all()]
    colors = matplotlib.colormaps["tab10"].colors
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(3.8 * len(panels), 3.3), layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(f"{report.name}: mean over seeds, 95 % CI", fontsize=_TITLE_PT, fontweight="bold")
        for ax, (column, label, scale, limits) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            ax.spines[["top", "right"]].set_visible(False)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            for index, v in enumerate(report.variants):
                epochs, mean, half = band(curves, v.run_ids, column)
                if len(epochs):
                    _draw(ax, epochs, mean, half, scale, f"{v.variant} (n={v.seeds})",
                          colors[index % len(colors)], limits)
            ax.legend(loc="best", frameon=False, fontsize=_LEGEND_PT)
        return _save(fig, report.out / "curves.png", ".png")


def _plot_alignment(report: Report, curves: Any, aligned: Sequence[str]) -> Path:
    shown = [v for v in report.variants
             if any(len(band(curves, v.run_ids, c)[0]) for c in aligned)]
    colors = matplotlib.colormaps["tab10"].colors
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(3.8 * max(len(shown), 1), 3.3), layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(f"{report.name}: angle to backprop's update, mean over seeds, 95 % CI",
                     fontsize=_TITLE_PT, fontweight="bold")
        for ax, v in zip(fig.subplots(1, max(len(shown), 1), squeeze=False)[0], shown):
            ax.spines[["top", "right"]].set_visible(False)
            ax.set_title(v.variant, fontsize=_LEGEND_PT + 1)
            ax.set_xlabel("epoch")
            ax.set_ylabel("angle (°)")
            ax.axhline(90.0, color="#999999", lw=1.0, linestyle="--", zorder=1)
            for index, column in enumerate(aligned):
                epochs, mean, half = band(curves, v.run_ids, column)
                if len(epochs) and np.isfinite(mean).any():
                    _draw(ax, epochs, mean, half, 1.0, column.removeprefix("align."),
                          colors[index % len(colors)], (0.0, 180.0))
            top = np.nanmax([90.0, *curves[list(aligned)].to_numpy(dtype=float).ravel()])
            ax.set_ylim(0.0, (top if math.isfinite(top) else 90.0) + 5.0)
            ax.legend(loc="best", frameon=False, fontsize=_LEGEND_PT)
        return _save(fig, report.out / "alignment.png", ".png")
