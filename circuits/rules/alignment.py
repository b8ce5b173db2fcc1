"""The feedback-alignment family: FA, DFA, Kolen–Pollack and weight mirrors.

Each replaces backprop's transposed forward weights by feedback projections of the spec:

* ``feedback_alignment`` (Lillicrap et al. 2016): fixed random ``B_{C→h}`` in place of
  ``W_{h→C}.T`` for every forward projection h→C out of a hidden population;
* ``direct_feedback_alignment`` (Nøkland 2016): the output's delta sent straight to every
  hidden population through its own fixed ``B_{y→h}``;
* ``kolen_pollack`` (Akrout et al. 2019): FA whose feedback learns the transposed update of
  its forward weight, with the same learning rate and decay, so ``W − Bᵀ`` shrinks by the
  decay factor every step;
* ``weight_mirror`` (Akrout et al. 2019): FA plus a mirror phase in which noise ``ξ`` sent
  through each forward weight teaches its feedback ``B ← (1 − η)B + η yᵀξ/(σ²m)``, whose
  mean is ``Wᵀ``.
"""

from __future__ import annotations

import attrs

from circuits import ops
from circuits.compile import Builder, topographic
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rules.base import OUTPUT_TARGET_PARAMS, Rule, add_feedback, emit_feedforward, find_feedback
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import CircuitSpec, ProjectionSpec

__all__ = ["FeedbackAlignment", "DirectFeedbackAlignment", "KolenPollack", "WeightMirror"]

_AUTO = Param("auto_feedback", False, "create missing feedback projections (U[-scale, scale])")
_SCALE = Param("feedback_scale", 0.5, "half-width of the created feedback weights", minimum=0.0,
               open_minimum=True)


class FeedbackAlignment(Rule):
    """FA: ``h.delta = (Σ_C C.delta @ B_{C→h}) ⊙ f'(h.pre)`` with fixed random ``B``."""

    signature = RuleSignature(
        name="feedback_alignment",
        doc="Feedback alignment: fixed random feedback weights replace the transposed forward weights.",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS, _AUTO, _SCALE),
        needs="a feedback projection C→h for every forward projection h→C out of a hidden population",
    )
    spikes = True
    topographic = True
    feedback_plastic = False

    def pairs(self, graph: CircuitGraph) -> list[tuple[str, str]]:
        """``(source, target)`` of every feedback projection the rule needs."""
        return [(p.target, p.source) for p in graph.projections("forward")
                if graph.population(p.source).role == "hidden"]

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        params = spec.rule.params
        if not params.get("auto_feedback"):
            return spec
        graph = CircuitGraph(spec)
        return add_feedback(spec, self.pairs(graph), scale=params["feedback_scale"],
                            plastic=self.feedback_plastic)

    def check(self, graph: CircuitGraph) -> None:
        super().check(graph)
        for source, target in self.pairs(graph):
            proj = find_feedback(graph, source, target)
            if proj is None:
                raise CompileError(
                    f"{graph.spec.source}: rule '{self.name}' needs a feedback projection from "
                    f"'{source}' to '{target}'; add [[projections]] from = \"{source}\", to = \"{target}\", "
                    "type = \"feedback\" (or set rule.auto_feedback = true)")
            if proj.plastic != self.feedback_plastic:
                want = "true" if self.feedback_plastic else "false"
                why = "learns its feedback" if self.feedback_plastic else "keeps its feedback fixed"
                raise CompileError(f"{graph.spec.source}: projection '{proj.name}': rule '{self.name}' "
                                   f"{why}; set plastic = {want} on it")

    def carriers(self, b: Builder) -> dict[str, list[tuple[str, str, bool]]]:
        """Each hidden population hears its targets' deltas through their feedback weights."""
        return {
            pop: [(p.target, b.weight(find_feedback(b.graph, p.target, pop)), False)
                  for p in b.graph.outgoing(pop)]
            for pop in b.graph.hidden
        }

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        b.lower_updates()


class DirectFeedbackAlignment(FeedbackAlignment):
    """DFA: ``h.delta = (y.delta @ B_{y→h}) ⊙ f'(h.pre)`` for every hidden population h."""

    signature = RuleSignature(
        name="direct_feedback_alignment",
        doc="Direct feedback alignment: the output error reaches each hidden population directly.",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS, _AUTO, _SCALE),
        needs="a feedback projection output→h for every hidden population h",
    )

    def pairs(self, graph: CircuitGraph) -> list[tuple[str, str]]:
        order = [n for n in graph.forward_order() if graph.population(n).role == "hidden"]
        return [(graph.output, pop) for pop in order]

    def carriers(self, b: Builder) -> dict[str, list[tuple[str, str, bool]]]:
        out = b.graph.output
        return {pop: [(out, b.weight(find_feedback(b.graph, out, pop)), False)] for pop in b.graph.hidden}


