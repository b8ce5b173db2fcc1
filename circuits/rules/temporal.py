"""Hinton's temporal-derivative rule: error derivatives carried as rates of change of activity.

Hinton ("How to do backpropagation in a brain", NIPS 2007 deep-learning workshop; "Can the
brain do back-propagation?", 2014–16 talks) proposed that a unit need not send a separate
error signal: if the top-level activity is pushed toward the target and the change spreads
down through top-down connections, the *rate of change* of every unit's activity is its error
derivative, and the synapse rule "presynaptic activity × rate of change of postsynaptic
activity" (STDP followed by reverse STDP) does gradient descent. Here, with blend λ, batch n
and ``h_l = f(pre_l)`` the forward ("before") state:

1. **Output.** The output's drive (its pre-activation, which *is* its activity for a linear
   output) moves by ``Δy = −λ·n·y.delta``, a step λ per example along −∂ℓ_b/∂pre. Under MSE
   with a linear output this is blending the activity toward the target,
   ``y' = y + λ(t − y)``; under cross-entropy the logits move by ``λ(onehot − softmax)``.
   (A nonlinear output under MSE moves its drive by ``λ(t − y)·f'``, so that the output's
   own update stays exactly backprop's.)
2. **Top-down.** Each hidden population l, visited from the top, hears the changes of the
   populations C above it through its top-down weights ``B_{C→l}`` of shape
   ``(size_C, size_l)``: ``Δpre_l = Σ_C Δs_C @ B_{C→l}`` and its new activity is
   ``h_l' = f(pre_l + Δpre_l)``. Its change ``Δh_l = h_l' − h_l`` is a true difference of
   rates, not a derivative, and is what it sends further down (``Δs = Δh`` for hidden
   populations, the drive change ``Δy`` for the output).
3. **Learning.** Each forward weight A→l learns ``h_Aᵀ · Δh_l``: as an estimate of ∂loss/∂W
   the rule declares ``h_Aᵀ @ l.td`` with ``l.td = −Δh_l/(λ·n)`` (the rate of change per unit
   of blend, with the sign of a loss derivative); biases learn ``Σ_batch l.td``. The output
   learns from ``y.delta``, which is exactly ``−Δy/(λ·n)``.

To first order in λ, ``Δh_l = f'(pre_l) ⊙ Δpre_l``, so with ``B_{C→l} = W_{l→C}ᵀ`` every
``l.td`` equals backprop's ``l.delta`` up to O(λ) (claim ``td_tied_is_backprop``), and with any
B the rule is feedback alignment with B plus an O(λ) correction. The output's update is
backprop's for any B and any λ.

**Top-down weights** (``topdown``): ``"fixed"``: random, not plastic (the FA-like case).
``"adaptive"``: plastic, learning to reconstruct the layer below from the layer above, the
wake phase of wake–sleep: ``r_l = f(Σ_C s_C @ B_{C→l} + c_l)`` with ``s_C`` the sender's
activity (the output sends its drive, as in step 2) and ``c_l`` a top-down bias (the rule's own
parameter ``l.topdown_bias``), and the delta rule ``ΔB_{C→l} ∝ s_Cᵀ (h_l − r_l)``,
``Δc_l ∝ Σ_batch (h_l − r_l)`` (as an estimate, ``s_Cᵀ (r_l − h_l)/n``; no ``f'``, as in
wake–sleep's generative update). With B learned this way, the difference of two top-down
drives in step 2, ``(s_C' B + c) − (s_C B + c)``, makes the rule a difference-target-propagation
step with a linear top-down map. The top-down weights learn at their own rate ``topdown_lr``
(a top-down projection's own ``lr`` overrides it): the delta rule is stable only for steps
below about 2/‖s_C‖², and senders such as 800 ReLU rates or growing logits are large, so the
forward learning rate makes B diverge (seen on MNIST 784-800-800-10 at lr 0.1).

**Dropout** composes: a dropped unit is silent before and after (``h_l' = mask ⊙ f(…)``), so
it neither changes nor learns, as under backprop with the same mask. The reconstruction target
of the adaptive top-down weights is the dropped-out activity ``mask ⊙ f(pre)``, whose
expectation is ``f(pre)``: the delta rule is linear in its target, so B learns the same
expected map. **Spiking** hidden populations (``spikes = { window = T }``) are sampled before and after:
``h_l`` and ``h_l'`` are both Poisson counts over T bins divided by T (independent streams
``<p>.spikes`` and ``<p>.spikes_after``), so ``Δh_l`` is a difference of spike counts, an unbiased estimate of the rate change with variance
``(h_l + h_l')/T``; it is the signal a synapse reading pre × the change of post spike rate
would see (:mod:`circuits.spikes` measures it with an STDP trace filter instead).
**Lateral** projections are not modelled (the rule rejects them).
"""

