"""Pictures of training: learning curves and alignment angles against backprop.

Plots are drawn under the same matplotlib settings, fonts and palette as the diagrams of
:mod:`circuits.render` and saved the same way, so one set of numbers always gives the same
bytes. ``.png``, ``.svg`` and ``.pdf`` are the formats; any other suffix is a ``SpecError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# The figure conventions are render's; sharing them keeps the plots looking like the diagrams.
from circuits.render import _LEGEND_PT, _PICTURES, _RC, _TITLE_PT, _save, _suffix
from circuits.render_text import EDGE_COLORS, ROLE_COLORS

__all__ = ["plot_curves", "plot_alignment"]


def _angle_axes(ax, steps: Sequence[float], angles: Mapping[str, Sequence[float]]) -> None:
    peak = max([90.0] + [a for values in angles.values() for a in values if math.isfinite(a)])
    ax.axhline(90.0, color="#999999", lw=1.0, linestyle="--", zorder=1)
    for name, values in angles.items():
        ax.plot(steps, values, lw=1.4, label=name)
    ax.set_ylim(0.0, peak + 5.0)
    ax.set_yticks(np.arange(0.0, peak + 1.0, 15.0))
    ax.set_ylabel("angle to backprop's update (°)")
    if angles:
        ax.legend(loc="best", frameon=False, fontsize=_LEGEND_PT)


def plot_curves(rows: Sequence[Mapping[str, float]], path: str | Path, *, title: str) -> Path:
    """Learning curves from ``metrics.csv`` rows: loss, test accuracy and alignment angles.

    Parameters
    ----------
    rows
        One mapping per epoch with ``epoch``, ``train_loss``, ``test_loss``, ``test_accuracy``
        (a fraction) and optional ``align.<param>`` angles in degrees; missing values are NaN.
        The accuracy panel is left out when every accuracy is NaN (regression), the angle
        panel when there are no ``align.`` columns.
    path
        ``.png``, ``.svg`` or ``.pdf``.
    title
        Shown above the panels.

    Raises
    ------
    SpecError
        When the suffix names no known format.
    """
    path = Path(path)
    suffix = _suffix(path, _PICTURES, "plot")

    def column(key: str) -> list[float]:
        return [float(row.get(key, math.nan)) for row in rows]
    epochs, accuracy = column("epoch"), column("test_accuracy")
    aligned = sorted({k for row in rows for k in row if k.startswith("align.")})
    finite = [a for a in accuracy if math.isfinite(a)]
    panels = ["loss"] + (["accuracy"] if finite else []) + (["align"] if aligned else [])
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(3.6 * len(panels), 3.2), layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(title, fontsize=_TITLE_PT, fontweight="bold")
        for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            ax.set_xlabel("epoch")
            ax.spines[["top", "right"]].set_visible(False)
            if panel == "loss":
                ax.plot(epochs, column("train_loss"), color=EDGE_COLORS["forward"], lw=1.5, label="train")
                ax.plot(epochs, column("test_loss"), color=ROLE_COLORS["output"][1], lw=1.5, ls="--",
                        label="test")
                ax.set_ylabel("loss")
                ax.legend(loc="best", frameon=False, fontsize=_LEGEND_PT)
            elif panel == "accuracy":
                scale = 100.0 if max(finite) <= 1.0 else 1.0   # fractions, or percentages already
                ax.plot(epochs, [a * scale for a in accuracy], color=ROLE_COLORS["input"][1], lw=1.5)
                ax.set_ylabel("test accuracy (%)")
            else:
                _angle_axes(ax, epochs, {k.removeprefix("align."): column(k) for k in aligned})
        return _save(fig, path, suffix)


def plot_alignment(records: Sequence[tuple[int, Mapping[str, float]]], path: str | Path, *,
                   title: str) -> Path:
    """Angle between each parameter's update and backprop's, against the training step.

    Parameters
    ----------
    records
        ``(step, {parameter: angle in degrees})`` pairs in step order.
    path
        ``.png``, ``.svg`` or ``.pdf``.
    title
        Shown above the plot.

    Raises
    ------
    SpecError
        When the suffix names no known format.
    """
    path = Path(path)
    suffix = _suffix(path, _PICTURES, "plot")
    names = sorted({name for _, angles in records for name in angles})
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.0, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.set_title(title, fontsize=_TITLE_PT, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel("training step")
        _angle_axes(ax, [float(step) for step, _ in records],
                    {n: [float(a.get(n, math.nan)) for _, a in records] for n in names})
        return _save(fig, path, suffix)
