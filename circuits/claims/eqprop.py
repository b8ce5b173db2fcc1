"""Claims of equilibrium propagation (Scellier & Bengio 2017; Laborieux et al. 2021) and of its reference gradient.

Every estimate is read from the rule's own probe program (``Model.deltas`` divided by −lr), so
the claims measure the ops that ``circuits compile`` prints; the reference is
``Model.gradients``, implicit differentiation at the free fixed point
(:func:`circuits.rules.energy.exact_gradients`), itself checked against finite differences of
the loss that the model's own relaxation reaches.

Theorem 1 needs fixed points, so the claims about the estimators run on a stated variant of
the circuit: float64, relaxations run until the largest per-example force norm is at most
``1e-13`` (with a large step budget; a circuit that does not get there is skipped), and, where
the theory needs a differentiable fixed point, hard-sigmoid and relu units replaced by
logistic units (a hard-sigmoid unit whose drive sits within O(β) of its bound switches
between the phases, and the rates of the claims no longer hold).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import attrs
import numpy as np

from circuits.claims.base import Claim, Outcome, loglog_slope, random_batch, relative_error, variant
from circuits.claims.papers import (ALMEIDA_1987, LABORIEUX_2021, PINEDA_1987, SCELLIER_BENGIO_2017,
                                    SCELLIER_BENGIO_2019)
from circuits.claims.gradient import finite_difference_error
from circuits.errors import FixedPointError, RelaxationWarning
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.eqprop import SIGN
from circuits.rules.energy import dynamic_populations, energy
from circuits.spec import CircuitSpec

__all__ = ["IMPLICIT_GRADIENT_IS_EXACT", "ONE_SIDED_BIAS", "SYMMETRIC_SECOND_ORDER", "RANDOM_SIGN_IDENTITY",
           "NUDGING_LOWERS_COST", "ENERGY_DESCENT"]

EP = "equilibrium_propagation"
TIGHT = 1e-13
BUDGET = 50_000
BETAS = (1e-1, 3e-2, 1e-2, 3e-3)
SMOOTH = {"hard_sigmoid": "sigmoid", "relu": "sigmoid"}


def tight(spec: CircuitSpec, **params: object) -> CircuitSpec:
    """The float64 variant whose relaxations run to a force norm of ``1e-13`` (no particles)."""
    return variant(spec, rule_params={"tol": TIGHT, "free_steps": BUDGET, "nudged_steps": BUDGET,
                                      "persistent": False, **params})


def smooth(spec: CircuitSpec) -> CircuitSpec:
    """``spec`` with hard-sigmoid and relu units replaced by logistic units."""
    pops = tuple(attrs.evolve(p, activation=SMOOTH.get(p.activation, p.activation)) if p.role != "input" else p
                 for p in spec.populations)
    return attrs.evolve(spec, populations=pops)


def _tied(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    if any(p.type == "feedback" for p in spec.projections):
        return "needs tied couplings (a feedback projection unties one: the dynamics then have no energy)"
    return None


def _unconverged(model: Model) -> str | None:
    if model.unconverged:
        phases = ", ".join(sorted(model.unconverged))
        return (f"the relaxation ({phases}) did not reach a force norm of {TIGHT:g} within {BUDGET} steps "
                "(no fixed point to differentiate at)")
    return None


@contextlib.contextmanager
def budget_counted() -> Iterator[None]:
    """Silence :class:`RelaxationWarning` inside: claims read ``Model.unconverged`` and skip or
    state it themselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RelaxationWarning)
        yield


