"""Backpropagation on any forward DAG: the reference every other rule is compared against."""

from __future__ import annotations

from circuits.compile import Builder
from circuits.rules.base import OUTPUT_TARGET_PARAMS, Rule, emit_feedforward
from circuits.schema import COMMON_PARAMS, RuleSignature

__all__ = ["Backprop"]


class Backprop(Rule):
    """Exact gradient descent: ``h.delta = (Σ_out C.delta @ W_{h→C}.T) ⊙ f'(h.pre)``."""

    signature = RuleSignature(
        name="backprop",
        doc="Backpropagation of errors through the transposed forward weights.",
        params=(*COMMON_PARAMS, *OUTPUT_TARGET_PARAMS),
        needs="nothing beyond the forward graph (feedback projections are ignored)",
    )
    spikes = True
    topographic = True

    def emit(self, b: Builder) -> None:
        carriers = {
            pop: [(p.target, b.weight(p), True) for p in b.graph.outgoing(pop)]
            for pop in b.graph.hidden
        }
        emit_feedforward(b, carriers)
        b.lower_updates()
