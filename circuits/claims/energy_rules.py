"""Claims of contrastive Hebbian learning (Movellan 1991; Xie & Seung 2003) and early inference (Bengio & Fischer 2015).

Every claim runs the rule's own probe program (the states and estimates that ``circuits
compile`` prints); the references (EqProp's nudged fixed point, implicit gradients, backprop
through the upper layers) are computed in float64 NumPy.
"""

from __future__ import annotations

import attrs
import numpy as np

from circuits.claims.base import Claim, Outcome, always, loglog_slope, random_batch, relative_error, variant
from circuits.claims.eqprop import budget_counted
from circuits.claims.papers import BENGIO_FISCHER_2015, MOVELLAN_1991, SCELLIER_BENGIO_2017, XIE_SEUNG_2003
from circuits.errors import FixedPointError
from circuits.graph import CircuitGraph
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules import energy
from circuits.rules.chl import phase_span
from circuits.rules.early_inference import wave
from circuits.rules.energy import dynamic_populations
from circuits.spec import CircuitSpec, parse_spec

__all__ = ["CHL_IS_EQPROP_AT_INFINITE_BETA", "CHL_OBJECTIVE_CAN_BE_NEGATIVE", "XIE_SEUNG_EQUIVALENCE",
           "EARLY_INFERENCE_WAVE"]

CHL, EI = "contrastive_hebbian", "early_inference"
TIGHT = {"tol": 1e-12, "free_steps": 5000, "clamped_steps": 5000}


def _flat(values: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(values[n]) for n in names])


def _states(model: Model, exe: object) -> dict[str, np.ndarray]:
    return {p: np.array(model.backend.to_numpy(exe.arrays[f"{p}.pre"]), dtype=np.float64)  # type: ignore[attr-defined]
            for p in dynamic_populations(model.graph)}