def estimate(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The rule's gradient estimate on a batch: its probe program's change divided by −lr."""
    lrs = model.compiled("probe").lrs
    with budget_counted():
        deltas = model.deltas(x, y)
    return {name: -delta / lrs[name] for name, delta in deltas.items()}


def flat(values: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The named arrays, concatenated into one vector."""
    return np.concatenate([np.ravel(values[n]) for n in names])


def _errors(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator,
            estimators: tuple[str, ...]) -> tuple[dict[str, list[float]], float] | str:
    """Relative error of each estimator to the implicit gradient at every β in :data:`BETAS`.

    Returns the errors and ‖∇J‖, or the reason the circuit does not qualify.
    """
    base = tight(smooth(spec))
    reference = Model(base, registry=registry)
    x, y = random_batch(reference, 4, rng)
    try:
        grads = reference.gradients(x, y)
    except FixedPointError as exc:
        return str(exc)
    names = sorted(grads)
    exact = flat(grads, names)
    if np.linalg.norm(exact) < 1e-12:
        return "the loss gradient vanishes on the drawn batch"
    errors: dict[str, list[float]] = {name: [] for name in estimators}
    for kind in estimators:
        for beta in BETAS:
            model = Model(variant(base, rule_params={"estimator": kind, "beta": beta}), registry=registry)
            found = estimate(model, x, y)
            reason = _unconverged(model)
            if reason:
                return reason
            errors[kind].append(relative_error(flat(found, names), exact))
    return errors, float(np.linalg.norm(exact))


# -- the reference: implicit differentiation = finite differences -------------------------------------


def _implicit_is_exact(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(tight(spec), registry=registry)
    x, y = random_batch(model, 4, rng)
    try:
        grads = model.gradients(x, y)
    except FixedPointError as exc:
        return Outcome(IMPLICIT_GRADIENT_IS_EXACT.name, "skip", reason=str(exc))
    step = 1e-5
    error, count = finite_difference_error(model, x, y, grads, rng, step=step)
    reason = _unconverged(model)  # the finite differences run the model's own relaxation
    if reason:
        return Outcome(IMPLICIT_GRADIENT_IS_EXACT.name, "skip", reason=reason)
    tolerance = 1e-5
    return Outcome(IMPLICIT_GRADIENT_IS_EXACT.name, "pass" if error < tolerance else "fail",
                   {"relative_error": error, "coordinates": float(count)},
                   expected=f"relative error < {tolerance:g} (central differences of the loss at the relaxed "
                            f"fixed point, h = {step:g}, float64, force norm ≤ {TIGHT:g})")


IMPLICIT_GRADIENT_IS_EXACT = Claim(
    name="implicit_gradient_is_exact",
    rules=(EP,),
    statement="The gradient that an energy rule is compared against (Model.gradients: implicit "
              "differentiation of the loss at the free fixed point, Kᵀλ = −∂J/∂s) equals central finite "
              "differences of the loss at the fixed point that the model's own relaxation reaches.",
    source=f"implicit differentiation at the fixed point: {ALMEIDA_1987}; {PINEDA_1987}; {SCELLIER_BENGIO_2019}",
    precondition=lambda spec, registry: None,
    measure=_implicit_is_exact,
)


# -- 2. one-sided estimator: O(β) bias ------------------------------------------------------------------


def _one_sided(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    found = _errors(spec, registry, rng, ("one_sided",))
    if isinstance(found, str):
        return Outcome(ONE_SIDED_BIAS.name, "skip", reason=found)
    errors, norm = found
    slope = loglog_slope(np.array(BETAS), np.array(errors["one_sided"]))
    low, high = 0.8, 1.2
    measured = {f"error_beta_{b:g}": e for b, e in zip(BETAS, errors["one_sided"])}
    return Outcome(ONE_SIDED_BIAS.name, "pass" if low <= slope <= high else "fail",
                   {"slope": slope, **measured, "gradient_norm": norm},
                   expected=f"log-log slope of ‖ĝ(β) − ∇J‖/‖∇J‖ against β in [{low:g}, {high:g}] over "
                            f"β ∈ {{{', '.join(f'{b:g}' for b in BETAS)}}}")


ONE_SIDED_BIAS = Claim(
    name="eqprop_one_sided_bias_is_first_order",
    rules=(EP,),
    statement="The one-sided estimator ĝ(β) = (1/β)[∂F/∂θ(s^β) − ∂F/∂θ(s⁰)] tends to the gradient of the "
              "loss at the free fixed point (Theorem 1) with an error c₁β + O(β²): log-log slope 1. "
              "Measured on the float64 circuit with logistic units in place of hard-sigmoid and relu units, "
              "relaxed to a force norm of 1e-13.",
    source=f"{SCELLIER_BENGIO_2017}, Theorem 1",
    precondition=_tied,
    measure=_one_sided,
)


# -- 3. symmetric estimator: O(β²) ----------------------------------------------------------------------


def _symmetric(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    found = _errors(spec, registry, rng, ("symmetric", "one_sided"))
    if isinstance(found, str):
        return Outcome(SYMMETRIC_SECOND_ORDER.name, "skip", reason=found)
    errors, norm = found
    sym, one = np.array(errors["symmetric"]), np.array(errors["one_sided"])
    slope = loglog_slope(np.array(BETAS), sym)
    low, high, gain = 1.7, 2.3, 10.0
    ok = low <= slope <= high and bool(np.all(sym < one)) and sym[-1] * gain <= one[-1]
    measured = {f"error_beta_{b:g}": e for b, e in zip(BETAS, sym)}
    return Outcome(SYMMETRIC_SECOND_ORDER.name, "pass" if ok else "fail",
                   {"slope": slope, **measured, "one_sided_over_symmetric_at_smallest_beta": one[-1] / sym[-1],
                    "gradient_norm": norm},
                   expected=f"log-log slope in [{low:g}, {high:g}]; below the one-sided error at every β and at "
                            f"least {gain:g}× below it at β = {BETAS[-1]:g}")


SYMMETRIC_SECOND_ORDER = Claim(
    name="eqprop_symmetric_bias_is_second_order",
    rules=(EP,),
    statement="The symmetric estimator (1/2β)[∂F/∂θ(s^{β}) − ∂F/∂θ(s^{−β})] cancels the first-order term: "
              "its error to the gradient falls as β² and lies far below the one-sided error at equal β. "
              "Measured on the float64 circuit with logistic units in place of hard-sigmoid and relu units.",
    source=f"{LABORIEUX_2021} (symmetric nudging)",
    precondition=_tied,
    measure=_symmetric,
)


# -- 4. random sign: the mean over the two signs is the symmetric estimator ------------------------------------


def signed_estimates(model: Model, x: np.ndarray, y: np.ndarray, draws: int = 64) -> dict[float, dict[str, np.ndarray]]:
    """Sign → the random-sign program's estimate on one batch, drawn until both signs are seen."""
    found: dict[float, dict[str, np.ndarray]] = {}
    for _ in range(draws):
        got = estimate(model, x, y)
        sign = float(model.sim.executable(model.compiled("probe"), len(x)).arrays[SIGN])
        found.setdefault(sign, got)
        if len(found) == 2:
            break
    return found


def _random_sign(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = variant(spec, rule_params={"persistent": False})
    signed = Model(variant(base, rule_params={"estimator": "random_sign"}), registry=registry)
    x, y = random_batch(signed, 4, rng)
    found = signed_estimates(signed, x, y)
    if set(found) != {1.0, -1.0}:
        return Outcome(RANDOM_SIGN_IDENTITY.name, "fail", {"signs_seen": float(len(found))},
                       expected="both signs of β within 64 draws")
    sym = estimate(Model(variant(base, rule_params={"estimator": "symmetric"}), registry=registry), x, y)
    names = sorted(sym)
    mean = 0.5 * (flat(found[1.0], names) + flat(found[-1.0], names))
    scale = float(np.linalg.norm(flat(found[1.0], names)) + np.linalg.norm(flat(found[-1.0], names)))
    gap = float(np.linalg.norm(mean - flat(sym, names)))
    error = gap / scale if scale > 0 else gap
    tolerance = 1e-12
    return Outcome(RANDOM_SIGN_IDENTITY.name, "pass" if error < tolerance else "fail",
                   {"gap_over_estimate_norms": error, "symmetric_norm": float(np.linalg.norm(flat(sym, names))),
                    "beta": float(base.rule.params["beta"])},
                   expected=f"‖½[ĝ(β) + ĝ(−β)] − ĝ_sym(β)‖ / (‖ĝ(β)‖ + ‖ĝ(−β)‖) < {tolerance:g} (float64 "
                            "rounding; the three fixed points are the same bit for bit)")


RANDOM_SIGN_IDENTITY = Claim(
    name="eqprop_random_sign_mean_is_symmetric",
    rules=(EP,),
    statement="The random-sign estimator ĝ(σβ) averaged over its two signs equals the symmetric estimator "
              "computed from the same three fixed points, exactly: the random sign is unbiased to O(β²) in "
              "expectation. Measured by drawing the random-sign program's sign until both appear, against "
              "the symmetric program, on the float64 circuit with the spec's own β and relaxation.",
    source=f"derived; {SCELLIER_BENGIO_2017}, §5 (random sign of β)",
    precondition=lambda spec, registry: None,
    measure=_random_sign,
)


# -- 6. nudging lowers the cost (Proposition 2) ----------------------------------------------------------------


def phase_costs(model: Model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example cost ``½‖ρ(s_y) − target‖²`` at the free and at the nudged fixed point (one-sided)."""
    exe = model.run("probe", x, y)
    out = model.graph.output
    host = model.backend.to_numpy
    target = np.array(host(exe.arrays[f"{out}.target"]))
    free, nudged = (np.array(host(exe.arrays[f"{out}.rate{s}"])) for s in (".free", ".nudged"))
    return 0.5 * np.sum((free - target) ** 2, axis=1), 0.5 * np.sum((nudged - target) ** 2, axis=1)


def _nudging_lowers_cost(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = tight(smooth(spec), estimator="one_sided")
    worst, count = -np.inf, 0
    x = y = None
    measured: dict[str, float] = {}
    for beta in (1e-1, 1e-2, 1e-3):
        model = Model(variant(base, rule_params={"beta": beta}), registry=registry)
        if x is None:
            x, y = random_batch(model, 8, rng)
        free, nudged = phase_costs(model, x, y)
        reason = _unconverged(model)
        if reason:
            return Outcome(NUDGING_LOWERS_COST.name, "skip", reason=reason)
        change = (nudged - free) / beta  # ≈ dC(s^β)/dβ at 0, per example
        worst = max(worst, float(np.max(change)))
        count += len(change)
        measured[f"largest_dC_over_beta_{beta:g}"] = float(np.max(change))
    return Outcome(NUDGING_LOWERS_COST.name, "pass" if worst < 0 else "fail",
                   {**measured, "examples_x_betas": float(count)},
                   expected="C(s^β) < C(s⁰) for every example at β = 0.1, 0.01, 0.001")


NUDGING_LOWERS_COST = Claim(
    name="eqprop_nudging_lowers_cost",
    rules=(EP,),
    statement="Nudging the output toward the target lowers the cost at the fixed point: C(s^β) < C(s⁰) for "
              "small β > 0 (dC(s^β)/dβ at 0 = −(∂C/∂s)ᵀ(−K)⁻¹(∂C/∂s) ≤ 0). Measured per example on the float64 "
              "circuit with logistic units in place of hard-sigmoid and relu units.",
    source=f"{SCELLIER_BENGIO_2017}, Proposition 2",
    precondition=_tied,
    measure=_nudging_lowers_cost,
)


# -- 7. the free dynamics descend the energy ----------------------------------------------------------------------


def energy_trace(model: Model, x: np.ndarray, steps: int) -> np.ndarray:
    """Per-example energy (steps + 1 × batch) along the infer program's own free dynamics from rest.

    The program runs with a one-step free phase, so its states can be read after every step.
    """
    pops = dynamic_populations(model.graph)
    host = model.backend.to_numpy
    names = [phase.name for phase in model.compiled("infer").phases]
    exe = model.run("infer", x, phases=names[:names.index("free")])
    trace = []
    for index in range(steps + 1):
        if index:
            exe = model.run("infer", x, phases=("free",))
        states = {p: np.array(host(exe.arrays[f"{p}.pre"]), dtype=np.float64) for p in pops}
        trace.append(energy(model, x, states))
    return np.array(trace)


def _small_steps(spec: CircuitSpec, step: float) -> CircuitSpec:
    pops = tuple(attrs.evolve(p, step=min(p.step, step), noise=0.0) for p in spec.populations)
    return attrs.evolve(spec, populations=pops)


def _energy_descent(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    step, steps = 0.05, 200
    model = Model(_small_steps(variant(spec, rule_params={"free_steps": 1, "tol": 0.0, "persistent": False}), step),
                  registry=registry)
    x, _ = random_batch(model, 4, rng)
    trace = energy_trace(model, x, steps)
    if not np.all(np.isfinite(trace)):
        return Outcome(ENERGY_DESCENT.name, "skip", reason="the free dynamics diverge (the energy is unbounded below)")
    scale = 1e-12 * (1.0 + np.max(np.abs(trace)))
    rise = float(np.max(np.diff(trace, axis=0)))
    drop = float(np.min(trace[0] - trace[-1]))
    ok = rise <= scale and drop > 0
    return Outcome(ENERGY_DESCENT.name, "pass" if ok else "fail",
                   {"largest_rise": rise, "smallest_total_drop": drop, "steps": float(steps), "step": step},
                   expected=f"E(s_(t+1)) ≤ E(s_t) + {scale:.1e} for every example and step, and E falls overall")


ENERGY_DESCENT = Claim(
    name="eqprop_free_dynamics_descend_energy",
    rules=(EP,),
    statement="With tied couplings the free dynamics are gradient descent on the Hopfield energy, so each "
              "small Euler step lowers E: measured per example along the rule's own free phase from rest, "
              "200 steps of ε = min(step, 0.05), float64, energy evaluated in NumPy.",
    source=f"{SCELLIER_BENGIO_2017}, eq. 5 (dF/dt = −‖ds/dt‖²)",
    precondition=_tied,
    measure=_energy_descent,
)
