"""Target propagation and difference target propagation (Lee et al. 2015; Bartunov et al. 2018).

On a layered chain ``x = h_0 → h_1 → … → h_{L-1} → h_L = y`` each hidden population gets a
*target* activity ``ĥ_l`` and learns its own forward weight by a layer-local loss:

* top target, ``top_target = "penultimate"`` (Lee's DTP, the default): the penultimate
  population steps along the loss gradient, ``ĥ_{L-1} = h_{L-1} − α·∂ℓ/∂h_{L-1}`` with ``ℓ``
  each example's loss (the batch-mean gradient times the batch size, so α is a step in
  activity units whatever the batch); ``top_target = "output"`` (Bartunov's SDTP): the
  output's target is the correct output, ``ĥ_L = onehot(label)`` for cross-entropy (then
  ``h_L`` is the softmax probability, ``y.prob``) or the regression target for MSE, and the
  inverse ``g_L: y → h_{L-1}`` carries it down like any other (α is unused). Either way the
  output population's weights and bias learn from the task loss itself, exactly as under
  backprop;
* ``target_propagation``: ``ĥ_l = g_{l+1}(ĥ_{l+1})``;
  ``difference_target_propagation``: ``ĥ_l = g_{l+1}(ĥ_{l+1}) − g_{l+1}(h_{l+1}) + h_l``,
  computed as its own op after the two applications of ``g`` (``circuits compile`` shows
  it), summed left to right so that equal ``g`` terms cancel exactly;
* local loss ``mean_b ½‖h_l − ĥ_l‖²`` (the MSE op's scaling), so the hidden population's
  error is ``h_l.grad = (h_l − ĥ_l)/batch`` and ``h_l.delta = h_l.grad ⊙ f'(h_l.pre)``;
  the weight into ``h_l`` learns ``h_{l-1}.rate.T @ h_l.delta``, its bias ``Σ_batch
  h_l.delta``. These estimates are what ``Model.deltas`` returns; with ``α`` small they
  approximate ``α ×`` the gradient, not the gradient (``Model.gradients`` stays backprop).

The learned inverse ``g_{l+1}`` is the feedback projection ``h_{l+1} → h_l`` (weight ``V`` of
shape ``(size_{l+1}, size_l)``) plus an inverse bias ``c`` declared by this rule
(parameter ``"h_{l+1}->h_l.inverse_bias"``): ``g(u) = f_l(u @ V + c)``, where the rate
function ``f_l`` is the *target* population's own activation. Hidden → hidden inverses are
used, and the output's inverse ``y → h_{L-1}`` under SDTP only (Lee's top target does not
need it; a spec that has one keeps it unused). ``rule.auto_feedback = true`` creates the
missing ones (Glorot-uniform, plastic).

Inverse training (train mode only) follows Lee's code, "noise-preserving": for each plastic
inverse, ``h̃_l = h_l + σξ`` and ``mean_b ½‖g(f_{l+1}(h̃_l)) − h̃_l‖²`` is minimised over ``V``
and ``c`` alone (the forward weights are constants in it; ``f_L`` is the softmax for the
output under cross-entropy), with learning rate ``inverse_lr`` (a feedback projection's own
``lr`` overrides it). Forward and inverse updates are separate phases (``update`` and
``inverse_update``) with their own optimizer state, but one optimizer kind
(``rule.optimizer``). A feedback projection with ``plastic = false`` is a fixed inverse.
``schedule`` orders the two within every training step (one batch):

* ``"parallel"`` (the default): ``forward, loss, targets, inverse, update, inverse_update``.
  The targets of step ``t`` are carried down by the inverses as they were before step
  ``t``; the inverses learn from the same activities in the same step.
* ``"alternating"``: ``forward, loss, inverse, inverse_update, targets, update``. The
  inverses take their step first, and the targets of step ``t`` are carried down by the
  inverses *after* it; inverse and forward updates alternate batch by batch. (Lee's code
  and Bartunov's DTP-A alternate whole epochs: a rule's program runs once per batch and
  does not see epoch boundaries, so that coarser grain is not available here.)

Both schedules see the same forward weights and activities in every phase of a step (the
forward update comes last either way); probe programs (``Model.deltas``, alignment) train
no inverse, so they show the forward estimates under the current inverses for both. Not
implemented yet: Bartunov's AO-SDTP (auxiliary output features).

``feedback = "jacobian"`` replaces ``g_{l+1}`` by the linear map ``u ↦ (u ⊙ f'_{l+1}) @
W_{l+1}.T``, the transposed Jacobian of the forward layer at the current activity
(rules.md §3 E.20): then DTP's targets are ``ĥ_l = h_l − α·∂ℓ/∂h_l`` and every update is
α times backprop's. It needs no feedback projections and trains none, and it goes with
the penultimate top target only.

Restrictions, checked at compile time: one input, a chain with no skips or branches, no
lateral projections, elementwise hidden rate functions (not softmax).
"""

