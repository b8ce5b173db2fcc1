"""Early inference: the STDP update pinned against NumPy on a tiny circuit, the wave function, and
claim 30 as a property test with mutants that break the onset and the direction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.claims import default_claims
from circuits.compile import Builder
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.backprop import Backprop
from circuits.rules.early_inference import EarlyInference, wave, wave_phase
from circuits.spec import parse_spec

CLAIMS = default_claims()
EI = "early_inference"

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h = {{ size = 4, activation = "sigmoid" }}
y = {{ size = 2, role = "output", activation = "sigmoid" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
lr = 0.1
tol = 1e-13
free_steps = 5000
beta = 0.3
steps = 3
[task]
dataset = "xor"
loss = "mse"
[run]
dtype = "float64"
seed = 4
"""

RNG = np.random.default_rng(9)
X = RNG.standard_normal((5, 3))
T = RNG.uniform(0.1, 0.9, (5, 2))


def tiny(registry, rule=EI):
    return Model(parse_spec(TINY.format(rule=rule), source="tiny.toml", rules=registry.signatures()), registry=registry)


def sig(u):
    return 1 / (1 + np.exp(-u))


def test_update_hand_computation(registry):
    """ΔW_{x→h} = lr/β Σ_t xᵀΔs_h^t/n, ΔW_{h→y} = lr/β Σ_t (ρ_h^tᵀΔs_y^t + Δs_h^tᵀρ_y^t)/n, Δb = lr/β Σ_t ΣΔs^t/n."""
    model = tiny(registry)
    p = {k: np.array(v) for k, v in model.params.items()}
    h, y = np.zeros((5, 4)), np.zeros((5, 2))
    for _ in range(3000):  # the free fixed point, by the same Euler steps (ε = 0.5)
        rh, ry = sig(h), sig(y)
        h, y = (h + 0.5 * (rh * (1 - rh) * (X @ p["x->h"] + ry @ p["h->y"].T + p["h.bias"]) - h),
                y + 0.5 * (ry * (1 - ry) * (rh @ p["h->y"] + p["y.bias"]) - y))
    want = {k: np.zeros_like(v) for k, v in p.items()}
    n, beta = len(X), 0.3
    for _ in range(3):
        rh, ry = sig(h), sig(y)
        dh = 0.5 * (rh * (1 - rh) * (X @ p["x->h"] + ry @ p["h->y"].T + p["h.bias"]) - h)
        dy = 0.5 * (ry * (1 - ry) * (rh @ p["h->y"] + p["y.bias"] + beta * (T - ry)) - y)
        want["x->h"] += X.T @ dh
        want["h->y"] += rh.T @ dy + dh.T @ ry
        want["h.bias"] += dh.sum(0)
        want["y.bias"] += dy.sum(0)
        h, y = h + dh, y + dy
    got = model.deltas(X, T)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], 0.1 / beta * want[name] / n, rtol=1e-8, atol=1e-13, err_msg=name)


def test_schedule_has_one_phase_per_step(registry):
    program = tiny(registry).compiled("probe")
    names = [phase.name for phase in program.phases]
    assert [n for n in names if n.startswith("wave")] == [wave_phase(t) for t in (1, 2, 3)]
    assert "h.move.t2 = −3.33333·h.pre/batch + 3.33333·h.pre.t2/batch" in program.describe()
    assert [phase.name for phase in tiny(registry).compiled("infer").phases][-1] == "loss"


def test_wave_starts_at_the_output(registry):
    moves = wave(tiny(registry), X, T)
    assert len(moves) == 3 and set(moves[0]) == {"h", "y"}
    assert np.all(moves[0]["h"] == 0.0) and np.any(moves[0]["y"] != 0.0) and np.any(moves[1]["h"] != 0.0)
    longer = wave(tiny(registry), X, T, steps=5)
    assert len(longer) == 5
    np.testing.assert_array_equal(longer[2]["y"], moves[2]["y"])


def chain_spec(registry, circuit, rule=EI):
    names = list(circuit["sizes"])
    chain = {**circuit, "loss": "mse", "edges": list(zip(names, names[1:])),
             "activations": {n: "linear" if n == "x" else a for n, a in circuit["activations"].items()}}
    return parse_spec(dag_spec_text(chain, rule=rule), source="chain.toml", rules=registry.signatures())


def run_claim(name, spec, registry, seed=0):
    return CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))


@settings(max_examples=6)
@given(circuit=dag_circuits(max_depth=4, max_size=6))
def test_early_inference_wave_claim(registry, circuit):
    assume(len(circuit["sizes"]) >= 3)
    outcome = run_claim("early_inference_wave", chain_spec(registry, circuit), registry)
    assume(outcome.status != "skip")  # every unit of a population pinned
    assert outcome.passed, outcome


# -- mutants -----------------------------------------------------------------------------------------


class PushedAwayEI(EarlyInference):
    """Early inference that nudges the output away from the target."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        for name, phase_ops in b.phase_ops.items():
            b.phase_ops[name] = [ops.Nudge(o.rate, o.target, o.drive, -o.beta) if isinstance(o, ops.Nudge) else o
                                 for o in phase_ops]


class DoubleStepEI(EarlyInference):
    """Early inference whose every 'step' is two Euler steps (the wave outruns one layer per step)."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        for name in b.phase_info:
            if name.startswith("wave_"):
                b.phase_info[name]["repeat"] = 2


@pytest.mark.parametrize("mutant", [PushedAwayEI(), DoubleStepEI()], ids=lambda m: type(m).__name__)
def test_claim_catches_its_mutants(mutant):
    registry = RuleRegistry()
    registry.register(Backprop())
    registry.register(mutant)
    spec = parse_spec(TINY.format(rule=EI), source="tiny.toml", rules=registry.signatures())
    outcome = run_claim("early_inference_wave", spec, registry)
    assert outcome.status == "fail", outcome
