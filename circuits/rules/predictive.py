"""Predictive coding (Whittington & Bogacz 2017; Millidge et al. 2020; Song et al. 2020;
Rosenbaum 2022, Torch2PC).

Every non-input population ``l`` of a feed-forward DAG gets *value units* ``v_l`` (its belief,
buffer ``l.value``) and *error units* ``ε_l`` (buffer ``l.error``). Its prediction is what its
forward projections make of the populations below, ``v̂_l = f_l(Σ_s u_s @ W_{s→l} + b_l)``, and
its error is ``ε_l = v̂_l − v_l`` (Torch2PC's sign: ε has the sign of a loss derivative). The
output carries no beliefs: its error is the loss gradient at its prediction,
``ε_L = ∂L/∂v̂_L``, taken at the pre-activation (``y.delta``), where the loss is defined
(the softmax of cross-entropy acts on the output's pre-activation).

1. **Forward and loss.** The feed-forward pass writes the predictions ``v̂ = h.rate`` and the
   loss writes ``ε_L``.
2. **Beliefs** start at the predictions, ``v_l = v̂_l`` (phase ``beliefs``).
3. **Inference**, phase ``inference`` run ``inference_steps`` (n) times in a row; each sweep
   visits the hidden populations from the output down and, with η = ``inference_rate``::

       ε_l = v̂_l − v_l
       δ_l = ε_l ⊙ f_l'(pre_l)                          (the error at the pre-activation)
       φ_l = Σ_{c ∈ children(l)} δ_c @ W_{l→c}ᵀ           (= J_{c,l}ᵀ ε_c, the feedback)
       v_l ← v_l + η·(ε_l − φ_l)

   which is gradient descent on the energy ``F = Σ_l ½‖ε_l‖² + L`` with step η. Each error is
   computed from the beliefs of the previous sweep, so within a sweep the order of the
   populations does not matter, and ``ε_l`` of sweep t+1 is ``(1 − η)ε_l + η Σ_c J_cᵀ ε_c``
   of sweep t: with η = 1 the error signal moves down one population per sweep.
4. **Learning.** Each forward projection s→l learns ``u_sᵀ @ δ_l`` and each bias ``Σ_batch δ_l``
   (the gradient of F with respect to the parameter), from the errors of the last sweep.
   These estimates are what ``Model.deltas`` returns.

``variant`` chooses what the predictions and Jacobians are evaluated at:

* ``"fixed_prediction"`` (Millidge 2020; Torch2PC ``FixedPredPCPredErrs``, the default):
  the predictions ``v̂``, the Jacobians ``J`` (through ``f'(pre)``) and the sources ``u_s`` of
  the weight update are frozen at the feed-forward pass, and ``ε_L`` is the feed-forward loss
  gradient. The errors then converge to backprop's ``∂L/∂v̂_l`` exactly; with η = 1 after n
  sweeps the errors of populations at most n − 1 projections below the output (along every
  path) are exact, so ``n ≥ L`` (the circuit's depth in projections) gives backprop exactly,
  and populations at least n projections below the output (along every path) still have 0.
* ``"strict"`` (Torch2PC ``StrictPCPredErrs``, Whittington & Bogacz): every sweep recomputes
  the predictions from the *current* beliefs, ``v̂_l = f_l(Σ_s u_s @ W + b)`` with
  ``u_s = v_s`` for hidden sources and the clamped data for inputs (buffers ``l.pred_pre``,
  ``l.pred``), and the output's error from the loss at its current prediction. Jacobians are
  taken at the current beliefs as well. A final phase ``settle`` recomputes predictions and
  errors at the last beliefs, so the weight update ``u_sᵀ @ δ_l`` is the gradient of F at the
  final state. It approximates backprop with an error that grows with the output error.

Restrictions, checked at compile time: no lateral projections, no dropout. Feedback projections
are ignored: the error units send their signals through the transposed forward weights.
"""

from __future__ import annotations

from circuits import ops
from circuits.compile import Builder, topographic
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rules.base import Rule, learn_forward
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["PredictiveCoding", "PC_PARAMS", "VARIANTS", "value", "error", "error_delta", "feedback",
           "belief_step", "prediction", "INFERENCE", "SETTLE"]

VARIANTS = ("fixed_prediction", "strict")

PC_PARAMS: tuple[Param, ...] = (
    *COMMON_PARAMS,
    Param("variant", "fixed_prediction", "fixed_prediction: predictions and Jacobians frozen at the "
          "feed-forward pass (exact backprop for η = 1, n ≥ depth); strict: both at the current beliefs",
          choices=VARIANTS),
    Param("inference_steps", 20, "number n of inference sweeps per batch", minimum=1, maximum=100_000),
    Param("inference_rate", 0.1, "step η of the value units: v ← v + η(ε − Jᵀε_above)",
          minimum=0.0, maximum=1.0, open_minimum=True),
)

