"""Claims about rules that code errors as changes of activity: temporal derivative, recirculation.

* ``td_tied_is_backprop``: with top-down weights tied to Wᵀ, the temporal-derivative update
  tends to backprop's as the blend λ → 0, with error O(λ) (a first-order match).
* ``td_output_layer_is_backprop``: the output's own update is backprop's for any top-down B.
* ``td_topdown_learns_to_reconstruct``: adaptive top-down weights lower the error with which
  each hidden population is reconstructed from the one above.
* ``recirculation_descends_reconstruction_error`` (Hinton & McClelland 1988): in the restricted case
  (linear visible units, symmetric weights) each weight matrix's recirculation update points
  downhill on the squared reconstruction error, and its angle to −gradient closes as λ → 1.
"""

from __future__ import annotations

import attrs
import numpy as np

from circuits.claims.base import (Claim, Outcome, always, capped_data, loglog_slope, random_batch,
                                  relative_error, variant)
from circuits.claims.papers import HINTON_2007, HINTON_MCCLELLAND_1988, HINTON_WAKE_SLEEP_1995
from circuits.claims.gradient import _tie_feedback, output_layer_gap
from circuits.data import iterate_batches
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.recirculation import Recirculation
from circuits.spec import CircuitSpec

__all__ = ["TD_TIED_IS_BACKPROP", "TD_OUTPUT_LAYER_IS_BACKPROP", "TD_TOPDOWN_RECONSTRUCTS",
           "RECIRCULATION_DESCENT"]

TD = ("temporal_derivative",)
BLENDS = (0.1, 0.03, 0.01, 0.003)
REGRESSIONS = (0.9, 0.97, 0.99, 0.997)
RECONSTRUCTION_EPOCHS = 4
_SMOOTH = ("tanh", "sigmoid")


def _smooth_variant(spec: CircuitSpec, **rule_params: float) -> CircuitSpec:
    """:func:`variant` with every hidden population that is not tanh or sigmoid made tanh."""
    base = variant(spec, rule_params=rule_params)
    pops = tuple(attrs.evolve(p, activation=p.activation if p.role != "hidden" or p.activation in _SMOOTH
                              else "tanh") for p in base.populations)
    return attrs.evolve(base, populations=pops)


