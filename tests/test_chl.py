"""Contrastive Hebbian learning: the update pinned against NumPy on a tiny circuit, the γ-scaled
reference against finite differences, and claims 11 and 12 as property tests with a mutant each."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.claims import default_claims, energy_rules
from circuits.compile import Builder
from circuits.model import Model
from circuits.rules import RuleRegistry, energy
from circuits.rules.backprop import Backprop
from circuits.rules.chl import ContrastiveHebbian, distance_to_output
from circuits.rules.eqprop import EquilibriumPropagation
from circuits.spec import parse_spec

CLAIMS = default_claims()
CHL = "contrastive_hebbian"

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h1 = {{ size = 4, activation = "sigmoid" }}
h2 = {{ size = 3, activation = "sigmoid" }}
y = {{ size = 2, role = "output", activation = "{out}" }}
[[projections]]
chain = ["x", "h1", "h2", "y"]
[rule]
name = "{rule}"
lr = 0.1
tol = 1e-13
free_steps = 5000
clamped_steps = 5000
gamma = {gamma}
[task]
dataset = "xor"
loss = "mse"
[run]
dtype = "float64"
seed = 3
"""

RNG = np.random.default_rng(7)
X = RNG.standard_normal((5, 3))
T = RNG.uniform(0.1, 0.9, (5, 2))


def tiny(registry, gamma=1.0, out="sigmoid", rule=CHL):
    spec = parse_spec(TINY.format(rule=rule, gamma=gamma, out=out), source="tiny.toml", rules=registry.signatures())
    return Model(spec, registry=registry)


def sig(u):
    return 1 / (1 + np.exp(-u))


def relax(p, gamma, clamp=None, steps=2000):
    """Plain-NumPy Euler relaxation of the tiny chain (ε = 0.5), optionally with y's rate clamped."""
    s = {k: np.zeros((len(X), n)) for k, n in (("h1", 4), ("h2", 3), ("y", 2))}
    for _ in range(steps):
        r = {k: sig(v) for k, v in s.items()}
        ry = clamp if clamp is not None else r["y"]
        d1 = X @ p["x->h1"] + gamma * r["h2"] @ p["h1->h2"].T + p["h1.bias"]
        d2 = r["h1"] @ p["h1->h2"] + gamma * ry @ p["h2->y"].T + p["h2.bias"]
        dy = r["h2"] @ p["h2->y"] + p["y.bias"]
        s["h1"] = s["h1"] + 0.5 * (r["h1"] * (1 - r["h1"]) * d1 - s["h1"])
        s["h2"] = s["h2"] + 0.5 * (r["h2"] * (1 - r["h2"]) * d2 - s["h2"])
        if clamp is None:
            s["y"] = s["y"] + 0.5 * (r["y"] * (1 - r["y"]) * dy - s["y"])
    rates = {k: sig(v) for k, v in s.items()}
    if clamp is not None:
        rates["y"] = clamp
    return rates


@pytest.mark.parametrize("gamma", [1.0, 0.2])
def test_update_hand_computation(registry, gamma):
    """ΔW = lr·γ^{−d(B)}·(ρ_A^∞ᵀρ_B^∞ − ρ_A⁰ᵀρ_B⁰)/batch, from a NumPy relaxation of the same dynamics."""
    model = tiny(registry, gamma)
    p = {k: np.array(v) for k, v in model.params.items()}
    free, clamped = relax(p, gamma), relax(p, gamma, clamp=T)
    n, scale = len(X), {"h1": gamma ** -2, "h2": gamma ** -1, "y": 1.0}
    want = {}
    for name, (a, b) in {"x->h1": ("x", "h1"), "h1->h2": ("h1", "h2"), "h2->y": ("h2", "y")}.items():
        ra = (lambda r: X if a == "x" else r[a])
        want[name] = 0.1 * scale[b] * (ra(clamped).T @ clamped[b] - ra(free).T @ free[b]) / n
    for pop in ("h1", "h2", "y"):
        want[f"{pop}.bias"] = 0.1 * scale[pop] * (clamped[pop] - free[pop]).sum(0) / n
    got = model.deltas(X, T)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-8, atol=1e-13, err_msg=name)


def test_train_step_applies_the_update(registry):
    model = tiny(registry)
    before = {k: np.array(v) for k, v in model.params.items()}
    deltas = model.deltas(X, T)
    model.step(X, T)
    for name, delta in deltas.items():
        np.testing.assert_allclose(np.array(model.params[name]), before[name] + delta, rtol=1e-10, atol=1e-14)


def test_schedule_clamps_the_output_and_scales_feedback(registry):
    text = tiny(registry, 0.5).program.describe()
    assert "phase clamp  — the output's rate held at the target\n    1. y.rate = y.target" in text
    clamped = text.split("phase clamped")[1].split("phase settle_clamped")[0]
    assert "y.pre =" not in clamped and "y.rate = " not in clamped  # the output does not move
    assert "y.feedback = 0.5·y.rate" in clamped and "h2.drive += y.feedback @ h2->y.weight.T" in clamped
    assert "h1.scaled.clamped = −4·h1.rate.clamped/batch" in text  # γ^{−2} for two layers below y
    assert "feedback" not in tiny(registry, 1.0).program.describe()


def test_distance_to_output(registry):
    assert distance_to_output(tiny(registry).graph) == {"h1": 2, "h2": 1, "y": 0}


