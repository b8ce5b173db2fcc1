"""Temporal-derivative and recirculation rules: hand computations, errors, claims and mutants."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.claims import default_claims, temporal
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.model import Model
from circuits.rules import RuleRegistry, default_registry
from circuits.rules.recirculation import Recirculation
from circuits.rules.temporal import TemporalDerivative
from circuits.spec import parse_spec

CLAIMS = default_claims()
RNG = np.random.default_rng(5)
X = RNG.standard_normal((5, 3))
T = RNG.standard_normal((5, 2))
LABELS = np.array([0, 1, 1, 0, 1])

CHAIN = """
[circuit]
name = "tiny-td"
[populations]
x = {{ size = 3, role = "input" }}
{hidden}
y = {{ size = 2, role = "output", activation = "{out}" }}
[[projections]]
chain = {chain}
[rule]
name = "temporal_derivative"
lr = 0.1
blend = {blend}
topdown = "{topdown}"
auto_feedback = true
{extra}
[task]
dataset = "teacher_linear"
loss = "{loss}"
[run]
dtype = "float64"
seed = 3
"""


def td_model(registry, *, hidden=(("h", 4, "tanh"),), out="sigmoid", loss="mse", blend=0.3,
             topdown="fixed", extra="") -> Model:
    lines = "\n".join(f'{n} = {{ size = {s}, activation = "{a}" }}' for n, s, a in hidden)
    chain = str(["x", *[n for n, _, _ in hidden], "y"]).replace("'", '"')
    text = CHAIN.format(hidden=lines, chain=chain, out=out, loss=loss, blend=blend, topdown=topdown,
                        extra=extra)
    return Model(parse_spec(text, source="tiny.toml", rules=registry.signatures()), registry=registry)


def params(model):
    return {k: np.array(v) for k, v in model.params.items()}


def assert_same(got, want):
    assert set(want) <= set(got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-14, err_msg=name)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# -- temporal derivative: hand computations ----------------------------------------------------


@pytest.mark.parametrize("topdown", ["fixed", "adaptive"])
def test_td_hand_computation(registry, topdown):
    lam, n = 0.3, len(X)
    model = td_model(registry, blend=lam, topdown=topdown)
    p = params(model)
    pre = X @ p["x->h"] + p["h.bias"]
    h = np.tanh(pre)
    pre_y = h @ p["h->y"] + p["y.bias"]
    y = sigmoid(pre_y)
    delta_y = (y - T) / n * y * (1 - y)
    change_y = -lam * n * delta_y                        # the output's drive moves toward the target
    change_h = np.tanh(pre + change_y @ p["y->h"]) - h   # a difference of rates, not f'·Δpre
    td = -change_h / (lam * n)
    want = {"x->h": -0.1 * X.T @ td, "h.bias": -0.1 * td.sum(0),
            "h->y": -0.1 * h.T @ delta_y, "y.bias": -0.1 * delta_y.sum(0)}
    if topdown == "adaptive":
        error = (np.tanh(pre_y @ p["y->h"] + p["h.topdown_bias"]) - h) / n
        want["y->h"] = -0.01 * pre_y.T @ error             # top-down weights learn at topdown_lr
        want["h.topdown_bias"] = -0.01 * error.sum(0)
    got = model.deltas(X, T)
    assert_same(got, want)
    assert ("y->h" in got) == (topdown == "adaptive")


def test_td_cross_entropy_blends_logits_toward_the_one_hot_target(registry):
    lam, n = 0.2, len(X)
    model = td_model(registry, out="linear", loss="cross_entropy", blend=lam)
    p = params(model)
    h = np.tanh(X @ p["x->h"] + p["h.bias"])
    z = h @ p["h->y"] + p["y.bias"]
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    change_y = lam * (np.eye(2)[LABELS] - prob)
    exe = model.run("probe", X, LABELS)
    np.testing.assert_allclose(exe.arrays["y.change"], change_y, rtol=1e-12)
    td = -(np.tanh(X @ p["x->h"] + p["h.bias"] + change_y @ p["y->h"]) - h) / (lam * n)
    np.testing.assert_allclose(model.deltas(X, LABELS)["x->h"], -0.1 * X.T @ td, rtol=1e-10)


def test_td_two_hidden_layers_linear_and_relu(registry):
    lam, n = 0.5, len(X)
    model = td_model(registry, hidden=(("h1", 4, "linear"), ("h2", 5, "relu")), out="linear", blend=lam)
    p = params(model)
    h1 = X @ p["x->h1"] + p["h1.bias"]
    pre2 = h1 @ p["h1->h2"] + p["h2.bias"]
    h2 = np.maximum(pre2, 0)
    y = h2 @ p["h2->y"] + p["y.bias"]
    change_y = lam * (T - y)                             # linear output under MSE: y' = y + λ(t − y)
    change_2 = np.maximum(pre2 + change_y @ p["y->h2"], 0) - h2
    change_1 = change_2 @ p["h2->h1"]                    # a linear unit's rate change is its drive change
    want = {"x->h1": -0.1 * X.T @ (-change_1 / (lam * n)), "h1->h2": -0.1 * h1.T @ (-change_2 / (lam * n)),
            "h2->y": -0.1 * h2.T @ ((y - T) / n), "h1.bias": -0.1 * (-change_1 / (lam * n)).sum(0)}
    assert_same(model.deltas(X, T), want)


def test_td_step_applies_the_deltas(registry):
    model = td_model(registry, topdown="adaptive")
    before, deltas = params(model), model.deltas(X, T)
    model.step(X, T)
    for name, change in deltas.items():
        np.testing.assert_allclose(model.params[name], before[name] + change, rtol=1e-10, atol=1e-14)


def test_dropout_composes_with_the_temporal_derivative(registry):
    """One training step with dropout: TD with B := Wᵀ and a tiny blend moves like backprop.

    ReLU units: the shared backward lowering takes tanh′ and sigmoid′ from the dropped-out
    rate (``1 − (mask·tanh)²``), so backprop itself is not the reference for those with dropout.
    """
    dropout = ('h1 = { size = 6, activation = "relu", dropout = 0.5 }\n'
               'h2 = { size = 5, activation = "relu", dropout = 0.5 }')
    text = CHAIN.format(hidden=dropout, chain='["x", "h1", "h2", "y"]', out="linear", loss="mse",
                        blend=1e-5, topdown="fixed", extra="")
    td = Model(parse_spec(text, source="td.toml", rules=registry.signatures()), registry=registry)
    bp_text = text.replace('name = "temporal_derivative"', 'name = "backprop"')
    bp_text = "\n".join(line for line in bp_text.splitlines()
                        if not line.startswith(("blend", "topdown", "auto_feedback")))
    bp = Model(parse_spec(bp_text, source="bp.toml", rules=registry.signatures()), registry=registry)
    td.set_params({"y->h2": params(td)["h2->y"].T, "h2->h1": params(td)["h1->h2"].T})
    start = params(bp)
    assert_same(params(td), start)
    assert "h2.rate_after ⊙= h2.mask" in td.program.describe()
    td.step(X, T)
    bp.step(X, T)
    for name in start:
        moved_bp = params(bp)[name] - start[name]
        moved_td = params(td)[name] - start[name]
        assert np.linalg.norm(moved_td - moved_bp) <= 1e-3 * np.linalg.norm(moved_bp), name
    assert np.any(np.array(td.sim.executable(td.program, len(X)).arrays["h1.mask"]) == 0)


# -- recirculation: hand computation -----------------------------------------------------------

LOOP = """
[circuit]
name = "loop"
[populations]
x = {{ size = {nx}, role = "input" }}
h = {{ size = {nh}, activation = "{act}" }}
r = {{ size = {nr}, role = "output", activation = "{out}" }}
[[projections]]
chain = ["x", "h", "r"]
[rule]
name = "recirculation"
regression = {lam}
lr = 0.1
[task]
dataset = "digits"
loss = "mse"
autoencode = {autoencode}
[run]
dtype = "float64"
seed = {seed}
"""


def loop_spec(registry, *, nx=4, nh=3, nr=None, act="sigmoid", out="sigmoid", lam=0.6, autoencode="true",
              seed=1):
    text = LOOP.format(nx=nx, nh=nh, nr=nr or nx, act=act, out=out, lam=lam, autoencode=autoencode, seed=seed)
    return parse_spec(text, source="loop.toml", rules=registry.signatures())


def test_recirculation_hand_computation(registry):
    lam = 0.6
    model = Model(loop_spec(registry, lam=lam), registry=registry)
    p = params(model)
    y0 = np.random.default_rng(2).random((6, 4))
    n = len(y0)
    y1 = sigmoid(y0 @ p["x->h"] + p["h.bias"])
    y2 = lam * y0 + (1 - lam) * sigmoid(y1 @ p["h->r"] + p["r.bias"])
    y3 = lam * y1 + (1 - lam) * sigmoid(y2 @ p["x->h"] + p["h.bias"])
    # Hinton & McClelland: Δw_ij = ε y_j(1)(y_i(0) − y_i(2)), Δw_ji = ε y_i(2)(y_j(1) − y_j(3)).
    want = {"h->r": 0.1 * y1.T @ (y0 - y2) / n, "x->h": 0.1 * y2.T @ (y1 - y3) / n,
            "r.bias": 0.1 * (y0 - y2).sum(0) / n, "h.bias": 0.1 * (y1 - y3).sum(0) / n}
    assert_same(model.deltas(y0, y0), want)
    model.step(y0, y0)
    for name, change in want.items():
        np.testing.assert_allclose(model.params[name], p[name] + change, rtol=1e-10, atol=1e-14)


# -- errors a user can act on --------------------------------------------------------------------


def one_hidden_td(topdown="fixed", auto=True, projections=""):
    """Spec text of x → h (tanh) → y under the temporal-derivative rule, plus extra projections."""
    text = CHAIN.format(hidden='h = { size = 4, activation = "tanh" }', chain='["x", "h", "y"]', out="linear",
                        loss="mse", blend=0.1, topdown=topdown, extra="")
    if not auto:
        text = text.replace("auto_feedback = true\n", "")
    return text.replace("[rule]", projections + "[rule]")


def test_td_missing_topdown_projection_names_the_toml(registry):
    with pytest.raises(CompileError) as err:
        Model(parse_spec(one_hidden_td(auto=False), source="td.toml", rules=registry.signatures()),
              registry=registry)
    assert str(err.value) == (
        "td.toml: rule 'temporal_derivative' needs a top-down projection from 'y' to 'h'; add "
        "[[projections]] from = \"y\", to = \"h\", type = \"feedback\", plastic = false "
        "(or set rule.auto_feedback = true)")


def test_td_topdown_plasticity_must_match_the_mode(registry):
    fixed = '[[projections]]\nfrom = "y"\nto = "h"\ntype = "feedback"\nplastic = false\n'
    text = one_hidden_td("adaptive", auto=False, projections=fixed)
    with pytest.raises(CompileError, match="topdown = \"adaptive\" needs plastic = true"):
        Model(parse_spec(text, source="td.toml", rules=registry.signatures()), registry=registry)


def test_td_rejects_lateral_projections(registry):
    text = one_hidden_td(projections='[[projections]]\nfrom = "h"\nto = "h"\ntype = "lateral"\n')
    with pytest.raises(CompileError, match="does not model lateral projections"):
        Model(parse_spec(text, source="td.toml", rules=registry.signatures()), registry=registry)


@pytest.mark.parametrize("change,message", [
    ({"autoencode": "false"},
     "loop.toml: rule 'recirculation' reconstructs its input; set task.autoencode = true"),
    ({"nr": 5}, "set populations.r.size = 4"),
])
def test_recirculation_errors(registry, change, message):
    with pytest.raises(CompileError, match=message.replace(".", r"\.")):
        Model(loop_spec(registry, **change), registry=registry)


def test_recirculation_needs_the_loop(registry):
    spec = loop_spec(registry)
    text = LOOP.format(nx=4, nh=3, nr=4, act="sigmoid", out="sigmoid", lam=0.5, autoencode="true", seed=1)
    skip = '\n[[projections]]\nfrom = "x"\nto = "r"'
    text = text.replace('chain = ["x", "h", "r"]', 'chain = ["x", "h", "r"]' + skip)
    with pytest.raises(CompileError, match="needs one loop"):
        Model(parse_spec(text, source="loop.toml", rules=registry.signatures()), registry=registry)
    assert Recirculation.loop(Model(spec, registry=registry).graph) == ("x", "h", "r")


# -- claims on drawn circuits ---------------------------------------------------------------------


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


def drawn_td(registry, circuit, extra=""):
    text = dag_spec_text(circuit, rule="temporal_derivative", extra_rule="auto_feedback = true\n" + extra)
    spec = parse_spec(text, source="drawn.toml", rules=registry.signatures())
    return registry.get("temporal_derivative").augment(spec)


@settings(max_examples=12)
@given(circuit=dag_circuits(max_depth=3, max_size=8), topdown=st.sampled_from(["fixed", "adaptive"]))
def test_td_with_tied_topdown_tends_to_backprop(registry, circuit, topdown):
    spec = drawn_td(registry, circuit, f'topdown = "{topdown}"')
    outcome = run_claim("td_tied_is_backprop", spec, registry)
    assert outcome.passed, outcome


@settings(max_examples=15)
@given(circuit=dag_circuits(), blend=st.sampled_from([0.01, 0.3, 1.0]))
def test_td_output_layer_is_backprop(registry, circuit, blend):
    spec = drawn_td(registry, circuit, f"blend = {blend}")
    outcome = run_claim("td_output_layer_is_backprop", spec, registry)
    assert outcome.passed, outcome


@settings(max_examples=15)
@given(nx=st.integers(2, 12), nh=st.integers(1, 8), act=st.sampled_from(["sigmoid", "tanh", "linear"]),
       seed=st.integers(0, 2**16))
def test_recirculation_descends_in_the_restricted_case(registry, nx, nh, act, seed):
    spec = loop_spec(registry, nx=nx, nh=nh, act=act, seed=seed)
    outcome = run_claim("recirculation_descends_reconstruction_error", spec, registry, seed)
    assert outcome.passed, outcome


DIGITS_TD = """
[circuit]
name = "td"
[populations]
x = {{ size = 64, role = "input" }}
h = {{ size = {hidden}, activation = "tanh" }}
y = {{ size = 10, role = "output" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "temporal_derivative"
topdown = "{topdown}"
auto_feedback = true
[task]
dataset = "digits"
batch_size = 32
"""


def digits_td(registry, hidden=24, topdown="adaptive"):
    spec = parse_spec(DIGITS_TD.format(hidden=hidden, topdown=topdown), source="td.toml",
                      rules=registry.signatures())
    return registry.get("temporal_derivative").augment(spec)


@settings(max_examples=2)
@given(hidden=st.sampled_from([16, 48]))
def test_adaptive_topdown_learns_to_reconstruct(registry, hidden):
    outcome = run_claim("td_topdown_learns_to_reconstruct", digits_td(registry, hidden), registry)
    assert outcome.passed, outcome


def test_reconstruction_claim_skips_fixed_topdown(registry):
    outcome = run_claim("td_topdown_learns_to_reconstruct", digits_td(registry, topdown="fixed"), registry)
    assert outcome.status == "skip" and "adaptive" in outcome.reason


# -- mutants: each claim must catch a rule wrong in the way it guards -------------------------------


class ForgetsRateChange(TemporalDerivative):
    """Sends and learns from the change of drive Δpre instead of the change of rate (forgets f')."""

    def emit_temporal(self, b: Builder) -> dict[str, str]:
        signals = super().emit_temporal(b)
        b.phase_ops["temporal"] = [
            attrs.evolve(op, terms=(op.terms[0].replace("rate_after", "pre_after"), b.pre(op.out[:-7])))
            if isinstance(op, ops.LinearCombination) and op.out.endswith(".change") and len(op.terms) == 2
            else op for op in b.phase_ops["temporal"]]
        return signals


class WrongSignTD(TemporalDerivative):
    """Learns from h − h' instead of h' − h."""

    def emit_temporal(self, b: Builder) -> dict[str, str]:
        signals = super().emit_temporal(b)
        b.phase_ops["temporal"] = [
            attrs.evolve(op, coeffs=tuple(-c for c in op.coeffs)) if op.out.endswith(".td") else op
            for op in b.phase_ops["temporal"]]
        return signals


class UnscaledOutputTD(TemporalDerivative):
    """The output learns from its raw change λ·(target − y), never turned into a derivative."""

    def emit_temporal(self, b: Builder) -> dict[str, str]:
        signals = super().emit_temporal(b)
        out = b.graph.output
        return {**signals, out: f"{out}.change"}


class AntiReconstruction(TemporalDerivative):
    """Top-down weights climb the reconstruction error instead of descending it."""

    def emit_reconstruction(self, b: Builder) -> None:
        super().emit_reconstruction(b)
        for name in list(b.learned):
            if b.graph.projection(name).type == "feedback":
                b.learned[name] = [(a, d, -s) for a, d, s in b.learned[name]]


class BackwardRecirculation(Recirculation):
    """The visible → hidden side learns from y(1) − y(3) where the rule has y(3) − y(1)."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        if "recirculate" in b.phase_ops:
            b.phase_ops["recirculate"] = [
                attrs.evolve(op, coeffs=tuple(-c for c in op.coeffs)) if op.out == "h.change" else op
                for op in b.phase_ops["recirculate"]]


def mutant_registry(mutant) -> RuleRegistry:
    registry = RuleRegistry()
    registry.register(mutant)
    defaults = default_registry(plugins=False)
    for name in defaults.names():
        if name != mutant.signature.name:
            registry.register(defaults.get(name))
    return registry


def _layered_td(registry):
    circuit = {"sizes": {"x": 5, "h1": 6, "h2": 4, "y": 3}, "activations": {"x": "linear", "h1": "tanh",
               "h2": "sigmoid", "y": "linear"}, "edges": [("x", "h1"), ("h1", "h2"), ("h2", "y")],
               "loss": "mse", "seed": 4}
    return drawn_td(registry, circuit)


MUTANTS = [
    ("td_tied_is_backprop", ForgetsRateChange(), _layered_td),
    ("td_tied_is_backprop", WrongSignTD(), _layered_td),
    ("td_output_layer_is_backprop", UnscaledOutputTD(), _layered_td),
    ("td_topdown_learns_to_reconstruct", AntiReconstruction(), lambda r: digits_td(r, 24)),
    ("recirculation_descends_reconstruction_error", BackwardRecirculation(),
     lambda r: loop_spec(r, nx=6, nh=4)),
]


def test_every_claim_has_a_mutant():
    assert {name for name, _, _ in MUTANTS} == {getattr(temporal, n).name for n in temporal.__all__}


@pytest.mark.parametrize("claim,mutant,make", MUTANTS, ids=[f"{m[0]}-{type(m[1]).__name__}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant, make):
    registry = mutant_registry(mutant)
    outcome = run_claim(claim, make(registry), registry)
    assert outcome.status == "fail", outcome
