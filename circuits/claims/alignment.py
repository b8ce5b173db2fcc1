"""Claims of the feedback-alignment family: conservation, alignment, zero init, KP, mirrors."""

from __future__ import annotations

import math

import attrs
import numpy as np

from circuits.claims.base import (Claim, Outcome, always, capped_data, dense_only, mirrored, loglog_slope, random_batch,
                                  relative_error, variant)
from circuits.claims.papers import AKROUT_2019, LILLICRAP_2016, NOKLAND_2016
from circuits.claims.gradient import FA_FAMILY
from circuits.data import iterate_batches
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rules.base import find_feedback
from circuits.spec import CircuitSpec, InitSpec

__all__ = ["FA_CONSERVED_QUANTITY", "ALIGNMENT_IMPROVES", "DFA_FROM_ZERO", "KP_CONTRACTION",
           "WM_MOMENT_IDENTITY"]


def _one_hidden_layer(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    model_graph = Model(variant(spec), registry=registry).graph
    if not model_graph.is_layered() or len(model_graph.hidden) != 1:
        return "needs a layered circuit input → one hidden population → output"
    return None


def _fa_conservation(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = variant(spec, activation="linear", output_activation="linear", bias=False, loss="mse")
    base = attrs.evolve(base, projections=tuple(attrs.evolve(p, lr=None) for p in base.projections))
    probe = Model(base, registry=registry)
    (x_name, h_name), out = probe.graph.forward_order()[:2], probe.graph.output
    x, y = random_batch(probe, 32, rng)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit-norm inputs: "small η" means the same for any width
    rates, drifts = [0.01, 0.005, 0.0025], []
    steps = 10
    for lr in rates:
        model = Model(attrs.evolve(base, rule=attrs.evolve(base.rule, params={**base.rule.params, "lr": lr})),
                      registry=registry)
        w0, w, b = (f"{x_name}->{h_name}", f"{h_name}->{out}", f"{out}->{h_name}")

        def q() -> np.ndarray:
            p = model.params
            return p[b].T @ p[w].T + p[w] @ p[b] - p[w0].T @ p[w0]
        start = q()
        for _ in range(steps):
            model.step(x, y)
        drifts.append(float(np.linalg.norm(q() - start)) / steps)
    slope = loglog_slope(rates, drifts)
    ok = 1.7 <= slope <= 2.3
    return Outcome(FA_CONSERVED_QUANTITY.name, "pass" if ok else "fail",
                   {"drift_slope": slope, **{f"drift_per_step@lr={r:g}": d for r, d in zip(rates, drifts)}},
                   expected="per-step drift of Q = O(η²): log-log slope in [1.7, 2.3]")


FA_CONSERVED_QUANTITY = Claim(
    name="fa_conserved_quantity",
    rules=("feedback_alignment",),
    statement="In a linear two-layer net y = x W0 W under FA, Q = Bᵀ Wᵀ + W B − W0ᵀ W0 is constant "
              "under gradient flow; a discrete step of size η moves it by O(η²). Measured on the "
              "circuit made linear, bias-free, with MSE loss and one learning rate.",
    source=f"{LILLICRAP_2016}, Supplementary Proof 1",
    precondition=_one_hidden_layer,
    measure=_fa_conservation,
)


def _hidden_params(model: Model) -> list[str]:
    hidden = set(model.graph.hidden)
    names = [p.name for p in model.graph.projections("forward") if p.target in hidden]
    return names + [f"{h}.bias" for h in hidden if f"{h}.bias" in model.params]


def _mean_hidden_angle(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    angles = model.alignment(x, y)
    return float(np.mean([angles[n] for n in _hidden_params(model) if n in angles]))


def _alignment_improves(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(spec, registry=registry)
    data = capped_data(model, 2048, 256)
    x_test, y_test = data.x_test, data.y_test
    before = after = _mean_hidden_angle(model, x_test, y_test)
    batches = np.random.default_rng(int(rng.integers(1 << 31)))
    steps, budget, every = 0, 600, 50
    while steps < budget and not (after < 80.0 and after < before):
        for index in iterate_batches(data.n_train, spec.task.batch_size, batches):
            model.step(data.x_train[index], data.y_train[index])
            steps += 1
            if steps % every == 0:
                after = _mean_hidden_angle(model, x_test, y_test)
                if (after < 80.0 and after < before) or steps >= budget:
                    break
    ok = after < 80.0 and after < before
    return Outcome(ALIGNMENT_IMPROVES.name, "pass" if ok else "fail",
                   {"angle_before_deg": before, "angle_after_deg": after, "steps": float(steps)},
                   expected=f"mean hidden-layer angle to −gradient falls below 80° (and below its start) "
                            f"within {budget} steps, checked every {every}")


ALIGNMENT_IMPROVES = Claim(
    name="alignment_improves",
    rules=FA_FAMILY,
    statement="The hidden populations' updates start far from backprop's and come within 90° of "
              "−gradient as the forward weights learn to align with the feedback (eᵀWBe > 0).",
    source=f"{LILLICRAP_2016}, Figs. 1e and 2b",
    precondition=always,
    measure=_alignment_improves,
)


def _default_scale_feedback(spec: CircuitSpec, registry: RuleRegistry) -> CircuitSpec:
    """``spec`` with every fixed feedback weight drawn ``U[-s, s]`` at the rule's default scale
    ``s`` (0.5). From zero forward weights a population's update is proportional to the activity
    below it, so the signal reaching the k-th population grows like ``s^k`` at first: with the
    small scales that keep deep circuits stable from a random start (0.01 in ``lenet_dfa_mnist``)
    a four-deep circuit stays silent for the whole budget (13.5 % train accuracy after 64 epochs
    of 512 examples), at 0.5 it learns (73 % after 8)."""
    scale = registry.get("direct_feedback_alignment").signature.param("feedback_scale").default
    projections = tuple(attrs.evolve(p, init=InitSpec(scheme="uniform", scale=scale))
                        if p.type == "feedback" and not p.plastic else p for p in spec.projections)
    return attrs.evolve(spec, projections=projections)


def _dfa_from_zero(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    zero = InitSpec(scheme="zeros")
    spec = _default_scale_feedback(spec, registry)
    dfa = Model(variant(spec, activation="tanh", init=zero), registry=registry)
    bp = Model(variant(spec, rule="backprop", activation="tanh", init=zero), registry=registry)
    data = capped_data(dfa, 512, 256)
    batches = np.random.default_rng(int(rng.integers(1 << 31)))
    for _ in range(8):
        for index in iterate_batches(data.n_train, spec.task.batch_size, batches):
            dfa.step(data.x_train[index], data.y_train[index])
            bp.step(data.x_train[index], data.y_train[index])
    _, dfa_accuracy = dfa.evaluate(data.x_train, data.y_train)
    hidden = _hidden_params(bp)
    bp_hidden = max(float(np.abs(np.asarray(bp.params[n])).max()) for n in hidden if "->" in n)
    classes = bp.graph.population(bp.graph.output).size
    if spec.task.loss != "cross_entropy":
        return Outcome(DFA_FROM_ZERO.name, "skip", reason="measured on a classification task")
    chance = 1.0 / classes
    target = chance + 0.5 * (1 - chance)
    ok = dfa_accuracy >= target and bp_hidden == 0.0
    return Outcome(DFA_FROM_ZERO.name, "pass" if ok else "fail",
                   {"dfa_train_accuracy": dfa_accuracy, "bp_max_hidden_weight": bp_hidden},
                   expected=f"DFA train accuracy ≥ {target:.2f} from zero weights; backprop's hidden weights stay 0")


DFA_FROM_ZERO = Claim(
    name="dfa_learns_from_zero_weights",
    rules=("direct_feedback_alignment",),
    statement="With every forward weight initialised at zero (tanh units, fixed feedback weights "
              "at the rule's default scale U[−0.5, 0.5]), DFA still learns, because the output "
              "error reaches the hidden populations through B; backprop's hidden weights never "
              "leave zero.",
    source=f"{NOKLAND_2016} (abstract)",
    precondition=always,
    measure=_dfa_from_zero,
)


def _pairs(model: Model) -> list[tuple[str, str]]:
    pairs = []
    for proj in model.graph.projections("forward"):
        feedback = find_feedback(model.graph, proj.target, proj.source)
        if feedback is not None and model.graph.population(proj.source).role == "hidden":
            pairs.append((proj.name, feedback.name))
    return pairs


def _kp_contraction(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec), registry=registry)
    pairs = _pairs(model)
    start = {w: np.array(model.params[w]) - mirrored(model.params[b]) for w, b in pairs}
    decay = 1.0 - model.spec.rule.params["lr"] * model.spec.rule.params["weight_decay"]
    steps, worst = 12, 0.0
    for _ in range(steps):
        model.step(*random_batch(model, 8, rng))
    for w, b in pairs:
        now = np.array(model.params[w]) - mirrored(model.params[b])
        worst = max(worst, relative_error(now, decay ** steps * start[w]))
    tolerance = 1e-10
    return Outcome(KP_CONTRACTION.name, "pass" if worst < tolerance else "fail",
                   {"decay_per_step": decay, "max_relative_error": worst, "steps": float(steps)},
                   expected=f"W_t − B_tᵀ = d^t (W_0 − B_0ᵀ) to relative error < {tolerance:g} (float64)")


KP_CONTRACTION = Claim(
    name="kp_exact_contraction",
    rules=("kolen_pollack",),
    statement="Forward and feedback weights receive transposed updates and the same decay d = 1 − "
              "lr·weight_decay, so W − Bᵀ shrinks by exactly d each step (and is invariant when d = 1).",
    source=f"{AKROUT_2019} (the KP update; the exact contraction derived)",
    precondition=always,
    measure=_kp_contraction,
)


def _wm_identity(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(variant(spec), registry=registry)
    params = model.spec.rule.params
    lr, m = params["mirror_lr"], params["mirror_batch"]
    exe = model.sim.executable(model.program, spec.task.batch_size)
    rounds = math.ceil(10 / lr)
    for _ in range(rounds):
        exe.run(["mirror"])
    measured, ok = {}, True
    for w, b in _pairs(model):
        weight = np.array(model.params[w])
        fan_in = weight.shape[0]
        error = relative_error(np.array(model.params[b]), mirrored(weight))
        predicted = math.sqrt((fan_in + 1) * lr / (2 * m))
        measured[f"relative_error[{b}]"] = error
        measured[f"predicted[{b}]"] = predicted
        ok = ok and error < 3 * predicted
    return Outcome(WM_MOMENT_IDENTITY.name, "pass" if ok else "fail", measured,
                   expected="‖B − Wᵀ‖/‖Wᵀ‖ < 3 × the sampling error √((n+1)·η/(2m)) of the mirror's "
                            "running average (E[yᵀξ]/σ² = Wᵀ)")


WM_MOMENT_IDENTITY = Claim(
    name="wm_moment_identity",
    rules=("weight_mirror",),
    statement="Noise ξ of variance σ² sent through a forward weight gives E[yᵀξ]/σ² = Wᵀ, so the "
              "mirror phase's running average drives each feedback matrix to the transpose of its "
              "forward weight, up to the sampling error of the average.",
    source=f"{AKROUT_2019} (weight mirrors)",
    precondition=dense_only,  # the predicted error counts dense samples
    measure=_wm_identity,
)