INFERENCE = "inference"
SETTLE = "settle"


def value(pop: str) -> str:
    """Buffer of ``pop``'s value units (its belief ``v``)."""
    return f"{pop}.value"


def error(pop: str) -> str:
    """Buffer of ``pop``'s error units ``ε = v̂ − v``."""
    return f"{pop}.error"


def feedback(pop: str) -> str:
    """Buffer of the feedback ``Σ_c J_cᵀ ε_c`` that ``pop``'s value units receive from above."""
    return f"{pop}.feedback"


def belief_step(pop: str) -> str:
    """Buffer of the change ``η(ε − feedback)`` of ``pop``'s value units in one sweep."""
    return f"{pop}.belief_step"


def prediction(pop: str) -> tuple[str, str]:
    """Buffers ``(pre-activation, activity)`` of ``pop``'s prediction at the current beliefs (strict)."""
    return f"{pop}.pred_pre", f"{pop}.pred"


def _strict(b: Builder) -> bool:
    return b.params["variant"] == "strict"


def _pre(b: Builder, pop: str) -> str:
    """Where ``pop``'s prediction has its pre-activation (the feed-forward one unless strict)."""
    return prediction(pop)[0] if _strict(b) else b.pre(pop)


def _predicted(b: Builder, pop: str) -> str:
    """Where ``pop``'s prediction ``v̂`` lives (a linear population's is its pre-activation)."""
    if not _strict(b):
        return b.rate(pop)
    pre, rate = prediction(pop)
    return pre if b.linear(pop) else rate


def error_delta(b: Builder, pop: str) -> str:
    """Buffer of ``pop``'s error at its pre-activation, ``ε ⊙ f'(pre)``.

    For the output, the loss gradient at the pre-activation; for a linear hidden population,
    the error buffer itself (no copy).
    """
    if pop == b.graph.output and not _strict(b):
        return b.delta(pop)  # the feed-forward loss gradient
    if pop == b.graph.output and b.graph.spec.task.loss == "cross_entropy":
        return f"{pop}.error_delta"  # the loss's own gradient at the logits
    return error(pop) if b.linear(pop) else f"{pop}.error_delta"


def _source(b: Builder, pop: str) -> str:
    """What a projection out of ``pop`` carries: the clamped data, the prediction, or the belief."""
    if b.graph.population(pop).role == "input" or not _strict(b):
        return b.rate(pop)
    return value(pop)


