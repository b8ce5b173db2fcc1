"""Equilibrium propagation: the random-sign and particle machinery, the rule pinned against NumPy
on a tiny circuit, and the EqProp claims as property tests with a mutant rule each."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import assume, given, settings
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.backends import get_backend
from circuits.claims import default_claims
from circuits.claims import eqprop as claims
from circuits.claims.base import relative_error, variant
from circuits.errors import CompileError, DataError, RelaxationWarning
from circuits.ir import BATCH
from circuits.model import Model
from circuits.rules import RuleRegistry, energy
from circuits.rules.backprop import Backprop
from circuits.rules.energy import contrast, exact_gradients
from circuits.rules.eqprop import SIGN, EquilibriumPropagation
from circuits.spec import load_spec, parse_spec
from circuits.training import load_data

CLAIMS = default_claims()
EP = "equilibrium_propagation"
RNG = np.random.default_rng(11)

# -- the ops ------------------------------------------------------------------------------------------


def run_op(backend_name, op, arrays, times=1):
    backend = get_backend(backend_name, seed=0)
    device = {k: backend.from_numpy(np.array(v, dtype=np.float64)) for k, v in arrays.items()}
    step = backend.step(op, device)
    seen = []
    for _ in range(times):
        step()
        seen.append({k: np.array(backend.to_numpy(v)) for k, v in device.items()})
    return seen


def test_random_sign_draws_both_signs_deterministically(backend):
    op = ops.RandomSign("s", stream="beta.sign")
    first = [float(a["s"]) for a in run_op(backend, op, {"s": 0.0}, times=40)]
    again = [float(a["s"]) for a in run_op(backend, op, {"s": 0.0}, times=40)]
    assert first == again and set(first) == {1.0, -1.0}
    assert op.math() == "s = ±1 with probability ½ each (stream 'beta.sign')"
    with pytest.raises(CompileError, match="the sign must be a scalar"):
        op.check({"s": (BATCH,)})


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_signed_nudge_equals_nudge_with_signed_beta(backend, sign):
    rate, target, drive = (RNG.standard_normal((4, 3)) for _ in range(3))
    signed = run_op(backend, ops.Nudge("r", "t", "d", 0.3, "s"), {"r": rate, "t": target, "d": drive, "s": sign})[0]
    plain = run_op(backend, ops.Nudge("r", "t", "d", 0.3 * sign), {"r": rate, "t": target, "d": drive})[0]
    np.testing.assert_array_equal(signed["d"], plain["d"])  # bit for bit: the identity claim rests on it
    assert ops.Nudge("r", "t", "d", 0.3, "s").math() == "d += 0.3·s·(t − r)"


# -- the rule on a tiny circuit, against NumPy ------------------------------------------------------------------

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h = {{ size = 4, activation = "sigmoid", step = 0.5 }}
y = {{ size = 2, role = "output", activation = "sigmoid", step = 0.5 }}
[[projections]]
chain = ["x", "h", "y"]
init = {{ scheme = "xavier", gain = 2.0 }}
[rule]
name = "equilibrium_propagation"
{extra}
[task]
dataset = "teacher_linear"
loss = "mse"
[run]
dtype = "float64"
seed = 3
"""

X = RNG.standard_normal((5, 3))
T = RNG.uniform(0, 1, (5, 2))


DEFAULTS = {"lr": "0.1", "beta": "0.2", "tol": "1e-14", "free_steps": "5000", "nudged_steps": "5000"}


def tiny_text(extra=""):
    """TINY with the default rule lines, each overridden by a ``key = value`` line of ``extra``."""
    lines = dict(DEFAULTS)
    for line in filter(None, extra.split("\n")):
        key, value = (part.strip() for part in line.split("=", 1))
        lines[key] = value
    return TINY.format(extra="\n".join(f"{k} = {v}" for k, v in lines.items()))


def tiny(registry, extra=""):
    spec = parse_spec(tiny_text(extra), source="tiny.toml", rules=registry.signatures())
    return Model(spec, registry=registry)


def host(model):
    return {k: np.array(v) for k, v in model.params.items()}


def sigmoid(u):
    return 1 / (1 + np.exp(-u))