def _layered(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    graph = CircuitGraph(spec)
    if not graph.is_layered() or not graph.hidden:
        return "needs a layered chain input → h1 → … → output with at least one hidden population"
    return None


# -- 11. CHL is EqProp at β → ∞ with the 1/β dropped ---------------------------------------------------

BETAS = (1e1, 1e2, 1e3, 1e4)


def _nudged_fixed_point(model: Model, x: np.ndarray, target: np.ndarray, beta: float,
                        start: dict[str, np.ndarray], iterations: int = 60) -> tuple[dict[str, np.ndarray], float]:
    """EqProp's nudged fixed point ``s^β`` by Newton iterations on ``force + nudge = 0`` (smooth units)."""
    graph, params = model.graph, energy._host_params(model)
    pops, at, _ = energy._layout(model)
    out = graph.output
    states = {p: s.copy() for p, s in start.items()}
    residual = np.inf
    for _ in range(iterations):
        push = energy.force(model, x, states, target=target, beta=beta)
        flat = np.concatenate([push[p] for p in pops], axis=1)
        residual = float(np.max(np.abs(flat)))
        if residual <= 1e-11:
            break
        rates = energy.rates_of(model, x, states)
        jac, _ = energy._jacobian(model, params, states, energy._drives(model, params, rates))
        s = states[out]
        rho, d1, d2 = (f(s) for f in energy.rate_triple(graph, out))
        extra = beta * (d2 * (target - rho) - d1 * d1)
        index = np.arange(at[out].start, at[out].stop)
        jac[:, index, index] += extra
        step = np.linalg.solve(jac, -flat[..., None])[..., 0]
        states = {p: states[p] + step[:, at[p]] for p in pops}
    return states, residual


def _eqprop_limit(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    """Stages: (1) the CHL program's estimate and its free and clamped states; (2) per β, EqProp's
    nudged fixed point by Newton from the clamped states and β·ĝ_EP(β); (3) the gap and its fit."""
    model = Model(variant(spec, activation="sigmoid", output_activation="linear",
                          rule_params={**TIGHT, "gamma": 1.0}), registry=registry)
    x, _ = random_batch(model, 8, rng)
    target = rng.uniform(0.2, 0.8, (len(x), model.graph.population(model.graph.output).size))
    lr = model.compiled("probe").lrs
    with budget_counted():
        estimate = {k: -v / lr[k] for k, v in model.deltas(x, target).items()}
    exe = model.run("probe", x, target, phases=phase_span(model, None, "free"))
    free = _states(model, exe)
    exe = model.run("probe", x, target, phases=phase_span(model, "keep_free", "settle_clamped"))
    clamped = {**_states(model, exe), model.graph.output: target.copy()}  # linear output: s = ρ(s)
    names = sorted(estimate)
    graph, n = model.graph, len(x)

    def coactivity(states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rates = {**energy._inputs(model, x), **states}  # sigmoid hidden rates below
        for pop in graph.hidden:
            rates[pop] = 1.0 / (1.0 + np.exp(-states[pop]))
        found = {p.name: rates[p.source].T @ rates[p.target] / n for p in graph.projections("forward")}
        found.update({f"{p}.bias": rates[p].sum(axis=0) / n for p in dynamic_populations(graph)})
        return found

    base = coactivity(free)
    gaps, worst = [], 0.0
    for beta in BETAS:
        nudged, residual = _nudged_fixed_point(model, x, target, beta, clamped)
        worst = max(worst, residual)
        top = coactivity(nudged)
        eqprop = {k: -(top[k] - base[k]) for k in names}  # β·ĝ_EP(β), with ĝ_EP = −(ρ^βρ^β − ρ⁰ρ⁰)/β
        gaps.append(relative_error(_flat(eqprop, names), _flat(estimate, names)))
    slope = loglog_slope(np.array(BETAS), np.array(gaps))
    monotone = all(b < a for a, b in zip(gaps, gaps[1:]))
    ok = monotone and -1.3 <= slope <= -0.7 and gaps[-1] < 1e-2 and worst <= 1e-9 and not model.unconverged
    measured = {f"gap_beta_{b:g}": g for b, g in zip(BETAS, gaps)}
    measured.update(slope=slope, newton_residual=worst)
    return Outcome(CHL_IS_EQPROP_AT_INFINITE_BETA.name, "pass" if ok else "fail", measured,
                   expected="rel(β·ĝ_EP(β), ĝ_CHL) falls monotonically over β = 10 … 10⁴ with log-log slope in "
                            "[−1.3, −0.7] (an O(1/β) gap) to < 0.01, relaxations converged")


CHL_IS_EQPROP_AT_INFINITE_BETA = Claim(
    name="chl_is_eqprop_at_infinite_beta",
    rules=(CHL,),
    statement="CHL's update is the EqProp estimator evaluated at clamped outputs with the 1/β dropped: "
              "β·ĝ_EP(β) = −(ρ^βᵀρ^β − ρ⁰ᵀρ⁰) tends to CHL's −(ρ^∞ᵀρ^∞ − ρ⁰ᵀρ⁰) as β → ∞, with an O(1/β) "
              "gap, because the nudged fixed point tends to the clamped one. Measured on the circuit with "
              "sigmoid hidden units and a linear output, γ = 1, targets in (0.2, 0.8).",
    source=f"{SCELLIER_BENGIO_2017}, §4; {MOVELLAN_1991}",
    precondition=always,
    measure=_eqprop_limit,
)


# -- 11 (failure mode). The CHL objective can be negative ----------------------------------------------

DOUBLE_WELL = """
[circuit]
name = "double-well"
doc = "x → h → y with hard-sigmoid units and wells at (h, y) = (0, 0) and (1, 1)"
[populations]
x = {{ size = 1, role = "input" }}
h = {{ size = 1, activation = "hard_sigmoid" }}
y = {{ size = 1, role = "output", activation = "hard_sigmoid" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
lr = 0.1
[task]
dataset = "xor"
loss = "mse"
[run]
dtype = "float64"
"""
WELL = {"x->h": [[0.0]], "h.bias": [-1.0], "h->y": [[4.0]], "y.bias": [-1.0]}
"""E(h, y) = ½h² + ½y² − 4ρ_hρ_y + ρ_h + ρ_y: a well at (0, 0) (E = 0), a deeper one at (1, 1) (E = −1)."""


def _objective(model: Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """``E(u^∞) − E(u⁰)``, the free loss, and the final residuals of the two relaxations."""
    exe = model.run("probe", x, y, phases=phase_span(model, None, "loss"))
    free, loss = _states(model, exe), float(exe.arrays["loss.value"])
    res_free = exe.relaxation["free"].residual
    exe = model.run("probe", x, y, phases=phase_span(model, "loss", "settle_clamped"))
    clamped = {**_states(model, exe), model.graph.output: np.asarray(y, dtype=np.float64)}  # hard sigmoid: ρ(y) = y
    res_clamped = exe.relaxation["clamped"].residual
    gap = float(np.mean(energy.energy(model, x, clamped) - energy.energy(model, x, free)))
    return gap, loss, res_free, res_clamped


def _negative_objective(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    text = DOUBLE_WELL.format(rule=spec.rule.name)
    model = Model(parse_spec(text, source="double_well.toml", rules=registry.signatures()), registry=registry)
    model.set_params({k: np.array(v) for k, v in WELL.items()})
    x, y = np.ones((1, 1)), np.ones((1, 1))
    gap, loss, res_free, res_clamped = _objective(model, x, y)
    with budget_counted():
        for _ in range(3):
            model.step(x, y)
    gap_after, loss_after, _, _ = _objective(model, x, y)
    tol = float(model.spec.rule.params["tol"])
    ok = gap < 0 and gap_after < gap and loss_after >= loss and max(res_free, res_clamped) <= tol
    return Outcome(CHL_OBJECTIVE_CAN_BE_NEGATIVE.name, "pass" if ok else "fail",
                   {"objective": gap, "objective_after_3_steps": gap_after, "free_loss": loss,
                    "free_loss_after_3_steps": loss_after, "free_residual": res_free, "clamped_residual": res_clamped},
                   expected="E(u^∞) − E(u⁰) < 0 with both phases at fixed points; three CHL steps make it more "
                            "negative while the free-phase loss does not fall (learning deepens the clamped well "
                            "the free phase never visits)")


CHL_OBJECTIVE_CAN_BE_NEGATIVE = Claim(
    name="chl_objective_can_be_negative",
    rules=(CHL,),
    statement="CHL's implicit objective E(u^∞) − E(u⁰) is not bounded below by 0: when the free phase "
              "settles in a shallow well and clamping reaches a deeper one, it is negative, and CHL's steps "
              "drive it further down without improving the prediction. Measured on a constructed x → h → y "
              "hard-sigmoid circuit (weights fixed by the claim) with wells at (0, 0) and (1, 1).",
    source=f"{MOVELLAN_1991}; {SCELLIER_BENGIO_2017}, §4 (failure mode)",
    precondition=always,
    measure=_negative_objective,
)


# -- 12. Xie & Seung: weak feedback makes CHL backprop ---------------------------------------------------

GAMMAS = (0.3, 0.1, 0.03, 0.01)


def _xie_seung(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = variant(spec, output_activation="linear", rule_params=TIGHT)
    shared: dict[str, np.ndarray] | None = None
    gaps, angles, one_minus_cos = [], [], []
    x = y = None
    for gamma in GAMMAS:
        model = Model(variant(base, rule_params={"gamma": gamma}), registry=registry)
        if shared is None:
            shared = {k: np.array(model.backend.to_numpy(v)) for k, v in model.params.items()}
            x, y = random_batch(model, 8, rng)
        model.set_params(shared)
        try:
            with budget_counted():
                deltas, grads = model.deltas(x, y), model.gradients(x, y)
        except FixedPointError as exc:
            return Outcome(XIE_SEUNG_EQUIVALENCE.name, "skip", reason=f"at γ = {gamma:g}: {exc}")
        lr = model.compiled("probe").lrs
        names = sorted(grads)
        found, want = _flat({k: deltas[k] / lr[k] for k in names}, names), -_flat(grads, names)
        gaps.append(relative_error(found, want))
        cos = float(found @ want / (np.linalg.norm(found) * np.linalg.norm(want)))
        angles.append(float(np.arccos(np.clip(cos, -1.0, 1.0))))
        one_minus_cos.append(1.0 - cos)
        if model.unconverged:
            return Outcome(XIE_SEUNG_EQUIVALENCE.name, "skip",
                           reason=f"relaxation did not converge at γ = {gamma:g} ({model.unconverged})")
    gs = np.array(GAMMAS)
    slope = loglog_slope(gs, np.array(gaps))
    angled = min(angles) > 1e-12  # else parallel to rounding: nothing to fit
    angle_slope = loglog_slope(gs, np.array(angles)) if angled else float("nan")
    cos_slope = loglog_slope(gs, np.array(one_minus_cos)) if min(one_minus_cos) > 0 else float("nan")
    monotone = all(b < a for a, b in zip(gaps, gaps[1:])) and all(b <= a for a, b in zip(angles, angles[1:]))
    ok = monotone and 0.75 <= slope <= 1.25 and (not angled or 0.75 <= angle_slope <= 1.25)
    measured = {f"rel_gamma_{g:g}": e for g, e in zip(GAMMAS, gaps)}
    measured.update({f"one_minus_cos_gamma_{g:g}": c for g, c in zip(GAMMAS, one_minus_cos)})
    measured.update(rel_slope=slope, angle_slope=angle_slope, one_minus_cos_slope=cos_slope)
    return Outcome(XIE_SEUNG_EQUIVALENCE.name, "pass" if ok else "fail", measured,
                   expected="over γ = 0.3, 0.1, 0.03, 0.01 the relative error and the angle θ between the γ^−d-scaled "
                            "CHL update and −∇L (all parameters as one vector) fall monotonically with log-log "
                            "slope in [0.75, 1.25] (O(γ)); 1 − cos = θ²/2 then falls with slope ≈ 2")


XIE_SEUNG_EQUIVALENCE = Claim(
    name="xie_seung_chl_is_backprop",
    rules=(CHL,),
    statement="With linear output units and top-down drive scaled by γ, clamping moves a population d "
              "projections below the output by −γ^d ∂L/∂a (1 + O(γ)), so CHL with learning rates scaled by "
              "γ^−d is backprop up to O(γ): relative error and angle to −∇L fall linearly in γ. Measured on "
              "the circuit with a linear output, float64, the same weights at every γ, against the exact "
              "gradient of the circuit that runs (implicit differentiation of the γ-scaled dynamics).",
    source=f"{XIE_SEUNG_2003} (abstract; scalings derived)",
    precondition=_layered,
    measure=_xie_seung,
)


# -- 30. Early inference: the wave carries backprop's gradient, one layer per step -----------------------

EPS_SWEEP = (0.5, 0.25, 0.125)
BETA_SWEEP = (1e-2, 1e-3, 1e-4)


def _backprop_from_top(model: Model, states: dict[str, np.ndarray], target: np.ndarray) -> list[np.ndarray]:
    """``∂C/∂s_k`` through the layers above ``k`` at ``states`` (hard sigmoid: ρ' = 1 inside, 0 at a
    bound), for ``k = 0`` (the output) down the chain; ``C = ½‖ρ(s_y) − target‖²`` per example."""
    graph, params = model.graph, energy._host_params(model)
    chain = list(graph.forward_order())[::-1][:-1]  # output first, input left out

    def slope(s: np.ndarray) -> np.ndarray:
        return ((s > 0.0) & (s < 1.0)).astype(np.float64)

    grads = [slope(states[chain[0]]) * (np.clip(states[chain[0]], 0.0, 1.0) - target)]
    for upper, lower in zip(chain, chain[1:]):
        weight = params[graph.incoming(upper)[0].name]
        grads.append(slope(states[lower]) * (grads[-1] @ weight.T))
    return grads


def _early_wave(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    """Stages: (1) a hard-sigmoid, noise-free variant; (2) per (ε, β) of the sweep, the wave of the
    rule's program and backprop through the layers above each one at the free fixed point;
    (3) onset, direction and size at step k + 1; (4) fitted ε and β exponents."""
    base = variant(spec, activation="hard_sigmoid", output_activation="hard_sigmoid",
                   rule_params={"tol": 1e-13, "free_steps": 20000})
    depth = len(CircuitGraph(base).hidden)
    runs = [(e, BETA_SWEEP[1]) for e in EPS_SWEEP] + [(EPS_SWEEP[0], b) for b in BETA_SWEEP if b != BETA_SWEEP[1]]
    shared: dict[str, np.ndarray] | None = None
    onset, worst_cos, worst_ratio = 0.0, 0.0, 0.0
    sizes: dict[tuple[float, float], list[float]] = {}
    for eps, beta in runs:
        pops = tuple(attrs.evolve(p, step=eps, noise=0.0) for p in base.populations)
        model = Model(attrs.evolve(base, populations=pops, rule=attrs.evolve(
            base.rule, params={**base.rule.params, "beta": beta, "steps": depth + 1})), registry=registry)
        if shared is None:
            shared = {k: np.full(np.shape(v), 0.5) if k.endswith(".bias") else np.array(model.backend.to_numpy(v))
                      for k, v in model.params.items()}
            x, _ = random_batch(model, 8, rng)
            x = 0.3 * x  # with biases at ½, most units sit inside the box
            y = rng.uniform(0.0, 1.0, (len(x), model.graph.population(model.graph.output).size))
        model.set_params(shared)
        moves = wave(model, x, y)
        free = _states(model, model.run("probe", x, y, phases=phase_span(model, None, "free")))
        chain = list(model.graph.forward_order())[::-1][:-1]
        grads = _backprop_from_top(model, free, y)
        sizes[(eps, beta)] = []
        for k, (pop, grad) in enumerate(zip(chain, grads)):
            for t in range(k):  # steps 1 … k
                onset = max(onset, float(np.max(np.abs(moves[t][pop]))))
            delta, want = moves[k][pop].ravel(), -(eps ** (k + 1)) * beta * grad.ravel()
            if np.linalg.norm(want) == 0.0:
                return Outcome(EARLY_INFERENCE_WAVE.name, "skip",
                               reason=f"population '{pop}' has every unit pinned at a bound: no gradient reaches it")
            cos = float(delta @ want / (np.linalg.norm(delta) * np.linalg.norm(want))) if np.any(delta) else 0.0
            worst_cos = max(worst_cos, 1.0 - cos)
            worst_ratio = max(worst_ratio, abs(float(np.linalg.norm(delta) / np.linalg.norm(want)) - 1.0))
            sizes[(eps, beta)].append(float(np.linalg.norm(delta)))
    eps_exponents = [loglog_slope(np.array(EPS_SWEEP), np.array([sizes[(e, BETA_SWEEP[1])][k] for e in EPS_SWEEP]))
                     for k in range(depth + 1)]
    beta_exponents = [loglog_slope(np.array(BETA_SWEEP), np.array([sizes[(EPS_SWEEP[0], b)][k] for b in BETA_SWEEP]))
                      for k in range(depth + 1)]
    eps_error = max(abs(s - (k + 1)) for k, s in enumerate(eps_exponents))
    beta_error = max(abs(s - 1.0) for s in beta_exponents)
    ok = onset == 0.0 and worst_cos <= 1e-9 and worst_ratio <= 1e-6 and eps_error <= 0.01 and beta_error <= 0.01
    measured = {"max_change_before_onset": onset, "max_one_minus_cos": worst_cos, "max_ratio_error": worst_ratio}
    measured.update({f"eps_exponent_layer_{k}": s for k, s in enumerate(eps_exponents)})
    measured.update({f"beta_exponent_layer_{k}": s for k, s in enumerate(beta_exponents)})
    return Outcome(EARLY_INFERENCE_WAVE.name, "pass" if ok else "fail", measured,
                   expected="layer k (output = 0) exactly unchanged for steps t ≤ k; at t = k + 1, "
                            "1 − cos(δh_k, −∂C/∂h_k) ≤ 1e-9 and |‖δh_k‖/(ε^{k+1}β‖∂C/∂h_k‖) − 1| ≤ 1e-6 over "
                            "ε = 0.5 … 0.125, β = 1e-2 … 1e-4; fitted exponents of ε within 0.01 of k + 1 "
                            "and of β within 0.01 of 1")


EARLY_INFERENCE_WAVE = Claim(
    name="early_inference_wave",
    rules=(EI,),
    statement="Starting from the free fixed point and nudging the output by β∂C/∂y, explicit Euler steps of "
              "size ε move a population k projections below the output not at all for steps t ≤ k and by "
              "exactly −ε^{k+1}β ∂C/∂h_k at step k + 1 (∂C/∂h_k: backprop through the populations above, at "
              "the fixed point) while no unit crosses a bound. Measured on a noise-free variant of the "
              "circuit with hard-sigmoid units, where it is exact, biases at ½ and inputs of std 0.3 (so "
              "that most units sit inside the box), over a sweep of ε and β.",
    source=f"{BENGIO_FISCHER_2015} (abstract); {SCELLIER_BENGIO_2017}, §2.3; the exponents derived",
    precondition=_layered,
    measure=_early_wave,
)
