"""Claims of target propagation: DTP's fixed point, perfect inverses, transpose-Jacobian feedback
is backprop, inverse training lowers the reconstruction error (rules.md §3 E.18, 19, 20, 23).

The targets ``ĥ_l`` and activities ``h_l`` are read from the rule's own probe program (the
buffers ``<pop>.target`` and the population's rate), so every claim measures the ops that
``circuits compile`` prints, not a re-implementation of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from circuits.claims.base import Claim, Outcome, random_batch, relative_error, variant
from circuits.graph import CircuitGraph
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.base import find_feedback
from circuits.rules.targetprop import chain_pairs, inverse_bias, rate_function, target
from circuits.spec import CircuitSpec

__all__ = ["DTP_FIXED_POINT", "PERFECT_INVERSE", "JACOBIAN_DTP_IS_BACKPROP", "INVERSE_TRAINING"]

TP_RULES = ("target_propagation", "difference_target_propagation")
TP, DTP = TP_RULES

RATE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda u: u,
    "tanh": np.tanh,
    "relu": lambda u: np.maximum(u, 0.0),
    "sigmoid": lambda u: 1.0 / (1.0 + np.exp(-u)),
    "hard_sigmoid": lambda u: np.clip(u, 0.0, 1.0),
    "softmax": lambda u: _softmax(u),
}
"""Rate functions in plain NumPy: the independent reference of claim 23."""


def _softmax(u: np.ndarray) -> np.ndarray:
    e = np.exp(u - u.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _learned(spec: CircuitSpec, **params: object) -> CircuitSpec:
    """A float64 variant with learned inverses (created where the spec lacks them)."""
    return variant(spec, rule_params={"feedback": "learned", "auto_feedback": True, **params})


def _penultimate(spec: CircuitSpec, **params: object) -> CircuitSpec:
    """:func:`_learned` with Lee's top target ĥ_{L-1} = h_{L-1} − α·∂ℓ/∂h_{L-1} (claims 18 and 19)."""
    return _learned(spec, top_target="penultimate", **params)


