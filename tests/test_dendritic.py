"""Dendritic microcircuits (Sacramento et al. 2018): spec vocabulary, graph checks, the created
microcircuit, the compiled sweep against a hand computation, the Euler solver, and the
equivalent feed-forward network's gradient against finite differences."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest

import circuits
from circuits.errors import CompileError, GraphError, SpecError
from circuits.graph import build_graph
from circuits.model import Model
from circuits.rules import default_registry
from circuits.rules.microcircuit import gains
from circuits.spec import parse_spec
from circuits.spec_writer import dump_spec
from circuits.training import fit, load_data

RULES = default_registry(plugins=False)

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 1, role = "input" }}
h = {{ size = 1, activation = "sigmoid" }}
y = {{ size = 1, role = "output", activation = "linear" }}
[[projections]]
chain = ["x", "h", "y"]
bias = false
[rule]
name = "dendritic_error"
lr = 0.1
microcircuit = "{micro}"
{extra}
[task]
loss = "mse"
[run]
dtype = "float64"
"""

CHAIN = """
[circuit]
name = "chain"
[populations]
x = { size = 5, role = "input" }
h1 = { size = 6, activation = "sigmoid" }
h2 = { size = 4, activation = "sigmoid" }
y = { size = 3, role = "output", activation = "sigmoid" }
[[projections]]
from = "x"
to = "h1"
[[projections]]
chain = ["h1", "h2", "y"]
bias = false
[rule]
name = "dendritic_error"
[task]
loss = "mse"
[run]
dtype = "float64"
"""


def spec_of(text: str, **overrides: object):
    return parse_spec(text, source="t.toml", overrides=overrides, rules=RULES.signatures())


def model_of(text: str, **overrides: object) -> Model:
    return Model(spec_of(text, **overrides), registry=RULES)


def sigmoid(u: float) -> float:
    return 1.0 / (1.0 + math.exp(-u))


# -- spec vocabulary -----------------------------------------------------------------------------


def test_pyramidal_population_gets_the_documented_conductances():
    spec = spec_of(CHAIN.replace('h1 = { size = 6, activation = "sigmoid" }',
                                 'h1 = { size = 6, activation = "sigmoid", cell = "pyramidal", g_apical = 0.5 }'))
    h1 = spec.population("h1")
    assert (h1.cell, h1.g_lk, h1.g_basal, h1.g_apical, h1.g_dendrite, h1.g_som) == \
        ("pyramidal", 0.1, 1.0, 0.5, 1.0, 0.8)
    assert spec.population("h2").cell is None and spec.population("h2").g_lk is None
    assert spec.projections[0].compartment == "basal"      # forward into a pyramidal cell
    assert spec.projections[1].compartment is None          # into a point unit


def test_conductance_on_a_point_population_is_refused():
    text = CHAIN.replace('h1 = { size = 6, activation = "sigmoid" }', 'h1 = { size = 6, g_lk = 0.2 }')
    with pytest.raises(SpecError, match=r"populations\.h1\.g_lk: conductances apply to compartmental cells; "
                                        r"set cell = \"pyramidal\""):
        spec_of(text)


def test_compartment_into_a_point_population_is_refused():
    text = CHAIN.replace('from = "x"\nto = "h1"', 'from = "x"\nto = "h1"\ncompartment = "apical"')
    with pytest.raises(SpecError, match=r"projections\[0\]\.compartment: only projections into a pyramidal "
                                        r"population land on a compartment"):
        spec_of(text)


def test_created_microcircuit_is_in_the_resolved_spec_and_reads_back():
    model = model_of(CHAIN)
    names = {p.name: p for p in model.spec.projections}
    assert {"h1_inter", "h2_inter"} <= {p.name for p in model.spec.populations}
    assert model.spec.population("h1_inter").size == 4 and model.spec.population("h2_inter").size == 3
    assert model.spec.population("h1_inter").cell == "interneuron"
    assert names["h2->h1"].type == "feedback" and names["h2->h1"].compartment == "apical"
    assert names["h1_inter->h1"].compartment == "apical" and not names["h1_inter->h1"].plastic
    assert names["h1->h1_inter"].type == "lateral" and names["h1->h1_inter"].plastic
    again = parse_spec(dump_spec(model.spec), source="t.toml", rules=RULES.signatures())
    assert again == model.spec
    assert Model(again, registry=RULES).spec == model.spec       # creating twice adds nothing


