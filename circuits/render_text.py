"""Diagrams as text: Graphviz (``.dot``) and Mermaid (``.mmd``), written without matplotlib.

This module also holds what every diagram of a circuit shares, whatever its format: the
palette (:data:`ROLE_COLORS`, :data:`EDGE_COLORS`), the title (:func:`diagram_title`), the
second line of a population's box (:func:`box_detail`) and the layers populations are drawn
on (:func:`layer_depths`). :mod:`circuits.render` draws the same diagrams as pictures.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from circuits.graph import CircuitGraph
from circuits.spec import PopulationSpec, ProjectionSpec

__all__ = ["ROLE_COLORS", "EDGE_COLORS", "box_detail", "diagram_title", "layer_depths", "projection_detail",
           "to_dot", "to_mermaid"]

#: Role → (fill, outline) of population boxes.
ROLE_COLORS = {"input": ("#dce8f4", "#4a78a8"), "hidden": ("#eceff1", "#6b7b86"),
               "output": ("#f8e3c8", "#c47f2c")}
#: Projection type → line colour.
EDGE_COLORS = {"forward": "#37474f", "feedback": "#a23b72", "lateral": "#2a7f8f"}

_MERMAID_WORDS = {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click",
                  "linkstyle", "direction", "default"}


def box_detail(pop: PopulationSpec) -> str:
    """The line under a population's name: ``"<size> · <activation>[ · dropout p][ · spikes T=n][ · cell]"``;
    a shaped population shows its maps, ``6×14×14``, in place of its size."""
    size = "×".join(str(d) for d in pop.shape) if pop.shape else str(pop.size)
    rate = pop.activation if pop.rate_params.plain else pop.rate_params.formula(pop.activation, "u")
    return (f"{size} · {rate}" + (f" · dropout {pop.dropout:g}" if pop.dropout else "")
            + (f" · spikes T={pop.spikes.window}" if pop.spikes is not None else "")
            + (f" · {pop.cell}" if pop.cell else ""))


def projection_detail(proj: ProjectionSpec) -> str:
    """The kernel of a conv projection, ``conv 5×5 pad 2 · max 2`` (empty for a dense one)."""
    if proj.conv is None:
        return ""
    conv = proj.conv
    text = f"conv {conv.kernel}×{conv.kernel}" + (f"/{conv.stride}" if conv.stride != 1 else "")
    text += f" pad {conv.padding}" if conv.padding else ""
    return text + (f" · {proj.pool.kind} {proj.pool.size}" if proj.pool else "")


def diagram_title(graph: CircuitGraph, title: str | None, phases: Sequence[str]) -> str:
    """``title``, or by default ``"<circuit> · <rule>[ · phases: a, b]"``."""
    return title or " · ".join([graph.spec.name, graph.spec.rule.name]
                               + ([f"phases: {', '.join(phases)}"] if phases else []))


def layer_depths(graph: CircuitGraph) -> dict[str, int]:
    """Forward depth; in a cyclic (energy-based) circuit, that of the graph without back edges."""
    forward = graph.forward_graph()
    if nx.is_directed_acyclic_graph(forward):
        return graph.depth()
    index = {name: i for i, name in enumerate(graph.populations)}
    dist = nx.multi_source_dijkstra_path_length(forward, set(graph.inputs))
    rank = {n: (dist.get(n, 0), index[n]) for n in forward}
    dag = nx.DiGraph([(u, v) for u, v in forward.edges if rank[u] < rank[v]])
    dag.add_nodes_from(forward)
    depth: dict[str, int] = {}
    for name in nx.lexicographical_topological_sort(dag, key=index.get):
        depth[name] = 1 + max((depth[p] for p in dag.predecessors(name)), default=-1)
    depth[graph.output] = 1 + max((d for n, d in depth.items() if n != graph.output), default=0)
    return depth


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: CircuitGraph, *, title: str | None = None, phases: Sequence[str] = ()) -> str:
    """Graphviz text: inputs at the bottom, feedback dashed, lateral dotted, fixed ones thin."""
    label = diagram_title(graph, title, phases) + (f"\n{graph.spec.doc}" if graph.spec.doc else "")
    lines = [f"digraph {_quote(graph.spec.name)} {{", "  rankdir=BT;", f"  label={_quote(label)};",
             '  labelloc=t;\n  fontname="Helvetica";',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    lines += [f"  {_quote(n)} [label={_quote(n + chr(10) + box_detail(p))}, "
              f'fillcolor="{ROLE_COLORS[p.role][0]}", color="{ROLE_COLORS[p.role][1]}"];'
              for n, p in graph.populations.items()]
    depth = layer_depths(graph)
    lines += [f"  {{ rank=same; {'; '.join(_quote(n) for n in graph.populations if depth[n] == k)}; }}"
              for k in range(max(depth.values()) + 1)]
    style = {"forward": [], "feedback": ["style=dashed", "constraint=false"],
             "lateral": ["style=dotted", "constraint=false"]}
    for proj in graph.projections():
        attrs_ = [f'color="{EDGE_COLORS[proj.type]}"', f"tooltip={_quote(proj.name)}", *style[proj.type]]
        attrs_ += [] if proj.plastic else ["penwidth=0.7", "arrowhead=empty", 'label="fixed"']
        attrs_ += [f'headlabel="{proj.compartment}", labelfontsize=8'] if proj.compartment else []
        attrs_ += [f"label={_quote(projection_detail(proj))}", "fontsize=8"] if proj.conv else []
        lines.append(f"  {_quote(proj.source)} -> {_quote(proj.target)} [{', '.join(attrs_)}];")
    return "\n".join(lines + ["}", ""])


def to_mermaid(graph: CircuitGraph, *, title: str | None = None, phases: Sequence[str] = ()) -> str:
    """Mermaid flowchart text: ``-->`` forward, ``-.->`` feedback, ``==>`` lateral."""
    ids = {n: f"pop_{n}" if n.lower() in _MERMAID_WORDS else n for n in graph.populations}
    lines = ["---", f"title: {_quote(diagram_title(graph, title, phases))}", "---", "flowchart BT"]
    lines += [f"  %% {graph.spec.doc}"] if graph.spec.doc else []
    lines += [f'  {ids[n]}["{n}<br/>{box_detail(p)}"]:::{p.role}' for n, p in graph.populations.items()]
    arrows = {"forward": "-->", "feedback": "-.->", "lateral": "==>"}
    for proj in graph.projections():
        label = ([] if proj.type == "forward" else [proj.type]) + ([] if proj.plastic else ["fixed"])
        label += [f"→ {proj.compartment}"] if proj.compartment == "apical" else []
        label += [projection_detail(proj)] if proj.conv else []
        text = f"|{', '.join(label)}|" if label else ""
        lines.append(f"  {ids[proj.source]} {arrows[proj.type]}{text} {ids[proj.target]}")
    lines += [f"  classDef {role} fill:{fill},stroke:{edge}" for role, (fill, edge) in ROLE_COLORS.items()]
    lines += [f"  linkStyle {i} stroke:{EDGE_COLORS[p.type]}" for i, p in enumerate(graph.projections())]
    return "\n".join(lines + [""])