@pytest.mark.parametrize("gamma", [1.0, 0.3])
def test_gain_gradients_match_finite_differences(registry, gamma):
    model = tiny(registry, gamma, out="linear")
    grads = model.gradients(X, T)
    if gamma == 1.0:
        ref = energy.exact_gradients(model, X, T)
        for name in grads:
            np.testing.assert_allclose(grads[name], ref[name], rtol=1e-10, atol=1e-14)
    for name in ("x->h1", "h1->h2", "h2->y", "h1.bias"):
        param = model.params[name]
        index = (1,) * param.ndim
        old, h = float(param[index]), 1e-6
        param[index] = old + h
        up = model.evaluate(X, T)[0]
        param[index] = old - h
        down = model.evaluate(X, T)[0]
        param[index] = old
        assert (up - down) / (2 * h) == pytest.approx(grads[name][index], rel=1e-5, abs=1e-10)


# -- claims on drawn circuits ------------------------------------------------------------------------


def chain_spec(registry, circuit, rule=CHL, extra=""):
    names = list(circuit["sizes"])
    acts = {n: ("sigmoid" if a in ("relu", "linear") and n not in ("x",) else a)
            for n, a in circuit["activations"].items()}
    chain = {**circuit, "activations": acts, "loss": "mse", "edges": list(zip(names, names[1:]))}
    text = dag_spec_text(chain, rule=rule, extra_rule="tol = 1e-12\nfree_steps = 3000\nclamped_steps = 3000\n" + extra)
    return parse_spec(text, source="chain.toml", rules=registry.signatures())


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


@settings(max_examples=6)
@given(circuit=dag_circuits(max_depth=3, max_size=5))
def test_chl_is_eqprop_at_infinite_beta(registry, circuit):
    outcome = run_claim("chl_is_eqprop_at_infinite_beta", chain_spec(registry, circuit), registry)
    assert outcome.passed, outcome


@settings(max_examples=6)
@given(circuit=dag_circuits(max_depth=3, max_size=5))
def test_xie_seung_scaled_chl_is_backprop(registry, circuit):
    assume(len(circuit["sizes"]) >= 3)
    outcome = run_claim("xie_seung_chl_is_backprop", chain_spec(registry, circuit), registry)
    assume(outcome.status != "skip")
    assert outcome.passed, outcome


def test_double_well_objective_is_negative(registry):
    outcome = run_claim("chl_objective_can_be_negative", tiny(registry).spec, registry)
    assert outcome.passed, outcome
    assert outcome.measured["objective"] == pytest.approx(-1.0, abs=1e-12)


# -- mutants -----------------------------------------------------------------------------------------


class NoAntiHebbianCHL(ContrastiveHebbian):
    """CHL that forgets the free phase's anti-Hebbian term (learns ρ^∞ᵀρ^∞ alone)."""

    @staticmethod
    def _contrast(b: Builder, scale: dict[str, float]) -> None:
        ContrastiveHebbian._contrast(b, scale)
        b.learned = {k: [t for t in v if ".free" not in t[1]] for k, v in b.learned.items()}
        b.learned_bias = {k: [t for t in v if ".free" not in t[0]] for k, v in b.learned_bias.items()}


class UnclampedCHL(ContrastiveHebbian):
    """CHL whose 'clamped' phase lets the output relax again (it only starts at the target)."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        out = b.graph.output
        b.phase_ops["clamped"] += [ops.Activate(b.graph.population(out).activation, b.pre(out), b.rate(out))]
        b.phase_ops["settle_clamped"] = [ops.Activate(b.graph.population(out).activation, b.pre(out),
                                                      f"{out}.rate.clamped") if getattr(o, "out", "") ==
                                         f"{out}.rate.clamped" else o for o in b.phase_ops["settle_clamped"]]


class UnscaledCHL(ContrastiveHebbian):
    """CHL with the feedback gain but without the γ^{−d} learning-rate scaling."""

    @staticmethod
    def _contrast(b: Builder, scale: dict[str, float]) -> None:
        ContrastiveHebbian._contrast(b, {pop: 1.0 for pop in scale})


def mutant_registry(mutant) -> RuleRegistry:
    registry = RuleRegistry()
    for rule in (Backprop(), EquilibriumPropagation(), mutant):
        registry.register(rule)
    return registry


MUTANTS = [
    ("chl_is_eqprop_at_infinite_beta", NoAntiHebbianCHL()),
    ("chl_objective_can_be_negative", UnclampedCHL()),
    ("xie_seung_chl_is_backprop", UnscaledCHL()),
]


def test_every_claim_has_a_mutant():
    ours = {CLAIMS.get(n).name for n in ("chl_is_eqprop_at_infinite_beta", "chl_objective_can_be_negative",
                                         "xie_seung_chl_is_backprop")}
    assert {name for name, _ in MUTANTS} == ours
    assert ours <= {getattr(energy_rules, n).name for n in energy_rules.__all__}


@pytest.mark.parametrize("claim,mutant", MUTANTS, ids=[f"{m[0]}-{type(m[1]).__name__}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant):
    registry = mutant_registry(mutant)
    spec = parse_spec(TINY.format(rule=CHL, gamma=1.0, out="sigmoid"), source="tiny.toml",
                      rules=registry.signatures())
    outcome = run_claim(claim, spec, registry)
    assert outcome.status == "fail", outcome
