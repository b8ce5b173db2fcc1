"""Claims about exact gradients: the reference itself, tied feedback, the output layer."""

from __future__ import annotations

import numpy as np

from circuits.claims.base import Claim, Outcome, always, mirrored, random_batch, relative_error, variant
from circuits.claims.papers import LIAO_2016, LILLICRAP_2016, NOKLAND_2016, RUMELHART_1986
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.spec import CircuitSpec

__all__ = ["REFERENCE_IS_EXACT", "TIED_FEEDBACK_IS_BACKPROP", "OUTPUT_LAYER_IS_BACKPROP", "UNIFORM_SIGN_IS_BACKPROP"]
# (_tie_feedback, finite_difference_error and output_layer_gap are shared with claims of other rule families)

PER_EDGE_FEEDBACK = ("feedback_alignment", "kolen_pollack", "weight_mirror")
FA_FAMILY = ("feedback_alignment", "direct_feedback_alignment", "kolen_pollack", "weight_mirror")


OWN_REFERENCE_CLAIM = {"equilibrium_propagation": "implicit_gradient_is_exact"}
"""Rules whose reference gradient is checked by a claim of their own, under the conditions it needs
(an energy rule's loss is only differentiable once its relaxation is run to a tight tolerance)."""


def _no_own_reference(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    claim = OWN_REFERENCE_CLAIM.get(spec.rule.name)
    return None if claim is None else f"checked by {claim}, which first relaxes to a tight tolerance"


def finite_difference_error(model: Model, x: np.ndarray, y: np.ndarray, grads: dict[str, np.ndarray],
                            rng: np.random.Generator, *, step: float = 1e-5, per_param: int = 6) -> tuple[float, int]:
    """Relative error of ``grads`` against central differences of the model's loss, at
    ``per_param`` random coordinates of every parameter; returns the error and the count."""
    fd, exact = [], []
    for name, grad in grads.items():
        param = model.params[name]
        for _ in range(per_param):
            index = tuple(int(rng.integers(0, n)) for n in param.shape)
            old = float(param[index])
            param[index] = old + step
            up = model.evaluate(x, y)[0]
            param[index] = old - step
            down = model.evaluate(x, y)[0]
            param[index] = old
            fd.append((up - down) / (2 * step))
            exact.append(float(grad[index]))
    return relative_error(np.array(exact), np.array(fd)), len(fd)


def _reference_is_exact(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec, plain_sgd=False), registry=registry)
    x, y = random_batch(model, 4, rng)
    step = 1e-5
    error, count = finite_difference_error(model, x, y, model.gradients(x, y), rng, step=step)
    tolerance = 1e-5
    return Outcome(REFERENCE_IS_EXACT.name, "pass" if error < tolerance else "fail",
                   {"relative_error": error, "coordinates": float(count)},
                   expected=f"relative error < {tolerance:g} (central differences, h = {step:g}, float64)")


REFERENCE_IS_EXACT = Claim(
    name="reference_gradient_is_exact",
    rules=("*",),
    statement="The gradient that every rule is compared against (Model.gradients, backprop on the "
              "same circuit) equals central finite differences of the loss: error O(h²).",
    source=f"{RUMELHART_1986} (the gradient); central differences have error O(h²)",
    precondition=_no_own_reference,
    measure=_reference_is_exact,
)


def _tie_feedback(model: Model) -> None:
    """Set every feedback projection C→h to the transpose of the forward projection h→C."""
    graph = model.graph
    for proj in graph.projections("feedback"):
        forward = [p for p in graph.projections("forward") if p.source == proj.target and p.target == proj.source]
        if forward:
            model.set_params({proj.name: mirrored(model.params[forward[0].name])})