from __future__ import annotations

import attrs

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rates import PLAIN, RateParams
from circuits.rules.base import Rule, find_feedback
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import CircuitSpec, InitSpec, ProjectionSpec

__all__ = ["TargetPropagation", "DifferenceTargetPropagation", "TP_PARAMS", "inverse_bias",
           "target", "chain_pairs", "activity", "rate_function", "rate_params", "probabilities"]

TP_PARAMS: tuple[Param, ...] = (
    *COMMON_PARAMS,
    Param("alpha", 0.1, "step α of the penultimate target ĥ = h − α·∂ℓ/∂h (ℓ: one example's loss)",
          minimum=0.0),
    Param("inverse_lr", 0.01, "learning rate of the inverses g: feedback weights and inverse biases "
          "(a feedback projection's own lr overrides it)", minimum=0.0, open_minimum=True),
    Param("inverse_noise", 0.1, "standard deviation σ of the noise added to activity for inverse "
          "training", minimum=0.0),
    Param("feedback", "learned", "learned: g(u) = f(u @ V + c) from the feedback projections; "
          "jacobian: g(u) = (u ⊙ f') @ Wᵀ, the transposed Jacobian of the forward layer",
          choices=("learned", "jacobian")),
    Param("top_target", "penultimate", "penultimate: ĥ_{L-1} = h_{L-1} − α·∂ℓ/∂h_{L-1} (Lee et al.); "
          "output: ĥ_L is the correct output, carried down by the inverse y → h_{L-1} (Bartunov's SDTP)",
          choices=("penultimate", "output")),
    Param("auto_feedback", False, "create missing inverse projections h_{l+1} → h_l "
          "(Glorot-uniform, plastic)"),
    Param("schedule", "parallel", "parallel: each step's targets use the inverses from before the step, "
          "whose update runs beside the forward one; alternating: the inverses take their step first and "
          "the targets use the updated inverses (inverse and forward updates alternate batch by batch)",
          choices=("parallel", "alternating")),
)

_PHASE = "targets"


def inverse_bias(feedback: ProjectionSpec | str) -> str:
    """Public name (and buffer) of the inverse bias ``c`` of a feedback projection."""
    return f"{feedback if isinstance(feedback, str) else feedback.name}.inverse_bias"


def target(pop: str) -> str:
    """Buffer of ``pop``'s target activity ``ĥ``."""
    return f"{pop}.target"


def chain_pairs(graph: CircuitGraph) -> list[tuple[str, str]]:
    """``(h_{l+1}, h_l)`` for every inverse the rule uses on a layered chain, top first.

    Every pair of consecutive hidden populations, plus ``(output, h_{L-1})`` under
    ``top_target = "output"``.
    """
    order = graph.forward_order()
    top = order[1:] if graph.spec.rule.params.get("top_target") == "output" else order[1:-1]
    return [(upper, lower) for lower, upper in reversed(list(zip(top, top[1:])))]


def probabilities(graph: CircuitGraph, pop: str) -> bool:
    """Whether ``pop``'s activity, to target propagation, is a softmax of its pre-activation.

    True for the output under cross-entropy: its target is a label distribution.
    """
    return pop == graph.output and graph.spec.task.loss == "cross_entropy"


def activity(b: Builder, pop: str) -> str:
    """The activity buffer targets are compared with: ``b.rate(pop)``, or ``y.prob`` (see above)."""
    if probabilities(b.graph, pop) and b.graph.population(pop).activation != "softmax":
        return f"{pop}.prob"
    return b.rate(pop)


def rate_function(graph: CircuitGraph, pop: str) -> str:
    """The rate function ``f`` that maps ``pop``'s pre-activation to :func:`activity`."""
    return "softmax" if probabilities(graph, pop) else graph.population(pop).activation


def rate_params(graph: CircuitGraph, pop: str) -> RateParams:
    """The parameters of :func:`rate_function` (none for the softmax of probabilities)."""
    return PLAIN if probabilities(graph, pop) else graph.population(pop).rate_params


