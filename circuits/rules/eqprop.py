"""Equilibrium propagation (Scellier & Bengio 2017).

The circuit relaxes freely to ``s⁰`` (the prediction), then again with its output nudged
toward the target by ``β`` to ``s^β``; each coupling learns the difference of its two ends'
co-activity between the phases,

    ĝ(β) = (1/β) [∂F/∂θ(s^β) − ∂F/∂θ(s⁰)],   ΔW_{A→B} ∝ −ĝ = (ρ_A^β ᵀ ρ_B^β − ρ_A⁰ ᵀ ρ_B⁰) / β,

which tends to the gradient of the loss at ``s⁰`` as β → 0 (Theorem 1), with an O(β) bias.
Three estimators:

* ``one_sided``: ĝ(β) as above.
* ``symmetric``: nudge once with +β and once with −β from the same free state,
  ``(1/2β)[∂F/∂θ(s^{β}) − ∂F/∂θ(s^{−β})]``, which cancels the first-order bias (Laborieux
  et al. 2021).
* ``random_sign``: ĝ(σβ) with a sign σ = ±1 drawn per batch (probability ½ each) from the
  random stream ``beta.sign``, so ``E_σ[ĝ(σβ)] = ĝ_sym`` exactly: unbiased to O(β²) on
  average at the cost of one nudged phase (Scellier & Bengio 2017 §5). The sign lives in
  the scalar buffer ``beta.sign``, which scales the nudge and the contrast.

With ``persistent = true`` each training example's free phase starts from its own last free
fixed point (Scellier & Bengio's persistent particles) instead of from rest: the program
declares input buffers ``<pop>.particle`` that :meth:`circuits.model.Model.run` fills from a
per-example cache when the caller names the batch's examples, as :func:`circuits.training.fit`
does. Prediction and evaluation (the infer program) always start from rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from circuits import ops
from circuits.compile import Builder
from circuits.rules.energy import (RELAXATION_PARAMS, EnergyRule, contrast, dynamic_populations, lower_init,
                                   lower_relaxation, lower_settle, with_default)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["EquilibriumPropagation", "SIGN", "signed_contrast"]

SIGN = "beta.sign"
"""The scalar buffer (and random stream) holding the sign of β under ``random_sign``."""


def signed_contrast(b: Builder, rates: Sequence[tuple[str, float]], sign: str) -> None:
    """:func:`circuits.rules.energy.contrast` with every coefficient multiplied by the scalar ``sign``."""
    contrast(b, rates, sign=sign, doc=f"co-activity of each coupling's two ends, contrasted between phases, "
                                      f"times the sign of β ({sign})")


class EquilibriumPropagation(EnergyRule):
    """Free phase, nudged phase(s), contrastive update of every coupling and bias."""

    signature = RuleSignature(
        name="equilibrium_propagation",
        doc="Equilibrium propagation: contrast co-activity between a free and a weakly nudged relaxation.",
        params=(*with_default(COMMON_PARAMS, "lr", 0.1), *RELAXATION_PARAMS,
                Param("beta", 1.0, "nudging strength β (the estimate's bias is O(β) one-sided, O(β²) "
                      "symmetric; 1.0, the value of Scellier & Bengio's table, lets a nudge move "
                      "hard-sigmoid outputs that the free phase left at a bound)",
                      minimum=0.0, open_minimum=True),
                Param("nudged_steps", 2000, "step budget of each nudged relaxation (stops once converged; "
                      "a nudged phase from the free fixed point takes 100–300 steps on digits)", minimum=1),
                Param("estimator", "one_sided",
                      "one_sided (+β), symmetric (+β and −β) or random_sign (±β, sign drawn per batch)",
                      choices=("one_sided", "symmetric", "random_sign")),
                Param("persistent", False, "warm-start each training example's free phase from its last "
                      "free fixed point (persistent particles; needs the example indices, which "
                      "`circuits simulate` passes)")),
        needs="forward projections (symmetric couplings); a feedback projection unties a coupling",
        energy_based=True,
    )

    def emit(self, b: Builder) -> None:
        p = b.params
        warm = p["persistent"] and b.mode != "infer"
        lower_init(b, persist=".free" if warm else "")
        lower_relaxation(b, "free", steps=p["free_steps"], tol=p["tol"])
        lower_settle(b, "settle")
        b.lower_loss()
        if b.mode == "infer":
            return
        pops = dynamic_populations(b.graph)
        beta, steps, tol = p["beta"], p["nudged_steps"], p["tol"]
        if p["estimator"] in ("one_sided", "random_sign"):
            lower_settle(b, "keep_free", ".free")
            if warm:
                for pop in pops:
                    b.emit("keep_free", ops.Copy(b.pre(pop), b.activity(f"{pop}.pre.free", pop)))
            signed = p["estimator"] == "random_sign"
            if signed:
                b.add_buffer(SIGN, (), "temp", doc="the sign of β for this batch")
                b.phase("draw_sign", doc="the sign of β for this batch: +1 or −1 with probability ½")
                b.emit("draw_sign", ops.RandomSign(SIGN, stream=SIGN))
            self.nudged_phase(b, "nudged", beta, steps, tol, sign=SIGN if signed else "")
            lower_settle(b, "settle_nudged", ".nudged")
            terms = [(".nudged", -1.0 / beta), (".free", 1.0 / beta)]
            if signed:
                signed_contrast(b, terms, SIGN)
            else:
                contrast(b, terms)
        else:
            b.phase("keep_free", doc="remember the free states, where both nudged phases start")
            for pop in pops:
                b.emit("keep_free", ops.Copy(b.pre(pop), b.activity(f"{pop}.pre.free", pop)))
            self.nudged_phase(b, "nudged_plus", beta, steps, tol)
            lower_settle(b, "settle_plus", ".plus")
            b.phase("restart", doc="back to the free states")
            for pop in pops:
                b.emit("restart", ops.Copy(f"{pop}.pre.free", b.pre(pop)))
            self.nudged_phase(b, "nudged_minus", -beta, steps, tol)
            lower_settle(b, "settle_minus", ".minus")
            contrast(b, [(".plus", -0.5 / beta), (".minus", 0.5 / beta)])
        b.lower_updates()

    def nudged_phase(self, b: Builder, phase: str, beta: float, steps: int, tol: float, sign: str = "") -> None:
        """One nudged relaxation (with β scaled by the scalar buffer ``sign`` when given); a hook
        for variants of the rule."""
        lower_relaxation(b, phase, steps=steps, tol=tol, beta=beta, sign=sign)