def _gap_to_backprop(model: Model, rng: np.random.Generator, names: list[str] | None = None) -> tuple[float, int]:
    """Largest relative gap between the rule's change and −lr·gradient on a random batch.

    Over ``names`` (default: every parameter the loss depends on and backprop learns); a
    parameter that backprop learns and the rule leaves unchanged counts as a gap of 1 (a zero
    update), so a rule cannot pass by dropping an update. Returns the gap and how many
    parameters were compared.
    """
    x, y = random_batch(model, 8, rng)
    deltas, grads = model.deltas(x, y), model.gradients(x, y)
    lrs = model.compiled("probe").lrs
    names = [n for n in (names if names is not None else grads) if n in grads]
    gaps = [relative_error(deltas[n], -lrs[n] * grads[n]) if n in deltas else 1.0 for n in names]
    return max(gaps), len(names)


def _has_per_edge_feedback(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    return None if spec.rule.name in PER_EDGE_FEEDBACK else "needs a feedback projection per forward projection"


def _tied_is_backprop(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec), registry=registry)
    _tie_feedback(model)
    worst, count = _gap_to_backprop(model, rng)
    tolerance = 1e-10
    return Outcome(TIED_FEEDBACK_IS_BACKPROP.name, "pass" if worst < tolerance else "fail",
                   {"max_relative_error": worst, "parameters": float(count)},
                   expected=f"relative error < {tolerance:g} for every parameter (float64)")


TIED_FEEDBACK_IS_BACKPROP = Claim(
    name="tied_feedback_is_backprop",
    rules=PER_EDGE_FEEDBACK,
    statement="With every feedback matrix set to the transpose of its forward weight, the rule's "
              "update is exactly backprop's.",
    source=f"{LILLICRAP_2016} (FA replaces Wᵀ by B)",
    precondition=_has_per_edge_feedback,
    measure=_tied_is_backprop,
)


def output_layer_gap(model: Model, rng: np.random.Generator) -> tuple[float, int]:
    """Largest relative gap between the rule's update of the output's weights and bias and
    backprop's, and how many parameters were compared."""
    out = model.graph.output
    return _gap_to_backprop(model, rng, [p.name for p in model.graph.incoming(out)] + [f"{out}.bias"])


def _output_layer_is_backprop(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    worst, count = output_layer_gap(Model(variant(spec), registry=registry), rng)
    tolerance = 1e-10
    return Outcome(OUTPUT_LAYER_IS_BACKPROP.name, "pass" if worst < tolerance else "fail",
                   {"max_relative_error": worst, "parameters": float(count)},
                   expected=f"relative error < {tolerance:g} for the output's weights and bias")


OUTPUT_LAYER_IS_BACKPROP = Claim(
    name="output_layer_is_backprop",
    rules=(*FA_FAMILY, "sign_symmetry"),
    statement="The output population's weights and bias get exactly backprop's update: only "
              "hidden populations receive a substitute error signal.",
    source=f"{LILLICRAP_2016}; {NOKLAND_2016}; {LIAO_2016}",
    precondition=always,
    measure=_output_layer_is_backprop,
)


def _uniform_sign_is_backprop(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec), registry=registry)
    gain = model.spec.rule.params["feedback_gain"]
    graph = model.graph
    carriers = [p.name for p in graph.projections("forward") if graph.population(p.source).role == "hidden"]
    model.set_params({name: gain * np.sign(np.array(model.params[name])) for name in carriers})
    worst, count = _gap_to_backprop(model, rng)
    tolerance = 1e-10
    return Outcome(UNIFORM_SIGN_IS_BACKPROP.name, "pass" if worst < tolerance else "fail",
                   {"max_relative_error": worst, "parameters": float(count), "feedback_gain": gain,
                    "weights_set_to_gain_times_sign": float(len(carriers))},
                   expected=f"relative error < {tolerance:g} for every parameter (float64) once every forward "
                            f"weight out of a hidden population is ±g")


UNIFORM_SIGN_IS_BACKPROP = Claim(
    name="uniform_sign_is_backprop",
    rules=("sign_symmetry",),
    statement="The feedback g·sign(W) equals W wherever every weight that carries an error back has "
              "magnitude g, so there the rule's update is exactly backprop's: sign symmetry departs "
              "from backprop only through the spread of the weights' magnitudes.",
    source=f"{LIAO_2016} (feedback sign(W)); the reduction derived",
    precondition=always,
    measure=_uniform_sign_is_backprop,
)
