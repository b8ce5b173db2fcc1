"""Predictive coding: both variants pinned against NumPy on a tiny circuit, the schedule, the
compile-time checks, the PC claims as property tests on drawn circuits with a mutant rule each,
and the digits spec training."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

import circuits
from circuits import ops
from circuits.claims import default_claims, predictive
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.backprop import Backprop
from circuits.rules.predictive import INFERENCE, PredictiveCoding, belief_step, error, feedback
from circuits.spec import parse_spec

CLAIMS = default_claims()
PC = "predictive_coding"

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h1 = {{ size = 4, activation = "tanh" }}
h2 = {{ size = 5, activation = "sigmoid" }}
y = {{ size = 2, role = "output", activation = "{out}" }}
[[projections]]
chain = ["x", "h1", "h2", "y"]
[rule]
name = "predictive_coding"
lr = 0.1
{extra}
[task]
dataset = "teacher_linear"
loss = "{loss}"
[run]
dtype = "float64"
seed = 3
"""

RNG = np.random.default_rng(11)
X = RNG.standard_normal((5, 3))
TARGETS = RNG.standard_normal((5, 2))
LABELS = np.array([0, 1, 1, 0, 1])


def tiny(registry, extra="", loss="mse"):
    text = TINY.format(extra=extra, loss=loss, out="sigmoid" if loss == "mse" else "linear")
    return Model(parse_spec(text, source="tiny.toml", rules=registry.signatures()), registry=registry)


def host(model):
    return {k: np.array(v) for k, v in model.params.items()}


def sigmoid(u):
    return 1 / (1 + np.exp(-u))


def softmax(u):
    e = np.exp(u - u.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def output_error(p, v2, loss):
    """∂L/∂(output pre-activation) for the prediction made from ``v2``."""
    z = v2 @ p["h2->y"] + p["y.bias"]
    if loss == "mse":
        y = sigmoid(z)
        return (y - TARGETS) / len(X) * y * (1 - y)
    return (softmax(z) - np.eye(2)[LABELS]) / len(X)


def hand_fixed(p, loss, eta, sweeps):
    """Torch2PC's FixedPredPCPredErrs in plain NumPy; returns the estimate of every parameter."""
    v1 = np.tanh(X @ p["x->h1"] + p["h1.bias"])
    v2 = sigmoid(v1 @ p["h1->h2"] + p["h2.bias"])
    top = output_error(p, v2, loss)
    hat1, hat2 = v1.copy(), v2.copy()
    for _ in range(sweeps):
        e2 = hat2 - v2
        d2 = e2 * hat2 * (1 - hat2)
        v2 = v2 + eta * (e2 - top @ p["h2->y"].T)
        e1 = hat1 - v1
        d1 = e1 * (1 - hat1 ** 2)
        v1 = v1 + eta * (e1 - d2 @ p["h1->h2"].T)
    return {"x->h1": X.T @ d1, "h1.bias": d1.sum(0), "h1->h2": hat1.T @ d2, "h2.bias": d2.sum(0),
            "h2->y": hat2.T @ top, "y.bias": top.sum(0)}


def hand_strict(p, loss, eta, sweeps):
    """Strict PC in plain NumPy: predictions, Jacobians and the output error at the current beliefs,
    all errors of a sweep from the same beliefs, then the errors at the final beliefs."""
    def errors(v1, v2):
        pred1 = np.tanh(X @ p["x->h1"] + p["h1.bias"])
        pred2 = sigmoid(v1 @ p["h1->h2"] + p["h2.bias"])
        e1, e2 = pred1 - v1, pred2 - v2
        return e1, e1 * (1 - pred1 ** 2), e2, e2 * pred2 * (1 - pred2), output_error(p, v2, loss)

    v1 = np.tanh(X @ p["x->h1"] + p["h1.bias"])
    v2 = sigmoid(v1 @ p["h1->h2"] + p["h2.bias"])
    for _ in range(sweeps):
        e1, _, e2, d2, top = errors(v1, v2)
        v1, v2 = v1 + eta * (e1 - d2 @ p["h1->h2"].T), v2 + eta * (e2 - top @ p["h2->y"].T)
    _, d1, _, d2, top = errors(v1, v2)
    return {"x->h1": X.T @ d1, "h1.bias": d1.sum(0), "h1->h2": v1.T @ d2, "h2.bias": d2.sum(0),
            "h2->y": v2.T @ top, "y.bias": top.sum(0)}


def assert_estimates(model, want, targets, lr=0.1):
    got = model.deltas(X, targets)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], -lr * want[name], rtol=1e-10, atol=1e-15, err_msg=name)