class KolenPollack(FeedbackAlignment):
    """KP: FA whose feedback ``B_{C→h}`` learns ``C.delta.T @ h.rate``, the transpose of W's update."""

    signature = RuleSignature(
        name="kolen_pollack",
        doc="Kolen–Pollack: feedback weights get the transposed forward update and the same decay.",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS, _AUTO, _SCALE),
        needs="a plastic feedback projection C→h for every forward projection h→C out of a hidden population",
    )
    feedback_plastic = True

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        for proj in b.graph.projections("forward"):
            if b.graph.population(proj.source).role != "hidden":
                continue
            feedback = find_feedback(b.graph, proj.target, proj.source)
            b.lr_of[feedback.name] = b.lr_of[proj.name]
            if proj.conv is not None:  # the kernel's own update: W and B stay the same shape
                topographic.learn_kernel(b, feedback.name, proj, b.delta(proj.target))
            else:
                b.learn(feedback.name, b.delta(proj.target), b.rate(proj.source))
        b.lower_updates()


class WeightMirror(KolenPollack):
    """WM: FA plus a mirror phase that teaches each feedback weight the transpose of its forward weight."""

    signature = RuleSignature(
        name="weight_mirror",
        doc="Weight mirrors: feedback learns Wᵀ from noise sent through the forward weights.",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS, _AUTO, _SCALE,
                Param("mirror_lr", 0.05, "step η of the mirror update", minimum=0.0, maximum=1.0,
                      open_minimum=True),
                Param("mirror_std", 0.05, "standard deviation σ of the mirror noise", minimum=0.0,
                      open_minimum=True),
                Param("mirror_batch", 64, "noise samples m per mirror step", minimum=1)),
        needs="a plastic feedback projection C→h for every forward projection h→C out of a hidden population",
    )

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        b.lower_updates()
        if b.mode != "train":
            return
        lr, std, m = (b.params[k] for k in ("mirror_lr", "mirror_std", "mirror_batch"))
        b.phase("mirror", doc="noise through each forward weight teaches its feedback weight")
        for proj in b.graph.projections("forward"):
            if b.graph.population(proj.source).role != "hidden":
                continue
            feedback = find_feedback(b.graph, proj.target, proj.source)
            if proj.conv is not None:
                _mirror_kernel(b, proj, b.weight(feedback), lr, std, m)
                continue
            noise = b.add_buffer(f"{proj.name}.mirror_noise", (m, b.size(proj.source)), "temp")
            echo = b.add_buffer(f"{proj.name}.mirror_echo", (m, b.size(proj.target)), "temp")
            b.emit("mirror",
                   ops.GaussianNoise(std, noise, stream=f"{proj.name}.mirror"),
                   ops.MatMul(noise, b.weight(proj), echo),
                   ops.OuterUpdate(echo, noise, b.weight(feedback), alpha=lr / (std * std * m),
                                   beta=1.0 - lr))


def _mirror_kernel(b: Builder, proj: ProjectionSpec, feedback: str, lr: float, std: float, m: int) -> None:
    """The mirror step of a conv projection: noise maps ``ξ`` through the kernel (no pooling),
    ``B ← (1 − η)B + η · echoᵀ @ im2col(ξ) / (σ² m P)`` over its ``P`` positions.

    Noise is drawn over the *padded* maps, so every tap sees fresh noise at all ``P``
    positions and the mean of the update's target is ``W`` exactly.
    """
    # The noise covers the padded maps (a kernel over them without padding has the same
    # positions), so that every tap sees fresh noise at every position.
    real = topographic.geometry(b.graph, proj)
    g = attrs.evolve(real, height=real.height + 2 * real.padding, width=real.width + 2 * real.padding,
                     padding=0, pool="", pool_size=1)
    noise = b.add_buffer(f"{proj.name}.mirror_noise", (m, g.in_size), "temp")
    cols = b.add_buffer(f"{proj.name}.mirror_cols", g.cols_shape(m), "temp")
    echo = b.add_buffer(f"{proj.name}.mirror_echo", (m, g.conv_size), "temp")
    b.emit("mirror",
           ops.GaussianNoise(std, noise, stream=f"{proj.name}.mirror"),
           ops.Im2Col(noise, cols, g),
           ops.ConvGemm(cols, b.weight(proj), echo, g),
           ops.ConvWeightGrad(cols, echo, "", feedback, g, alpha=lr / (std * std * m * g.positions),
                              beta=1.0 - lr))
