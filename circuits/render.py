"""Diagrams of a circuit as pictures, laid out and drawn with matplotlib.

Stages of :func:`render_graph` for a picture (``.svg``, ``.png``, ``.pdf``):

1. :func:`layout` puts every population on a layer by its forward depth (inputs at the bottom,
   the output at the top), orders each layer by the barycentre of its neighbours to reduce
   crossings, sizes the boxes to their labels and routes every projection between box faces,
   bending it around the boxes it would otherwise cross;
2. the figure is drawn in inch coordinates (one axes filling the figure, so arrows meet box
   edges exactly) with a legend and a title;
3. it is saved with fixed metadata and SVG hash salt, so one graph always gives the same bytes.

``.dot`` (Graphviz) and ``.mmd`` (Mermaid) diagrams are text, written by
:mod:`circuits.render_text` (which also holds the palette, titles and layers every diagram
shares); learning curves are drawn by :mod:`circuits.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch, Polygon
from matplotlib.textpath import TextToPath

from circuits.errors import SpecError
from circuits.graph import CircuitGraph
from circuits.render_text import (EDGE_COLORS, ROLE_COLORS, box_detail, diagram_title, layer_depths,
                                  projection_detail, to_dot, to_mermaid)
from circuits.spec import ProjectionSpec

__all__ = ["Layout", "layout", "render_graph"]

_DASHES = {"forward": "-", "feedback": (0, (4.0, 2.4)), "lateral": (0, (1.0, 1.6))}
_SIDE = {"forward": -1.0, "feedback": 1.0, "lateral": 1.0}   # bend forward left, the rest right
_LINE_W = {True: 1.5, False: 0.9}                            # plastic, fixed

_FONT = "DejaVu Sans"    # ships with matplotlib, so labels measure the same everywhere
_NAME_PT, _DETAIL_PT, _TITLE_PT, _DOC_PT, _LEGEND_PT = 10.0, 8.0, 11.0, 8.5, 8.0
_BOX_H, _BOX_PAD, _LAYER_DY, _SLOT_GAP, _MARGIN, _HEAD = 0.56, 0.3, 1.3, 0.7, 0.3, 0.1   # inches
_RC = {"svg.hashsalt": "circuits", "svg.fonttype": "none", "pdf.fonttype": 42,
       "font.family": "sans-serif", "font.sans-serif": [_FONT], "font.size": 9.0}
_METADATA = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}, ".png": {"Software": None}}
_PICTURES = (".svg", ".png", ".pdf")
_T = np.linspace(0.0, 1.0, 41)[:, None]
_TEXT = TextToPath()


@attrs.frozen
class Layout:
    """Where everything goes in a diagram; lengths in inches from the figure's lower left.

    ``positions`` maps population → box centre; ``routes`` maps projection name → the control
    points (``3n + 1`` rows) of its chain of cubic Bézier curves, from box face to box face.
    """

    positions: dict[str, tuple[float, float]] = attrs.field(hash=False)
    routes: dict[str, np.ndarray] = attrs.field(hash=False, eq=False)
    box: tuple[float, float]
    size: tuple[float, float]
    title: tuple[str, ...]
    doc: tuple[str, ...]
    legend_at: tuple[float, float]

    def contains_box(self, name: str) -> bool:
        """Whether the box of population ``name`` lies wholly inside the figure."""
        (x, y), (w, h) = self.positions[name], self.box
        return 0 <= x - w / 2 and x + w / 2 <= self.size[0] and 0 <= y - h / 2 and y + h / 2 <= self.size[1]


def _text_width(text: str, points: float, weight: str = "normal") -> float:
    prop = FontProperties(family=_FONT, size=points, weight=weight)
    return _TEXT.get_text_width_height_descent(text, prop, ismath=False)[0] / 72.0


def _wrap(text: str, points: float, width: float, weight: str = "normal") -> tuple[str, ...]:
    """Greedy word wrap to ``width`` inches; newlines in ``text`` always break."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        start = len(lines)
        for word in paragraph.split():
            if len(lines) > start and _text_width(f"{lines[-1]} {word}", points, weight) <= width:
                lines[-1] += f" {word}"
            else:
                lines.append(word)
    return tuple(lines)


