"""The catalogue of gradient-approximation claims, executable on any circuit.

:func:`default_claims` fills a :class:`ClaimRegistry` by explicit lines; :func:`verify`
runs every claim that concerns a spec's rule and returns one :class:`Outcome` each (a claim
whose precondition the circuit does not meet is skipped, with the reason).
"""

from __future__ import annotations

import numpy as np

from circuits.backends import stream_seed
from circuits.claims.alignment import (ALIGNMENT_IMPROVES, DFA_FROM_ZERO, FA_CONSERVED_QUANTITY,
                                       KP_CONTRACTION, WM_MOMENT_IDENTITY)
from circuits.claims.base import Claim, Outcome
from circuits.claims.gradient import OUTPUT_LAYER_IS_BACKPROP, REFERENCE_IS_EXACT, TIED_FEEDBACK_IS_BACKPROP
from circuits.claims.perturbation import (BASELINE_LEAVES_MEAN, NP_EXACT_FOR_QUADRATIC_LOSS,
                                         PERTURBATION_UNBIASED, PERTURBATION_VARIANCE)
from circuits.claims.temporal import (RECIRCULATION_DESCENT, TD_OUTPUT_LAYER_IS_BACKPROP, TD_TIED_IS_BACKPROP,
                                      TD_TOPDOWN_RECONSTRUCTS)
from circuits.claims.targetprop import (DTP_FIXED_POINT, INVERSE_TRAINING, JACOBIAN_DTP_IS_BACKPROP,
                                      PERFECT_INVERSE)
from circuits.rules import RuleRegistry
from circuits.spec import CircuitSpec

__all__ = ["Claim", "ClaimRegistry", "Outcome", "default_claims", "verify"]


class ClaimRegistry:
    """Claim name → claim. Registering a name twice raises ``ValueError``."""

    def __init__(self) -> None:
        self._claims: dict[str, Claim] = {}

    def register(self, claim: Claim) -> None:
        """Add ``claim``."""
        if claim.name in self._claims:
            raise ValueError(f"a claim named '{claim.name}' is already registered")
        self._claims[claim.name] = claim

    def get(self, name: str) -> Claim:
        """The claim called ``name``."""
        return self._claims[name]

    def all(self) -> tuple[Claim, ...]:
        """Every claim, in registration order."""
        return tuple(self._claims.values())

    def for_rule(self, rule: str) -> tuple[Claim, ...]:
        """The claims that concern ``rule``."""
        return tuple(c for c in self._claims.values() if c.applies_to(rule))


def default_claims() -> ClaimRegistry:
    """Every built-in claim."""
    registry = ClaimRegistry()
    registry.register(REFERENCE_IS_EXACT)
    registry.register(TIED_FEEDBACK_IS_BACKPROP)
    registry.register(OUTPUT_LAYER_IS_BACKPROP)
    registry.register(FA_CONSERVED_QUANTITY)
    registry.register(ALIGNMENT_IMPROVES)
    registry.register(DFA_FROM_ZERO)
    registry.register(KP_CONTRACTION)
    registry.register(WM_MOMENT_IDENTITY)
    registry.register(PERTURBATION_UNBIASED)
    registry.register(NP_EXACT_FOR_QUADRATIC_LOSS)
    registry.register(PERTURBATION_VARIANCE)
    registry.register(BASELINE_LEAVES_MEAN)
    registry.register(TD_TIED_IS_BACKPROP)
    registry.register(TD_OUTPUT_LAYER_IS_BACKPROP)
    registry.register(TD_TOPDOWN_RECONSTRUCTS)
    registry.register(RECIRCULATION_DESCENT)
    registry.register(DTP_FIXED_POINT)
    registry.register(PERFECT_INVERSE)
    registry.register(JACOBIAN_DTP_IS_BACKPROP)
    registry.register(INVERSE_TRAINING)
    return registry


def verify(spec: CircuitSpec, rules: RuleRegistry, claims: ClaimRegistry | None = None) -> list[Outcome]:
    """Measure every claim about ``spec``'s rule on ``spec``'s circuit.

    Each claim draws from its own random stream, derived from the run seed and its name.
    """
    claims = claims or default_claims()
    outcomes = []
    for claim in claims.for_rule(spec.rule.name):
        rng = np.random.default_rng(stream_seed(spec.run.seed, f"claim:{claim.name}"))
        outcomes.append(claim.run(spec, rules, rng))
    return outcomes