def test_interneurons_sit_beside_their_layer_and_connect_laterally_only():
    model = model_of(CHAIN)
    assert model.graph.hidden == ("h1", "h2")
    assert model.graph.depth()["h1_inter"] == model.graph.depth()["h1"]
    bad = attrs.evolve(model.spec, projections=tuple(
        attrs.evolve(p, type="forward") if p.name == "h1->h1_inter" else p for p in model.spec.projections))
    with pytest.raises(GraphError, match="an interneuron connects by lateral projections within its area only"):
        build_graph(bad)
    lost = attrs.evolve(model.spec, projections=tuple(p for p in model.spec.projections if p.name != "h1_inter->h1"))
    with pytest.raises(GraphError, match="projects back to the pyramidal population it hears"):
        build_graph(lost)


def test_bias_into_a_predicted_layer_is_refused():
    with pytest.raises(CompileError, match=r"projection 'h1->h2': interneurons have no bias.*set bias = false"):
        model_of(CHAIN.replace('chain = ["h1", "h2", "y"]\nbias = false',
                               'chain = ["h1", "h2", "y"]'))


def test_loss_must_be_mse():
    with pytest.raises(CompileError, match="set task.loss = \"mse\""):
        model_of(CHAIN.replace('loss = "mse"', 'loss = "cross_entropy"'))


# -- the self-predicting state -------------------------------------------------------------------


def test_self_predicting_weights_are_the_closed_form():
    model = model_of(CHAIN)
    p = {k: model.backend.to_numpy(v) for k, v in model.params.items()}
    # h2 (hidden, g_A = 0.8) predicted by h1's interneurons; y (output, g_A = 0) by h2's.
    ratio_h2 = 1.0 * (0.1 + 1.0) / (1.0 * (0.1 + 1.0 + 0.8))
    ratio_y = 1.0 * (0.1 + 1.0) / (1.0 * (0.1 + 1.0))
    np.testing.assert_allclose(p["h1->h1_inter"], ratio_h2 * p["h1->h2"], rtol=1e-12)
    np.testing.assert_allclose(p["h2->h2_inter"], ratio_y * p["h2->y"], rtol=1e-12)
    np.testing.assert_array_equal(p["h1_inter->h1"], -p["h2->h1"])
    np.testing.assert_array_equal(p["h2_inter->h2"], -p["y->h2"])
    random = model_of(CHAIN, **{"rule.microcircuit": "random"})
    q = {k: random.backend.to_numpy(v) for k, v in random.params.items()}
    assert not np.allclose(q["h1_inter->h1"], -q["h2->h1"])


# -- the compiled sweep against a hand computation -----------------------------------------------


def test_sweep_and_updates_match_a_hand_computation():
    model = model_of(TINY.format(micro="random", extra="learn_inhibition = true\nlearn_topdown = true"))
    w1, w2, b, a, c = 0.5, -1.5, 0.7, 0.9, -0.4
    model.set_params({"x->h": [[w1]], "h->y": [[w2]], "y->h": [[b]], "h->h_inter": [[a]], "h_inter->h": [[c]]})
    x, target, lr = 2.0, 0.3, 0.1
    # bottom-up: û_h = g_B/(g_lk + g_B + g_A)·v_B, û_y = g_B/(g_lk + g_B)·v_B
    u_h0 = (x * w1) / 1.9
    r_h = sigmoid(u_h0)
    u_y0 = r_h * w2 / 1.1
    # top-down: output nudged with λ_N = g_som/(g_lk + g_B + g_som), interneuron with λ_I
    lam_n = 0.8 / 1.9
    u_y = (1 - lam_n) * u_y0 + lam_n * target
    v_i = r_h * a
    lam_i = 0.8 / 1.9
    u_i = (1 - lam_i) * v_i / 1.1 + lam_i * u_y
    v_a = u_y * b + u_i * c
    u_h = u_h0 + 0.8 / 1.9 * v_a
    exe = model.run("probe", np.array([[x]]), np.array([[target]]))
    got = {k: float(np.asarray(exe.arrays[k]).ravel()[0])
           for k in ("h.pre", "y.pre", "y.soma", "h_inter.soma", "h.apical", "h.soma")}
    assert got == pytest.approx({"h.pre": u_h0, "y.pre": u_y0, "y.soma": u_y, "h_inter.soma": u_i,
                                 "h.apical": v_a, "h.soma": u_h}, rel=1e-12)
    deltas = {k: float(v.ravel()[0]) for k, v in model.deltas(np.array([[x]]), np.array([[target]])).items()}
    assert deltas == pytest.approx({
        "x->h": lr * x * (sigmoid(u_h) - r_h),                 # (φ(u) − φ(v̂_B)) r_belowᵀ
        "h->y": lr * r_h * (u_y - u_y0),
        "h->h_inter": lr * r_h * (u_i - v_i / 1.1),            # (φ(u_I) − φ(v̂_I)) r_Pᵀ
        "h_inter->h": lr * u_i * (0.0 - v_a),                  # (0 − v_A) r_Iᵀ
        "y->h": lr * u_y * (sigmoid(u_h) - sigmoid(u_y * b)),  # (φ(u) − φ(B r_above)) r_aboveᵀ
    }, rel=1e-12)


