"""Runs and circuits in notebooks: :func:`load_run` and the objects Jupyter displays.

    run = circuits.load_run("runs/bp-digits/backprop-seed0")
    run                     # status, final metrics, schedule, the circuit as SVG, learning curves
    run.metrics             # pandas DataFrame of metrics.csv (a dict of arrays without pandas)
    run.params["x->h1"]     # the trained weights (params.npz)
    run.model()             # a Model of run.spec holding those parameters

A :class:`~circuits.model.Model` shows its populations and schedule as Markdown by itself;
``diagram(model)`` adds its drawing.
"""

from __future__ import annotations

import base64
import html
import importlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from circuits.errors import CircuitsError
from circuits.graph import CircuitGraph
from circuits.ir import Program
from circuits.model import Model, schedule_markdown
from circuits.render import render_graph
from circuits.rules import default_registry
from circuits.runs import read_metrics
from circuits.spec import CircuitSpec, load_spec

__all__ = ["Run", "RunReadError", "Diagram", "diagram", "load_run"]


class RunReadError(CircuitsError):
    """A folder cannot be read as a run (no spec.toml, unreadable files)."""


def _svg(graph: CircuitGraph, phases: tuple[str, ...]) -> str:
    """The circuit's diagram as SVG text (as ``circuits render -o FILE.svg`` draws it)."""
    with tempfile.TemporaryDirectory() as folder:
        path = render_graph(graph, Path(folder) / "circuit.svg", phases=phases)
        text = path.read_text(encoding="utf-8")
    return text[text.find("<svg"):]  # inline: no XML prolog or doctype


@attrs.frozen(eq=False)
class Diagram:
    """A circuit's drawing; Jupyter shows it as SVG."""

    svg: str = attrs.field(repr=False)

    def _repr_svg_(self) -> str:
        return self.svg


def diagram(model: Model) -> Diagram:
    """The drawing of ``model``'s circuit (forward solid, feedback dashed), for a notebook."""
    return Diagram(_svg(model.graph, tuple(phase.name for phase in model.program.phases)))


def _pandas() -> Any:
    """pandas when it is installed (the ``sweep`` extra), else ``None``."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


@attrs.frozen(eq=False)
class Run:
    """One run folder, read: its resolved spec, summary, metrics and parameters.

    ``metrics`` (and ``alignment``, when recorded) is a pandas DataFrame when pandas is
    installed, else a dict of column name → float array. ``params`` is empty for a run that
    saved none.
    """

    path: Path
    spec: CircuitSpec = attrs.field(repr=False)
    summary: dict[str, Any] = attrs.field(repr=False)
    metrics: Any = attrs.field(repr=False)
    params: dict[str, np.ndarray] = attrs.field(repr=False)
    alignment: Any = attrs.field(default=None, repr=False)

    def model(self) -> Model:
        """A :class:`Model` of :attr:`spec` holding :attr:`params` (the trained circuit)."""
        registry = default_registry()
        model = Model(self.spec, registry=registry)
        if self.params:
            model.set_params(self.params)
        return model

    def final(self) -> dict[str, float]:
        """The last epoch's numbers from ``summary.json`` (train/test loss, test accuracy)."""
        return {k: (math.nan if v is None else float(v)) for k, v in self.summary.get("final", {}).items()}

    def _repr_html_(self) -> str:
        """Status, final metrics, the schedule in brief, the circuit as SVG and the curves."""
        model = self.model()
        s = self.summary
        title = (f"<b>{html.escape(self.spec.name)}</b> · rule <code>{html.escape(self.spec.rule.name)}</code> · "
                 f"{html.escape(str(s.get('status', '?')))} after {s.get('epochs', '?')} of "
                 f"{s.get('epochs_planned', '?')} epochs · <code>{html.escape(str(self.path))}</code>")
        rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{_number(v)}</td></tr>"
                       for k, v in {**self.final(), "best test accuracy": s.get("best_test_accuracy"),
                                    "wall seconds": s.get("wall_seconds")}.items())
        parts = [f"<p>{title}</p>", f"<table>{rows}</table>",
                 _schedule_html(model.program),
                 _svg(model.graph, tuple(phase.name for phase in model.program.phases))]
        curves = self.path / "curves.png"
        if curves.is_file():
            data = base64.b64encode(curves.read_bytes()).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="learning curves" width="480"/>')
        return "\n".join(parts)

    def _repr_markdown_(self) -> str:
        """A plain-text fallback: status, final metrics and the schedule in brief."""
        s = self.summary
        lines = [f"**{self.spec.name}** · rule `{self.spec.rule.name}` · {s.get('status', '?')} after "
                 f"{s.get('epochs', '?')} epochs · `{self.path}`", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k.replace('_', ' ')} | {_number(v)} |" for k, v in self.final().items()]
        return "\n".join([*lines, "", schedule_markdown(self.model().program)])


def _schedule_html(program: Program) -> str:
    """The schedule in brief as an HTML table (the rows of :func:`~circuits.model.schedule_markdown`)."""
    lines = schedule_markdown(program).splitlines()
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in _cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(line)) + "</tr>"
                   for line in lines[2:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "–" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"
    return "–" if value is None else html.escape(str(value))


def _table(path: Path) -> Any:
    """A CSV of the run folder as a DataFrame (pandas) or a dict of float arrays."""
    rows = read_metrics(path)
    pandas = _pandas()
    if pandas is not None:
        return pandas.DataFrame(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return {column: np.array([row.get(column, math.nan) for row in rows]) for column in columns}


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read the run folder ``path`` (as ``circuits simulate`` writes it).

    Raises
    ------
    RunReadError
        When ``path`` is not a run folder or a file of it cannot be read.
    SpecError
        When its ``spec.toml`` no longer loads (e.g. a rule plug-in is gone).
    """
    folder = Path(path).expanduser()
    if not (folder / "spec.toml").is_file():
        raise RunReadError(f"{folder}: no spec.toml, so it is not a run folder of circuits simulate")
    spec = load_spec(folder / "spec.toml", rules=default_registry().signatures())
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8")) \
            if (folder / "summary.json").is_file() else {}
        metrics = _table(folder / "metrics.csv") if (folder / "metrics.csv").is_file() else _table_empty()
        alignment = _table(folder / "alignment.csv") if (folder / "alignment.csv").is_file() else None
        params: dict[str, np.ndarray] = {}
        if (folder / "params.npz").is_file():
            with np.load(folder / "params.npz", allow_pickle=False) as archive:
                params = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise RunReadError(f"{folder}: cannot read the run ({exc})") from None
    if not isinstance(summary, Mapping):
        raise RunReadError(f"{folder}/summary.json: not a JSON object")
    return Run(folder, spec, dict(summary), metrics, params, alignment)


def _table_empty() -> Any:
    pandas = _pandas()
    return pandas.DataFrame() if pandas is not None else {}
