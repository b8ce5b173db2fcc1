"""Contrastive Hebbian learning (Movellan 1991), with Xie & Seung's (2003) feedback gain γ.

The circuit relaxes freely to ``u⁰``, then again with its output *clamped* (its rate held at the
target, its state not integrated) to ``u^∞``; every coupling learns the difference of its two
ends' co-activity between the phases,

    ΔW_{A→B} = lr · γ^{−d(B)} · (ρ_A^∞ ᵀ ρ_B^∞ − ρ_A⁰ ᵀ ρ_B⁰) / batch,   Δb_B = lr · γ^{−d(B)} · Σ (ρ_B^∞ − ρ_B⁰) / batch,

which is the EqProp estimator evaluated at clamped outputs with its 1/β dropped (β → ∞).

Feedback gain (Xie & Seung). Every *top-down* term of a drive (``ρ_C @ W_{B→C}ᵀ``, or a
feedback projection's ``ρ_C @ F``) is scaled by ``γ`` in both phases, so population B hears
the output through ``γ^{d(B)}``, with ``d(B)`` the shortest forward distance from B to the
output (``L − k`` for layer k of a chain of L layers). Clamping then moves B's rate by
``−γ^{d(B)} ∂L/∂a_B (1 + O(γ))``, so the rule rescales the estimate of every weight *into*
B (and B's bias) by ``γ^{−d(B)}``. This is Xie & Seung's ``η_j ∝ γ_j = γ^{k}`` for layer k,
divided by the constant ``γ^{L}``: the output layer keeps the rule's ``lr`` for every γ,
so changing γ does not change the size of the update of the weights into the output. With
γ = 1 the dynamics descend the Hopfield energy of :mod:`circuits.rules.energy`; with γ < 1
they are a vector field (not the gradient of that energy); :func:`circuits.rules.energy.exact_gradients`
with the rule's γ gives the exact loss gradient of the circuit that actually runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

from circuits import ops
from circuits.compile import Builder
from circuits.graph import CircuitGraph
from circuits.rules.energy import (RELAXATION_PARAMS, EnergyRule, contrast, dynamic_populations, lower_init,
                                   lower_relaxation, lower_settle)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["ContrastiveHebbian", "distance_to_output", "phase_span"]



def phase_span(model: Model, first: str | None, last: str, mode: str = "probe") -> tuple[str, ...]:
    """Names of ``mode``'s phases after ``first`` (from the start when ``None``) up to and including ``last``.

    ``phase_span(model, None, "free")`` takes a batch to its free fixed point ``u⁰`` and
    ``phase_span(model, "keep_free", "settle_clamped")`` on to the clamped one ``u^∞``.
    """
    names = [phase.name for phase in model.compiled(mode).phases]
    start = names.index(first) + 1 if first is not None else 0
    return tuple(names[start:names.index(last) + 1])


def distance_to_output(graph: CircuitGraph) -> dict[str, int]:
    """``d(B)``: the fewest forward projections from each dynamic population to the output."""
    reach = nx.single_source_shortest_path_length(graph.forward_graph().reverse(copy=False), graph.output)
    return {pop: int(reach.get(pop, 0)) for pop in dynamic_populations(graph)}


class ContrastiveHebbian(EnergyRule):
    """Free phase, clamped phase, contrastive Hebbian update of every coupling and bias."""

    signature = RuleSignature(
        name="contrastive_hebbian",
        doc="Contrastive Hebbian learning: contrast co-activity between a free and an output-clamped "
            "relaxation (Xie & Seung's feedback gain γ optional).",
        params=(*COMMON_PARAMS, *RELAXATION_PARAMS,
                Param("clamped_steps", 2000, "step budget of the clamped relaxation (stops once converged)",
                      minimum=1),
                Param("gamma", 1.0, "feedback gain γ: top-down drive scaled by γ, the estimate of the "
                      "weights into a population d projections below the output by γ^−d",
                      minimum=0.0, maximum=1.0, open_minimum=True)),
        needs="forward projections (symmetric couplings); a feedback projection unties a coupling",
        energy_based=True,
    )

    def emit(self, b: Builder) -> None:
        p = b.params
        gamma, out = p["gamma"], b.graph.output
        lower_init(b)
        lower_relaxation(b, "free", steps=p["free_steps"], tol=p["tol"], gamma=gamma)
        lower_settle(b, "settle")
        b.lower_loss()
        if b.mode == "infer":
            return
        lower_settle(b, "keep_free", ".free")
        b.phase("clamp", doc="the output's rate held at the target")
        b.emit("clamp", ops.Copy(f"{out}.target", b.rate(out)))
        lower_relaxation(b, "clamped", steps=p["clamped_steps"], tol=p["tol"], gamma=gamma, clamp=True)
        b.phase("settle_clamped", doc="rates of the clamped states, kept as *.rate.clamped")
        for pop in dynamic_populations(b.graph):
            kept = b.activity(b.rate(pop) + ".clamped", pop)
            fn, params = b.rate_function(pop)
            b.emit("settle_clamped", ops.Copy(b.rate(pop), kept) if pop == out else
                   ops.Activate(fn, b.pre(pop), kept, params))
        self._contrast(b, {pop: gamma ** -d for pop, d in distance_to_output(b.graph).items()})
        b.lower_updates()

    @staticmethod
    def _contrast(b: Builder, scale: dict[str, float]) -> None:
        """Learn ``Σ_phase c_B·ρ_Aᵀρ_B / batch`` for each coupling A→B, ``c_B = ∓γ^{−d(B)}`` (clamped, free)."""
        contrast(b, [(".clamped", -1.0), (".free", 1.0)], scale=scale,
                 doc="co-activity of each coupling's two ends, clamped minus free")