# -- the rule against NumPy -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("eta,sweeps", [(0.5, 2), (0.3, 5), (1.0, 1)])
def test_fixed_prediction_hand_computation(registry, loss, eta, sweeps):
    model = tiny(registry, f'variant = "fixed_prediction"\ninference_rate = {eta}\ninference_steps = {sweeps}', loss)
    want = hand_fixed(host(model), loss, eta, sweeps)
    assert_estimates(model, want, TARGETS if loss == "mse" else LABELS)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_strict_hand_computation(registry, loss):
    model = tiny(registry, 'variant = "strict"\ninference_rate = 0.2\ninference_steps = 7', loss)
    want = hand_strict(host(model), loss, 0.2, 7)
    assert_estimates(model, want, TARGETS if loss == "mse" else LABELS)


def test_fixed_prediction_with_enough_sweeps_is_backprop(registry):
    model = tiny(registry, 'inference_rate = 1.0\ninference_steps = 3')
    deltas, grads = model.deltas(X, TARGETS), model.gradients(X, TARGETS)
    for name, grad in grads.items():
        np.testing.assert_allclose(deltas[name], -0.1 * grad, rtol=1e-12, atol=1e-16, err_msg=name)


def test_train_step_applies_the_estimates(registry):
    model = tiny(registry, 'variant = "strict"\ninference_rate = 0.2\ninference_steps = 4')
    before = host(model)
    want = hand_strict(before, "mse", 0.2, 4)
    model.step(X, TARGETS)
    after = host(model)
    for name, estimate in want.items():
        np.testing.assert_allclose(after[name], before[name] - 0.1 * estimate, rtol=1e-10, atol=1e-15,
                                   err_msg=name)