# ---------------------------------------------------------------------------------------------
# Layout


def _slots(order: list[list[str]]) -> dict[str, float]:
    return {n: i - (len(layer) - 1) / 2 for layer in order for i, n in enumerate(layer)}


def _crossings(order: list[list[str]], depth: Mapping[str, int], edges: list[tuple[str, str]]) -> int:
    slot = _slots(order)
    segs = [((slot[u], depth[u]), (slot[v], depth[v])) for u, v in edges]

    def turn(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return sum(1 for i, (a, b) in enumerate(segs) for c, d in segs[i + 1:] if len({a, b, c, d}) == 4
               and turn(a, b, c) * turn(a, b, d) < 0 and turn(c, d, a) * turn(c, d, b) < 0)


def _order_layers(graph: CircuitGraph, depth: Mapping[str, int]) -> list[list[str]]:
    """Layers, inputs first, ordered by barycentre sweeps (inputs keep the spec's order)."""
    count = max(depth.values()) + 1
    order = [[n for n in graph.populations if depth[n] == k] for k in range(count)]
    edges = [(p.source, p.target) for p in graph.projections("forward") if depth[p.source] != depth[p.target]]
    edges = [(u, v) if depth[u] < depth[v] else (v, u) for u, v in edges]   # lower end first
    below = {n: [u for u, v in edges if v == n] for n in depth}
    above = {n: [v for u, v in edges if u == n] for n in depth}
    best, fewest = [list(layer) for layer in order], _crossings(order, depth, edges)
    for _ in range(4):
        for layers, neighbours in ((range(1, count), below), (range(count - 2, 0, -1), above)):
            for k in layers:
                slot = _slots(order)
                key = {n: (float(np.mean([slot[m] for m in neighbours[n]])) if neighbours[n] else slot[n], i)
                       for i, n in enumerate(order[k])}
                order[k].sort(key=key.get)
            if (crossings := _crossings(order, depth, edges)) < fewest:
                best, fewest = [list(layer) for layer in order], crossings
    return best


def _arc(p0: np.ndarray, p3: np.ndarray, bend: float) -> np.ndarray:
    """A cubic from ``p0`` to ``p3`` pushed sideways by ``bend`` (upwards between level ends)."""
    offset = np.array([0.0, bend] if abs(p3[1] - p0[1]) < 1e-9 else [bend, 0.0])
    return np.array([p0, p0 + (p3 - p0) / 3 + offset, p0 + 2 * (p3 - p0) / 3 + offset, p3])


def _lane(p0: np.ndarray, p3: np.ndarray, x: float, y0: float, y1: float) -> np.ndarray:
    """Three cubics: ``p0`` swings over to the vertical lane at ``x``, which runs from ``y0`` to
    ``y1``, and swings back to ``p3``; ends leave and reach their boxes heading for the lane."""
    a, b, lean = np.array([x, y0]), np.array([x, y1]), np.array([0.6, 0.25])
    k0, k1 = np.array([0.0, (y0 - p0[1]) / 2]), np.array([0.0, (p3[1] - y1) / 2])
    return np.array([p0, p0 + (a - p0) * lean, a - k0, a, a + (b - a) / 3, a + 2 * (b - a) / 3, b, b + k1,
                     p3 + (b - p3) * lean, p3])


def _points(c: np.ndarray, t: np.ndarray = _T) -> np.ndarray:
    """Points along a chain of cubics given by ``3n + 1`` control points."""
    weights = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)   # elementwise, no BLAS:
    return np.concatenate([sum(wk * c[i + k] for k, wk in enumerate(weights))    # same bits everywhere
                           for i in range(0, len(c) - 1, 3)])


