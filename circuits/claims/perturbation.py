"""Claims of the perturbation rules: unbiased estimates, exactness for quadratic losses,
error variance growing with the number of perturbed units, and baseline invariance.

Every claim here is a Monte-Carlo statement. The probe program is run again and again on
one fixed batch; its noise streams advance run by run, so each run is a fresh, independent
draw of the estimate ``ĝ``. Tolerances come from the draws themselves: the mean of ``M``
draws is within ``3·√(tr Cov / M)`` of its expectation (for a Gaussian mean error that
bound is exceeded with probability below 0.3 %, whatever the dimension).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np

from circuits.claims.base import Claim, Outcome, always, dense_only, loglog_slope, random_batch, variant
from circuits.claims.papers import WERFEL_2005, WILLIAMS_1992
from circuits.compile import Builder
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.perturbation import node_estimates
from circuits.spec import CircuitSpec

__all__ = ["PERTURBATION_UNBIASED", "NP_EXACT_FOR_QUADRATIC_LOSS", "PERTURBATION_VARIANCE",
           "BASELINE_LEAVES_MEAN"]

PERTURBATION_RULES = ("node_perturbation", "weight_perturbation")

Draw = Callable[[], np.ndarray]


def _moments(draw: Draw, m: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Mean, ``tr Cov`` and per-draw squared norms of ``m`` draws (streamed, not stored)."""
    first = draw()
    total, squares = np.zeros_like(first), np.zeros_like(first)
    norms = np.empty(m)
    for index in range(m):
        sample = first if index == 0 else draw()
        total += sample
        squares += sample * sample
        norms[index] = float(sample @ sample)
    mean = total / m
    trace = float(np.sum(squares / m - mean * mean)) * m / (m - 1)
    return mean, max(trace, 0.0), norms


def _weight_draw(model: Model, x: np.ndarray, y: np.ndarray, names: list[str]) -> Draw:
    """One draw of the rule's estimate of ∂loss/∂params: ``Model.deltas / (−lr)``, flattened."""
    lrs = model.compiled("probe").lrs

    def draw() -> np.ndarray:
        deltas = model.deltas(x, y)
        return np.concatenate([np.ravel(deltas[n]) / -lrs[n] for n in names])
    return draw


def _learned(model: Model, grads: dict[str, np.ndarray]) -> list[str]:
    return [n for n in model.compiled("probe").grads if n in grads]


def _node_buffers(model: Model) -> list[str]:
    """The buffers of the node-perturbation estimates (the same names hold backprop's deltas)."""
    b = Builder(model.graph, rule=model.rule.name, params=dict(model.spec.rule.params), mode="probe",
                dtype=model.spec.run.dtype)
    return [delta for _, _, delta in node_estimates(b)]


def _node_draw(model: Model, mode: str, x: np.ndarray, y: np.ndarray, buffers: list[str]) -> Draw:
    def draw() -> np.ndarray:
        exe = model.run(mode, x, y)
        return np.concatenate([np.ravel(model.backend.to_numpy(exe.arrays[n])) for n in buffers])
    return draw


def _with_sigma(spec: CircuitSpec, sigma: float, baseline: str, **changes: object) -> CircuitSpec:
    """The float64 variant of ``spec`` at noise ``sigma`` with ``baseline``, plus ``changes``."""
    return variant(spec, rule_params={"sigma": sigma, "baseline": baseline}, **changes)


# -- 31: unbiased ------------------------------------------------------------------------------


def _unbiased(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec, rule_params={"baseline": "none"}), registry=registry)
    x, y = random_batch(model, 4, rng)
    grads = model.gradients(x, y)
    names = _learned(model, grads)
    exact = np.concatenate([np.ravel(grads[n]) for n in names])
    draws = 2000
    mean, trace, _ = _moments(_weight_draw(model, x, y, names), draws)
    error, bound = float(np.linalg.norm(mean - exact)), 3.0 * math.sqrt(trace / draws)
    return Outcome(PERTURBATION_UNBIASED.name, "pass" if error <= bound else "fail",
                   {"mean_error": error, "bound": bound, "gradient_norm": float(np.linalg.norm(exact)),
                    "draws": float(draws), "sigma": model.spec.rule.params["sigma"]},
                   expected=f"‖mean of {draws} estimates − gradient‖ ≤ 3·√(tr Cov/M) (float64, the spec's σ)")