def test_beliefs_end_where_numpy_puts_them(registry):
    """The value and error units themselves, not only the estimates (fixed prediction, η = 0.5, 3 sweeps)."""
    model = tiny(registry, "inference_rate = 0.5\ninference_steps = 3")
    p = host(model)
    exe = model.run("probe", X, TARGETS)
    hat2 = sigmoid(np.tanh(X @ p["x->h1"] + p["h1.bias"]) @ p["h1->h2"] + p["h2.bias"])
    top = output_error(p, hat2, "mse")
    v2 = hat2.copy()
    for _ in range(3):
        e2 = hat2 - v2
        v2 = v2 + 0.5 * (e2 - top @ p["h2->y"].T)
    np.testing.assert_allclose(exe.arrays["h2.value"], v2, rtol=1e-12)
    np.testing.assert_allclose(exe.arrays[error("h2")], e2, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(exe.arrays[feedback("h2")], top @ p["h2->y"].T, rtol=1e-12)


# -- the schedule -----------------------------------------------------------------------------------------


def test_phases_per_mode(registry):
    fixed = tiny(registry)
    strict = tiny(registry, 'variant = "strict"')
    names = {mode: [ph.name for ph in fixed.compiled(mode).phases] for mode in ("train", "probe", "infer")}
    assert names["train"] == names["probe"] == ["forward", "loss", "beliefs", "inference", "update"]
    assert names["infer"] == ["forward", "loss"]
    assert [ph.name for ph in strict.program.phases] == ["forward", "loss", "beliefs", "inference", "settle",
                                                         "update"]
    assert fixed.program.phase(INFERENCE).repeat == 20  # Torch2PC's default n and η
    assert fixed.spec.rule.params["inference_rate"] == 0.1


def test_compile_prints_what_pc_computes(registry):
    text = tiny(registry, "inference_rate = 0.5\ninference_steps = 7").program.describe()
    assert "phase inference × 7" in text
    for line in ("h1.value = h1.rate", "h2.error = h2.rate − h2.value",
                 "h2.error_delta = h2.error ⊙ sigmoid'(h2.pre)", "h2.feedback = y.delta @ h2->y.weight.T",
                 "h1.feedback = h2.error_delta @ h1->h2.weight.T",
                 f"{belief_step('h1')} = 0.5·h1.error − 0.5·h1.feedback", "h1.value += h1.belief_step",
                 "x->h1.weight = x->h1.weight + -0.1·x.rate.T @ h1.error_delta"):
        assert line in text, line
    strict = tiny(registry, 'variant = "strict"').program.describe()
    for line in ("h2.pred_pre = h1.value @ h1->h2.weight", "h2.error = h2.pred − h2.value",
                 "y.pred_loss = mean ½‖y.pred − y.target‖²; y.error = (y.pred − y.target)/batch",
                 "h1->h2.weight = h1->h2.weight + -0.1·h1.value.T @ h2.error_delta"):
        assert line in strict, line


def test_linear_hidden_units_need_no_copies(registry):
    """A linear population's error at the pre-activation is its error buffer itself."""
    text = TINY.replace('"tanh"', '"linear"').replace('activation = "sigmoid" }}\ny', 'activation = "linear" }}\ny')
    model = Model(parse_spec(text.format(extra="", loss="mse", out="sigmoid"), source="lin.toml",
                             rules=registry.signatures()), registry=registry)
    schedule = model.program.describe()
    assert "error_delta" not in schedule.replace("y.delta", "")
    assert "h1.feedback = h2.error @ h1->h2.weight.T" in schedule


# -- compile-time checks ----------------------------------------------------------------------------------


def test_errors_name_what_is_unsupported(registry):
    lateral = TINY.replace('chain = ["x", "h1", "h2", "y"]',
                           'chain = ["x", "h1", "h2", "y"]\n[[projections]]\nfrom = "h1"\nto = "h1"\ntype = "lateral"')
    spec = parse_spec(lateral.format(extra="", loss="mse", out="linear"), source="lat.toml",
                      rules=registry.signatures())
    with pytest.raises(CompileError) as err:
        Model(spec, registry=registry)
    assert str(err.value) == ("lat.toml: rule 'predictive_coding' does not support lateral projections yet (a "
                              "lateral step has no prediction error of its own); remove projection 'h1->h1'")
    dropout = TINY.replace('h1 = {{ size = 4, activation = "tanh" }}',
                           'h1 = {{ size = 4, activation = "tanh", dropout = 0.2 }}')
    with pytest.raises(CompileError, match=r"populations.h1.dropout: rule 'predictive_coding' does not support "
                                           r"dropout yet \(got 0.2\); set it to 0"):
        Model(parse_spec(dropout.format(extra="", loss="mse", out="linear"), source="d.toml",
                         rules=registry.signatures()), registry=registry)


def test_parameters_are_checked(registry):
    with pytest.raises(circuits.SpecError, match="rule.variant: must be one of fixed_prediction, strict "
                                                 r"\(got 'strcit'; did you mean 'strict'\?\)"):
        tiny(registry, 'variant = "strcit"')
    with pytest.raises(circuits.SpecError, match=r"rule.inference_rate: must be a number in \(0, 1\]"):
        tiny(registry, "inference_rate = 1.5")
    with pytest.raises(circuits.SpecError, match="rule.inference_steps: must be an integer"):
        tiny(registry, "inference_steps = 0")


# -- claims: property tests on drawn circuits -------------------------------------------------------------


def drawn_spec(registry, circuit, extra=""):
    text = dag_spec_text(circuit, rule=PC, dtype="float64", extra_rule=extra)
    return parse_spec(text, source="dag.toml", rules=registry.signatures())


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


@given(circuit=dag_circuits())
def test_fixed_prediction_is_backprop_after_depth_sweeps(registry, circuit):
    outcome = run_claim("fixed_prediction_pc_is_backprop", drawn_spec(registry, circuit), registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits(), eta=st.sampled_from([0.2, 0.5, 0.8]))
def test_fixed_prediction_converges_geometrically(registry, circuit, eta):
    outcome = run_claim("fixed_prediction_pc_converges", drawn_spec(registry, circuit, f"inference_rate = {eta}"),
                        registry)
    assert outcome.passed, outcome
    assert outcome.measured["eta"] == eta


@settings(max_examples=15)  # each example relaxes four times to equilibrium
@given(circuit=dag_circuits(max_depth=3, max_size=8))
def test_strict_gap_grows_with_output_error(registry, circuit):
    assume(len(circuit["sizes"]) > 2)
    outcome = run_claim("strict_pc_gap_grows_with_output_error", drawn_spec(registry, circuit), registry)
    assert outcome.passed, outcome


def test_strict_gap_does_not_vanish_with_the_output_error(registry):
    """The s → 0 limit of strict PC's gap is not 0 (the relaxed beliefs move the output's prediction)."""
    outcome = run_claim("strict_pc_gap_grows_with_output_error", tiny(registry).spec, registry)
    assert outcome.passed, outcome
    assert outcome.measured["relative_error@s=0.0001"] > 1e-3
    assert outcome.measured["relative_error@s=0.01"] > 0.5 * outcome.measured["relative_error@s=0.1"]


def test_preconditions_skip_with_a_reason(registry):
    flat = TINY.replace('h1 = {{ size = 4, activation = "tanh" }}\nh2 = {{ size = 5, activation = "sigmoid" }}\n',
                        "").replace('"x", "h1", "h2", "y"', '"x", "y"')
    spec = parse_spec(flat.format(extra="", loss="mse", out="linear"), source="flat.toml",
                      rules=registry.signatures())
    outcome = run_claim("strict_pc_gap_grows_with_output_error", spec, registry)
    assert outcome.status == "skip" and "needs a hidden population" in outcome.reason
    assert run_claim("fixed_prediction_pc_is_backprop", spec, registry).passed


# -- mutants: each claim fails on a rule wrong in the way it guards --------------------------------------------


class NoDerivativePC(PredictiveCoding):
    """PC whose error units forget f′: δ = ε, so feedback and learning skip the rate function's slope."""

    def _errors(self, b: Builder, phase: str, pop: str) -> None:
        super()._errors(b, phase, pop)
        last = b.phase_ops[phase][-1]
        if isinstance(last, ops.ActivationDeriv):
            b.phase_ops[phase][-1] = attrs.evolve(last, fn="linear")


class ExtraSweepPC(PredictiveCoding):
    """PC that runs one inference sweep more than it is asked to (an off-by-one in n)."""

    def emit(self, b: Builder) -> None:
        b.params["inference_steps"] += 1
        super().emit(b)


class UnscaledFeedbackPC(PredictiveCoding):
    """PC whose belief step forgets η on the feedback term: v += η·ε − Jᵀε_above (right only at η = 1)."""

    def _relax(self, b: Builder, pop: str, eta: float) -> None:
        super()._relax(b, pop, eta)
        combine = next(i for i, op in enumerate(b.phase_ops[INFERENCE]) if getattr(op, "out", "") == belief_step(pop))
        b.phase_ops[INFERENCE][combine] = attrs.evolve(b.phase_ops[INFERENCE][combine], coeffs=(eta, -1.0))


class FixedAsStrictPC(PredictiveCoding):
    """'Strict' PC that keeps the predictions and Jacobians of the feed-forward pass."""

    def emit(self, b: Builder) -> None:
        b.params["variant"] = "fixed_prediction"
        super().emit(b)


def mutant_registry(mutant) -> RuleRegistry:
    registry = RuleRegistry()
    registry.register(Backprop())
    registry.register(mutant)
    return registry


MUTANTS = [
    ("fixed_prediction_pc_is_backprop", NoDerivativePC()),
    ("fixed_prediction_pc_is_backprop", ExtraSweepPC()),
    ("fixed_prediction_pc_converges", UnscaledFeedbackPC()),
    ("strict_pc_gap_grows_with_output_error", FixedAsStrictPC()),
]


def test_every_claim_has_a_mutant():
    assert {name for name, _ in MUTANTS} == {getattr(predictive, n).name for n in predictive.__all__}


@pytest.mark.parametrize("claim,mutant", MUTANTS, ids=[f"{m[0]}-{type(m[1]).__name__}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant):
    registry = mutant_registry(mutant)
    spec = parse_spec(TINY.format(extra="", loss="mse", out="sigmoid"), source="tiny.toml",
                      rules=registry.signatures())
    assert run_claim(claim, spec, registry).status == "fail"


def test_extra_sweep_mutant_fails_only_the_zero_part():
    registry = mutant_registry(ExtraSweepPC())
    spec = parse_spec(TINY.format(extra="", loss="mse", out="sigmoid"), source="tiny.toml",
                      rules=registry.signatures())
    outcome = run_claim("fixed_prediction_pc_is_backprop", spec, registry)
    assert outcome.measured["relative_error_at_n=L"] < 1e-12
    assert outcome.measured["max_abs_estimate_not_reached"] > 0


def test_unscaled_feedback_mutant_is_exact_at_eta_one():
    """Claim 14 guards what claim 13 cannot see: the mutant equals PC at η = 1."""
    registry = mutant_registry(UnscaledFeedbackPC())
    spec = parse_spec(TINY.format(extra="", loss="mse", out="sigmoid"), source="tiny.toml",
                      rules=registry.signatures())
    assert run_claim("fixed_prediction_pc_is_backprop", spec, registry).passed


# -- the spec trains --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pc_digits", "pc_strict_digits"])
def test_digits_spec_learns(repo_root, registry, name):
    model = circuits.load(repo_root / "specs" / f"{name}.toml", registry=registry,
                          overrides=["task.n_train=600", "task.n_test=300", "rule.inference_steps=8"])
    records = list(circuits.fit(model, circuits.load_data(model), epochs=3))
    assert records[-1].train_loss < 0.5 * records[0].train_loss
    assert records[-1].test_accuracy > 0.8