def _td_tied(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    x = y = None
    errors = []
    for blend in BLENDS:
        model = Model(_smooth_variant(spec, blend=blend), registry=registry)
        _tie_feedback(model)
        if x is None:
            x, y = random_batch(model, 8, rng)
        deltas, grads = model.deltas(x, y), model.gradients(x, y)
        lrs = model.compiled("probe").lrs
        errors.append(max(relative_error(deltas[n], -lrs[n] * grads[n]) for n in grads if n in deltas))
    measured = {f"relative_error@blend={b:g}": e for b, e in zip(BLENDS, errors)}
    exact = max(errors) < 1e-9
    if exact:  # no hidden population: only the output learns, exactly as backprop
        ok = True
    else:
        slope = loglog_slope(BLENDS, errors)
        measured["loglog_slope"] = slope
        ok = 0.8 <= slope <= 1.25 and all(b < a for a, b in zip(errors, errors[1:]))
    return Outcome(TD_TIED_IS_BACKPROP.name, "pass" if ok else "fail", measured,
                   expected="relative error to backprop's update O(λ): log-log slope over λ ∈ "
                            f"{{{', '.join(f'{b:g}' for b in BLENDS)}}} in [0.8, 1.25], falling at every "
                            "step (or < 1e-9 at every λ); float64, B := Wᵀ")


TD_TIED_IS_BACKPROP = Claim(
    name="td_tied_is_backprop",
    rules=TD,
    statement="With every top-down matrix tied to the transpose of its forward weight, the change "
              "of activity Δh = f(pre + Δpre) − f(pre) caused by blending the output toward the "
              "target by λ is −λ·n·(backprop's delta) + O(λ²), so the temporal-derivative update "
              "equals backprop's to first order: its relative error shrinks like λ. Measured in "
              "float64 on the circuit with piecewise-linear and linear hidden units made tanh (for "
              "those the match is exact except at units whose drive crosses a kink).",
    source=f"{HINTON_2007}; the λ → 0 rate derived",
    precondition=always,
    measure=_td_tied,
)


def _td_output(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    worst, count = output_layer_gap(Model(variant(spec), registry=registry), rng)
    tolerance = 1e-10
    return Outcome(TD_OUTPUT_LAYER_IS_BACKPROP.name, "pass" if worst < tolerance else "fail",
                   {"max_relative_error": worst, "parameters": float(count)},
                   expected=f"relative error < {tolerance:g} for the output's weights and bias, "
                            "random top-down weights, the spec's blend")


TD_OUTPUT_LAYER_IS_BACKPROP = Claim(
    name="td_output_layer_is_backprop",
    rules=TD,
    statement="The output's drive moves by −λ·n·∂loss/∂pre, so its rate of change per unit of "
              "blend is exactly backprop's delta: the output's weights and bias get backprop's "
              "update for any top-down weights and any λ.",
    source=f"{HINTON_2007}; derived",
    precondition=always,
    measure=_td_output,
)


def _is_adaptive(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    if spec.rule.params.get("topdown") != "adaptive":
        return "concerns adaptive top-down weights (rule.topdown = \"adaptive\")"
    return None


def _reconstruction_error(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Mean over examples and hidden populations of ‖f(Σ s B + c) − h‖², from the probe program."""
    exe = model.run("probe", x, y)
    errors = [float(np.sum(np.square(len(x) * np.asarray(model.backend.to_numpy(
        exe.arrays[f"{pop}.recon_error"]))))) / len(x) for pop in model.graph.hidden]
    return float(np.mean(errors))


def _train_reconstruction(spec: CircuitSpec, registry: RuleRegistry, seed: int) -> tuple[float, float]:
    """Reconstruction error on held-out data before and after a few epochs of training."""
    model = Model(spec, registry=registry)
    data = capped_data(model, 512, 256)
    before = _reconstruction_error(model, data.x_test, data.y_test)
    batches = np.random.default_rng(seed)
    for _ in range(RECONSTRUCTION_EPOCHS):
        for index in iterate_batches(data.n_train, spec.task.batch_size, batches):
            model.step(data.x_train[index], data.y_train[index])
    return before, _reconstruction_error(model, data.x_test, data.y_test)


def _td_reconstructs(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    learning = variant(spec)
    if not Model(learning, registry=registry).graph.hidden:
        return Outcome(TD_TOPDOWN_RECONSTRUCTS.name, "skip", reason="the circuit has no hidden population")
    # The control run is the same in every respect except that the top-down weights and biases
    # do not learn (a vanishing top-down rate; projection rates cleared so that none overrides it).
    frozen = variant(spec, rule_params={"topdown_lr": 1e-300})
    frozen = attrs.evolve(frozen, projections=tuple(
        attrs.evolve(p, lr=None) if p.type == "feedback" else p for p in frozen.projections))
    seed = int(rng.integers(1 << 31))
    before, after = _train_reconstruction(learning, registry, seed)
    _, control = _train_reconstruction(frozen, registry, seed)
    ok = after < before and after < control
    return Outcome(TD_TOPDOWN_RECONSTRUCTS.name, "pass" if ok else "fail",
                   {"reconstruction_error_before": before, "reconstruction_error_after": after,
                    "frozen_topdown_error_after": control, "epochs": float(RECONSTRUCTION_EPOCHS)},
                   expected=f"held-out reconstruction error after {RECONSTRUCTION_EPOCHS} epochs on up to 512 "
                            "training examples below its start and below that of the same run with the "
                            "top-down weights frozen (plain SGD, float64)")


TD_TOPDOWN_RECONSTRUCTS = Claim(
    name="td_topdown_learns_to_reconstruct",
    rules=TD,
    statement="Adaptive top-down weights follow the delta rule of wake–sleep's wake phase, "
              "ΔB ∝ s_aboveᵀ (h − f(s_above B + c)), and so lower the error with which each hidden "
              "population is reconstructed from the population above while the forward weights learn: "
              "below its start, and below a control run whose top-down weights stay frozen.",
    source=f"{HINTON_WAKE_SLEEP_1995} (wake phase); {HINTON_2007}",
    precondition=_is_adaptive,
    measure=_td_reconstructs,
)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm > 0 else 0.0


def _recirculation(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    x = None
    cosines: dict[str, list[float]] = {}
    combined = []
    for lam in REGRESSIONS:
        model = Model(variant(spec, output_activation="linear", rule_params={"regression": lam}),
                      registry=registry)
        visible, hidden, _ = Recirculation.loop(model.graph)
        w_ji, w_ij = model.graph.incoming(hidden)[0].name, model.graph.incoming(model.graph.output)[0].name
        model.set_params({w_ij: np.array(model.params[w_ji]).T})  # symmetric weights
        if x is None:
            x = rng.random((16, model.graph.population(visible).size))
        deltas, grads = model.deltas(x, x), model.gradients(x, x)
        names = [n for n in grads if n in deltas]
        for name in names:
            cosines.setdefault(name, []).append(_cosine(deltas[name], -grads[name]))
        combined.append(_cosine(np.concatenate([np.ravel(deltas[n]) for n in names]),
                                -np.concatenate([np.ravel(grads[n]) for n in names])))
    measured: dict[str, float] = {}
    ok = True
    for name, values in cosines.items():
        gaps = [1.0 - v for v in values]
        measured[f"cos({name})@λ={REGRESSIONS[0]:g}"] = values[0]
        measured[f"cos({name})@λ={REGRESSIONS[-1]:g}"] = values[-1]
        if min(gaps) > 1e-12:
            measured[f"slope_1-cos({name})"] = loglog_slope([1 - lam for lam in REGRESSIONS], gaps)
        closing = all(later <= earlier + 1e-12 for earlier, later in zip(gaps, gaps[1:]))
        ok = ok and min(values) > 0.0 and closing and values[-1] > 0.99
    measured[f"cos(all)@λ={REGRESSIONS[-1]:g}"] = combined[-1]
    return Outcome(RECIRCULATION_DESCENT.name, "pass" if ok else "fail", measured,
                   expected="for every parameter: cos(Δ, −∇) > 0 at every λ ∈ "
                            f"{{{', '.join(f'{v:g}' for v in REGRESSIONS)}}}, 1 − cos non-increasing "
                            f"as λ → 1 and cos > 0.99 at λ = {REGRESSIONS[-1]:g} (theory: 1 − cos = "
                            "O((1 − λ)²), slope 2; exactly 1 for hidden→visible). cos(all) of the "
                            "concatenated update is reported, not tested")


RECIRCULATION_DESCENT = Claim(
    name="recirculation_descends_reconstruction_error",
    rules=("recirculation",),
    statement="With linear visible units and symmetric weights (w_ij = w_jiᵀ), the recirculation "
              "update of each weight matrix and bias points downhill on ‖y(0) − y(2)‖² (cos > 0) and "
              "its cosine with −gradient tends to 1 as the regression λ → 1: the hidden→visible "
              "update is the exact gradient times (1 − λ), the visible→hidden one is (1 − λ)² times "
              "the gradient plus O((1 − λ)³). Limitation, measured and reported as cos(all): the "
              "two updates differ by a factor (1 − λ) in size, so the concatenated update does not "
              "tend to the gradient's direction unless the visible→hidden step is scaled by "
              "1/(1 − λ). Measured in float64 on uniform [0, 1) inputs, the circuit's visible "
              "output made linear.",
    source=f"{HINTON_MCCLELLAND_1988} (abstract: 'in certain restricted cases it performs gradient "
           "descent'; the conditions are not checked against the paper); derived",
    precondition=always,
    measure=_recirculation,
)