def _two_hidden(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    graph = CircuitGraph(spec)
    if not graph.is_layered() or len(graph.hidden) < 2:
        return "needs a layered chain with at least two hidden populations (so that an inverse carries a target)"
    return None


def _layered(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    graph = CircuitGraph(spec)
    if not graph.is_layered() or not graph.hidden:
        return "needs a layered chain with at least one hidden population"
    return None


def rate_buffer(model: Model, pop: str) -> str:
    """The buffer of a population's activity (a linear population's rate is its pre-activation)."""
    return f"{pop}.pre" if model.graph.population(pop).activation == "linear" else f"{pop}.rate"


def targets(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``pop → (h, ĥ)`` for every hidden population, from one run of the rule's probe program."""
    exe = model.run("probe", x, y)
    host = model.backend.to_numpy
    return {pop: (np.array(host(exe.arrays[rate_buffer(model, pop)])), np.array(host(exe.arrays[target(pop)])))
            for pop in model.graph.forward_order()[1:-1]}


def _host_params(model: Model) -> dict[str, np.ndarray]:
    return {k: np.array(model.backend.to_numpy(v)) for k, v in model.params.items()}


def _alpha(spec: CircuitSpec) -> float:
    """The spec's α, or 0.1 where it is 0 (the claims that need a moved target)."""
    alpha = spec.rule.params.get("alpha", 0.0)
    return alpha if alpha > 0 else 0.1


# -- 18. the fixed point of DTP ---------------------------------------------------------------------


def _fixed_point(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = _penultimate(spec, alpha=0.0)
    models = {rule: Model(variant(base, rule=rule), registry=registry) for rule in TP_RULES}
    x, y = random_batch(models[DTP], 16, rng)
    gaps: dict[str, list[float]] = {TP: [], DTP: []}
    draws = (0.3, 1.0, 3.0)
    for gain in draws:  # any g: random inverse weights and biases of three scales
        values = {}
        for upper, lower in chain_pairs(models[DTP].graph):
            feedback = find_feedback(models[DTP].graph, upper, lower)
            n_up, n_low = models[DTP].graph.population(upper).size, models[DTP].graph.population(lower).size
            values[feedback.name] = rng.normal(0.0, gain / np.sqrt(n_up), (n_up, n_low))
            values[inverse_bias(feedback)] = rng.normal(0.0, gain, n_low)
        for rule, model in models.items():
            model.set_params(values)
            gaps[rule].append(max(float(np.max(np.abs(t - h))) for h, t in targets(model, x, y).values()))
    dtp, tp = max(gaps[DTP]), max(gaps[TP])
    tolerance, tp_floor = 1e-12, 1e-6
    ok = dtp <= tolerance and tp > tp_floor
    return Outcome(DTP_FIXED_POINT.name, "pass" if ok else "fail",
                   {"dtp_max_target_gap": dtp, "tp_max_target_gap": tp, "inverse_draws": float(len(draws))},
                   expected=f"with α = 0, max |ĥ_l − h_l| ≤ {tolerance:g} under DTP for every random g "
                            f"(0 in exact arithmetic), and > {tp_floor:g} under TP for some g (g∘f ≠ id)")


DTP_FIXED_POINT = Claim(
    name="dtp_fixed_point",
    rules=TP_RULES,
    statement="If the top target equals the top activity (α = 0), DTP's difference correction makes "
              "every target equal its activity for any inverse g, so nothing is learned at the fixed "
              "point; plain TP moves its targets to g(h_{l+1}) ≠ h_l whenever g∘f ≠ id. Measured with "
              "random inverses of three scales, on both rules, with Lee's top target at α = 0.",
    source="Lee et al. 2015 §2.3; Bartunov et al. 2018; rules.md §3 E.18",
    precondition=_two_hidden,
    measure=_fixed_point,
)


# -- 19. perfect inverses make DTP equal TP ------------------------------------------------------------


def _expanding(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    reason = _two_hidden(spec, registry)
    if reason is not None:
        return reason
    graph = CircuitGraph(_penultimate(spec))
    for upper, lower in chain_pairs(graph):
        if graph.population(upper).size < graph.population(lower).size:
            return (f"needs each hidden population at least as large as the one below, so that f can be "
                    f"inverted exactly ('{upper}' is smaller than '{lower}')")
    return None


def _perfect_inverse(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = variant(_penultimate(spec, alpha=_alpha(spec)), activation="linear")
    models = {rule: Model(variant(base, rule=rule), registry=registry) for rule in TP_RULES}
    graph, params = models[DTP].graph, _host_params(models[DTP])
    values, worst_cond = {}, 0.0
    for upper, lower in chain_pairs(graph):
        forward = graph.incoming(upper)[0]
        weight = params[forward.name]
        worst_cond = max(worst_cond, float(np.linalg.cond(weight)))
        inverse = np.linalg.pinv(weight)  # W W⁺ = I for a wide W of full row rank: g(f(h)) = h for every h
        bias = params.get(f"{upper}.bias", np.zeros(weight.shape[1]))
        feedback = find_feedback(graph, upper, lower)
        values[feedback.name], values[inverse_bias(feedback)] = inverse, -bias @ inverse
    if worst_cond > 1e6:
        return Outcome(PERFECT_INVERSE.name, "skip",
                       reason=f"a forward weight is too ill-conditioned to invert exactly (cond = {worst_cond:.3g})")
    x, y = random_batch(models[DTP], 16, rng)
    found = {}
    for rule, model in models.items():
        model.set_params(values)
        found[rule] = targets(model, x, y)
    gap = max(relative_error(found[DTP][p][1], found[TP][p][1]) for p in found[DTP])
    moved = max(float(np.max(np.abs(t - h))) for h, t in found[TP].values())
    tolerance = 1e-8
    ok = gap < tolerance and moved > 0.0
    return Outcome(PERFECT_INVERSE.name, "pass" if ok else "fail",
                   {"max_relative_gap_dtp_tp": gap, "max_target_displacement": moved,
                    "max_condition_number": worst_cond},
                   expected=f"relative gap between DTP and TP targets < {tolerance:g} with exact linear "
                            "inverses (targets moved, α > 0)")


PERFECT_INVERSE = Claim(
    name="perfect_inverse_dtp_is_tp",
    rules=TP_RULES,
    statement="With inverses that undo their forward layer exactly, g(f(h)) = h, DTP's correction "
              "h_l − g(h_{l+1}) vanishes and its targets equal TP's. Measured on the circuit with linear "
              "hidden units, g = W⁺ (the pseudo-inverse) and c = −b W⁺.",
    source="derived from Lee et al. 2015 eq. for DTP; rules.md §3 E.19",
    precondition=_expanding,
    measure=_perfect_inverse,
)


# -- 20. transpose-Jacobian feedback is backprop ---------------------------------------------------------


def _jacobian_is_backprop(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    alpha = _alpha(spec)
    model = Model(variant(spec, rule=DTP, rule_params={"feedback": "jacobian", "alpha": alpha,
                                                                    "top_target": "penultimate"}), registry=registry)
    x, y = random_batch(model, 8, rng)
    found = targets(model, x, y)
    reference = model.run("reference", x, y)
    target_error = 0.0
    for pop, (h, t) in found.items():
        grad = np.array(model.backend.to_numpy(reference.arrays[f"{pop}.grad"]))
        target_error = max(target_error, relative_error(t - h, -alpha * len(x) * grad))
    deltas, grads = model.deltas(x, y), model.gradients(x, y)
    lrs = model.compiled("probe").lrs
    out = model.graph.output
    hidden, output = 0.0, 0.0
    for name, grad in grads.items():
        into_output = name == f"{out}.bias" or (name in {p.name for p in model.graph.incoming(out)})
        scale = 1.0 if into_output else alpha
        error = relative_error(deltas[name], -lrs[name] * scale * grad)
        if into_output:
            output = max(output, error)
        else:
            hidden = max(hidden, error)
    tolerance = 1e-9
    ok = max(target_error, hidden, output) < tolerance
    return Outcome(JACOBIAN_DTP_IS_BACKPROP.name, "pass" if ok else "fail",
                   {"target_relative_error": target_error, "hidden_update_relative_error": hidden,
                    "output_update_relative_error": output, "alpha": alpha},
                   expected=f"ĥ_l − h_l = −α·∂ℓ/∂h_l, hidden updates = α × backprop's, output update = "
                            f"backprop's, each to relative error < {tolerance:g} (float64)")


JACOBIAN_DTP_IS_BACKPROP = Claim(
    name="jacobian_dtp_is_backprop",
    rules=(DTP,),
    statement="DTP with the linear feedback g(u) = (u ⊙ f') @ Wᵀ (the transposed Jacobian of the forward "
              "layer) and top target h − α·∂ℓ/∂h propagates exactly ĥ_l − h_l = −α·∂ℓ/∂h_l, so every "
              "layer-local update is α times backprop's: target propagation is backprop with step α.",
    source="Bartunov et al. 2018 §5.6 (form derived); rules.md §3 E.20",
    precondition=_layered,
    measure=_jacobian_is_backprop,
)


# -- 23. inverse training lowers the reconstruction error ------------------------------------------------


def _plastic_inverses(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    graph = CircuitGraph(spec)
    if not graph.is_layered() or not chain_pairs(graph):
        return ("needs a layered chain with an inverse to train (two hidden populations, or one "
                "under top_target = 'output')")
    for upper, lower in chain_pairs(graph):
        feedback = find_feedback(graph, upper, lower)
        if feedback is not None and not feedback.plastic:
            return f"the inverse '{feedback.name}' is fixed (plastic = false): nothing to train"
    return None


def reconstruction_loss(model: Model, x: np.ndarray, y: np.ndarray, noise: dict[str, np.ndarray]) -> float:
    """``Σ_inverses mean_b ½‖g(f(h + ξ)) − (h + ξ)‖²`` in plain NumPy, for fixed noise ``ξ``."""
    exe = model.run("infer", x, y, phases=("forward",))
    params, graph, total = _host_params(model), model.graph, 0.0
    for upper, lower in chain_pairs(graph):
        feedback = find_feedback(graph, upper, lower)
        h = np.array(model.backend.to_numpy(exe.arrays[rate_buffer(model, lower)]))
        corrupt = h + noise[feedback.name]
        forward = graph.incoming(upper)[0]
        up = corrupt @ params[forward.name] + params.get(f"{upper}.bias", 0.0)
        up = RATE[rate_function(graph, upper)](up)
        back = up @ params[feedback.name] + params[inverse_bias(feedback)]
        back = RATE[graph.population(lower).activation](back)
        total += 0.5 * float(np.sum((back - corrupt) ** 2)) / len(x)
    return total


def _inverse_training(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(_learned(spec), registry=registry)
    x, y = random_batch(model, 32, rng)
    sigma = model.spec.rule.params["inverse_noise"]
    noise = {find_feedback(model.graph, up, low).name:
             sigma * rng.standard_normal((len(x), model.graph.population(low).size))
             for up, low in chain_pairs(model.graph)}
    fixed = [p.name for p in model.graph.projections("forward")] + [n for n in model.params if n.endswith(".bias")]
    before_params = {n: v for n, v in _host_params(model).items() if n in fixed}
    before = reconstruction_loss(model, x, y, noise)
    steps = 100
    for _ in range(steps):
        model.run("train", x, y, phases=("forward", "inverse", "inverse_update"))
    after = reconstruction_loss(model, x, y, noise)
    moved = max(float(np.max(np.abs(v - before_params[n]))) for n, v in _host_params(model).items() if n in fixed)
    ok = after < before and moved == 0.0
    return Outcome(INVERSE_TRAINING.name, "pass" if ok else "fail",
                   {"reconstruction_before": before, "reconstruction_after": after, "steps": float(steps),
                    "forward_weight_change": moved},
                   expected=f"Σ mean ½‖g(f(h̃)) − h̃‖² on a fixed batch and fixed noise falls after {steps} "
                            "steps of the inverse phases alone; forward weights unchanged")


INVERSE_TRAINING = Claim(
    name="inverse_training_reduces_reconstruction",
    rules=TP_RULES,
    statement="Each inverse g learns, under its own optimizer and learning rate, to undo its forward "
              "layer on noise-corrupted activity: the reconstruction loss ½‖g(f(h̃)) − h̃‖² falls while "
              "the forward weights are held fixed. Measured by an independent NumPy evaluation.",
    source="Lee et al. 2015 (inverse loss, noise-preserving form of their code); rules.md §3 E.23",
    precondition=_plastic_inverses,
    measure=_inverse_training,
)