class TargetPropagation(Rule):
    """TP: ``ĥ_l = g(ĥ_{l+1})``; each hidden population learns ``½‖h_l − ĥ_l‖²`` locally."""

    signature = RuleSignature(
        name="target_propagation",
        doc="Target propagation: learned inverses carry targets down; layer-local losses.",
        params=TP_PARAMS,
        needs="a layered chain and a plastic feedback projection h_{l+1}→h_l (the learned inverse) "
              "for every pair of consecutive hidden populations (and output→h_{L-1} under "
              "top_target = 'output'; none under feedback = 'jacobian')",
    )

    # -- graph -------------------------------------------------------------------------------------

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        params = spec.rule.params
        if not params.get("auto_feedback") or params.get("feedback") == "jacobian":
            return spec
        graph = CircuitGraph(spec)
        if not graph.is_layered():
            return spec  # check() says why
        taken = {p.name for p in spec.projections}
        extra = []
        for upper, lower in chain_pairs(graph):
            if find_feedback(graph, upper, lower) is not None:
                continue
            name = f"{upper}->{lower}" if f"{upper}->{lower}" not in taken else f"{upper}->{lower}_inverse"
            extra.append(ProjectionSpec(source=upper, target=lower, type="feedback", name=name,
                                        init=InitSpec(scheme="xavier"), bias=False, plastic=True))
        return attrs.evolve(spec, projections=spec.projections + tuple(extra)) if extra else spec

    def check(self, graph: CircuitGraph) -> None:
        super().check(graph)
        where = f"{graph.spec.source}: rule '{self.name}'"
        if graph.projections("lateral"):
            raise CompileError(f"{where} does not support lateral projections yet; remove projection "
                               f"'{graph.projections('lateral')[0].name}'")
        if not graph.is_layered():
            raise CompileError(f"{where} needs a layered chain input → h1 → … → output (one input, each "
                               "population projecting only to the next); skip connections and branches "
                               "are not supported yet")
        params = graph.spec.rule.params
        if params.get("top_target") == "output" and params.get("feedback") == "jacobian":
            raise CompileError(f"{graph.spec.source}: rule.feedback: 'jacobian' goes with rule.top_target = "
                               "'penultimate' (got top_target = 'output')")
        if params.get("schedule") == "alternating" and params.get("feedback") == "jacobian":
            raise CompileError(f"{graph.spec.source}: rule.schedule: 'alternating' orders the training of "
                               "learned inverses, and feedback = 'jacobian' has none; set rule.schedule = "
                               "'parallel' or rule.feedback = 'learned'")
        if params.get("top_target") == "output" and not graph.forward_order()[1:-1]:
            raise CompileError(f"{where}: top_target = 'output' needs at least one hidden population")
        for pop in graph.forward_order()[1:-1]:
            if graph.population(pop).activation == "softmax":
                raise CompileError(f"{graph.spec.source}: populations.{pop}.activation: rule '{self.name}' "
                                   "needs an elementwise rate function for hidden populations (got 'softmax')")
        if params.get("feedback") == "jacobian":
            return
        for upper, lower in chain_pairs(graph):
            if find_feedback(graph, upper, lower) is None:
                raise CompileError(
                    f"{where} needs a feedback projection from '{upper}' to '{lower}' (the learned inverse); "
                    f"add [[projections]] from = \"{upper}\", to = \"{lower}\", type = \"feedback\", "
                    "plastic = true (or set rule.auto_feedback = true)")

    # -- program -----------------------------------------------------------------------------------

    def emit(self, b: Builder) -> None:
        """Forward, loss, targets and local errors, inverse training, the two update phases.

        The inverse phases (train mode only) come after the targets under ``schedule =
        "parallel"``, before them under ``"alternating"``.
        """
        learned = b.params["feedback"] == "learned"
        inverses = [find_feedback(b.graph, up, low) for up, low in chain_pairs(b.graph)] if learned else []
        for proj in inverses:
            name = b.add_buffer(inverse_bias(proj), (b.size(proj.target),), "param",
                                doc=f"bias of the inverse {proj.source} → {proj.target}")
            b.public[name] = name
            b.lr_of[name] = b.lr_of[proj.name] = proj.lr if proj.lr is not None else b.params["inverse_lr"]
        b.lower_forward()
        b.lower_loss()
        if b.mode == "infer":
            return
        plastic = [p for p in inverses if p.plastic] if b.mode == "train" else []
        alternating = b.params["schedule"] == "alternating"
        if plastic and alternating:
            self._lower_inverse_updates(b, *self._train_inverses(b, plastic),
                                        doc="apply the inverses' updates before the targets use them "
                                            "(schedule = alternating)")
        chain = b.graph.forward_order()
        hidden, out = chain[1:-1], chain[-1]
        into_out = b.graph.incoming(out)[0]
        if into_out.plastic:
            b.learn(into_out.name, b.rate(into_out.source), b.delta(out))
        b.learn_bias(out, b.delta(out))
        if hidden:
            top = ("the correct output" if b.params["top_target"] == "output"
                   else "a step along −∂ℓ/∂h of the penultimate population")
            b.phase(_PHASE, doc=f"targets: {top}, carried down by g; local errors")
            if b.params["top_target"] == "output":
                self._output_target(b)
            else:
                self._top_target(b, hidden[-1], into_out)
            for upper, lower in chain_pairs(b.graph):
                self._propagate(b, lower, upper)
            for pop in hidden:
                self._local_error(b, pop)
        estimates = self._train_inverses(b, plastic) if plastic and not alternating else None
        b.lower_updates()
        if estimates is not None:
            self._lower_inverse_updates(b, *estimates, doc="apply the inverses' updates (their own learning rate)")

    @staticmethod
    def _lower_inverse_updates(b: Builder, weights: dict[str, list[tuple[str, str, float]]],
                               biases: dict[str, list[tuple[str, float]]], *, doc: str) -> None:
        """Lower the inverses' estimates into their own phase, ``inverse_update``.

        They are lowered on their own, so that they never mix with the forward estimates that
        ``b.learned`` collects.
        """
        b.lower_updates("inverse_update", terms=(weights, biases))
        b.phase("inverse_update", doc=doc)

    def _top_target(self, b: Builder, pen: str, into_out: ProjectionSpec) -> None:
        """``pen.top_grad = y.delta @ W.T`` (= ∂loss/∂h), ``ĥ = h − α·batch·top_grad``."""
        top = b.activity(f"{pen}.top_grad", pen)
        b.emit(_PHASE,
               ops.MatMul(b.delta(b.graph.output), b.weight(into_out), top, transpose_b=True),
               ops.LinearCombination((b.rate(pen), top), (1.0, -b.params["alpha"]),
                                     b.activity(target(pen), pen), (0, 1)))

    def _output_target(self, b: Builder) -> None:
        """SDTP: ``ĥ_L`` is the correct output: ``y.target`` itself under MSE (the regression
        target, an input), ``y.target = y.prob − batch·y.delta = onehot(label)`` under cross-entropy."""
        out = b.graph.output
        if not probabilities(b.graph, out):
            return
        top = activity(b, out)
        if top != b.rate(out):
            b.emit(_PHASE, ops.Activate("softmax", b.settled(out), b.activity(top, out)))
        # The logits' delta is (softmax − onehot)/batch, so no one-hot op is needed.
        b.emit(_PHASE, ops.LinearCombination((top, b.delta(out)), (1.0, -1.0), b.activity(target(out), out),
                                             (0, 1)))

    def _g(self, b: Builder, lower: str, upper: str, source: str, tag: str, out: str | None = None) -> str:
        """Emit ``g_{upper→lower}(source)`` into a buffer (``out`` if given); return its name."""
        if b.params["feedback"] == "jacobian":
            proj = b.graph.incoming(upper)[0]
            scaled = source
            if not b.linear(upper):
                scaled = b.activity(f"{upper}->{lower}.{tag}_scaled", upper)
                fn, params = b.rate_function(upper)
                b.emit(_PHASE, ops.ActivationDeriv(fn, b.pre(upper), b.rate(upper), source, scaled, params=params))
            result = b.activity(out or f"{upper}->{lower}.{tag}", lower)
            b.emit(_PHASE, ops.MatMul(scaled, b.weight(proj), result, transpose_b=True))
            return result
        feedback = find_feedback(b.graph, upper, lower)
        return apply_inverse(b, _PHASE, feedback, source, out or f"{feedback.name}.{tag}")

    def _propagate(self, b: Builder, lower: str, upper: str) -> None:
        """TP: ``ĥ_lower = g(ĥ_upper)``."""
        self._g(b, lower, upper, target(upper), "g_target", out=target(lower))

    def _local_error(self, b: Builder, pop: str) -> None:
        """``grad = (h − ĥ)/batch``, ``delta = grad ⊙ f'(pre)``; the weight into ``pop`` learns."""
        rate = b.rate(pop)
        grad = b.activity(b.grad(pop), pop)
        b.emit(_PHASE, ops.LinearCombination((rate, target(pop)), (1.0, -1.0), grad, (-1, -1)))
        if b.graph.population(pop).dropout > 0 and b.mode == "train":
            b.emit(_PHASE, ops.Multiply(f"{pop}.mask", grad))
        if not b.linear(pop):
            fn, params = b.rate_function(pop)
            b.emit(_PHASE, ops.ActivationDeriv(fn, b.pre(pop), rate, grad, b.activity(b.delta(pop), pop),
                                               params=params))
        proj = b.graph.incoming(pop)[0]
        if proj.plastic:
            b.learn(proj.name, b.rate(proj.source), b.delta(pop))
        b.learn_bias(pop, b.delta(pop))

    def _train_inverses(self, b: Builder, inverses: list[ProjectionSpec]
                        ) -> tuple[dict[str, list[tuple[str, str, float]]], dict[str, list[tuple[str, float]]]]:
        """Emit the inverse phase; return the estimates of ``V`` and ``c`` (lowered after the forward ones)."""
        weights: dict[str, list[tuple[str, str, float]]] = {}
        biases: dict[str, list[tuple[str, float]]] = {}
        phase = "inverse"
        b.phase(phase, doc="each inverse g learns to undo its forward layer on noise-corrupted activity")
        sigma = b.params["inverse_noise"]
        for fb in inverses:
            lower, upper = fb.target, fb.source
            forward = b.graph.incoming(upper)[0]
            noise = b.activity(f"{fb.name}.noise", lower)
            corrupt = b.activity(f"{fb.name}.corrupt", lower)
            b.emit(phase, ops.GaussianNoise(sigma, noise, stream=f"{fb.name}.inverse_noise"),
                   ops.LinearCombination((b.rate(lower), noise), (1.0, 1.0), corrupt))
            up_pre = b.activity(f"{fb.name}.corrupt_pre", upper)
            b.emit(phase, ops.MatMul(corrupt, b.weight(forward), up_pre))
            if b.graph.has_bias(upper):
                b.emit(phase, ops.AddBias(b.bias(upper), up_pre))
            up_rate = up_pre
            if rate_function(b.graph, upper) != "linear":
                up_rate = b.activity(f"{fb.name}.corrupt_up", upper)
                b.emit(phase, ops.Activate(rate_function(b.graph, upper), up_pre, up_rate,
                                           rate_params(b.graph, upper)))
            recon = apply_inverse(b, phase, fb, up_rate, f"{fb.name}.recon")
            grad = b.activity(f"{fb.name}.recon_grad", lower)
            loss = b.add_buffer(f"{fb.name}.inverse_loss", (), "temp",
                                doc=f"mean ½‖g(f(h̃)) − h̃‖² of the inverse {fb.name}")
            b.emit(phase, ops.MeanSquaredError(recon, corrupt, grad, loss))
            delta = grad
            if not b.linear(lower):
                delta = b.activity(f"{fb.name}.recon_delta", lower)
                fn, params = b.rate_function(lower)
                b.emit(phase, ops.ActivationDeriv(fn, f"{fb.name}.recon_pre", recon, grad, delta, params=params))
            weights[fb.name] = [(up_rate, delta, 1.0)]
            biases[inverse_bias(fb)] = [(delta, 1.0)]
        return weights, biases


