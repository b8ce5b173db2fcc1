"""The circuit graph: typed accessors and every structural check, with pinned key phrases."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import dag_circuits, dag_spec_text

from circuits.errors import CircuitsError, GraphError
from circuits.graph import CircuitGraph, build_graph
from circuits.spec import CircuitSpec, parse_spec

X = 'x = { size = 2, role = "input" }'
H1 = "h1 = { size = 3 }"
H2 = 'h2 = { size = 4, activation = "tanh" }'
Y = 'y = { size = 2, role = "output" }'


def edge(source: str, target: str, extra: str = "") -> str:
    return f'from = "{source}"\nto = "{target}"\n{extra}'


def make_spec(rules, populations: list[str], projections: list[str]) -> CircuitSpec:
    text = '[circuit]\nname = "g"\n[populations]\n' + "\n".join(populations) + "\n"
    text += "".join(f"[[projections]]\n{p}\n" for p in projections)
    return parse_spec(text, source="g.toml", rules=rules)


def graph_error(rules, populations: list[str], projections: list[str]) -> str:
    spec = make_spec(rules, populations, projections)
    with pytest.raises(GraphError) as info:
        build_graph(spec)
    return str(info.value)


@pytest.fixture
def skip_graph(rules) -> CircuitGraph:
    """x → h1 → h2 → y with a skip x → h2, feedback y → h1 and a lateral h2 → h2."""
    return build_graph(make_spec(rules, [X, H1, H2, Y], [
        edge("x", "h1"), edge("h1", "h2"), edge("x", "h2", "bias = false"), edge("h2", "y"),
        edge("y", "h1", 'type = "feedback"'), edge("h2", "h2", 'type = "lateral"'),
    ]))


def test_graph_error_is_a_circuits_error():
    assert issubclass(GraphError, CircuitsError)


def test_populations_and_roles(skip_graph):
    g = skip_graph
    assert g.inputs == ("x",)
    assert g.outputs == ("y",)
    assert g.output == "y"
    assert g.hidden == ("h1", "h2")
    assert list(g.populations) == ["x", "h1", "h2", "y"]
    assert g.population("h2").size == 4 and g.population("h2").activation == "tanh"
    assert g.nx.nodes["h1"]["spec"] is g.population("h1")


def test_order_depth_and_layers(skip_graph):
    g = skip_graph
    assert g.forward_order() == ("x", "h1", "h2", "y")
    assert g.depth() == {"x": 0, "h1": 1, "h2": 2, "y": 3}
    assert g.layers() == (("x",), ("h1",), ("h2",), ("y",))
    assert not g.is_layered()
    assert sorted(g.paths("x", "y")) == [["x", "h1", "h2", "y"], ["x", "h2", "y"]]


def test_projections_by_type_and_direction(skip_graph):
    g = skip_graph
    assert [p.name for p in g.projections()] == ["x->h1", "h1->h2", "x->h2", "h2->y", "y->h1", "h2->h2"]
    assert [p.name for p in g.projections("forward")] == ["x->h1", "h1->h2", "x->h2", "h2->y"]
    assert [p.name for p in g.projections("feedback")] == ["y->h1"]
    assert [p.name for p in g.projections("lateral")] == ["h2->h2"]
    assert [p.name for p in g.incoming("h2")] == ["h1->h2", "x->h2"]
    assert [p.name for p in g.outgoing("x")] == ["x->h1", "x->h2"]
    assert g.incoming("x") == () and g.outgoing("y") == ()
    assert [p.name for p in g.incoming("h1", "feedback")] == ["y->h1"]
    assert [p.name for p in g.outgoing("y", "feedback")] == ["y->h1"]
    assert [p.name for p in g.incoming("h2", "lateral")] == [p.name for p in g.outgoing("h2", "lateral")] == ["h2->h2"]
    assert g.projection("x->h2").bias is False
    with pytest.raises(KeyError):
        g.projection("h1->y")


def test_bias_follows_the_forward_projections_in(rules, skip_graph):
    assert skip_graph.has_bias("h2")  # h1->h2 asks, x->h2 does not
    assert not skip_graph.has_bias("x")
    g = build_graph(make_spec(rules, [X, Y], [edge("x", "y", "bias = false")]))
    assert not g.has_bias("y")


def test_networkx_edges_are_typed_and_keyed_by_name(skip_graph):
    edges = {(u, v, k): d["type"] for u, v, k, d in skip_graph.nx.edges(keys=True, data=True)}
    assert edges == {("x", "h1", "x->h1"): "forward", ("h1", "h2", "h1->h2"): "forward",
                     ("x", "h2", "x->h2"): "forward", ("h2", "y", "h2->y"): "forward",
                     ("y", "h1", "y->h1"): "feedback", ("h2", "h2", "h2->h2"): "lateral"}
    assert skip_graph.nx.edges["y", "h1", "y->h1"]["spec"] is skip_graph.projection("y->h1")
    assert set(skip_graph.forward_graph().edges) == {("x", "h1"), ("h1", "h2"), ("x", "h2"), ("h2", "y")}


def test_a_chain_is_layered_whatever_its_feedback(rules):
    g = build_graph(make_spec(rules, [X, H1, Y], [
        edge("x", "h1"), edge("h1", "y"), edge("y", "h1", 'type = "feedback"')]))
    assert g.is_layered()
    assert g.layers() == (("x",), ("h1",), ("y",))


def test_ties_in_the_forward_order_follow_the_spec(rules):
    g = build_graph(make_spec(rules, [X, "b = { size = 1 }", "a = { size = 1 }", Y], [
        edge("x", "a"), edge("x", "b"), edge("a", "y"), edge("b", "y")]))
    assert g.forward_order() == ("x", "b", "a", "y")
    assert g.layers() == (("x",), ("b", "a"), ("y",))
    assert g.hidden == ("b", "a")
    assert not g.is_layered()


def test_several_inputs_in_spec_order(rules):
    g = build_graph(make_spec(rules, ['u = { size = 1, role = "input" }', H1, X, Y], [
        edge("u", "h1"), edge("x", "h1"), edge("h1", "y")]))
    assert g.inputs == ("u", "x")
    assert g.layers() == (("u", "x"), ("h1",), ("y",))
    assert not g.is_layered()


# -- structural errors -------------------------------------------------------------------------


def test_no_input(rules):
    assert graph_error(rules, [H1, Y], [edge("h1", "y")]) == (
        "g.toml: circuit 'g': has no input population; mark one with role = \"input\"")


def test_no_output(rules):
    assert graph_error(rules, [X, H1], [edge("x", "h1")]) == (
        "g.toml: circuit 'g': has no output population; mark one with role = \"output\"")


def test_two_outputs(rules):
    assert graph_error(rules, [X, Y, 'z = { size = 2, role = "output" }'], [edge("x", "y"), edge("x", "z")]) == (
        "g.toml: circuit 'g': has 2 output populations (y, z); circuits trains exactly one, so give the "
        "others role = \"hidden\"")


def test_forward_cycle_names_the_cycle(rules):
    populations, projections = [X, H1, H2, Y], [edge("x", "h1"), edge("h1", "h2"), edge("h2", "h1"), edge("h2", "y")]
    assert graph_error(rules, populations, projections) == (
        "g.toml: circuit 'g': forward projections form a cycle h1 -> h2 -> h1; make one of them "
        "type = \"feedback\", or choose an energy-based rule, which allows cycles")
    g = build_graph(make_spec(rules, populations, projections), require_dag=False)
    assert set(g.forward_graph().edges) == {("x", "h1"), ("h1", "h2"), ("h2", "h1"), ("h2", "y")}


def test_longer_cycle_lists_every_member(rules):
    message = graph_error(rules, [X, H1, H2, "h3 = { size = 1 }", Y], [
        edge("x", "h1"), edge("h1", "h2"), edge("h2", "h3"), edge("h3", "h1"), edge("h3", "y")])
    assert "forward projections form a cycle h1 -> h2 -> h3 -> h1;" in message


def test_the_same_loop_is_fine_with_a_feedback_edge(rules):
    build_graph(make_spec(rules, [X, H1, H2, Y], [
        edge("x", "h1"), edge("h1", "h2"), edge("h2", "h1", 'type = "feedback"'), edge("h2", "y")]))


@pytest.mark.parametrize("kind", ["forward", "feedback"])
def test_self_loop_must_be_lateral(rules, kind):
    assert graph_error(rules, [X, H1, Y], [edge("x", "h1"), edge("h1", "h1", f'type = "{kind}"'), edge("h1", "y")]) == (
        f"g.toml: projection 'h1->h1': a {kind} projection cannot connect 'h1' to itself; use "
        "type = \"lateral\" for recurrent connections within a population")


def test_forward_projection_into_an_input(rules):
    assert graph_error(rules, [X, H1, Y], [edge("x", "h1"), edge("h1", "y"), edge("y", "x", 'name = "back"')]) == (
        "g.toml: projection 'back': ends at input population 'x'; inputs are clamped to the data, so "
        "forward projections cannot drive them")
    # a feedback projection may end at an input (e.g. top-down reconstruction)
    build_graph(make_spec(rules, [X, H1, Y], [edge("x", "h1"), edge("h1", "y"), edge("h1", "x", 'type = "feedback"')]))


def test_unreachable_population(rules):
    assert graph_error(rules, [X, H1, H2, Y], [edge("x", "h1"), edge("h1", "y"), edge("h2", "y")]) == (
        "g.toml: population 'h2': not reachable from an input by forward projections; add a "
        "[[projections]] entry into it")


def test_population_reached_only_by_feedback_is_unreachable(rules):
    message = graph_error(rules, [X, H1, H2, Y], [
        edge("x", "h1"), edge("h1", "y"), edge("h2", "y"), edge("y", "h2", 'type = "feedback"')])
    assert "population 'h2': not reachable from an input by forward projections" in message


def test_population_not_reaching_the_output(rules):
    assert graph_error(rules, [X, H1, H2, Y], [edge("x", "h1"), edge("h1", "y"), edge("h1", "h2")]) == (
        "g.toml: population 'h2': does not reach the output 'y' by forward projections; add a "
        "projection from it")


def test_circuit_without_projections(rules):
    assert "population 'y': not reachable from an input" in graph_error(rules, [X, Y], [])


# -- random DAGs -------------------------------------------------------------------------------


@given(dag_circuits())
def test_random_dags_build_with_consistent_structure(rules, circuit):
    g = build_graph(parse_spec(dag_spec_text(circuit), source="dag.toml", rules=rules))
    assert g.inputs == ("x",) and g.output == "y"
    assert set(g.hidden) == set(circuit["sizes"]) - {"x", "y"}
    assert {(p.source, p.target) for p in g.projections("forward")} == set(circuit["edges"])
    order = {name: i for i, name in enumerate(g.forward_order())}
    depth = g.depth()
    for source, target in circuit["edges"]:
        assert order[source] < order[target]
        assert depth[source] < depth[target]
    for name in g.populations:
        if name != "x":
            assert depth[name] == 1 + max(depth[p.source] for p in g.incoming(name))
    layers = g.layers()
    assert sorted(n for layer in layers for n in layer) == sorted(circuit["sizes"])
    assert layers[0] == ("x",) and layers[-1] == ("y",)
    assert all(g.population(n).size == size for n, size in circuit["sizes"].items())
    chain = list(zip(g.forward_order(), g.forward_order()[1:]))
    assert g.is_layered() == (sorted(circuit["edges"]) == sorted(chain))
    assert g.spec.task.loss == circuit["loss"] and g.spec.run.seed == circuit["seed"]
