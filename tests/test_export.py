"""NIR export (the ``export`` extra): exact weights back, and a spiking run of the graph that
classifies digits as well as the trained circuit.

The integrate-and-fire simulation below is written here, from NIR's node definitions, not taken
from the package: it is the independent reference the export is checked against.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import spec_dicts, to_toml

import circuits
from circuits.cli import main
from circuits.export import ExportError, load_trained, rate_scales, to_nir, write_nir
from circuits.export.nir_graph import node_names
from circuits.spec_writer import dump_spec

nir = pytest.importorskip("nir")


def trained(spec: str, epochs: int, *overrides: str) -> tuple[circuits.Model, circuits.data.Dataset]:
    model = circuits.load(spec, overrides=[f"task.epochs={epochs}", *overrides])
    data = circuits.load_data(model)
    for _ in circuits.fit(model, data):
        pass
    return model, data


def simulate_nir(graph, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """Euler steps of dt = 1 through a NIR graph, inputs held as constant currents.

    Per step, in topological order: ``Input`` passes the input; ``Affine`` computes ``W·x + b``
    of its summed inputs; ``IF`` integrates ``v += r·I``, emits a spike where ``v > v_threshold``
    and sets ``v = v_reset`` there; ``I`` integrates ``v += r·I`` and emits ``v``; ``Scale``
    multiplies; ``Output`` records its input. Returns each output's last value (an ``I``
    population's potential) summed over the steps for spiking outputs.
    """
    order = list(nx.topological_sort(nx.DiGraph(graph.edges)))
    sources = {name: [a for a, b in graph.edges if b == name] for name in order}
    state = {name: None for name in order}
    counts: dict[str, np.ndarray] = {}
    assert len(graph.inputs) == 1, "this reference handles one input node"
    x = np.asarray(x, dtype=np.float64)
    for _ in range(steps):
        out: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            current = sum(out[s] for s in sources[name]) if sources[name] else x
            if isinstance(node, nir.Input):
                out[name] = x
            elif isinstance(node, nir.Affine):
                out[name] = current @ node.weight.T.astype(np.float64) + node.bias
            elif isinstance(node, nir.IF):
                v = np.zeros_like(current) if state[name] is None else state[name]
                v = v + node.r * current
                spikes = v > node.v_threshold
                state[name] = np.where(spikes, node.v_reset, v)
                out[name] = spikes.astype(np.float64)
            elif isinstance(node, nir.I):
                v = np.zeros_like(current) if state[name] is None else state[name]
                state[name] = v + node.r * current
                out[name] = state[name]
            elif isinstance(node, nir.Scale):
                out[name] = node.scale * current
            elif isinstance(node, nir.Output):
                out[name] = current
                counts[name] = counts.get(name, 0) + current if not isinstance(
                    graph.nodes[sources[name][0]], nir.I) else current
            else:
                raise AssertionError(f"no reference for {type(node).__name__}")
    return counts


def test_nir_read_gives_back_the_same_weights_exactly(tmp_path):
    model, _ = trained("specs/skip_dag.toml", 1)
    path = write_nir(model, tmp_path / "skip.nir")
    graph = nir.read(path)
    params = {k: np.asarray(v) for k, v in model.params.items()}
    for name in ("x->h1", "h1->h2", "h2->y", "x->h2"):
        weight = graph.nodes[name].weight
        assert weight.dtype == params[name].dtype == np.float32
        np.testing.assert_array_equal(weight, params[name].T)  # NIR (out, in); circuits (in, out)
    # a population's bias rides on its first incoming projection; x->h2 adds none
    np.testing.assert_array_equal(graph.nodes["h1->h2"].bias, params["h2.bias"])
    np.testing.assert_array_equal(graph.nodes["x->h2"].bias, np.zeros(64, np.float32))
    np.testing.assert_array_equal(graph.nodes["h2->y"].bias, params["y.bias"])
    assert sorted(graph.edges) == sorted([
        ("x", "x->h1"), ("x->h1", "h1"), ("h1", "h1->h2"), ("h1->h2", "h2"), ("x", "x->h2"),
        ("x->h2", "h2"), ("h2", "h2->y"), ("h2->y", "y"), ("y", "y.output")])
    assert isinstance(graph.nodes["h1"], nir.IF) and isinstance(graph.nodes["y"], nir.I)
    np.testing.assert_array_equal(graph.nodes["h1"].v_threshold, np.ones(96))
    assert graph.metadata["spec"] == dump_spec(model.spec)
    assert graph.metadata["rule"]["name"] == "backprop" and graph.metadata["normalize"] == "none"


def test_feedback_projections_and_the_rule_go_to_metadata_only(tmp_path):
    model = circuits.load("specs/fa_digits.toml", overrides=["populations.h1.activation=relu"])
    graph = nir.read(write_nir(model, tmp_path / "fa.nir"))
    assert "y->h1" not in graph.nodes
    assert all("y->h1" not in edge for edge in graph.edges)
    feedback = graph.metadata["feedback"]["y->h1"]
    np.testing.assert_array_equal(feedback["weight"], np.asarray(model.params["y->h1"]).T)
    assert graph.metadata["rule"]["name"] == "feedback_alignment"


def test_rate_scales_are_the_percentile_of_each_relu_population(tmp_path):
    model, data = trained("specs/bp_digits.toml", 2)
    x = data.x_train.astype(np.float32)
    p = {k: np.asarray(v, dtype=np.float64) for k, v in model.params.items()}
    hidden = np.maximum(x @ p["x->h1"] + p["h1.bias"], 0.0)  # the circuit's h1, by hand
    scales = rate_scales(model, x, percentile=99.0)
    assert scales["x"] == scales["y"] == 1.0
    assert scales["h1"] == pytest.approx(np.percentile(hidden, 99.0), rel=1e-5)
    graph = to_nir(model, normalize="rate", x=x, percentile=99.0)
    np.testing.assert_allclose(graph.nodes["x->h1"].weight, p["x->h1"].T / scales["h1"], rtol=1e-6)
    np.testing.assert_allclose(graph.nodes["x->h1"].bias, p["h1.bias"] / scales["h1"], rtol=1e-6)
    np.testing.assert_allclose(graph.nodes["h1->y"].weight, p["h1->y"].T * scales["h1"], rtol=1e-6)


def test_spiking_digits_circuit_reaches_its_rate_accuracy_at_200_steps(tmp_path):
    """The acceptance test: within 1 percentage point of the trained circuit's test accuracy."""
    model, data = trained("specs/bp_digits.toml", 30)
    rate_accuracy = model.evaluate(data.x_test.astype(np.float32), data.y_test)[1]
    path = write_nir(model, tmp_path / "digits.nir", normalize="rate", x=data.x_train.astype(np.float32))
    graph = nir.read(path)
    potential = simulate_nir(graph, data.x_test, steps=200)["y.output"]
    spiking_accuracy = float(np.mean(np.argmax(potential, axis=1) == data.y_test))
    assert rate_accuracy > 0.95
    assert abs(spiking_accuracy - rate_accuracy) <= 0.01, (spiking_accuracy, rate_accuracy)