class PredictiveCoding(Rule):
    """Value and error units relax by gradient descent on the prediction-error energy, then learn locally."""

    signature = RuleSignature(
        name="predictive_coding",
        doc="Predictive coding: value and error units per population; inference sweeps, then local "
            "learning from the prediction errors.",
        params=PC_PARAMS,
        needs="nothing beyond the forward graph, a DAG (feedback projections are ignored; no lateral "
              "projections, no dropout)",
    )

    # -- graph -------------------------------------------------------------------------------------

    topographic = True

    def check(self, graph: CircuitGraph) -> None:
        where = f"{graph.spec.source}: rule '{self.name}'"
        conv = [p.name for p in graph.projections("forward") if p.conv is not None]
        if conv and graph.spec.rule.params.get("variant") == "strict":
            raise CompileError(f"{where} runs conv projections in variant fixed_prediction only (the strict "
                               f"variant re-predicts through dense weights); projection '{conv[0]}' convolves: "
                               "set rule.variant = \"fixed_prediction\" or remove conv")
        lateral = graph.projections("lateral")
        if lateral:
            raise CompileError(f"{where} does not support lateral projections yet (a lateral step has no "
                               f"prediction error of its own); remove projection '{lateral[0].name}'")
        for pop, spec in graph.populations.items():
            if spec.role != "input" and spec.dropout > 0:
                raise CompileError(f"{graph.spec.source}: populations.{pop}.dropout: rule '{self.name}' does "
                                   f"not support dropout yet (got {spec.dropout:g}); set it to 0")

    # -- program -----------------------------------------------------------------------------------

    def emit(self, b: Builder) -> None:
        """Forward, loss, beliefs, n inference sweeps, (strict: settle), the update phase."""
        b.lower_forward()
        b.lower_loss()
        if b.mode == "infer":
            return
        strict = _strict(b)
        steps, eta = b.params["inference_steps"], b.params["inference_rate"]
        hidden = b.graph.hidden
        if hidden:
            b.phase("beliefs", doc="value units start at the feed-forward predictions: v = v̂")
            for pop in hidden:
                b.emit("beliefs", ops.Copy(b.rate(pop), b.activity(value(pop), pop)))
            where = "the current beliefs" if strict else "the feed-forward pass (fixed predictions)"
            b.phase(INFERENCE, repeat=steps,
                    doc=f"one sweep of inference, predictions and Jacobians at {where}: "
                        f"ε = v̂ − v, v += {eta:g}·(ε − Jᵀε_above)")
            if strict:
                self._predict(b, INFERENCE)
            for pop in reversed(hidden):
                self._errors(b, INFERENCE, pop)
                self._relax(b, pop, eta)
            if strict:
                b.phase(SETTLE, doc="predictions and errors at the final beliefs")
                self._predict(b, SETTLE)
                for pop in reversed(hidden):
                    self._errors(b, SETTLE, pop)
        elif strict:
            b.phase(SETTLE, doc="the output's error at its prediction")
            self._predict(b, SETTLE)
        for proj in b.graph.projections("forward"):
            if proj.plastic:
                learn_forward(b, proj, _source(b, proj.source), error_delta(b, proj.target))
        for pop in b.graph.populations:
            if b.graph.population(pop).role != "input":
                b.learn_bias(pop, error_delta(b, pop))
        b.lower_updates()

    def _predict(self, b: Builder, phase: str) -> None:
        """Strict: ``v̂_l = f(Σ u_s @ W + b)`` at the current beliefs, and ``ε_L = ∂L/∂v̂_L``."""
        out = b.graph.output
        for pop in b.graph.forward_order():
            if b.graph.population(pop).role == "input":
                continue
            pre, rate = prediction(pop)
            b.activity(pre, pop)
            for index, proj in enumerate(b.graph.incoming(pop)):
                b.emit(phase, ops.MatMul(_source(b, proj.source), b.weight(proj), pre, accumulate=index > 0))
            if b.graph.has_bias(pop):
                b.emit(phase, ops.AddBias(b.bias(pop), pre))
            cross_entropy = pop == out and b.graph.spec.task.loss == "cross_entropy"
            if not b.linear(pop) and not cross_entropy:
                fn, params = b.rate_function(pop)
                b.emit(phase, ops.Activate(fn, pre, b.activity(rate, pop), params))
        loss = b.add_buffer(f"{out}.pred_loss", (), "temp", doc="loss at the prediction from the current beliefs")
        delta = b.activity(error_delta(b, out), out)
        if b.graph.spec.task.loss == "cross_entropy":
            b.emit(phase, ops.SoftmaxCrossEntropy(prediction(out)[0], f"{out}.labels", delta, loss))
            return
        grad = b.activity(error(out), out)
        b.emit(phase, ops.MeanSquaredError(_predicted(b, out), f"{out}.target", grad, loss))
        if not b.linear(out):
            fn, params = b.rate_function(out)
            b.emit(phase, ops.ActivationDeriv(fn, prediction(out)[0], prediction(out)[1], grad, delta, params=params))

    def _errors(self, b: Builder, phase: str, pop: str) -> None:
        """``ε = v̂ − v`` and ``δ = ε ⊙ f'(pre)`` of one hidden population."""
        b.emit(phase, ops.LinearCombination((_predicted(b, pop), value(pop)), (1.0, -1.0),
                                            b.activity(error(pop), pop)))
        if not b.linear(pop):
            fn, params = b.rate_function(pop)
            b.emit(phase, ops.ActivationDeriv(fn, _pre(b, pop), _predicted(b, pop), error(pop),
                                              b.activity(error_delta(b, pop), pop), params=params))

    def _relax(self, b: Builder, pop: str, eta: float) -> None:
        """``φ = Σ_c δ_c @ W_{pop→c}ᵀ``, ``v += η·(ε − φ)``."""
        fb = b.activity(feedback(pop), pop)
        for index, proj in enumerate(b.graph.outgoing(pop)):
            if proj.conv is not None:
                topographic.send_back(b, INFERENCE, proj, b.weight(proj), error_delta(b, proj.target), fb,
                                      accumulate=index > 0)
                continue
            b.emit(INFERENCE, ops.MatMul(error_delta(b, proj.target), b.weight(proj), fb, transpose_b=True,
                                         accumulate=index > 0))
        step = b.activity(belief_step(pop), pop)
        b.emit(INFERENCE, ops.LinearCombination((error(pop), fb), (eta, -eta), step),
               ops.Accumulate(step, value(pop)))
