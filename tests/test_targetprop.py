"""Target propagation and DTP: the LinearCombination op, the rules pinned against NumPy on a tiny
circuit, the parallel and alternating schedules, compile-time checks, and the TP claims as
property tests with a mutant rule each."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.backends import get_backend
from circuits.claims import default_claims, targetprop
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.ir import BATCH
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.backprop import Backprop
from circuits.rules.targetprop import DifferenceTargetPropagation, TargetPropagation
from circuits.spec import parse_spec

CLAIMS = default_claims()
DTP, TP = "difference_target_propagation", "target_propagation"

# -- the op -----------------------------------------------------------------------------------------

RNG = np.random.default_rng(5)
A, B, C = (RNG.standard_normal((4, 3)) for _ in range(3))


def run_op(backend_name, op, arrays):
    backend = get_backend(backend_name, seed=0)
    device = {k: backend.from_numpy(np.array(v)) for k, v in arrays.items()}
    backend.step(op, device)()
    return {k: np.asarray(backend.to_numpy(v)) for k, v in device.items()}


@pytest.mark.parametrize("coeffs,powers", [((1.0, -1.0, 1.0), ()), ((0.5, -2.0, 1.0), (0, 1, -1)),
                                           ((-1.0, 1.0, 3.0), (-1, 0, 0))])
def test_linear_combination(backend, coeffs, powers):
    op = ops.LinearCombination(("a", "b", "c"), coeffs, "out", powers)
    out = run_op(backend, op, {"a": A, "b": B, "c": C, "out": np.full((4, 3), 7.0)})["out"]
    scale = [4.0 ** p for p in (powers or (0, 0, 0))]
    want = sum(k * s * t for k, s, t in zip(coeffs, scale, (A, B, C)))
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)


def test_linear_combination_cancels_exactly(backend):
    """Left to right: ``a − a + c`` is ``c`` bit for bit (DTP's fixed point rests on it)."""
    out = run_op(backend, ops.LinearCombination(("a", "a2", "c"), (1.0, -1.0, 1.0), "out"),
                 {"a": A * 1e3 + 0.1, "a2": A * 1e3 + 0.1, "c": C, "out": np.zeros((4, 3))})["out"]
    np.testing.assert_array_equal(out, C)


def test_linear_combination_checks_its_buffers():
    shapes = {"a": (BATCH, 3), "b": (BATCH, 3), "w": (3,), "v": (3,)}
    assert ops.LinearCombination(("a", "b"), (1, -1), "a").math() == "a = a − b"
    with pytest.raises(CompileError, match="both a term and the output"):
        ops.LinearCombination(("a", "b"), (1, -1), "a").check(shapes)
    with pytest.raises(CompileError, match="one coefficient"):
        ops.LinearCombination(("a", "b"), (1,), "b").check(shapes)
    with pytest.raises(CompileError, match="batched output"):
        ops.LinearCombination(("w",), (1,), "v", (1,)).check(shapes)
    assert ops.LinearCombination(("a", "b"), (1, -0.5), "w", (0, 1)).math() == "w = a − 0.5·batch·b"


# -- the rules on a tiny circuit ------------------------------------------------------------------------

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h1 = {{ size = 4, activation = "tanh" }}
h2 = {{ size = 4, activation = "tanh" }}
y = {{ size = 2, role = "output", activation = "sigmoid" }}
[[projections]]
chain = ["x", "h1", "h2", "y"]
[rule]
name = "{rule}"
lr = 0.1
alpha = 0.3
inverse_lr = 0.05
inverse_noise = 0.0
auto_feedback = true
{extra}
[task]
dataset = "teacher_linear"
loss = "mse"
[run]
dtype = "float64"
seed = 3
"""

X = RNG.standard_normal((5, 3))
T = RNG.standard_normal((5, 2))


def tiny(registry, rule=DTP, extra=""):
    spec = parse_spec(TINY.format(rule=rule, extra=extra), source="tiny.toml", rules=registry.signatures())
    model = Model(spec, registry=registry)
    if "h2->h1" in model.params:  # a non-zero inverse bias, so that the test sees it
        model.set_params({"h2->h1.inverse_bias": RNG.standard_normal(4) * 0.3})
    return model


def host(model):
    return {k: np.array(v) for k, v in model.params.items()}


def hand(p, difference, jacobian=False):
    """NumPy reference: activities, targets, local errors and the estimates of every forward parameter."""
    n = len(X)
    h1 = np.tanh(X @ p["x->h1"] + p["h1.bias"])
    h2 = np.tanh(h1 @ p["h1->h2"] + p["h2.bias"])
    y = 1 / (1 + np.exp(-(h2 @ p["h2->y"] + p["y.bias"])))
    dy = (y - T) / n * y * (1 - y)
    t2 = h2 - 0.3 * n * (dy @ p["h2->y"].T)
    if jacobian:
        def g(u): return (u * (1 - h2 ** 2)) @ p["h1->h2"].T
    else:
        def g(u): return np.tanh(u @ p["h2->h1"] + p["h2->h1.inverse_bias"])
    t1 = g(t2) - g(h2) + h1 if difference else g(t2)
    d1 = (h1 - t1) / n * (1 - h1 ** 2)
    d2 = (h2 - t2) / n * (1 - h2 ** 2)
    est = {"x->h1": X.T @ d1, "h1.bias": d1.sum(0), "h1->h2": h1.T @ d2, "h2.bias": d2.sum(0),
           "h2->y": h2.T @ dy, "y.bias": dy.sum(0)}
    return est, (h1, h2, t1, t2)


def assert_same(got, want, lr=0.1):
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], -lr * want[name], rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("rule,difference", [(DTP, True), (TP, False)])
def test_rule_hand_computation(registry, rule, difference):
    model = tiny(registry, rule)
    est, (h1, h2, t1, t2) = hand(host(model), difference)
    assert_same(model.deltas(X, T), est)
    found = targetprop.targets(model, X, T)
    np.testing.assert_allclose(found["h1"][1], t1, rtol=1e-12)
    np.testing.assert_allclose(found["h2"][1], t2, rtol=1e-12)


def test_jacobian_feedback_hand_computation(registry):
    model = tiny(registry, DTP, 'feedback = "jacobian"')
    assert "h2->h1.inverse_bias" not in model.params
    est, _ = hand(host(model), True, jacobian=True)
    assert_same(model.deltas(X, T), est)


@pytest.mark.parametrize("rule,difference", [(DTP, True), (TP, False)])
def test_sdtp_hand_computation(registry, rule, difference):
    """top_target = "output": ĥ_y is the regression target, carried to h2 by the inverse y → h2."""
    model = tiny(registry, rule, 'top_target = "output"')
    model.set_params({"y->h2.inverse_bias": RNG.standard_normal(4) * 0.3})
    p = host(model)
    assert p["y->h2"].shape == (2, 4)
    n = len(X)
    h1 = np.tanh(X @ p["x->h1"] + p["h1.bias"])
    h2 = np.tanh(h1 @ p["h1->h2"] + p["h2.bias"])
    y = 1 / (1 + np.exp(-(h2 @ p["h2->y"] + p["y.bias"])))

    def g(u, f): return np.tanh(u @ p[f] + p[f + ".inverse_bias"])
    t2 = g(T, "y->h2") - g(y, "y->h2") + h2 if difference else g(T, "y->h2")
    t1 = g(t2, "h2->h1") - g(h2, "h2->h1") + h1 if difference else g(t2, "h2->h1")
    d1, d2 = (h1 - t1) / n * (1 - h1 ** 2), (h2 - t2) / n * (1 - h2 ** 2)
    dy = (y - T) / n * y * (1 - y)
    assert_same(model.deltas(X, T), {"x->h1": X.T @ d1, "h1.bias": d1.sum(0), "h1->h2": h1.T @ d2,
                                     "h2.bias": d2.sum(0), "h2->y": h2.T @ dy, "y.bias": dy.sum(0)})


def test_sdtp_cross_entropy_target_is_the_label(registry):
    text = TINY.replace('activation = "sigmoid"', 'activation = "linear"').replace('loss = "mse"',
                                                                               'loss = "cross_entropy"')
    spec = parse_spec(text.format(rule=DTP, extra='top_target = "output"'), source="t.toml",
                      rules=registry.signatures())
    model = Model(spec, registry=registry)
    labels = np.array([0, 1, 1, 0, 1])
    exe = model.run("probe", X, labels)
    np.testing.assert_allclose(np.array(exe.arrays["y.target"]), np.eye(2)[labels], atol=1e-15)
    z = np.array(exe.arrays["y.pre"])
    np.testing.assert_allclose(np.array(exe.arrays["y.prob"]), np.exp(z) / np.exp(z).sum(1, keepdims=True),
                               rtol=1e-12)
    assert "y->h2.corrupt_up = softmax(y->h2.corrupt_pre)" in model.program.describe()


def test_train_step_updates_forward_weights_and_the_inverse(registry):
    """One SGD step: forward weights by the local estimates, V and c by the reconstruction loss (σ = 0)."""
    model = tiny(registry, DTP)
    p = host(model)
    est, (h1, h2, _, _) = hand(p, True)
    model.step(X, T)
    after = host(model)
    for name, e in est.items():
        np.testing.assert_allclose(after[name], p[name] - 0.1 * e, rtol=1e-10, atol=1e-14, err_msg=name)
    recon = np.tanh(h2 @ p["h2->h1"] + p["h2->h1.inverse_bias"])  # f(h1 + 0·ξ) is h2 itself
    rd = (recon - h1) / len(X) * (1 - recon ** 2)
    np.testing.assert_allclose(after["h2->h1"], p["h2->h1"] - 0.05 * h2.T @ rd, rtol=1e-10)
    np.testing.assert_allclose(after["h2->h1.inverse_bias"], p["h2->h1.inverse_bias"] - 0.05 * rd.sum(0),
                               rtol=1e-10)


def test_alternating_schedule_updates_the_inverse_before_the_targets(registry):
    """One SGD step (σ = 0): the inverse steps exactly as under "parallel", then the targets, and so
    the hidden populations' updates, are those of the updated inverse; the output's is unchanged."""
    models = {schedule: tiny(registry, DTP, f'schedule = "{schedule}"') for schedule in ("parallel", "alternating")}
    p = host(models["parallel"])
    models["alternating"].set_params(p)
    _, (h1, h2, _, _) = hand(p, True)
    recon = np.tanh(h2 @ p["h2->h1"] + p["h2->h1.inverse_bias"])
    rd = (recon - h1) / len(X) * (1 - recon ** 2)
    stepped = {**p, "h2->h1": p["h2->h1"] - 0.05 * h2.T @ rd,
               "h2->h1.inverse_bias": p["h2->h1.inverse_bias"] - 0.05 * rd.sum(0)}
    for schedule, model in models.items():
        used = stepped if schedule == "alternating" else p
        est, _ = hand(used, True)
        model.step(X, T)
        after = host(model)
        for name, value in stepped.items():
            want = value - 0.1 * est[name] if name in est else value
            np.testing.assert_allclose(after[name], want, rtol=1e-10, atol=1e-14, err_msg=f"{schedule}: {name}")
    a, b = host(models["parallel"]), host(models["alternating"])
    assert not np.allclose(a["x->h1"], b["x->h1"], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(a["h2->y"], b["h2->y"])


def test_schedule_orders_the_phases(registry):
    order = {schedule: [ph.name for ph in tiny(registry, DTP, f'schedule = "{schedule}"').compiled("train").phases]
             for schedule in ("parallel", "alternating")}
    assert order["parallel"] == ["forward", "loss", "targets", "inverse", "update", "inverse_update"]
    assert order["alternating"] == ["forward", "loss", "inverse", "inverse_update", "targets", "update"]
    alternating = tiny(registry, DTP, 'schedule = "alternating"')
    assert [ph.name for ph in alternating.compiled("probe").phases] == ["forward", "loss", "targets", "update"]
    assert "phase inverse_update  — apply the inverses' updates before the targets use them (schedule = " \
           "alternating)" in alternating.program.describe()


def test_phases_per_mode(registry):
    model = tiny(registry, DTP)
    names = {mode: [ph.name for ph in model.compiled(mode).phases] for mode in ("train", "probe", "infer")}
    assert names["train"] == ["forward", "loss", "targets", "inverse", "update", "inverse_update"]
    assert names["probe"] == ["forward", "loss", "targets", "update"]
    assert names["infer"] == ["forward", "loss"]
    assert model.compiled("train").lrs["h2->h1"] == model.compiled("train").lrs["h2->h1.inverse_bias"] == 0.05


def test_the_difference_correction_is_its_own_op(registry):
    dtp = tiny(registry, DTP).program.describe()
    assert "h1.target = h2->h1.g_target − h2->h1.g_rate + h1.rate" in dtp
    assert "h2.target = h2.rate − 0.3·batch·h2.top_grad" in dtp
    tp = tiny(registry, TP).program.describe()
    assert "g_rate" not in tp and "h1.target = tanh(h1.target_pre)" in tp
    jac = tiny(registry, DTP, 'feedback = "jacobian"').program.describe()
    assert "h2->h1.g_target = h2->h1.g_target_scaled @ h1->h2.weight.T" in jac


# -- compile-time checks ----------------------------------------------------------------------------

SKIP = TINY.replace('chain = ["x", "h1", "h2", "y"]',
                    'chain = ["x", "h1", "h2", "y"]\n[[projections]]\nfrom = "x"\nto = "h2"')


def test_errors_name_the_fix(registry):
    with pytest.raises(CompileError, match="needs a layered chain input → h1 → … → output .* skip connections"):
        Model(parse_spec(SKIP.format(rule=DTP, extra=""), source="skip.toml", rules=registry.signatures()),
              registry=registry)
    text = TINY.format(rule=TP, extra="").replace("auto_feedback = true", "")
    with pytest.raises(CompileError) as err:
        Model(parse_spec(text, source="tiny.toml", rules=registry.signatures()), registry=registry)
    assert str(err.value) == (
        "tiny.toml: rule 'target_propagation' needs a feedback projection from 'h2' to 'h1' (the learned inverse); "
        "add [[projections]] from = \"h2\", to = \"h1\", type = \"feedback\", plastic = true "
        "(or set rule.auto_feedback = true)")
    with pytest.raises(CompileError, match="rule.feedback: 'jacobian' goes with rule.top_target = 'penultimate'"):
        tiny(registry, DTP, 'top_target = "output"\nfeedback = "jacobian"')
    with pytest.raises(CompileError) as err:
        tiny(registry, DTP, 'schedule = "alternating"\nfeedback = "jacobian"')
    assert str(err.value) == ("tiny.toml: rule.schedule: 'alternating' orders the training of learned inverses, "
                              "and feedback = 'jacobian' has none; set rule.schedule = 'parallel' or "
                              "rule.feedback = 'learned'")


def test_auto_feedback_creates_plastic_inverses(registry):
    model = tiny(registry, TP)
    created = [p for p in model.spec.projections if p.type == "feedback"]
    assert [(p.name, p.plastic, p.init.scheme) for p in created] == [("h2->h1", True, "xavier")]
    assert host(model)["h2->h1"].shape == (4, 4)


# -- claims: property tests on drawn chains ---------------------------------------------------------------


def chain_spec(registry, circuit, rule, extra="", *, ascending=False, smooth=False, square=False):
    """A drawn DAG circuit re-wired as the chain of its populations in order (sizes and units kept;
    ``ascending`` sorts the hidden sizes, ``square`` gives every hidden population the first one's)."""
    names = list(circuit["sizes"])
    sizes, acts = dict(circuit["sizes"]), dict(circuit["activations"])
    if square:
        sizes.update({name: sizes[names[1]] for name in names[1:-1]})
    if ascending:
        for name, size in zip(names[1:-1], sorted(sizes[n] for n in names[1:-1])):
            sizes[name] = size
    if smooth:  # an all-dead relu inverse has no gradient to descend
        acts = {n: "tanh" if a == "relu" else a for n, a in acts.items()}
    chain = {**circuit, "sizes": sizes, "activations": acts, "edges": list(zip(names, names[1:]))}
    text = dag_spec_text(chain, rule=rule, dtype="float64", extra_rule="auto_feedback = true\n" + extra)
    spec = parse_spec(text, source="chain.toml", rules=registry.signatures())
    return registry.get(rule).augment(spec)


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


def hidden_count(circuit):
    return len(circuit["sizes"]) - 2


@given(circuit=dag_circuits(), dtp=st.booleans())
def test_dtp_fixed_point_holds_for_any_inverse(registry, circuit, dtp):
    assume(hidden_count(circuit) >= 2)
    outcome = run_claim("dtp_fixed_point", chain_spec(registry, circuit, DTP if dtp else TP), registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits())
def test_perfect_inverse_makes_dtp_equal_tp(registry, circuit):
    assume(hidden_count(circuit) >= 2)
    outcome = run_claim("perfect_inverse_dtp_is_tp", chain_spec(registry, circuit, DTP, ascending=True), registry)
    assume(outcome.status != "skip")  # an ill-conditioned draw
    assert outcome.passed, outcome


@given(circuit=dag_circuits())
def test_jacobian_feedback_dtp_is_backprop(registry, circuit):
    assume(hidden_count(circuit) >= 1)
    outcome = run_claim("jacobian_dtp_is_backprop", chain_spec(registry, circuit, DTP), registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits())
def test_dtp_gives_gauss_newton_targets_in_invertible_nets(registry, circuit):
    assume(hidden_count(circuit) >= 2)
    outcome = run_claim("dtp_gauss_newton_targets", chain_spec(registry, circuit, DTP, square=True), registry)
    assume(outcome.status != "skip")  # an ill-conditioned draw
    assert outcome.passed, outcome
    assert 0.9 <= outcome.measured["gn_error_slope"] <= 1.1, outcome


def test_gauss_newton_targets_are_not_backprop_targets(registry):
    """On the tiny circuit the claim's targets are J⁻¹δ to ~1e-4 while Jᵀδ points far away."""
    spec = registry.get(DTP).augment(parse_spec(TINY.format(rule=DTP, extra=""), source="tiny.toml",
                                                rules=registry.signatures()))
    outcome = run_claim("dtp_gauss_newton_targets", spec, registry)
    assert outcome.passed, outcome
    assert outcome.measured["gn_one_minus_cosine_at_smallest_alpha"] < 1e-6
    assert outcome.measured["backprop_cosine_at_smallest_alpha"] < 0.9
    assert outcome.measured["spec_inverse_gn_relative_error"] > 0.1  # untrained inverses: no GN targets


@given(circuit=dag_circuits(), top=st.sampled_from(["penultimate", "output"]))
def test_inverse_training_lowers_reconstruction(registry, circuit, top):
    assume(hidden_count(circuit) >= (1 if top == "output" else 2))
    spec = chain_spec(registry, circuit, TP, f'inverse_lr = 0.05\ninverse_noise = 0.1\ntop_target = "{top}"',
                      smooth=True)
    outcome = run_claim("inverse_training_reduces_reconstruction", spec, registry)
    assert outcome.passed, outcome


def test_preconditions_skip_with_a_reason(registry):
    one = TINY.replace('h2 = {{ size = 4, activation = "tanh" }}\n', "").replace('"h1", "h2", "y"', '"h1", "y"')
    spec = registry.get(DTP).augment(parse_spec(one.format(rule=DTP, extra=""), source="one.toml",
                                                rules=registry.signatures()))
    outcome = run_claim("dtp_fixed_point", spec, registry)
    assert outcome.status == "skip" and "at least two hidden populations" in outcome.reason
    assert run_claim("jacobian_dtp_is_backprop", spec, registry).passed
    shrinking = TINY.replace('h2 = {{ size = 4,', 'h2 = {{ size = 3,')
    spec = parse_spec(shrinking.format(rule=DTP, extra=""), source="s.toml", rules=registry.signatures())
    outcome = run_claim("perfect_inverse_dtp_is_tp", registry.get(DTP).augment(spec), registry)
    assert outcome.status == "skip" and "'h2' is smaller than 'h1'" in outcome.reason
    outcome = run_claim("dtp_gauss_newton_targets", registry.get(DTP).augment(spec), registry)
    assert outcome.status == "skip" and "every hidden population the same size" in outcome.reason


# -- mutants: each claim fails on a rule wrong in the way it guards ----------------------------------------


class NoCorrectionDTP(DifferenceTargetPropagation):
    """DTP that forgets the difference correction (plain TP under DTP's name)."""

    _propagate = TargetPropagation._propagate


class CorrectingTP(TargetPropagation):
    """TP that secretly applies DTP's correction: it then has the fixed point TP lacks."""

    _propagate = DifferenceTargetPropagation._propagate


class FlippedCorrectionDTP(DifferenceTargetPropagation):
    """DTP whose correction has the wrong sign: ĥ = h − g(ĥ_{l+1}) + g(h_{l+1})."""

    def _propagate(self, b: Builder, lower: str, upper: str) -> None:
        super()._propagate(b, lower, upper)
        last = b.phase_ops["targets"][-1]
        b.phase_ops["targets"][-1] = attrs.evolve(last, coeffs=(-1.0, 1.0, 1.0))


class NoDerivativeJacobianDTP(DifferenceTargetPropagation):
    """DTP whose transposed-Jacobian feedback forgets f': g(u) = u @ Wᵀ."""

    def _g(self, b: Builder, lower: str, upper: str, source: str, tag: str, out: str | None = None) -> str:
        result = b.activity(out or f"{upper}->{lower}.{tag}", lower)
        b.emit("targets", ops.MatMul(source, b.weight(b.graph.incoming(upper)[0]), result, transpose_b=True))
        return result


class BackpropDirectionDTP(DifferenceTargetPropagation):
    """DTP that carries targets down by the transposed Jacobian of the forward layer whatever its
    inverses: g(u) = (u ⊙ f') @ Wᵀ, backprop's direction Jᵀδ instead of Gauss-Newton's J⁻¹δ."""

    def _g(self, b: Builder, lower: str, upper: str, source: str, tag: str, out: str | None = None) -> str:
        scaled = b.activity(f"{upper}->{lower}.{tag}_scaled", upper)
        result = b.activity(out or f"{upper}->{lower}.{tag}", lower)
        b.emit("targets",
               ops.ActivationDeriv(b.graph.population(upper).activation, b.pre(upper), b.rate(upper), source,
                                   scaled),
               ops.MatMul(scaled, b.weight(b.graph.incoming(upper)[0]), result, transpose_b=True))
        return result


class AscendingInverseTP(TargetPropagation):
    """TP whose inverses climb their reconstruction loss instead of descending it."""

    def _train_inverses(self, b, inverses):
        weights, biases = super()._train_inverses(b, inverses)
        return ({k: [(a, d, -s) for a, d, s in v] for k, v in weights.items()},
                {k: [(a, -s) for a, s in v] for k, v in biases.items()})


def mutant_registry(mutant) -> RuleRegistry:
    registry = RuleRegistry()
    registry.register(mutant)
    for rule in (Backprop(), TargetPropagation(), DifferenceTargetPropagation()):
        if rule.signature.name != mutant.signature.name:
            registry.register(rule)
    return registry


MUTANTS = [
    ("dtp_fixed_point", NoCorrectionDTP(), DTP),
    ("dtp_fixed_point", CorrectingTP(), TP),
    ("perfect_inverse_dtp_is_tp", FlippedCorrectionDTP(), DTP),
    ("jacobian_dtp_is_backprop", NoDerivativeJacobianDTP(), DTP),
    ("dtp_gauss_newton_targets", BackpropDirectionDTP(), DTP),
    ("inverse_training_reduces_reconstruction", AscendingInverseTP(), TP),
]


def test_every_claim_has_a_mutant():
    assert {name for name, _, _ in MUTANTS} == {getattr(targetprop, n).name for n in targetprop.__all__}


@pytest.mark.parametrize("claim,mutant,rule", MUTANTS, ids=[f"{m[0]}-{type(m[1]).__name__}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant, rule):
    registry = mutant_registry(mutant)
    spec = registry.get(rule).augment(parse_spec(TINY.format(rule=rule, extra=""), source="tiny.toml",
                                                 rules=registry.signatures()))
    outcome = run_claim(claim, spec, registry)
    assert outcome.status == "fail", outcome
