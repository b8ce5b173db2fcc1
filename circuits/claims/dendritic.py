"""Claims of dendritic error learning in cortical microcircuits (Sacramento et al. 2018) and of
segregated dendrites (Guerguiev et al. 2017).

Every claim runs the rule's own probe program on a stated variant of the user's circuit
(float64; conductances set as the claim says) and reads the compartment potentials that
``circuits compile`` lists; the references (conductance-form fixed points, the equivalent
feed-forward network, the first-order error terms) are computed here in NumPy from the
spec's conductances, not from the rule's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from circuits.claims.base import Claim, Outcome, loglog_slope
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.microcircuit import Layer, rate_pair
from circuits.spec import CircuitSpec

__all__ = ["SACRAMENTO_2018", "BALANCED_NUDGING", "SELF_PREDICTING_IS_SILENT", "APICAL_ENCODES_ERROR",
           "DEVIATION_ORDER", "SELF_PREDICTION_IS_LEARNED", "SWEEP_IS_THE_FIXED_POINT",
           "GUERGUIEV_2017", "SEGREGATION_IS_EXACT"]

SACRAMENTO_2018 = ("Sacramento, Costa, Bengio & Senn 2018, \"Dendritic cortical microcircuits approximate "
                   "the backpropagation algorithm\", NeurIPS 2018 (arXiv:1810.11393)")
RULE = "dendritic_error"


def _applies(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    return None


def _arrays(model: Model, exe: Any) -> dict[str, np.ndarray]:
    return {k: np.array(model.backend.to_numpy(v), dtype=np.float64) for k, v in exe.arrays.items()}


def _host(model: Model) -> dict[str, np.ndarray]:
    return {k: np.array(model.backend.to_numpy(v), dtype=np.float64) for k, v in model.params.items()}


def build(spec: CircuitSpec, registry: RuleRegistry, *, conductances: Mapping[str, Mapping[str, float]] | None = None,
          rule: Mapping[str, Any] | None = None, lrs: Mapping[str, float] | None = None) -> Model:
    """The rule's model of a float64 variant of ``spec`` (microcircuit created first).

    ``conductances`` maps ``"hidden"``, ``"output"`` or ``"interneuron"`` to conductance values;
    ``layer_lr`` is ``"equal"`` (the claims concern the rule's unscaled estimates); ``rule``
    overrides rule parameters (``learn_inhibition`` also makes existing interneuron→pyramidal
    projections plastic); ``lrs`` sets projections' own learning rates.
    """
    params = {**spec.rule.params, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "noise": 0.0,
              **({"layer_lr": "equal"} if "layer_lr" in spec.rule.params else {}),  # the rule's own estimates
              **(rule or {})}
    variant = attrs.evolve(spec, rule=attrs.evolve(spec.rule, params=params),
                           run=attrs.evolve(spec.run, dtype="float64"))
    variant = registry.get(spec.rule.name).augment(variant)
    conductances = conductances or {}

    def kind(pop: Any) -> str:
        return "interneuron" if pop.cell == "interneuron" else pop.role

    pops = tuple(attrs.evolve(p, **conductances.get(kind(p), {})) for p in variant.populations)
    inter = {p.name for p in pops if p.cell == "interneuron"}
    learn = bool(params.get("learn_inhibition"))  # also on interneuron projections the spec already has
    projections = tuple(attrs.evolve(p, plastic=True) if learn and p.source in inter else p
                        for p in variant.projections)
    projections = tuple(attrs.evolve(p, lr=lrs[p.name]) if lrs and p.name in lrs else p for p in projections)
    return Model(attrs.evolve(variant, populations=pops, projections=projections), registry=registry)


def _batch(model: Model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    width = model.graph.population(model.graph.inputs[0]).size
    return rng.standard_normal((n, width)), rng.random((n, model.graph.population(model.graph.output).size))


def _layers(model: Model) -> list[Layer]:
    return model.rule.layers(model.graph)


def _g(model: Model, pop: str, key: str) -> float:
    return float(getattr(model.graph.population(pop), key))


def _bottom_up(model: Model, x: np.ndarray) -> list[np.ndarray]:
    """The equivalent feed-forward potentials, from the spec's conductances (apical silent)."""
    params, rate, out = _host(model), x, []
    layers = _layers(model)
    for layer in layers:
        g_lk, g_b = _g(model, layer.name, "g_lk"), _g(model, layer.name, "g_basal")
        g_a = _g(model, layer.name, "g_apical") if layer.hidden else 0.0
        basal = rate @ params[layer.forward] + params.get(f"{layer.name}.bias", 0.0)
        u = g_b * basal / (g_lk + g_b + g_a)
        rate = rate_pair(model.graph, layer.name)[0](u)
        out.append(u)
    return out


# -- 1. balanced conductance nudging = current nudging ---------------------------------------------


def _balanced(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = build(spec, registry, rule={"microcircuit": "random"})
    x, y = _batch(model, 8, rng)
    a = _arrays(model, model.run("probe", x, y))
    out = model.graph.output
    g_lk, g_b, g_som = (_g(model, out, k) for k in ("g_lk", "g_basal", "g_som"))
    target, basal = a[f"{out}.utarget"], a[f"{out}.basal"]
    worst = 0.0
    for _ in range(5):
        e_exc = target.max() + rng.uniform(0.5, 5.0)
        e_inh = target.min() - rng.uniform(0.5, 5.0)
        g_exc = g_som * (target - e_inh) / (e_exc - e_inh)   # g_E + g_I = g_som, g_E·E_E + g_I·E_I = g_som·u_tgt
        g_inh = g_som * (e_exc - target) / (e_exc - e_inh)
        u = (g_b * basal + g_exc * e_exc + g_inh * e_inh) / (g_lk + g_b + g_exc + g_inh)
        worst = max(worst, float(np.abs(u - a[f"{out}.soma"]).max() / max(np.abs(u).max(), 1e-300)))
    status = "pass" if worst < 1e-12 else "fail"
    return Outcome(BALANCED_NUDGING.name, status, {"max_relative_gap": worst},
                   "the output soma at the conductance-form fixed point for 5 random reversal-potential pairs, "
                   "relative gap < 1e-12")


BALANCED_NUDGING = Claim(
    name="dendritic_balanced_nudging",
    rules=(RULE,),
    statement="Nudging the output by balanced excitatory and inhibitory conductances, g_E(E_E − u) + g_I(E_I − u) "
              "with g_E + g_I = g_som and g_E·E_E + g_I·E_I = g_som·u_tgt, gives exactly the potential of the "
              "current form g_som(u_tgt − u) the rule uses, for any reversal potentials.",
    source=f"{SACRAMENTO_2018} (output nudging, Methods); the identity is derived",
    precondition=_applies,
    measure=_balanced,
)


# -- 2. the self-predicting state is silent -------------------------------------------------------


def _silent(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = build(spec, registry, conductances={"output": {"g_som": 0.0}},
                  rule={"microcircuit": "self_predicting", "learn_inhibition": True})
    x, y = _batch(model, 16, rng)
    x *= rng.uniform(0.5, 3.0)
    a = _arrays(model, model.run("probe", x, y))
    apical = max(float(np.abs(a[f"{layer.name}.apical"]).max()) for layer in _layers(model) if layer.hidden)
    topdown = {layer.topdown for layer in _layers(model)}  # learn_topdown: B learns to predict r, not silent
    deltas = {name: v for name, v in model.deltas(x, y).items() if name not in topdown}
    change = max(float(np.abs(v).max()) for v in deltas.values())
    reference = _bottom_up(model, x)[-1]
    out_gap = float(np.abs(a[f"{model.graph.output}.soma"] - reference).max())
    ok = apical < 1e-12 and change < 1e-12 and out_gap < 1e-12
    return Outcome(SELF_PREDICTING_IS_SILENT.name, "pass" if ok else "fail",
                   {"max_apical": apical, "max_update": change, "output_gap": out_gap},
                   "apical potentials, every update (forward, pyramidal→interneuron, interneuron→pyramidal) and "
                   "the output's gap to the equivalent feed-forward network all < 1e-12")


SELF_PREDICTING_IS_SILENT = Claim(
    name="dendritic_self_predicting_is_silent",
    rules=(RULE,),
    statement="In the self-predicting state (W_PI = g_B(g_lk + g_D)/(g_D(g_lk + g_B + g_A))·W_above, "
              "W_IP = −W_td) with no target and no noise, every apical potential is zero and the forward, "
              "pyramidal→interneuron and interneuron→pyramidal rules change nothing, for any input; the "
              "output equals the equivalent feed-forward network's.",
    source=f"{SACRAMENTO_2018} (self-predicting state, Fig. 1 and Methods)",
    precondition=_applies,
    measure=_silent,
)


# -- 3. the apical potential encodes the backpropagated error --------------------------------------

LAMBDAS = (0.15, 0.04, 0.01)


def _equal_mixing(lam: float) -> dict[str, dict[str, float]]:
    """Conductances that give every mixing weight (λ_A, λ_N, λ_I) the value ``lam`` (g_lk = 0.1, g_B = g_D = 1)."""
    g = 1.1 * lam / (1.0 - lam)
    base = {"g_lk": 0.1, "g_basal": 1.0, "g_dendrite": 1.0}
    return {"hidden": {**base, "g_apical": g, "g_som": g}, "output": {**base, "g_som": g},
            "interneuron": {**base, "g_som": g}}


def _first_order(model: Model, x: np.ndarray, a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, str, str]:
    """``W_td·D_N·(u_tgt − û_N)`` at the last hidden layer, and the forward update it predicts."""
    layers, params = _layers(model), _host(model)
    last, out = layers[-2], layers[-1]
    u = _bottom_up(model, x)
    d_out = rate_pair(model.graph, out.name)[1](u[-1])
    apical = (d_out * (a[f"{out.name}.utarget"] - u[-1])) @ params[last.topdown]
    d_last = rate_pair(model.graph, last.name)[1](u[-2])
    below = x if len(layers) == 2 else rate_pair(model.graph, last.below)[0](u[-3])
    update = below.T @ (d_last * apical) / len(x)
    return apical, update, last.name, last.forward


def _ratio_cos(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (b @ b)), float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _apical_error(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    seed = int(rng.integers(2**31))
    measured: dict[str, float] = {}
    for lam in LAMBDAS:
        model = build(spec, registry, conductances=_equal_mixing(lam), rule={"microcircuit": "self_predicting"})
        x, y = _batch(model, 16, np.random.default_rng(seed))
        a = _arrays(model, model.run("probe", x, y))
        apical, update, last, forward = _first_order(model, x, a)
        lr = model.program.lrs[forward]
        ratio, cos = _ratio_cos(a[f"{last}.apical"] / lam, apical)
        u_ratio, u_cos = _ratio_cos(-model.deltas(x, y)[forward] / lr / lam**2, -update)
        measured.update({f"apical_ratio@{lam:g}": ratio, f"apical_cos@{lam:g}": cos,
                         f"update_ratio@{lam:g}": u_ratio, f"update_cos@{lam:g}": u_cos})
    small = LAMBDAS[-1]
    deficits = [1.0 - measured[f"apical_ratio@{lam:g}"] for lam in LAMBDAS]
    ok = (abs(measured[f"apical_ratio@{small:g}"] - 1) < 0.03 and measured[f"apical_cos@{small:g}"] > 0.999
          and abs(measured[f"update_ratio@{small:g}"] - 1) < 0.05 and measured[f"update_cos@{small:g}"] > 0.999
          and all(0 < d for d in deficits) and deficits == sorted(deficits, reverse=True))
    return Outcome(APICAL_ENCODES_ERROR.name, "pass" if ok else "fail", measured,
                   f"at λ = {small:g}: v_A/λ against W_td·D_N·(u_tgt − û_N) ratio within 0.03 of 1 and cosine > 0.999; "
                   "forward update/(λ_A·λ_N) against δ·rᵀ ratio within 0.05 of 1, cosine > 0.999; the ratio's "
                   "deficit shrinks with λ")


APICAL_ENCODES_ERROR = Claim(
    name="dendritic_apical_encodes_error",
    rules=(RULE,),
    statement="From the self-predicting state with every mixing weight λ → 0, the last hidden layer's apical "
              "potential divided by λ tends to W_td·D_N·(u_tgt − û_N) (ratio ≈ 1 − λ_I, cosine → 1), and its "
              "forward update divided by λ_A·λ_N to δ·rᵀ with δ = D_k·W_td·D_N·(u_tgt − û_N): the backprop "
              "delta when W_td = W_ffᵀ, the feedback-alignment delta when W_td is random.",
    source=f"{SACRAMENTO_2018} (Theorem 1 and its proof)",
    precondition=_applies,
    measure=_apical_error,
)


# -- 4. deviation from the feed-forward network grows as λ^(N−k+1) ------------------------------------

ORDER_LAMBDAS = (0.02, 0.01, 0.005)


def _deviation_order(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    seed = int(rng.integers(2**31))
    gaps: dict[str, list[float]] = {}
    names: list[str] = []
    for lam in ORDER_LAMBDAS:
        model = build(spec, registry, conductances=_equal_mixing(lam), rule={"microcircuit": "self_predicting"})
        x, y = _batch(model, 16, np.random.default_rng(seed))
        a = _arrays(model, model.run("probe", x, y))
        free = _bottom_up(model, x)
        names = [layer.name for layer in _layers(model)]
        for name, u in zip(names, free):
            gaps.setdefault(name, []).append(float(np.linalg.norm(a[f"{name}.soma"] - u)))
    measured, ok = {}, True
    for depth, name in enumerate(reversed(names), start=1):
        slope = loglog_slope(np.array(ORDER_LAMBDAS), np.array(gaps[name]))
        measured[f"slope_{name}"] = slope
        ok &= abs(slope - depth) < 0.15
    return Outcome(DEVIATION_ORDER.name, "pass" if ok else "fail", measured,
                   "log-log slope of ‖u_k − û_k‖ against λ within 0.15 of N − k + 1 (output 1, last hidden 2, …)")


DEVIATION_ORDER = Claim(
    name="dendritic_deviation_order",
    rules=(RULE,),
    statement="With every mixing weight λ, the somatic potentials of layer k differ from the equivalent "
              "feed-forward network's by O(λ^(N−k+1)): the error reaches each layer through one more apical "
              "coupling.",
    source=f"{SACRAMENTO_2018} (proof of Theorem 1, expansion in λ)",
    precondition=_applies,
    measure=_deviation_order,
)


# -- 5. the self-predicting state is learned --------------------------------------------------------

LEARN_STEPS = 600


def _apical_energy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    a = _arrays(model, model.run("probe", x, y))
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging rule's energy is inf or NaN: a failure
        energy = float(np.mean([np.sum(a[f"{layer.name}.apical"] ** 2, axis=1).mean()
                                for layer in _layers(model) if layer.hidden]))
    return energy if np.isfinite(energy) else float("inf")


def _stable_rates(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Learning rates ``1/E‖r_pre‖²`` of the interneuron projections: each rule is a gradient step
    on a quadratic whose curvature is the presynaptic rates' second moment (stable below 2/‖r‖²)."""
    a = _arrays(model, model.run("probe", x, y))
    lrs = {}
    for layer in _layers(model):
        if layer.hidden:
            for name, pre in ((layer.dendrite, layer.name), (layer.inhibition, layer.interneuron)):
                lrs[name] = 1.0 / max(float(np.mean(np.sum(a[f"{pre}.rate"] ** 2, axis=1))), 1e-12)
    return lrs


def _learned(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    setting = {"conductances": {"output": {"g_som": 0.0}},
               "rule": {"microcircuit": "random", "learn_inhibition": True}}
    probe = build(spec, registry, **setting)
    model = build(spec, registry, **setting, lrs=_stable_rates(probe, *_batch(probe, 64, rng)))
    forward = {layer.forward for layer in _layers(model)}
    frozen = {name: value for name, value in _host(model).items() if name in forward or name.endswith(".bias")}
    test = _batch(model, 64, rng)
    before = _apical_energy(model, *test)
    for _ in range(LEARN_STEPS):
        model.step(*_batch(model, 10, rng))
        model.set_params(frozen)  # no target: only the interneuron circuit learns
    after = _apical_energy(model, *test)
    ratio = after / before if np.isfinite(after) else float("inf")
    return Outcome(SELF_PREDICTION_IS_LEARNED.name, "pass" if ratio < 0.25 else "fail",
                   {"apical_energy_before": before, "apical_energy_after": after, "ratio": ratio},
                   f"mean ‖v_A‖² on held-out random inputs after {LEARN_STEPS} steps (batch 10, learning rates "
                   "1/E‖r_pre‖², forward weights fixed) below a quarter of its value at the random start")


SELF_PREDICTION_IS_LEARNED = Claim(
    name="dendritic_self_prediction_is_learned",
    rules=(RULE,),
    statement="From random interneuron weights, the pyramidal→interneuron and interneuron→pyramidal rules "
              "without any target drive the mean squared apical potential down: the self-predicting state "
              "is learned.",
    source=f"{SACRAMENTO_2018} (Fig. 2, learning the self-predicting state)",
    precondition=_applies,
    measure=_learned,
)


# -- 6. the sweep is the fixed point of the dynamics as g_A → 0 -----------------------------------------

APICAL_CONDUCTANCES = (0.8, 0.2, 0.05)


def _somata(model: Model, a: dict[str, np.ndarray]) -> np.ndarray:
    names = [n for layer in _layers(model) for n in (layer.name, layer.interneuron) if n is not None]
    return np.concatenate([a[f"{name}.soma"].ravel() for name in names])


def _sweep_vs_euler(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    seed = int(rng.integers(2**31))
    measured, gaps = {}, []
    for g_a in APICAL_CONDUCTANCES:
        cond = {"hidden": {"g_apical": g_a}}
        results = {}
        for solver in ("sweep", "euler"):
            model = build(spec, registry, conductances=cond, rule={"microcircuit": "self_predicting",
                                                                   "solver": solver, "euler_steps": 1500, "dt": 0.2})
            x, y = _batch(model, 8, np.random.default_rng(seed))
            results[solver] = _somata(model, _arrays(model, model.run("probe", x, y)))
        gap = float(np.linalg.norm(results["sweep"] - results["euler"]) / np.linalg.norm(results["euler"]))
        measured[f"gap@g_A={g_a:g}"] = gap
        gaps.append(gap)
    measured["slope"] = loglog_slope(np.array(APICAL_CONDUCTANCES), np.array(gaps))
    ok = gaps == sorted(gaps, reverse=True) and measured["slope"] > 0.7 and gaps[-1] < 1e-2
    return Outcome(SWEEP_IS_THE_FIXED_POINT.name, "pass" if ok else "fail", measured,
                   "relative gap ‖u_sweep − u_euler‖/‖u_euler‖ over every soma (pyramidal and interneuron), from the "
                   "self-predicting state with a target, shrinks as g_A falls (log-log slope > 0.7) and is < 0.01 at "
                   f"g_A = {APICAL_CONDUCTANCES[-1]:g} (Euler: 1500 steps of dt 0.2)")


SWEEP_IS_THE_FIXED_POINT = Claim(
    name="dendritic_sweep_is_the_fixed_point",
    rules=(RULE,),
    statement="The top-down sweep of closed-form fixed points agrees with the converged Euler dynamics of the "
              "full microcircuit, better as g_A → 0 (the sweep leaves out the top-down correction of the basal "
              "input of the layers above).",
    source=f"{SACRAMENTO_2018} (MNIST simulation, supplementary methods); the rate is derived",
    precondition=_applies,
    measure=_sweep_vs_euler,
)


# -- 7. segregated dendrites: apical input never reaches the soma; identical phases teach nothing -----

GUERGUIEV_2017 = ("Guerguiev, Lillicrap & Richards 2017, \"Towards deep learning with segregated dendrites\", "
                  "eLife 6:e22901")


def _segregated(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    params = {**spec.rule.params, "target_low": 0.0, "target_high": 1.0, "optimizer": "sgd", "momentum": 0.0,
              "weight_decay": 0.0}
    model = Model(attrs.evolve(spec, rule=attrs.evolve(spec.rule, params=params),
                               run=attrs.evolve(spec.run, dtype="float64")), registry=registry)
    graph = model.graph
    x, y = _batch(model, 16, rng)
    first = _arrays(model, model.run("probe", x, y))
    feedback = [p.name for p in graph.projections("feedback") if p.source == graph.output]
    model.set_params({name: 10.0 * rng.standard_normal(np.shape(model.params[name])) for name in feedback})
    second = _arrays(model, model.run("probe", x, y))
    soma_gap = max(float(np.abs(first[f"{h}.pre"] - second[f"{h}.pre"]).max()) for h in graph.hidden)
    apical_change = max(float(np.abs(first[f"{h}.apical_target"] - second[f"{h}.apical_target"]).max())
                        for h in graph.hidden)
    same = np.array(model.backend.to_numpy(second[model.program.output]))  # the target is the forward output
    deltas = model.deltas(x, same)
    hidden = {p.name for p in graph.projections("forward") if p.target in graph.hidden}
    hidden_update = max(float(np.abs(deltas[name]).max()) for name in hidden)
    ok = soma_gap == 0.0 and apical_change > 0.0 and hidden_update == 0.0
    return Outcome(SEGREGATION_IS_EXACT.name, "pass" if ok else "fail",
                   {"soma_gap": soma_gap, "apical_change": apical_change, "hidden_update": hidden_update},
                   "hidden somata bit-identical when the apical feedback weights are redrawn (the apical potentials "
                   "change); with the target equal to the forward output every hidden update exactly 0")


SEGREGATION_IS_EXACT = Claim(
    name="segregated_dendrites_are_segregated",
    rules=("segregated_dendrites",),
    statement="With g_A = 0 the hidden somata do not depend on the apical input at all (redrawing the feedback "
              "weights changes the apical potentials, not the somata), and when the target phase equals the "
              "forward phase the plateau difference, and so every hidden update, is exactly zero.",
    source=f"{GUERGUIEV_2017} (segregated apical dendrites; the plateau-difference rule)",
    precondition=_applies,
    measure=_segregated,
)