def _spread(wanted: Sequence[tuple[float, float]], gap: float, limit: float) -> list[float]:
    """Ordered offsets ``gap`` apart within ``±limit``, nearest the (offset, weight) ``wanted``.

    Weighted least squares under the order constraint is isotonic regression of
    ``wanted[i] - i·gap``, solved by pooling adjacent violators.
    """
    gap = min(gap, 2 * limit / max(len(wanted) - 1, 1))
    blocks: list[list[float]] = []   # [weighted sum, weight, count]
    for i, (want, weight) in enumerate(wanted):
        blocks.append([(want - i * gap) * weight, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last)]
    offsets = [total / weight for total, weight, count in blocks for _ in range(int(count))]
    offsets = [q + i * gap for i, q in enumerate(offsets)]
    shift = max(0.0, -limit - offsets[0]) - max(0.0, offsets[-1] - limit)
    return [x + shift for x in offsets]


def _route(graph: CircuitGraph, centres: Mapping[str, np.ndarray], depth: Mapping[str, int],
           box: tuple[float, float]) -> dict[str, np.ndarray]:
    """Route every projection from box face to box face.

    1. Between neighbouring layers (or within one) a projection is one cubic bent as little as
       lets it miss every box and every other projection between the same pair; feedback and
       lateral ones always bend, so they never hide behind a forward arrow;
    2. a longer projection is straight where that misses every box, else it runs along a
       vertical lane clear of the layers it passes (forward to the left, the others right);
    3. the ends sharing a box face are spread apart in the order their curves head off.
    """
    w, h = box
    clear = np.array([w / 2 + 0.1, h / 2 + 0.05])
    ways: dict[str, tuple[float, ...]] = {}    # (bend,) or (lane x, y0, y1)
    twins: dict[frozenset[str], list[float]] = {}
    lanes: list[tuple[float, float, float]] = []
    xs = [c[0] for c in centres.values()]
    for proj in graph.projections():
        s, t = proj.source, proj.target
        if s == t:
            continue
        span, up = abs(depth[t] - depth[s]), 1.0 if depth[t] >= depth[s] else -1.0
        p0, p3 = centres[s] + (0, up * h / 2), centres[t] + (0, (-up if span else 1.0) * h / 2)
        others = np.array([c for n, c in centres.items() if n not in (s, t)]).reshape(-1, 1, 2)
        side, pair = _SIDE[proj.type], twins.setdefault(frozenset((s, t)), [])
        least = 0.0 if span > 1 or proj.type == "forward" else 0.4 if span else 0.35
        bends = [b for b in np.round(np.arange(-60, 61) * 0.1, 2) if abs(b) >= least and (span or b > 0)
                 and (span <= 1 or b == 0) and all(abs(b - u) >= 0.35 for u in pair)]
        bends.sort(key=lambda b: (abs(b) + (0.8 if b * side < 0 else 0.0), -b * side))
        for bend in bends:
            if not np.any(np.all(np.abs(_points(_arc(p0, p3, bend))[None] - others) < clear, axis=2)):
                ways[proj.name] = (float(bend),)
                pair.append(float(bend))
                break
        else:
            low, high = sorted((depth[s], depth[t]))
            blocked = [c[0] for n, c in centres.items() if low < depth[n] < high]
            y0, y1 = ((low + 1) * _LAYER_DY - clear[1], (high - 1) * _LAYER_DY + clear[1])[::int(up)]
            ideal = (p0[0] + p3[0]) / 2
            reach = w + 0.25 * len(graph.projections())   # room for every lane, however many
            free = [x for x in np.round(np.arange(min(xs) - reach, max(xs) + reach, 0.05), 2)
                    if all(abs(x - b) >= clear[0] + 0.2 for b in blocked)
                    and all(abs(x - lx) >= 0.2 for lx, a, b in lanes if a < max(y0, y1) and min(y0, y1) < b)]
            x = min(free, key=lambda x: (abs(x - ideal) + (0.8 if (x - ideal) * side < 0 else 0.0), x))
            lanes.append((float(x), min(y0, y1), max(y0, y1)))
            ways[proj.name] = (float(x), y0, y1)
    ends: dict[tuple[str, str], list[tuple[float, int, str, int, float]]] = {}
    for index, proj in enumerate(graph.projections()):
        if proj.name in ways:
            way, ps, pt = ways[proj.name], centres[proj.source], centres[proj.target]
            aims = (way[0], way[0]) if len(way) == 3 else tuple(_arc(ps, pt, way[0])[1:3, 0])
            stiff = 5.0 if way == (0.0,) else 1.0   # straight projections keep to the middle
            for end, name, other, aim in ((0, proj.source, pt, aims[0]), (-1, proj.target, ps, aims[1])):
                level = depth[proj.source] == depth[proj.target]
                face = 1.0 if level or other[1] > centres[name][1] else -1.0
                ends.setdefault((name, face), []).append((float(aim), index, proj.name, end, stiff))
    anchors: dict[tuple[str, int], np.ndarray] = {}
    for (name, face), items in ends.items():
        items.sort()
        limit = w / 2 - 0.1
        wanted = [(float(np.clip(0.5 * (aim - centres[name][0]), -limit, limit)), stiff)
                  for aim, *_, stiff in items]
        for (*_, proj_name, end, _), dx in zip(items, _spread(wanted, 0.18, limit)):
            anchors[proj_name, end] = centres[name] + (dx, face * h / 2)
    routes = {}
    for proj in graph.projections():
        if proj.source == proj.target:   # a loop on the right of the box
            x, y = centres[proj.source] + (w / 2, 0.0)
            routes[proj.name] = np.array([[x, y + 0.1], [x + 0.5, y + 0.38], [x + 0.5, y - 0.38],
                                          [x, y - 0.1]])
        else:
            way, p0, p3 = ways[proj.name], anchors[proj.name, 0], anchors[proj.name, -1]
            routes[proj.name] = _lane(p0, p3, *way) if len(way) == 3 else _arc(p0, p3, way[0])
    return routes


