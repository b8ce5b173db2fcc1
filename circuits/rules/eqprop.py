"""Equilibrium propagation (Scellier & Bengio 2017).

The circuit relaxes freely to ``s⁰`` (the prediction), then again with its output nudged
toward the target by ``β`` to ``s^β``; each coupling learns the difference of its two ends'
co-activity between the phases,

    ĝ(β) = (1/β) [∂F/∂θ(s^β) − ∂F/∂θ(s⁰)],   ΔW_{A→B} ∝ −ĝ = (ρ_A^β ᵀ ρ_B^β − ρ_A⁰ ᵀ ρ_B⁰) / β,

which tends to the gradient of the loss at ``s⁰`` as β → 0 (Theorem 1), with an O(β) bias.
The ``symmetric`` estimator nudges once with +β and once with −β from the same free state,
``(1/2β)[∂F/∂θ(s^{β}) − ∂F/∂θ(s^{−β})]``, and cancels that first-order bias.
"""

from __future__ import annotations

from circuits import ops
from circuits.compile import Builder
from circuits.rules.energy import (RELAXATION_PARAMS, EnergyRule, contrast, dynamic_populations, lower_init,
                                   lower_relaxation, lower_settle)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["EquilibriumPropagation"]


class EquilibriumPropagation(EnergyRule):
    """Free phase, nudged phase(s), contrastive update of every coupling and bias."""

    signature = RuleSignature(
        name="equilibrium_propagation",
        doc="Equilibrium propagation: contrast co-activity between a free and a weakly nudged relaxation.",
        params=(*COMMON_PARAMS, *RELAXATION_PARAMS,
                Param("beta", 0.5, "nudging strength β", minimum=0.0, open_minimum=True),
                Param("nudged_steps", 4, "step budget of each nudged relaxation", minimum=1),
                Param("estimator", "one_sided", "one_sided (+β) or symmetric (+β and −β)",
                      choices=("one_sided", "symmetric"))),
        needs="forward projections (symmetric couplings); a feedback projection unties a coupling",
        energy_based=True,
    )

    def emit(self, b: Builder) -> None:
        p = b.params
        lower_init(b)
        lower_relaxation(b, "free", steps=p["free_steps"], tol=p["tol"])
        lower_settle(b, "settle")
        b.lower_loss()
        if b.mode == "infer":
            return
        pops = dynamic_populations(b.graph)
        beta, steps, tol = p["beta"], p["nudged_steps"], p["tol"]
        if p["estimator"] == "one_sided":
            lower_settle(b, "keep_free", ".free")
            lower_relaxation(b, "nudged", steps=steps, tol=tol, beta=beta)
            lower_settle(b, "settle_nudged", ".nudged")
            contrast(b, [(".nudged", -1.0 / beta), (".free", 1.0 / beta)])
        else:
            b.phase("keep_free", doc="remember the free states, where both nudged phases start")
            for pop in pops:
                b.emit("keep_free", ops.Copy(b.pre(pop), b.activity(f"{pop}.pre.free", pop)))
            lower_relaxation(b, "nudged_plus", steps=steps, tol=tol, beta=beta)
            lower_settle(b, "settle_plus", ".plus")
            b.phase("restart", doc="back to the free states")
            for pop in pops:
                b.emit("restart", ops.Copy(f"{pop}.pre.free", b.pre(pop)))
            lower_relaxation(b, "nudged_minus", steps=steps, tol=tol, beta=-beta)
            lower_settle(b, "settle_minus", ".minus")
            contrast(b, [(".plus", -0.5 / beta), (".minus", 0.5 / beta)])
        b.lower_updates()