def relax(p, beta=0.0, start=None, steps=5000, tol=1e-14):
    """Euler steps of ds/dt = ρ'(s) ⊙ drive − s (ε = 0.5) from ``start`` (rest by default), in NumPy."""
    h, y = start if start is not None else (np.zeros((5, 4)), np.zeros((5, 2)))
    for _ in range(steps):
        rh, ry = sigmoid(h), sigmoid(y)
        dh = X @ p["x->h"] + ry @ p["h->y"].T + p["h.bias"]
        dy = rh @ p["h->y"] + p["y.bias"] + beta * (T - ry)
        fh, fy = rh * (1 - rh) * dh - h, ry * (1 - ry) * dy - y
        h, y = h + 0.5 * fh, y + 0.5 * fy
        if np.sqrt(np.max(np.sum(fh ** 2, 1) + np.sum(fy ** 2, 1))) <= tol:
            break
    return h, y


def coactivity(h, y):
    rh, ry = sigmoid(h), sigmoid(y)
    return {"x->h": X.T @ rh, "h->y": rh.T @ ry, "h.bias": rh.sum(0), "y.bias": ry.sum(0)}


def hand_update(p, beta_plus, beta_minus, lr=0.1):
    """``lr/(β₊ − β₋)/n · [co-activity at s^{β₊} − co-activity at s^{β₋}]`` (β = 0: the free state)."""
    free = relax(p)
    plus = relax(p, beta_plus, free) if beta_plus else free
    minus = relax(p, beta_minus, free) if beta_minus else free
    a, b = coactivity(*plus), coactivity(*minus)
    return {k: lr / ((beta_plus - beta_minus) * len(X)) * (a[k] - b[k]) for k in a}, free


@pytest.mark.parametrize("estimator,betas", [("one_sided", (0.2, 0.0)), ("symmetric", (0.2, -0.2))])
def test_update_hand_computation(registry, estimator, betas):
    model = tiny(registry, f'estimator = "{estimator}"')
    before = host(model)
    want, _ = hand_update(before, *betas)
    model.step(X, T)
    after = host(model)
    for name, change in want.items():
        np.testing.assert_allclose(after[name] - before[name], change, rtol=1e-9, atol=1e-13, err_msg=name)


def test_random_sign_update_hand_computation(registry):
    model = tiny(registry, 'estimator = "random_sign"')
    signs = set()
    for _ in range(6):
        before = host(model)
        model.step(X, T)
        sign = float(model.sim.executable(model.compiled("train"), len(X)).arrays[SIGN])
        signs.add(sign)
        want, _ = hand_update(before, 0.2 * sign, 0.0)
        after = host(model)
        for name, change in want.items():
            np.testing.assert_allclose(after[name] - before[name], change, rtol=1e-9, atol=1e-13, err_msg=name)
    assert signs == {1.0, -1.0}


def test_random_sign_is_shown_in_the_schedule(registry):
    text = tiny(registry, 'estimator = "random_sign"').program.describe()
    assert "beta.sign = ±1 with probability ½ each (stream 'beta.sign')" in text
    assert "y.drive += 0.2·beta.sign·(y.target − y.rate)" in text
    assert "h.scaled.nudged = -5·beta.sign ⊙ h.rate.nudged/batch" in text
    assert "relaxation nudged toward the target with β = 0.2·beta.sign (= ±0.2)" in text


# -- persistent particles --------------------------------------------------------------------------------------


def test_particles_warm_start_each_example(registry):
    """Two free steps per run: the second run of an example starts where its first ended."""
    model = tiny(registry, "persistent = true\nfree_steps = 2\nnudged_steps = 2")
    p = host(model)
    order = np.array([4, 0, 3, 1, 2])
    with pytest.warns(RelaxationWarning, match="'free' after 2 steps"):
        model.step(X[order], T[order], index=order + 7)
    first = relax(p, steps=2)
    cache = model.particles["h.particle"]
    assert cache.shape[0] >= 12 and not np.any(cache[:7])
    np.testing.assert_allclose(cache[order + 7], first[0][order], rtol=1e-12)
    p = host(model)
    with pytest.warns(RelaxationWarning, match="'free' after 2 steps"):
        model.step(X, T, index=np.arange(7, 12))
    second = relax(p, steps=2, start=first)
    np.testing.assert_allclose(model.particles["y.particle"][7:12], second[1], rtol=1e-12)
    probe = model.run("probe", X, T)  # no index: from rest, nothing saved
    np.testing.assert_allclose(np.array(probe.arrays["h.pre.free"]), relax(host(model), steps=2)[0], rtol=1e-12)
    np.testing.assert_allclose(model.particles["y.particle"][7:12], second[1], rtol=1e-12)
    assert not model.compiled("infer").particles
    text = model.program.describe()
    assert "h.pre = h.particle" in text and "particle h.particle ← h.pre.free" in text