def _legend(graph: CircuitGraph) -> list[tuple[str, object]]:
    kinds = {p.type for p in graph.projections()}
    entries: list[tuple[str, object]] = [
        (f"{role} population", Patch(facecolor=ROLE_COLORS[role][0], edgecolor=ROLE_COLORS[role][1]))
        for role in ("input", "hidden", "output") if any(p.role == role for p in graph.populations.values())]
    names = {"forward": "forward", "feedback": "feedback", "lateral": "lateral (recurrent)"}
    entries += [(names[k], Line2D([], [], color=EDGE_COLORS[k], lw=_LINE_W[True], linestyle=_DASHES[k]))
                for k in names if k in kinds]
    if "feedback" in kinds or any(not p.plastic for p in graph.projections()):
        entries.append(("plastic (learned)", Line2D([], [], color="#555555", lw=_LINE_W[True])))
        entries.append(("fixed (not learned)", Line2D([], [], color="#555555", lw=_LINE_W[False], marker="o",
                                                      markersize=4.5, markerfacecolor="white")))
    if any(p.compartment for p in graph.projections()):
        entries.append(("B / A: onto the basal / apical dendrite", Line2D([], [], color="none")))
    return entries


def layout(graph: CircuitGraph, *, title: str | None = None, phases: Sequence[str] = ()) -> Layout:
    """Place the boxes, route the projections and size the figure of ``graph``'s diagram.

    Parameters
    ----------
    graph
        The circuit.
    title, phases
        As for :func:`render_graph`; they take room at the top of the figure.

    Returns
    -------
    Layout
        Box centres and curves in inches: inputs lowest, the output highest.
    """
    depth = layer_depths(graph)
    order = _order_layers(graph, depth)
    w = max([0.95] + [max(_text_width(p.name, _NAME_PT, "bold"), _text_width(box_detail(p), _DETAIL_PT))
                      + _BOX_PAD for p in graph.populations.values()])
    centres = {n: np.array([(i - (len(layer) - 1) / 2) * (w + _SLOT_GAP), k * _LAYER_DY])
               for k, layer in enumerate(order) for i, n in enumerate(layer)}
    routes = _route(graph, centres, depth, (w, _BOX_H))
    corner = np.array([w / 2, _BOX_H / 2])
    pts = np.concatenate([np.array([c + sign * corner for c in centres.values() for sign in (-1, 1)])]
                         + [_points(c) for c in routes.values()])
    low, extent = pts.min(axis=0), np.ptp(pts, axis=0)
    entries = _legend(graph)
    legend_w = max(_text_width(label, _LEGEND_PT) for label, _ in entries) + 0.75
    width = max(6.0, extent[0] + legend_w + 3 * _MARGIN)
    head = diagram_title(graph, title, phases)
    if _text_width(head, _TITLE_PT, "bold") > width - 2 * _MARGIN:   # the phases get a line of their own
        head = head.replace(" · phases: ", "\nphases: ")
    title_lines = _wrap(head, _TITLE_PT, width - 2 * _MARGIN, "bold")
    doc_lines = _wrap(graph.spec.doc, _DOC_PT, width - 2 * _MARGIN)
    top = 0.25 * len(title_lines) + 0.2 * len(doc_lines) + 0.25
    body = max(extent[1], 0.21 * len(entries) + 0.2)
    height = top + body + 2 * _MARGIN
    shift = np.array([_MARGIN + (width - legend_w - 2 * _MARGIN - extent[0]) / 2,
                      _MARGIN + (body - extent[1]) / 2]) - low
    return Layout(positions={n: (float(c[0] + shift[0]), float(c[1] + shift[1])) for n, c in centres.items()},
                  routes={n: c + shift for n, c in routes.items()}, box=(w, _BOX_H), size=(width, height),
                  title=title_lines, doc=doc_lines,
                  legend_at=(width - legend_w - _MARGIN / 2, height - top - _MARGIN))


