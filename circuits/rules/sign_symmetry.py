"""Sign symmetry (Liao, Leibo & Poggio 2016): feedback is the sign of the forward weights.

Each hidden population ``h`` hears the error of every target ``C`` of its forward projections
through ``g · sign(W_{h→C})ᵀ`` instead of ``W_{h→C}ᵀ``: the feedback shares only the sign of
each forward weight (Liao et al.'s "uniform sign-concordant feedback", uSF), recomputed from
the current weights every step, so it needs no feedback projection in the spec. ``g`` is
``rule.feedback_gain`` (1 in the paper, which adds batch normalisation and "batch manhattan"
updates that make the magnitude irrelevant; circuits has neither, so a smaller gain keeps the
hidden errors at the scale of backprop's, about ``g ≈ mean |W|``).

On a conv projection the feedback is the sign kernel ``g · sign(W)``, carried back as a
transposed convolution through the forward pass's pooling winners.
"""

from __future__ import annotations

from circuits import ops
from circuits.compile import Builder
from circuits.rules.base import OUTPUT_TARGET_PARAMS, Rule, emit_feedforward
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["SignSymmetry"]


class SignSymmetry(Rule):
    """``h.delta = (Σ_C C.delta @ (g·sign(W_{h→C}))ᵀ) ⊙ f'(h.pre)``."""

    signature = RuleSignature(
        name="sign_symmetry",
        doc="Sign symmetry: feedback weights are the signs of the forward weights (Liao et al. 2016).",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS,
                Param("feedback_gain", 1.0, "magnitude g of the feedback g·sign(W)", minimum=0.0,
                      open_minimum=True)),
        needs="nothing beyond the forward graph (the feedback is computed from the forward weights)",
    )
    topographic = True

    def emit(self, b: Builder) -> None:
        carriers: dict[str, list[tuple[str, str, bool]]] = {pop: [] for pop in b.graph.hidden}
        if b.mode != "infer":
            b.phase("feedback", doc="the feedback weights: the signs of the current forward weights")
            for pop in b.graph.hidden:
                for proj in b.graph.outgoing(pop):
                    weight = b.weight(proj)
                    sign = b.add_buffer(f"{proj.name}.sign", b.buffers[weight].shape, "temp",
                                        doc="feedback: the sign of the forward weight")
                    b.emit("feedback", ops.Sign(weight, sign, scale=b.params["feedback_gain"]))
                    carriers[pop].append((proj.target, sign, True))
        emit_feedforward(b, carriers)
        b.lower_updates()
