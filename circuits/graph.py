"""The circuit as a typed graph: populations are nodes, projections are typed edges.

:func:`build_graph` wraps a networkx ``MultiDiGraph`` and runs the structural checks; every
failure is a :class:`GraphError` naming the population or projection and saying how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from circuits.errors import GraphError
from circuits.shapes import channels_first, conv_output, format_shape, pool_output
from circuits.spec import CircuitSpec, PopulationSpec, ProjectionSpec

__all__ = ["CircuitGraph", "build_graph"]


class CircuitGraph:
    """A checked circuit graph with typed accessors.

    Nodes carry their :class:`PopulationSpec` under ``"spec"``; edges are keyed by
    projection name and carry their :class:`ProjectionSpec` under ``"spec"`` and the
    projection type under ``"type"``. Build one with :func:`build_graph`.
    """

    def __init__(self, spec: CircuitSpec) -> None:
        self.spec = spec
        self.nx = nx.MultiDiGraph(name=spec.name)
        for pop in spec.populations:
            self.nx.add_node(pop.name, spec=pop)
        for proj in spec.projections:
            self.nx.add_edge(proj.source, proj.target, key=proj.name, spec=proj, type=proj.type)
        self._order = {pop.name: index for index, pop in enumerate(spec.populations)}

    # -- populations ---------------------------------------------------------------------------

    @property
    def populations(self) -> dict[str, PopulationSpec]:
        """Population name → spec, in the spec's order."""
        return {pop.name: pop for pop in self.spec.populations}

    def population(self, name: str) -> PopulationSpec:
        """The spec of population ``name``."""
        return self.nx.nodes[name]["spec"]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Input populations, in the spec's order (data features are split among them in it)."""
        return tuple(p.name for p in self.spec.populations if p.role == "input")

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output populations, in the spec's order."""
        return tuple(p.name for p in self.spec.populations if p.role == "output")

    @property
    def output(self) -> str:
        """The one output population."""
        return self.outputs[0]

    @property
    def interneurons(self) -> tuple[str, ...]:
        """Populations with ``cell = "interneuron"``, in the spec's order."""
        return tuple(p.name for p in self.spec.populations if p.cell == "interneuron")

    def served_by(self, interneuron: str) -> str | None:
        """The pyramidal population that an interneuron hears through a lateral projection."""
        for proj in self.incoming(interneuron, "lateral"):
            if self.population(proj.source).cell == "pyramidal":
                return proj.source
        return None

    @property
    def hidden(self) -> tuple[str, ...]:
        """Hidden populations in forward (topological) order."""
        return tuple(n for n in self.forward_order() if self.population(n).role == "hidden")

    # -- projections ---------------------------------------------------------------------------

    def projections(self, type: str | None = None) -> tuple[ProjectionSpec, ...]:
        """Projections of one type (all when ``type`` is None), in the spec's order."""
        return tuple(p for p in self.spec.projections if type is None or p.type == type)

    def projection(self, name: str) -> ProjectionSpec:
        """The projection called ``name`` (KeyError if absent)."""
        for proj in self.spec.projections:
            if proj.name == name:
                return proj
        raise KeyError(name)

    def incoming(self, population: str, type: str = "forward") -> tuple[ProjectionSpec, ...]:
        """Projections of ``type`` that end at ``population``, in the spec's order."""
        return tuple(p for p in self.projections(type) if p.target == population)

    def outgoing(self, population: str, type: str = "forward") -> tuple[ProjectionSpec, ...]:
        """Projections of ``type`` that start at ``population``, in the spec's order."""
        return tuple(p for p in self.projections(type) if p.source == population)

    def has_bias(self, population: str) -> bool:
        """Whether ``population`` has a bias (some forward projection into it asks for one)."""
        return any(p.bias for p in self.incoming(population))

    def kernel_of(self, proj: ProjectionSpec) -> ProjectionSpec | None:
        """The forward conv projection whose geometry ``proj``'s weight has, if any.

        A conv projection is its own; a feedback projection C→h mirrors the forward conv h→C
        (its weight is a kernel of the same shape, carried backward as a transposed conv).
        """
        if proj.type == "forward":
            return proj if proj.conv is not None else None
        if proj.type == "feedback":
            for forward in self.outgoing(proj.target):
                if forward.target == proj.source and forward.conv is not None:
                    return forward
        return None

    # -- structure -----------------------------------------------------------------------------

    def forward_graph(self) -> nx.DiGraph:
        """The forward projections alone, as a simple directed graph.

        Interneurons (``cell = "interneuron"``) are not in it: they sit beside the pyramidal
        population they serve, joined to it by lateral projections only.
        """
        graph = nx.DiGraph()
        graph.add_nodes_from(n for n in self.nx.nodes if n not in self.interneurons)
        graph.add_edges_from((p.source, p.target) for p in self.projections("forward"))
        return graph

    def forward_order(self) -> tuple[str, ...]:
        """Populations in a topological order of the forward graph, ties broken by spec order.

        Raises
        ------
        GraphError
            If the forward projections form a cycle (a rule may ask before ``build_graph``
            has checked, e.g. while adding its feedback projections); the message names it.
        """
        forward = self.forward_graph()
        try:
            return tuple(nx.lexicographical_topological_sort(forward, key=self._order.get))
        except nx.NetworkXUnfeasible:
            raise _cycle_error(self.spec, forward, why=", so they have no forward order") from None

    def depth(self) -> dict[str, int]:
        """Longest forward path from any input to each population (inputs have depth 0)."""
        depth: dict[str, int] = {}
        for name in self.forward_order():
            sources = [p.source for p in self.incoming(name)]
            depth[name] = 1 + max((depth[s] for s in sources), default=-1)
        for name in self.interneurons:  # beside the pyramidal population it serves
            served = self.served_by(name)
            depth[name] = depth[served] if served in depth else 0
        return depth

    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Populations grouped by forward depth, inputs first."""
        depth = self.depth()
        count = max(depth.values(), default=-1) + 1
        return tuple(tuple(n for n in self.forward_order() if depth[n] == d) for d in range(count))

    def paths(self, source: str, target: str) -> Iterator[list[str]]:
        """Every simple forward path from ``source`` to ``target``."""
        return nx.all_simple_paths(self.forward_graph(), source, target)

    def is_layered(self) -> bool:
        """Whether the circuit is one chain input → h1 → … → output with no skips."""
        order = self.forward_order()
        chain = [(a, b) for a, b in zip(order, order[1:])]
        forward = [(p.source, p.target) for p in self.projections("forward")]
        return len(self.inputs) == 1 and sorted(forward) == sorted(chain)


def build_graph(spec: CircuitSpec, *, require_dag: bool = True) -> CircuitGraph:
    """Build the circuit graph and run every structural check.

    Parameters
    ----------
    spec
        A resolved spec.
    require_dag
        Whether forward projections must form a DAG (every rule but the energy-based ones).

    Raises
    ------
    GraphError
        Naming the population or projection at fault and the fix.
    """
    graph = CircuitGraph(spec)
    where = f"{spec.source}: circuit '{spec.name}'"
    if not graph.inputs:
        raise GraphError(f"{where}: has no input population; mark one with role = \"input\"")
    if not graph.outputs:
        raise GraphError(f"{where}: has no output population; mark one with role = \"output\"")
    if len(graph.outputs) > 1:
        raise GraphError(f"{where}: has {len(graph.outputs)} output populations "
                         f"({', '.join(graph.outputs)}); circuits trains exactly one, so give the "
                         "others role = \"hidden\"")
    for proj in spec.projections:
        edge = f"{spec.source}: projection '{proj.name}'"
        if proj.source == proj.target and proj.type != "lateral":
            raise GraphError(f"{edge}: a {proj.type} projection cannot connect '{proj.source}' to "
                             "itself; use type = \"lateral\" for recurrent connections within a population")
        if proj.type == "forward" and graph.population(proj.target).role == "input":
            raise GraphError(f"{edge}: ends at input population '{proj.target}'; inputs are clamped "
                             "to the data, so forward projections cannot drive them")
    _check_topography(graph)
    forward = graph.forward_graph()
    if require_dag and not nx.is_directed_acyclic_graph(forward):
        raise _cycle_error(spec, forward, alternative=", or choose an energy-based rule, which "
                                                     "allows cycles")
    _check_interneurons(graph)
    reached = set().union(*(nx.descendants(forward, i) | {i} for i in graph.inputs))
    reached |= set(graph.interneurons)
    for name in graph.populations:
        if name not in reached:
            raise GraphError(f"{spec.source}: population '{name}': not reachable from an input by "
                             "forward projections; add a [[projections]] entry into it")
    feeds = nx.ancestors(forward, graph.output) | {graph.output} | set(graph.interneurons)
    for name in graph.populations:
        if name not in feeds:
            raise GraphError(f"{spec.source}: population '{name}': does not reach the output "
                             f"'{graph.output}' by forward projections; add a projection from it")
    return graph


def _check_topography(graph: CircuitGraph) -> None:
    """Conv and pool only on forward projections between shaped populations, output shapes agreeing."""
    spec = graph.spec
    for proj in spec.projections:
        edge = f"{spec.source}: projection '{proj.name}'"
        if proj.conv is None and proj.pool is None:
            continue
        if proj.type != "forward":
            why = (" (a feedback projection mirroring a conv projection gets its kernel shape)"
                   if proj.type == "feedback" else "")
            raise GraphError(f"{edge}: conv and pool apply to forward projections only{why}; remove them")
        if proj.conv is None:
            raise GraphError(f"{edge}: pool follows a convolution; add conv = {{ kernel = 1 }} to pool alone")
        for end in (proj.source, proj.target):
            pop = graph.population(end)
            if pop.shape is None:
                raise GraphError(f"{edge}: conv needs shaped populations, but '{end}' has none; give it "
                                 f"shape = [channels, height, width] (product {pop.size})")
        source = graph.population(proj.source).shape
        maps = conv_output(source, proj.conv)
        if maps is None:
            raise GraphError(f"{edge}: a kernel of {proj.conv.kernel} with padding {proj.conv.padding} does "
                             f"not fit the {source[-2]}×{source[-1]} maps of '{proj.source}'")
        pooled = pool_output(maps, proj.pool)
        if pooled is None:
            raise GraphError(f"{edge}: pool size {proj.pool.size} must divide the conv's {maps[0]}×{maps[1]} "
                             "maps; change the pool size, kernel or padding")
        target = graph.population(proj.target).shape
        channels = channels_first(target)[0]
        if channels_first(target)[1:] != pooled:
            raise GraphError(f"{edge}: {'conv then pool' if proj.pool else 'conv'} gives {pooled[0]}×{pooled[1]} "
                             f"maps, so '{proj.target}' must have shape = {format_shape((channels, *pooled))} "
                             f"(got {format_shape(target)})")


def _check_interneurons(graph: CircuitGraph) -> None:
    """An interneuron hears one pyramidal population and projects back to it, laterally only."""
    source = graph.spec.source
    for name in graph.interneurons:
        for proj in graph.spec.projections:
            if name in (proj.source, proj.target) and proj.type != "lateral":
                raise GraphError(f"{source}: projection '{proj.name}': an interneuron connects by lateral "
                                 f"projections within its area only; set type = \"lateral\"")
        served = graph.served_by(name)
        if served is None:
            raise GraphError(f"{source}: population '{name}': an interneuron needs a lateral projection "
                             "from the pyramidal population it serves; add [[projections]] from = \"<pyramidal>\", "
                             f"to = \"{name}\", type = \"lateral\"")
        back = [p.target for p in graph.outgoing(name, "lateral")]
        if any(t != served for t in back) or not back:
            raise GraphError(f"{source}: population '{name}': an interneuron projects back to the pyramidal "
                             f"population it hears ('{served}') and nowhere else (got {', '.join(back) or 'none'}); "
                             f"add or fix a lateral projection from '{name}' to '{served}'")


def _cycle_error(spec: CircuitSpec, forward: nx.DiGraph, *, why: str = "",
                 alternative: str = "") -> GraphError:
    """The error for a cyclic forward graph, naming one cycle."""
    cycle = nx.find_cycle(forward)
    loop = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
    return GraphError(f"{spec.source}: circuit '{spec.name}': forward projections form a cycle "
                      f"{loop}{why}; make one of them type = \"feedback\"{alternative}")