# ---------------------------------------------------------------------------------------------
# Drawing


def _draw_projection(ax, proj: ProjectionSpec, c: np.ndarray) -> None:
    color, lw, scale = EDGE_COLORS[proj.type], _LINE_W[proj.plastic], 1.0 if proj.plastic else 0.8
    pts = _points(c)
    keep = np.linalg.norm(pts - c[-1], axis=1) >= _HEAD * scale * 0.8   # stop under the arrowhead
    keep[0] = True
    ax.add_line(Line2D(pts[keep, 0], pts[keep, 1], color=color, lw=lw, linestyle=_DASHES[proj.type],
                       solid_capstyle="butt", dash_capstyle="butt", zorder=2))
    tangent = c[-1] - c[-2] if np.linalg.norm(c[-1] - c[-2]) > 1e-9 else c[-1] - c[0]
    u = tangent / np.linalg.norm(tangent)
    base, n = c[-1] - u * _HEAD * scale, np.array([-u[1], u[0]]) * 0.04 * scale
    ax.add_patch(Polygon([c[-1], base + n, base - n], closed=True, facecolor=color, edgecolor=color, lw=0.5,
                         zorder=4))
    if proj.compartment:  # the dendrite it lands on: a port letter beside the arrowhead
        port = c[-1] - u * _HEAD * scale * 2.2 + np.array([-u[1], u[0]]) * 0.09
        ax.text(port[0], port[1], {"basal": "B", "apical": "A"}[proj.compartment], fontsize=_LEGEND_PT - 1,
                color=color, ha="center", va="center", fontweight="bold", zorder=5)
    if proj.conv is not None:  # the kernel, beside the middle of the arrow
        mid = pts[len(pts) // 2]
        ax.text(mid[0] - 0.06, mid[1], projection_detail(proj), fontsize=_LEGEND_PT - 1, color=color,
                ha="right", va="center", zorder=5, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    if not proj.plastic:
        mid = pts[len(pts) // 2]
        ax.plot([mid[0]], [mid[1]], marker="o", markersize=4.5, color=color, markerfacecolor="white",
                markeredgewidth=1.0, zorder=4)


def _diagram(graph: CircuitGraph, title: str | None, phases: Sequence[str]) -> Figure:
    lay = layout(graph, title=title, phases=phases)
    (width, height), (w, h), r = lay.size, lay.box, 0.08
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set(xlim=(0, width), ylim=(0, height))
    ax.set_axis_off()
    y = height - _MARGIN - 0.1
    for line in lay.title:
        ax.text(_MARGIN, y, line, fontsize=_TITLE_PT, fontweight="bold", va="center")
        y -= 0.25
    for line in lay.doc:
        ax.text(_MARGIN, y + 0.03, line, fontsize=_DOC_PT, color="#555555", va="center")
        y -= 0.2
    for name, (x, yc) in lay.positions.items():
        pop = graph.population(name)
        ax.add_patch(FancyBboxPatch((x - w / 2 + r, yc - h / 2 + r), w - 2 * r, h - 2 * r,
                                    boxstyle=f"round,pad={r}", facecolor=ROLE_COLORS[pop.role][0],
                                    edgecolor=ROLE_COLORS[pop.role][1], lw=1.2, zorder=3,
                                    linestyle=":" if pop.spikes is not None else "-"))  # spiking: dotted
        ax.text(x, yc + 0.1, name, fontsize=_NAME_PT, fontweight="bold", ha="center", va="center", zorder=5)
        ax.text(x, yc - 0.12, box_detail(pop), fontsize=_DETAIL_PT, color="#333333", ha="center", va="center",
                zorder=5)
    for proj in graph.projections():
        _draw_projection(ax, proj, lay.routes[proj.name])
    entries = _legend(graph)
    ax.legend([e for _, e in entries], [label for label, _ in entries], loc="upper left",
              bbox_to_anchor=lay.legend_at, bbox_transform=ax.transData, frameon=False, fontsize=_LEGEND_PT,
              handlelength=2.6, numpoints=1, borderaxespad=0.0)
    return fig


def _suffix(path: Path, allowed: Sequence[str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        given = (f"unknown {what} format '{suffix}'" if suffix
                 else f"no {what} format (the name has no suffix)")
        raise SpecError(f"{path}: {given}; use {', '.join(allowed[:-1])} or {allowed[-1]}")
    return suffix


def _save(fig: Figure, path: Path, suffix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=suffix[1:], metadata=_METADATA[suffix], dpi=200)
    return path


def render_graph(graph: CircuitGraph, path: str | Path, *, title: str | None = None,
                 phases: Sequence[str] = ()) -> Path:
    """Draw ``graph`` to ``path``; the suffix picks the format.

    Parameters
    ----------
    graph
        The circuit.
    path
        ``.svg``, ``.png`` or ``.pdf`` (a figure), ``.dot`` (Graphviz) or ``.mmd`` (Mermaid).
    title
        First line of the title; default ``"<circuit> · <rule> · phases: ..."``.
    phases
        The rule's phase names, shown in the default title.

    Returns
    -------
    Path
        The file written; the same graph always gives the same bytes.

    Raises
    ------
    SpecError
        When the suffix names no known format.
    """
    path = Path(path)
    suffix = _suffix(path, (*_PICTURES, ".dot", ".mmd"), "diagram")
    if suffix in (".dot", ".mmd"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((to_dot if suffix == ".dot" else to_mermaid)(graph, title=title, phases=phases),
                        encoding="utf-8")
        return path
    with matplotlib.rc_context(_RC):
        return _save(_diagram(graph, title, phases), path, suffix)