PERTURBATION_UNBIASED = Claim(
    name="perturbation_unbiased",
    rules=PERTURBATION_RULES,
    statement="The estimate (L̃ − L)·ξ/σ² of ∂loss/∂W averages to the exact gradient: E[ĝ] = ∇L + O(σ²). "
              "Measured as the mean of Model.deltas/(−lr) over 2000 noise draws on one batch, against backprop.",
    source=WILLIAMS_1992,
    precondition=always,
    measure=_unbiased,
)


# -- 31: exact for a quadratic loss -------------------------------------------------------------


def _quadratic_exact(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    quadratic = _with_sigma(spec, 1.0, "none", activation="linear", output_activation="linear", loss="mse")
    model = Model(quadratic, registry=registry)
    x, y = random_batch(model, 4, rng)
    grads = model.gradients(x, y)
    names = _learned(model, grads)
    exact = np.concatenate([np.ravel(grads[n]) for n in names])
    # The batch repeated K times has the same loss and gradient, and its estimate is the mean
    # of K independent draws of the 4-example estimate (noise is drawn per row): one run, K draws.
    replicas, runs = 32, 1024
    draw = _weight_draw(model, np.tile(x, (replicas, 1)), np.tile(y, (replicas, 1)), names)  # MSE targets
    blocks = np.stack([draw() for _ in range(runs)])
    sizes, errors = [], []
    for merge in (1, 4, 16, 64):  # root-mean-square error of disjoint means of M draws each
        means = blocks.reshape(-1, merge, blocks.shape[1]).mean(axis=1)
        sizes.append(replicas * merge)
        errors.append(float(np.sqrt(np.mean(np.sum((means - exact) ** 2, axis=1)))))
    slope = loglog_slope(sizes, errors)
    total = replicas * runs
    mean = blocks.mean(axis=0)
    trace = float(np.sum(np.var(blocks, axis=0, ddof=1))) * replicas  # tr Cov of one draw
    error, bound = float(np.linalg.norm(mean - exact)), 3.0 * math.sqrt(trace / total)
    ok = -0.75 <= slope <= -0.25 and error <= bound
    return Outcome(NP_EXACT_FOR_QUADRATIC_LOSS.name, "pass" if ok else "fail",
                   {"error_slope": slope, "mean_error": error, "bound": bound,
                    "gradient_norm": float(np.linalg.norm(exact)),
                    **{f"rms_error@M={m}": e for m, e in zip(sizes, errors)}},
                   expected=f"error of the mean ∝ M^−½ (log-log slope in [−0.75, −0.25] over M = {sizes}) "
                            f"and ‖mean of {total} − gradient‖ ≤ 3·√(tr Cov/M), at σ = 1")


NP_EXACT_FOR_QUADRATIC_LOSS = Claim(
    name="np_exact_for_quadratic_loss",
    rules=("node_perturbation",),
    statement="When the loss is quadratic in the perturbed pre-activations (linear units, MSE), node "
              "perturbation is exactly unbiased at any σ: the O(σ²) bias comes from third derivatives. "
              "Measured at σ = 1, where any bias would stop the error of the mean from shrinking like M^−½.",
    source=f"derived from the perturbation estimator of {WILLIAMS_1992}",
    precondition=always,
    measure=_quadratic_exact,
)


# -- 32: variance grows with the number of perturbed units --------------------------------------


def _normalized_variance(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator,
                         draws: int) -> tuple[float, int]:
    """``mean ‖ĝ − g‖² / ‖g‖²`` over ``draws`` draws on one example, and ``N``."""
    model = Model(spec, registry=registry)
    x, y = random_batch(model, 1, rng)
    if model.rule.name == "node_perturbation":
        buffers = _node_buffers(model)
        exact = _node_draw(model, "reference", x, y, buffers)()
        draw = _node_draw(model, "probe", x, y, buffers)
    else:
        grads = model.gradients(x, y)
        names = _learned(model, grads)
        exact = np.concatenate([np.ravel(grads[n]) for n in names])
        draw = _weight_draw(model, x, y, names)
    squared = np.array([float(np.sum((draw() - exact) ** 2)) for _ in range(draws)])
    return float(np.mean(squared) / (exact @ exact)), exact.size


def _resized(spec: CircuitSpec, factor: int) -> CircuitSpec:
    pops = tuple(p if p.role == "input" else attrs.evolve(p, size=p.size * factor) for p in spec.populations)
    return attrs.evolve(spec, populations=pops)


def _variance(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    linear = _with_sigma(spec, 1e-4, "none")
    factor = 10 if spec.rule.name == "node_perturbation" else 3
    draws, measured, ok = 2000, {}, True
    ratios = []
    for label, circuit in (("small", linear), ("large", _resized(linear, factor))):
        ratio, n = _normalized_variance(circuit, registry, rng, draws)
        # Var ‖ĝ − g‖²/‖g‖² = 2(N+3)(N+6) for ĝ = (g·z) z, z ~ N(0, I_N) (fourth moments of z).
        tolerance = 4.0 * math.sqrt(2.0 * (n + 3) * (n + 6) / draws)
        ok = ok and abs(ratio - (n + 1)) <= tolerance
        ratios.append((ratio, n))
        measured.update({f"N_{label}": float(n), f"variance_over_grad2_{label}": ratio,
                         f"tolerance_{label}": tolerance})
    (r1, n1), (r2, n2) = ratios
    measured.update({"variance_ratio": r2 / r1, "expected_ratio": (n2 + 1) / (n1 + 1)})
    return Outcome(PERTURBATION_VARIANCE.name, "pass" if ok else "fail", measured,
                   expected=f"E‖ĝ − ∇L‖²/‖∇L‖² = N + 1 within 4·√(2(N+3)(N+6)/M), M = {draws}, σ = 1e-4, "
                            f"for the circuit and for it with every non-input population {factor}× wider")


PERTURBATION_VARIANCE = Claim(
    name="perturbation_variance",
    rules=PERTURBATION_RULES,
    statement="For a locally linear loss (σ = 1e-4), one example's estimate has error variance "
              "E‖ĝ − ∇L‖² = (N + 1)‖∇L‖² for N perturbed quantities: the pre-activations of every "
              "non-input unit (node perturbation) or every plastic weight and bias (weight perturbation).",
    source=f"{WERFEL_2005} (the variance factor derived)",
    precondition=dense_only,  # it widens every population, which a conv geometry fixes
    measure=_variance,
)


# -- 34: a baseline leaves the mean unchanged ----------------------------------------------------


def _baseline(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    quadratic = _with_sigma(spec, 1.0, "running", activation="linear", output_activation="linear", loss="mse")
    model = Model(quadratic, registry=registry)
    x, y = random_batch(model, 1, rng)
    buffers = _node_buffers(model)
    exact = _node_draw(model, "reference", x, y, buffers)()
    clean_loss = model.evaluate(x, y)[0]
    draws, measured, ok = 4000, {}, True
    variances = {}
    # 0: the clean loss is the only baseline; −L: the loss change plus L, i.e. REINFORCE's raw L̃.
    for label, offset in (("clean", 0.0), ("none", -clean_loss)):
        model.sim.store["loss.baseline"][...] = offset
        mean, trace, _ = _moments(_node_draw(model, "probe", x, y, buffers), draws)
        error, bound = float(np.linalg.norm(mean - exact)), 3.0 * math.sqrt(trace / draws)
        ok = ok and error <= bound
        variances[label] = trace
        measured.update({f"mean_error_{label}": error, f"bound_{label}": bound, f"tr_cov_{label}": trace})
    if variances["clean"] > 0:
        measured["variance_ratio_none_over_clean"] = variances["none"] / variances["clean"]
    return Outcome(BASELINE_LEAVES_MEAN.name, "pass" if ok else "fail", measured,
                   expected=f"with baseline 0 and with −L (no baseline at all), ‖mean of {draws} − ∂L/∂pre‖ "
                            "≤ 3·√(tr Cov/M) (one example, linear units, MSE, σ = 1)")


BASELINE_LEAVES_MEAN = Claim(
    name="baseline_leaves_mean_unchanged",
    rules=("node_perturbation",),
    statement="Subtracting a baseline that does not depend on the current noise leaves the mean estimate "
              "unchanged (REINFORCE): measured against the exact ∂L/∂pre with the clean loss as "
              "baseline and with none (the raw perturbed loss); only the variance differs.",
    source=f"{WILLIAMS_1992} (reinforcement baselines)",
    precondition=always,
    measure=_baseline,
)