class DifferenceTargetPropagation(TargetPropagation):
    """DTP: ``ĥ_l = g(ĥ_{l+1}) − g(h_{l+1}) + h_l``, the difference correction for an imperfect g."""

    signature = RuleSignature(
        name="difference_target_propagation",
        doc="Difference target propagation: TP with the correction h − g(h_{l+1}) for imperfect inverses.",
        params=TP_PARAMS,
        needs="a layered chain and a plastic feedback projection h_{l+1}→h_l (the learned inverse) "
              "for every pair of consecutive hidden populations (and output→h_{L-1} under "
              "top_target = 'output'; none under feedback = 'jacobian')",
    )

    def _propagate(self, b: Builder, lower: str, upper: str) -> None:
        """``g(ĥ_upper)`` and ``g(h_upper)``, then the difference correction as its own op."""
        moved = self._g(b, lower, upper, target(upper), "g_target")
        still = self._g(b, lower, upper, activity(b, upper), "g_rate")
        b.emit(_PHASE, ops.LinearCombination((moved, still, b.rate(lower)), (1.0, -1.0, 1.0),
                                             b.activity(target(lower), lower)))


def apply_inverse(b: Builder, phase: str, feedback: ProjectionSpec, source: str, out: str) -> str:
    """Emit ``out = f_lower(source @ V + c)`` (the pre-activation is ``out`` itself for linear units)."""
    lower = feedback.target
    linear = b.linear(lower)
    pre = b.activity(out if linear else f"{out}_pre", lower)
    b.emit(phase, ops.MatMul(source, b.weight(feedback), pre),
           ops.AddBias(inverse_bias(feedback), pre))
    if not linear:
        fn, params = b.rate_function(lower)
        b.emit(phase, ops.Activate(fn, pre, b.activity(out, lower), params))
    return out