def test_particle_index_must_fit_the_batch(registry):
    model = tiny(registry, "persistent = true")
    with pytest.raises(DataError, match=r"index must hold one non-negative integer example number per row"):
        model.step(X, T, index=np.arange(4))


# -- claims: property tests on drawn circuits ------------------------------------------------------------------

SMOOTH = {"linear": "tanh", "relu": "sigmoid", "hard_sigmoid": "sigmoid"}


def energy_spec(registry, circuit, extra=""):
    """A drawn DAG circuit as an energy model: bounded smooth units, squared error, sigmoid output."""
    acts = {n: ("linear" if n == "x" else "sigmoid" if n == "y" else SMOOTH.get(a, a))
            for n, a in circuit["activations"].items()}
    drawn = {**circuit, "activations": acts, "loss": "mse"}
    text = dag_spec_text(drawn, rule=EP, dtype="float64", extra_rule=extra)
    return parse_spec(text, source="dag.toml", rules=registry.signatures())


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


SMALL = dag_circuits(max_depth=3, max_size=6)


@settings(max_examples=8)
@given(circuit=SMALL)
def test_implicit_gradient_is_finite_differences(registry, circuit):
    outcome = run_claim("implicit_gradient_is_exact", energy_spec(registry, circuit), registry)
    assume(outcome.status != "skip")
    assert outcome.passed, outcome


@settings(max_examples=8)
@given(circuit=SMALL)
def test_one_sided_error_is_first_order(registry, circuit):
    outcome = run_claim("eqprop_one_sided_bias_is_first_order", energy_spec(registry, circuit), registry)
    assume(outcome.status != "skip")
    assert outcome.passed, outcome


@settings(max_examples=8)
@given(circuit=SMALL)
def test_symmetric_error_is_second_order(registry, circuit):
    outcome = run_claim("eqprop_symmetric_bias_is_second_order", energy_spec(registry, circuit), registry)
    assume(outcome.status != "skip")
    assert outcome.passed, outcome


@settings(max_examples=15)
@given(circuit=SMALL)
def test_random_sign_mean_is_symmetric(registry, circuit):
    outcome = run_claim("eqprop_random_sign_mean_is_symmetric", energy_spec(registry, circuit), registry)
    assert outcome.passed, outcome


@settings(max_examples=10)
@given(circuit=SMALL)
def test_nudging_lowers_cost(registry, circuit):
    outcome = run_claim("eqprop_nudging_lowers_cost", energy_spec(registry, circuit), registry)
    assume(outcome.status != "skip")
    assert outcome.passed, outcome


@settings(max_examples=15)
@given(circuit=SMALL)
def test_free_dynamics_descend_energy(registry, circuit):
    outcome = run_claim("eqprop_free_dynamics_descend_energy", energy_spec(registry, circuit), registry)
    assert outcome.passed, outcome


def test_preconditions_and_the_generic_reference(registry):
    untied = TINY.replace("[rule]", '[[projections]]\nfrom = "y"\nto = "h"\ntype = "feedback"\n[rule]')
    rule = "\n".join(f"{k} = {v}" for k, v in DEFAULTS.items())
    spec = parse_spec(untied.format(extra=rule), source="untied.toml", rules=registry.signatures())
    outcome = run_claim("eqprop_one_sided_bias_is_first_order", spec, registry)
    assert outcome.status == "skip" and "needs tied couplings" in outcome.reason
    assert run_claim("implicit_gradient_is_exact", spec, registry).passed  # the vector field's fixed point
    plain = parse_spec(tiny_text(), source="tiny.toml", rules=registry.signatures())
    outcome = run_claim("reference_gradient_is_exact", plain, registry)
    assert outcome.status == "skip" and "implicit_gradient_is_exact" in outcome.reason