def test_target_potentials_map_zero_and_one():
    model = model_of(TINY.format(micro="self_predicting", extra="target_low = -2.0\ntarget_high = 1.5"))
    exe = model.run("probe", np.array([[1.0], [1.0]]), np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(np.asarray(exe.arrays["y.utarget"]).ravel(), [-2.0, 1.5])


def test_predict_is_the_equivalent_feedforward_network():
    model = model_of(CHAIN)
    x = np.random.default_rng(0).standard_normal((7, 5))
    p = {k: model.backend.to_numpy(v) for k, v in model.params.items()}
    h1 = 1 / (1 + np.exp(-(x @ p["x->h1"] + p["h1.bias"]) / 1.9))
    h2 = 1 / (1 + np.exp(-(h1 @ p["h1->h2"]) / 1.9))
    y = 1 / (1 + np.exp(-(h2 @ p["h2->y"]) / 1.1))
    np.testing.assert_allclose(model.predict(x), y, rtol=1e-12)


def test_gradients_match_finite_differences_of_the_loss():
    model = model_of(CHAIN)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5)), rng.random((6, 3))
    grads = model.gradients(x, y)
    assert set(grads) == {"x->h1", "h1.bias", "h1->h2", "h2->y"}
    for name in grads:
        value = model.backend.to_numpy(model.params[name]).copy()
        flat = value.reshape(-1)
        for index in range(0, flat.size, max(1, flat.size // 5)):
            eps = 1e-6
            flat[index] += eps
            model.set_params({name: value})
            up = model.evaluate(x, y)[0]
            flat[index] -= 2 * eps
            model.set_params({name: value})
            down = model.evaluate(x, y)[0]
            flat[index] += eps
            model.set_params({name: value})
            assert grads[name].reshape(-1)[index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-10)


# -- Euler relaxation ----------------------------------------------------------------------------


def test_euler_program_shows_its_phases_and_buffers():
    model = model_of(CHAIN, **{"rule.solver": "euler", "rule.euler_steps": 50, "rule.noise": 0.1})
    text = model.program.describe()
    assert "phase settle × 50  — Euler steps (dt = 0.1) of the full dynamics of every compartment, noise 0.1·√dt" in text
    assert "h1.apical" in text and "h1_inter.dendrite" in text and "phase dendrites" in text


def test_euler_reaches_the_fixed_point_of_the_full_dynamics():
    model = model_of(CHAIN, **{"rule.solver": "euler", "rule.euler_steps": 400, "rule.dt": 0.2})
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 5)), rng.random((4, 3))
    exe = model.run("probe", x, y)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in exe.arrays.items()}
    layers = model.rule.layers(model.graph)
    for layer in layers:
        g = gains(model.graph, layer)
        third = arrays[f"{layer.name}.apical"] if layer.hidden else arrays[f"{layer.name}.utarget"]
        g3 = g["g_a"] if layer.hidden else g["g_som"]
        force = (-g["g_lk"] * arrays[f"{layer.name}.soma"] + g["g_b"] * (arrays[f"{layer.name}.basal"]
                 - arrays[f"{layer.name}.soma"]) + g3 * (third - arrays[f"{layer.name}.soma"]))
        assert np.abs(force).max() < 1e-9, layer.name
        if layer.hidden:
            inter = layer.interneuron
            force_i = (-g["i_lk"] * arrays[f"{inter}.soma"] + g["g_d"] * (arrays[f"{inter}.dendrite"]
                       - arrays[f"{inter}.soma"]) + g["i_som"] * (arrays[f"{layer.above}.soma"] - arrays[f"{inter}.soma"]))
            assert np.abs(force_i).max() < 1e-9, inter


def test_digits_spec_learns():
    model = circuits.load("specs/dendritic_digits.toml", {"task.epochs": 3}, registry=RULES)
    data = load_data(model)
    before = model.evaluate(data.x_test, data.y_test)[1]
    records = list(fit(model, data))
    assert len(records) == 3
    after = model.evaluate(data.x_test, data.y_test)[1]
    assert before < 0.3 and after > 0.75