from __future__ import annotations

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rules.base import Rule, add_feedback, find_feedback
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import CircuitSpec

__all__ = ["TemporalDerivative", "TOPDOWN_MODES"]

TOPDOWN_MODES = ("fixed", "adaptive")

_PARAMS = (
    Param("blend", 0.1, "step λ per example of the output toward the target (the claim is about λ → 0)",
          minimum=0.0, maximum=1.0, open_minimum=True),
    Param("topdown", "fixed", "fixed (random, not plastic) or adaptive (learn to reconstruct the "
          "layer below, wake phase of wake–sleep)", choices=TOPDOWN_MODES),
    Param("topdown_lr", 0.01, "learning rate of adaptive top-down weights and biases (a top-down "
          "projection's own lr overrides it)", minimum=0.0, open_minimum=True),
    Param("auto_feedback", False, "create missing top-down projections (U[-scale, scale])"),
    Param("feedback_scale", 0.5, "half-width of the created top-down weights", minimum=0.0,
          open_minimum=True),
)


class TemporalDerivative(Rule):
    """Presynaptic activity × rate of change of postsynaptic activity, after a top-down nudge."""

    signature = RuleSignature(
        name="temporal_derivative",
        doc="Hinton's temporal-derivative backprop: the output is blended toward the target, the "
            "change spreads down top-down weights, and each synapse learns pre × Δpost.",
        params=(*COMMON_PARAMS, *_PARAMS),
        needs="a top-down (feedback) projection C→h for every forward projection h→C out of a hidden "
              "population; plastic when topdown = \"adaptive\", fixed otherwise",
    )
    spikes = True

    def pairs(self, graph: CircuitGraph) -> list[tuple[str, str]]:
        """``(source, target)`` of every top-down projection the rule needs."""
        return [(p.target, p.source) for p in graph.projections("forward")
                if graph.population(p.source).role == "hidden"]

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        params = spec.rule.params
        if not params.get("auto_feedback"):
            return spec
        return add_feedback(spec, self.pairs(CircuitGraph(spec)), scale=params["feedback_scale"],
                            plastic=params["topdown"] == "adaptive")

    def check(self, graph: CircuitGraph) -> None:
        super().check(graph)
        for proj in graph.projections("lateral"):
            raise CompileError(
                f"{graph.spec.source}: projection '{proj.name}': rule '{self.name}' does not model "
                "lateral projections; remove it or choose backprop or feedback_alignment")
        adaptive = graph.spec.rule.params.get("topdown") == "adaptive"
        for source, target in self.pairs(graph):
            proj = find_feedback(graph, source, target)
            if proj is None:
                raise CompileError(
                    f"{graph.spec.source}: rule '{self.name}' needs a top-down projection from "
                    f"'{source}' to '{target}'; add [[projections]] from = \"{source}\", to = \"{target}\", "
                    f"type = \"feedback\", plastic = {'true' if adaptive else 'false'} "
                    "(or set rule.auto_feedback = true)")
            if proj.plastic != adaptive:
                mode = "adaptive" if adaptive else "fixed"
                raise CompileError(
                    f"{graph.spec.source}: projection '{proj.name}': rule '{self.name}' with "
                    f"topdown = \"{mode}\" needs plastic = {'true' if adaptive else 'false'} on it")

    # -- emission --------------------------------------------------------------------------------

    def emit(self, b: Builder) -> None:
        b.lower_forward()
        b.lower_loss()
        if b.mode == "infer":
            return
        signals = self.emit_temporal(b)
        for proj in b.graph.projections("forward"):
            if proj.plastic:
                b.learn(proj.name, b.rate(proj.source), signals[proj.target])
        for pop, signal in signals.items():
            b.learn_bias(pop, signal)
        if b.params["topdown"] == "adaptive":
            self.emit_reconstruction(b)
        b.lower_updates()

    def emit_temporal(self, b: Builder) -> dict[str, str]:
        """Nudge the output, send the change down, and return each population's learning signal.

        Returns population → buffer holding its estimate of ∂loss/∂pre (``y.delta`` for the
        output, ``l.td = −Δh_l/(λ·batch)`` for hidden populations).
        """
        blend = b.params["blend"]
        phase = "temporal"
        b.phase(phase, doc=f"output blended toward the target (λ = {blend:g}); the change spreads "
                           "down the top-down weights")
        out = b.graph.output
        change = {out: b.activity(f"{out}.change", out)}
        b.emit(phase, ops.LinearCombination((b.delta(out),), (-blend,), change[out], powers=(1,)))
        signals = {out: b.delta(out)}
        for pop in reversed(b.graph.hidden):
            terms = [(p.target, b.weight(find_feedback(b.graph, p.target, pop)))
                     for p in b.graph.outgoing(pop)]
            change[pop] = b.activity(f"{pop}.change", pop)
            if b.linear(pop):
                # f is the identity: the change of activity is the change of drive itself.
                self._topdown(b, phase, terms, change, change[pop], first=True)
            else:
                after = b.activity(f"{pop}.pre_after", pop)
                b.emit(phase, ops.Copy(b.pre(pop), after))
                self._topdown(b, phase, terms, change, after, first=False)
                rate_after = b.activity(f"{pop}.rate_after", pop)
                fn, params = b.rate_function(pop)
                b.emit(phase, ops.Activate(fn, after, rate_after, params))
                b.sample_spikes(phase, pop, rate_after, stream="spikes_after")
                if self._dropped(b, pop):
                    b.emit(phase, ops.Multiply(f"{pop}.mask", rate_after))
                b.emit(phase, ops.LinearCombination((rate_after, b.rate(pop)), (1.0, -1.0), change[pop]))
            if b.linear(pop) and self._dropped(b, pop):
                b.emit(phase, ops.Multiply(f"{pop}.mask", change[pop]))
            signals[pop] = b.activity(f"{pop}.td", pop)
            b.emit(phase, ops.LinearCombination((change[pop],), (-1.0 / blend,), signals[pop], powers=(-1,)))
        return signals

    @staticmethod
    def _topdown(b: Builder, phase: str, terms: list[tuple[str, str]], change: dict[str, str],
                 out: str, *, first: bool) -> None:
        """``out (+)= Σ_C C.change @ B_{C→l}``: the change of top-down input."""
        for index, (source, matrix) in enumerate(terms):
            b.emit(phase, ops.MatMul(change[source], matrix, out, accumulate=not (first and index == 0)))

    @staticmethod
    def _dropped(b: Builder, pop: str) -> bool:
        return b.graph.population(pop).dropout > 0 and b.mode == "train"

    def emit_reconstruction(self, b: Builder) -> None:
        """Adaptive top-down weights learn to reconstruct each hidden population from above.

        ``r_l = f(Σ_C s_C @ B_{C→l} + c_l)``; estimate ``s_Cᵀ (r_l − h_l)/batch`` for B and
        ``Σ_batch (r_l − h_l)/batch`` for ``c_l``.
        """
        phase = "reconstruct"
        b.phase(phase, doc="top-down weights learn to reconstruct the layer below (wake phase)")
        out = b.graph.output
        for pop in b.graph.hidden:
            feedback = [find_feedback(b.graph, p.target, pop) for p in b.graph.outgoing(pop)]
            drive = b.activity(f"{pop}.recon_pre", pop)
            for index, proj in enumerate(feedback):
                sender = b.settled(out) if proj.source == out else b.rate(proj.source)
                b.emit(phase, ops.MatMul(sender, b.weight(proj), drive, accumulate=index > 0))
            for proj in feedback:
                b.lr_of[proj.name] = proj.lr if proj.lr is not None else b.params["topdown_lr"]
            bias = b.add_buffer(f"{pop}.topdown_bias", (b.size(pop),), "param",
                                doc=f"top-down reconstruction bias of {pop}")
            b.public[bias] = bias
            b.lr_of[bias] = b.params["topdown_lr"]
            b.emit(phase, ops.AddBias(bias, drive))
            recon = drive
            if not b.linear(pop):
                recon = b.activity(f"{pop}.recon", pop)
                fn, params = b.rate_function(pop)
                b.emit(phase, ops.Activate(fn, drive, recon, params))
            error = b.activity(f"{pop}.recon_error", pop)
            b.emit(phase, ops.LinearCombination((recon, b.rate(pop)), (1.0, -1.0), error, powers=(-1, -1)))
            for proj in feedback:
                if proj.plastic:
                    sender = b.settled(out) if proj.source == out else b.rate(proj.source)
                    b.learn(proj.name, sender, error)
            # The builder's learn_bias knows only the populations' own biases; the top-down bias
            # is this rule's parameter, declared above and lowered with the same optimizer.
            b.learned_bias.setdefault(bias, []).append((error, 1.0))