# -- mutants: each claim fails on a rule wrong in the way it guards -----------------------------------------------


class NoRecurrenceReference(EquilibriumPropagation):
    """A reference gradient whose hidden populations get half their signal λ (every other parameter exact)."""

    def exact_gradients(self, model, x, y):
        grads = exact_gradients(model, x, y)
        out = model.graph.output
        return {k: v if k.startswith(out) or k.endswith(f"->{out}") else 0.5 * v for k, v in grads.items()}


class TwiceBetaContrast(EquilibriumPropagation):
    """One-sided EqProp that divides the contrast by 2β instead of β (a halved estimate)."""

    def emit(self, b):
        super().emit(b)
        if b.mode != "infer" and b.params["estimator"] == "one_sided":
            b.phase_ops["contrast"] = [attrs.evolve(op, coeffs=(op.coeffs[0] / 2,)) for op in b.phase_ops["contrast"]]


class LopsidedSymmetric(EquilibriumPropagation):
    """Symmetric nudging with −β/2 for the second phase (contrast over 1.5β): the first-order bias is back."""

    def nudged_phase(self, b, phase, beta, steps, tol, sign=""):
        super().nudged_phase(b, phase, beta / 2 if beta < 0 else beta, steps, tol, sign)

    def emit(self, b):
        super().emit(b)
        if b.mode != "infer" and b.params["estimator"] == "symmetric":
            size = 1.0 / (1.5 * b.params["beta"])
            b.phase_ops["contrast"] = [attrs.evolve(op, coeffs=(np.sign(op.coeffs[0]) * size,))
                                       for op in b.phase_ops["contrast"]]


class UnsignedContrast(EquilibriumPropagation):
    """Random sign that nudges with ±β but forgets to multiply the contrast by the sign."""

    def emit(self, b):
        import circuits.rules.eqprop as module
        saved = module.signed_contrast
        module.signed_contrast = lambda b, terms, sign: contrast(b, terms)
        try:
            super().emit(b)
        finally:
            module.signed_contrast = saved


class RepellingNudge(EquilibriumPropagation):
    """A nudge that pushes the output away from its target (contrast sign kept)."""

    def nudged_phase(self, b, phase, beta, steps, tol, sign=""):
        super().nudged_phase(b, phase, -beta, steps, tol, sign)


class FeedforwardDynamics(EquilibriumPropagation):
    """Free dynamics without the top-down drive ρ_B Wᵀ: not the gradient of the energy."""

    def emit(self, b):
        super().emit(b)
        for phase, found in b.phase_ops.items():
            if phase == "free":
                b.phase_ops[phase] = [op for op in found if not (isinstance(op, ops.MatMul) and op.transpose_b)]


def mutant_registry(mutant) -> RuleRegistry:
    registry = RuleRegistry()
    registry.register(mutant)
    registry.register(Backprop())
    return registry


MUTANTS = [
    ("implicit_gradient_is_exact", NoRecurrenceReference(), ""),
    ("eqprop_one_sided_bias_is_first_order", TwiceBetaContrast(), ""),
    ("eqprop_symmetric_bias_is_second_order", LopsidedSymmetric(), ""),
    ("eqprop_random_sign_mean_is_symmetric", UnsignedContrast(), ""),
    ("eqprop_nudging_lowers_cost", RepellingNudge(), ""),
    ("eqprop_free_dynamics_descend_energy", FeedforwardDynamics(), ""),
]


def test_every_claim_has_a_mutant():
    assert {name for name, _, _ in MUTANTS} == {getattr(claims, n).name for n in claims.__all__}