def test_converging_streams_sum_their_currents(tmp_path):
    """Two Affine nodes into one population: the spiking graph still follows the circuit."""
    model, data = trained("specs/skip_dag.toml", 10)
    rate_accuracy = model.evaluate(data.x_test.astype(np.float32), data.y_test)[1]
    graph = nir.read(write_nir(model, tmp_path / "skip.nir", normalize="rate",
                               x=data.x_train.astype(np.float32)))
    potential = simulate_nir(graph, data.x_test, steps=200)["y.output"]
    assert abs(np.mean(np.argmax(potential, axis=1) == data.y_test) - rate_accuracy) <= 0.02


def test_export_command_from_a_run_folder_and_from_a_spec_with_params(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["simulate", "specs/bp_digits.toml", "--set", "task.epochs=1",
                                  "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["export", str(run), "--format", "nir", "-o", str(tmp_path / "a.nir")])
    assert result.exit_code == 0 and result.stdout == f"wrote {tmp_path / 'a.nir'}\n", result.output
    saved = np.load(run / "params.npz")
    np.testing.assert_array_equal(nir.read(tmp_path / "a.nir").nodes["h1->y"].weight, saved["h1->y"].T)
    result = runner.invoke(main, ["export", "specs/bp_digits.toml", "--params", str(run / "params.npz"),
                                  "-o", str(tmp_path / "b.nir"), "--normalize", "rate"])
    assert result.exit_code == 0, result.output
    assert nir.read(tmp_path / "b.nir").metadata["normalize"] == "rate"
    model = load_trained(run)
    np.testing.assert_array_equal(np.asarray(model.params["x->h1"]), saved["x->h1"])


@pytest.mark.parametrize("args, expected", [
    (["specs/fa_digits.toml", "--set", "populations.h1.activation=tanh"],
     "NIR has no unit for population h1 (tanh); export needs relu (integrate-and-fire) or linear populations"),
    (["specs/fa_digits.toml", "--set", "populations.h1.activation=sigmoid", "--set",
      "populations.y.activation=tanh"],
     "NIR has no unit for populations h1 (sigmoid), y (tanh); export needs relu (integrate-and-fire) "
     "or linear populations"),
    (["specs/eqprop_digits.toml"],
     "rule 'equilibrium_propagation' infers by relaxing to a fixed point, which NIR's feed-forward "
     "export cannot express; export a circuit trained with a feed-forward rule"),
    (["specs/lateral_digits.toml", "--set", "populations.h1.activation=relu"],
     "lateral projection h1->h1 acts at inference, which the feed-forward NIR export cannot express"),
])
def test_what_nir_cannot_express_is_one_line(tmp_path, args, expected):
    result = CliRunner().invoke(main, ["export", *args, "-o", str(tmp_path / "x.nir")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr == f"error: {expected}\n"
    assert not (tmp_path / "x.nir").exists()


def test_params_of_another_circuit_are_one_line(tmp_path):
    np.savez(tmp_path / "p.npz", **{"x->h1": np.zeros((64, 5), np.float32)})
    result = CliRunner().invoke(main, ["export", "specs/bp_digits.toml", "--params", str(tmp_path / "p.npz"),
                                       "-o", str(tmp_path / "x.nir")])
    assert result.exit_code == 2
    assert result.stderr == (f"error: {tmp_path / 'p.npz'}: parameters do not match specs/bp_digits.toml's "
                             "circuit (missing: h1->y, h1.bias, y.bias; unexpected: none); give the "
                             "params.npz of a run of this spec\n")
    with pytest.raises(ExportError, match="normalize='rate' needs inputs x"):
        to_nir(circuits.load("specs/bp_digits.toml"), normalize="rate")


def analog(graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph read as a rate network: ``IF`` → relu, ``I`` and ``Scale`` pass their input
    (times r or scale), ``Affine`` → ``W·x + b``; returns each ``Output``'s value."""
    values: dict[str, np.ndarray] = {}
    for name in nx.topological_sort(nx.DiGraph(graph.edges)):
        node = graph.nodes[name]
        into = [values[a] for a, b in graph.edges if b == name]
        current = sum(into) if into else x
        if isinstance(node, nir.Affine):
            values[name] = current @ node.weight.T.astype(np.float64) + node.bias
        elif isinstance(node, nir.IF):
            values[name] = np.maximum(current, 0.0)
        elif isinstance(node, (nir.I, nir.Scale)):
            values[name] = current * (node.r if isinstance(node, nir.I) else node.scale)
        else:
            values[name] = current
    return {name: values[name] for name in graph.outputs}


@st.composite
def exportable_specs(draw) -> str:
    """Random backprop DAGs (skips, converging projections, feedback, custom projection names)
    whose populations NIR can express: relu or linear, no lateral projection, no noise."""
    raw = draw(spec_dicts(rule="backprop"))
    for table in raw["populations"].values():
        for key in ("dropout", "noise", "noise_type", "step"):
            table.pop(key, None)
        if table.get("role") != "input":
            table["activation"] = draw(st.sampled_from(("relu", "linear")))
    raw["projections"] = [p for p in raw["projections"] if p.get("type") != "lateral"]
    raw["run"] = {"dtype": "float64"}
    return to_toml(raw)


@settings(deadline=None, max_examples=15)  # each example compiles a circuit and writes a file
@given(text=exportable_specs(), normalize=st.sampled_from(("none", "rate")), seed=st.integers(0, 2**16))
def test_the_exported_graph_read_as_rates_computes_the_circuit(tmp_path_factory, text, normalize, seed):
    """Property: for any exportable circuit, ``nir.read`` of the file gives the trained weights
    exactly (scaled by λ ratios when normalized), feedback weights land in the metadata only, and
    the graph read as a rate network gives the model's output on random inputs (divided by the
    output's λ when it is a normalized relu population, whose rate is activity / λ)."""
    path = tmp_path_factory.mktemp("nir") / "spec.toml"
    path.write_text(text, encoding="utf-8")
    model = circuits.load(path)
    rng = np.random.default_rng(seed)
    model.set_params({name: rng.normal(size=value.shape) for name, value in model.params.items()})
    width = sum(model.graph.population(p).size for p in model.graph.inputs)
    x = rng.normal(size=(7, width))
    graph = nir.read(write_nir(model, path.with_suffix(".nir"), normalize=normalize, x=x))
    scales = rate_scales(model, x) if normalize == "rate" else {p: 1.0 for p in model.graph.populations}
    names = node_names(model)
    for proj in model.graph.projections("forward"):
        expected = np.asarray(model.params[proj.name]).T * (scales[proj.source] / scales[proj.target])
        if normalize == "none":
            np.testing.assert_array_equal(graph.nodes[names[proj.name]].weight, expected)
        else:
            np.testing.assert_allclose(graph.nodes[names[proj.name]].weight, expected, rtol=1e-12)
    feedback = sorted(p.name for p in model.graph.projections("feedback"))
    assert sorted(graph.metadata.get("feedback", {})) == feedback
    assert not set(feedback) & set(graph.nodes)
    out = analog(graph, x)[f"{model.graph.output}.output"]
    np.testing.assert_allclose(out * scales[model.graph.output], model.predict(x), rtol=1e-9, atol=1e-9)
