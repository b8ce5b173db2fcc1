"""Properties of the spec layer over random specs: round trip, order independence, and that
no corruption of a spec ends in anything but a ``SpecError`` or ``GraphError``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    BAD_NUMBERS,
    WRONG_TYPES,
    corrupted_bytes,
    corrupted_dicts,
    corrupted_texts,
    override_lists,
    spec_dicts,
    spec_texts,
    to_toml,
)

from circuits.errors import GraphError, SpecError
from circuits.graph import CircuitGraph, build_graph
from circuits.spec import CircuitSpec, load_spec, parse_spec
from circuits.spec_writer import dump_spec


def parse(text: str, rules, **kwargs) -> CircuitSpec:
    return parse_spec(text, source="t.toml", rules=rules, **kwargs)


def parse_and_build(text: str, rules, **kwargs) -> None:
    """Parse and build; a SpecError or GraphError is an acceptable outcome, nothing else is."""
    try:
        build_graph(parse(text, rules, **kwargs))
    except (SpecError, GraphError):
        pass


def graph_content(graph: CircuitGraph) -> tuple[dict, set]:
    """Nodes with their PopulationSpecs and edges with their ProjectionSpecs, orderless."""
    nodes = {name: data["spec"] for name, data in graph.nx.nodes(data=True)}
    edges = {(u, v, key, data["spec"], data["type"]) for u, v, key, data in graph.nx.edges(keys=True, data=True)}
    return nodes, edges


# -- round trip --------------------------------------------------------------------------------


@given(spec_dicts(), st.integers(1, 3))
def test_valid_specs_round_trip_through_dump(rules, raw, inline_from):
    spec = parse(to_toml(raw, inline_from=inline_from), rules)
    text = dump_spec(spec)
    again = parse(text, rules)
    assert again == spec
    assert dump_spec(again) == text
    build_graph(spec)


@given(spec_dicts())
def test_parsed_spec_holds_what_the_file_says(rules, raw):
    spec = parse(to_toml(raw), rules)
    assert [p.name for p in spec.populations] == list(raw["populations"])
    for pop in spec.populations:
        table = raw["populations"][pop.name]
        assert pop.size == table["size"]
        assert pop.role == table.get("role", "hidden")
        for key in ("activation", "dropout", "step", "noise", "noise_type"):
            if key in table:
                assert getattr(pop, key) == table[key]
    assert [(p.source, p.target) for p in spec.projections] == [(e["from"], e["to"]) for e in raw["projections"]]
    assert spec.rule.name == raw["rule"]["name"]
    assert set(spec.rule.params) == {p.name for p in rules[spec.rule.name].params}
    for key, value in raw["rule"].items():
        if key == "lr_epochs" and value == 0:  # 0 means task.epochs, resolved when the spec is read
            value = spec.task.epochs
        if key != "name":
            assert spec.rule.params[key] == (tuple(value) if isinstance(value, list) else value)


@given(spec_texts(rule="feedback_alignment"))
def test_feedback_alignment_specs_round_trip(rules, text):
    spec = parse(text, rules)
    assert parse(dump_spec(spec), rules) == spec


# -- order independence ------------------------------------------------------------------------


@given(st.data())
def test_table_order_does_not_change_the_graph(rules, data):
    raw = data.draw(spec_dicts())
    shuffled = dict(data.draw(st.permutations(list(raw.items()))))
    shuffled["populations"] = dict(data.draw(st.permutations(list(raw["populations"].items()))))
    shuffled["projections"] = data.draw(st.permutations(raw["projections"]))
    first = parse(to_toml(raw, inline_from=data.draw(st.integers(1, 3))), rules)
    second = parse(to_toml(shuffled, inline_from=data.draw(st.integers(1, 3))), rules)

    assert graph_content(build_graph(first)) == graph_content(build_graph(second))
    assert sorted(first.populations, key=lambda p: p.name) == sorted(second.populations, key=lambda p: p.name)
    assert set(first.projections) == set(second.projections)
    for field in ("name", "doc", "rule", "task", "run"):
        assert getattr(first, field) == getattr(second, field)


# -- corruptions -------------------------------------------------------------------------------


@given(corrupted_dicts(), st.integers(1, 3))
def test_corrupted_tables_raise_spec_or_graph_errors(rules, raw, inline_from):
    parse_and_build(to_toml(raw, inline_from=inline_from), rules)


@given(corrupted_texts())
def test_corrupted_text_raises_spec_or_graph_errors(rules, text):
    parse_and_build(text, rules)


@given(spec_texts(), override_lists())
def test_bad_override_strings_raise_spec_errors(rules, text, overrides):
    try:
        parse(text, rules, overrides=overrides)
    except SpecError:
        pass


_KEYS = st.sampled_from(("rule.lr", "rule.optimizer", "populations.h1.size", "task.epochs",
                         "task.options.test_fraction", "run.seed", "run.out", "circuit.doc", "rule"))


@given(spec_texts(), st.dictionaries(_KEYS, st.sampled_from((*WRONG_TYPES, *BAD_NUMBERS, None)), max_size=3))
def test_bad_override_values_raise_spec_errors(rules, text, overrides):
    try:
        parse(text, rules, overrides=overrides)
    except SpecError:
        pass


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrupt") / "spec.toml"


@given(corrupted_bytes())
def test_corrupted_files_raise_spec_or_graph_errors(rules, spec_path, data):
    spec_path.write_bytes(data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(SpecError, match="not a UTF-8 text file"):
            load_spec(spec_path, rules=rules)
        return
    try:
        build_graph(load_spec(spec_path, rules=rules))
    except (SpecError, GraphError) as exc:
        assert str(exc).startswith(str(spec_path))


@given(spec_dicts(), st.sampled_from(BAD_NUMBERS))
def test_population_sizes_must_be_positive_finite_integers(rules, raw, size):
    name = next(iter(raw["populations"]))
    raw["populations"][name]["size"] = size
    valid = (not isinstance(size, bool) and math.isfinite(size) and size >= 1 and float(size).is_integer()
             and size <= 2**63 - 1)
    if valid:
        assert parse(to_toml(raw), rules).population(name).size == int(size)
    else:
        with pytest.raises(SpecError, match=rf"populations\.{name}\.size: must be an integer >= 1"):
            parse(to_toml(raw), rules)