@pytest.mark.parametrize("claim,mutant,extra", MUTANTS, ids=[f"{m[0]}-{type(m[1]).__name__}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant, extra):
    registry = mutant_registry(mutant)
    spec = parse_spec(tiny_text(extra), source="tiny.toml", rules=registry.signatures())
    assert run_claim(claim, spec, registry).status == "fail"
    correct = mutant_registry(EquilibriumPropagation())
    assert run_claim(claim, parse_spec(tiny_text(extra), source="tiny.toml",
                                       rules=correct.signatures()), correct).passed


# -- hard-sigmoid circuits: the finite-β bias is units crossing a bound between the phases ------------------------


SPECS = Path(__file__).resolve().parent.parent / "specs"


def switching_margin(model, x):
    """The smallest distance, over every unit and example, from the free fixed point to a change of
    which units sit at a bound of [0, 1]: for a unit at a bound, how far its drive lies outside the
    box; for one inside, how far its state lies from the nearer bound."""
    states = energy.fixed_point(model, x)
    drives = energy._drives(model, energy._host_params(model), energy.rates_of(model, x, states))
    return min(float(np.min(np.where(s <= 0.0, -d, np.where(s >= 1.0, d - 1.0, np.minimum(s, 1.0 - s)))))
               for s, d in ((states[p], drives[p]) for p in states))


def switched_units(model, x):
    """How many (example, unit) pairs sit at a bound in one of the probe's two phases and not the other."""
    arrays = model.sim.executable(model.compiled("probe"), len(x)).arrays
    count = 0
    for pop in energy.dynamic_populations(model.graph):
        free, nudged = (np.asarray(arrays[f"{pop}.rate.{phase}"]) for phase in ("free", "nudged"))
        count += int(np.sum(((free <= 0) | (free >= 1)) != ((nudged <= 0) | (nudged >= 1))))
    return count


def test_hard_sigmoid_estimate_tends_to_the_gradient_as_beta_falls(registry):
    """specs/eqprop_digits.toml (64-128-10 hard sigmoid) at its initial weights, relaxed to 1e-11.

    At β = 0.5 the one-sided estimate is ~55° from −∇J: the nudge moves units across a bound of
    [0, 1], where the loss is not differentiable, so Theorem 1's expansion does not hold (at these
    weights most output units are saturated and the exact gradient runs through the few that are
    not). Below the smallest distance of a unit to a bound (the switching margin, 6e-4 on this
    batch) no unit switches and the estimate has Theorem 1's rates: error ∝ β one-sided, far
    smaller symmetric. Measured (β: angle): 0.5: 55°, 0.1: 65°, 0.01: 2.1°, 0.001: 0.25°,
    margin/10: 0.015° (relative error 9.5e-4), margin/100: relative error 9.6e-5; symmetric at
    margin/10: 9.5e-7."""
    spec = variant(load_spec(SPECS / "eqprop_digits.toml", rules=registry.signatures()),
                          rule_params={"tol": 1e-11, "free_steps": 100_000, "nudged_steps": 100_000,
                                       "persistent": False})
    reference = Model(spec, registry=registry)
    data = load_data(reference)
    x, y = data.x_train[:20], data.y_train[:20]
    grads = reference.gradients(x, y)
    names = sorted(grads)
    exact = claims.flat(grads, names)
    margin = switching_margin(reference, x)
    assert 1e-4 < margin < 1e-2, margin

    def measure(estimator, beta):
        model = Model(variant(spec, rule_params={"estimator": estimator, "beta": beta}), registry=registry)
        found = claims.flat(claims.estimate(model, x, y), names)
        assert not model.unconverged
        cosine = found @ exact / (np.linalg.norm(found) * np.linalg.norm(exact))
        return (float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))),
                relative_error(found, exact), switched_units(model, x) if estimator == "one_sided" else 0)

    large = measure("one_sided", 0.5)
    assert large[0] > 30 and large[2] > 0  # finite-β bias: units switch between the phases
    angles = [measure("one_sided", beta)[0] for beta in (0.01, 1e-3)]
    assert angles[0] < large[0] / 5 and angles[1] < angles[0] / 3 and angles[1] < 1.0, angles
    tenth, hundredth = measure("one_sided", margin / 10), measure("one_sided", margin / 100)
    assert tenth[2] == 0 and tenth[1] < 1e-2
    assert 7 < tenth[1] / hundredth[1] < 13  # first order in β, as Theorem 1's expansion says
    assert measure("symmetric", margin / 10)[1] < 1e-2 * tenth[1]
