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
from circuits.claims.dendritic import (APICAL_ENCODES_ERROR, BALANCED_NUDGING, DEVIATION_ORDER,
                                       SELF_PREDICTING_IS_SILENT, SELF_PREDICTION_IS_LEARNED,
                                       SEGREGATION_IS_EXACT, SWEEP_IS_THE_FIXED_POINT)
from circuits.claims.energy_rules import (CHL_IS_EQPROP_AT_INFINITE_BETA, CHL_OBJECTIVE_CAN_BE_NEGATIVE,
                                         EARLY_INFERENCE_WAVE, XIE_SEUNG_EQUIVALENCE)
from circuits.claims.eqprop import (ENERGY_DESCENT, IMPLICIT_GRADIENT_IS_EXACT, NUDGING_LOWERS_COST,
                                    ONE_SIDED_BIAS, RANDOM_SIGN_IDENTITY, SYMMETRIC_SECOND_ORDER)
from circuits.claims.gradient import (OUTPUT_LAYER_IS_BACKPROP, REFERENCE_IS_EXACT, TIED_FEEDBACK_IS_BACKPROP,
                                     UNIFORM_SIGN_IS_BACKPROP)
from circuits.claims.plasticity import (PLASTICITY_FA_POINT, PLASTICITY_HEBB_OJA_POINTS, PLASTICITY_OJA_BEATS_ZERO,
                                       PLASTICITY_SEARCH_REACHES_OJA)
from circuits.claims.perturbation import (BASELINE_LEAVES_MEAN, NP_EXACT_FOR_QUADRATIC_LOSS,
                                         PERTURBATION_UNBIASED, PERTURBATION_VARIANCE)
from circuits.claims.predictive import (FIXED_PREDICTION_CONVERGES, FIXED_PREDICTION_IS_EXACT,
                                       STRICT_GAP_GROWS_WITH_ERROR)
from circuits.claims.spikes import (SPIKE_VARIANCE, SPIKES_UNBIASED, SPIKING_APPROACHES_RATES, STDP_DERIVATIVE_FILTER,
                                   STDP_WINDOW_EMERGES, TD_SPIKING_APPROACHES_RATES)
from circuits.claims.temporal import (RECIRCULATION_DESCENT, TD_OUTPUT_LAYER_IS_BACKPROP, TD_TIED_IS_BACKPROP,
                                      TD_TOPDOWN_RECONSTRUCTS)
from circuits.claims.targetprop import (DTP_FIXED_POINT, INVERSE_TRAINING, JACOBIAN_DTP_IS_BACKPROP,
                                      PERFECT_INVERSE)
from circuits.claims.targetprop import GAUSS_NEWTON_TARGETS
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
        return tuple(c for c in self._claims.values() if c.applies_to(rule) and c.concerns is None)

    def for_spec(self, spec: CircuitSpec) -> tuple[Claim, ...]:
        """The claims that concern ``spec``: its rule's, and those about features it has (spikes)."""
        return tuple(c for c in self._claims.values() if c.applies_to_spec(spec))


def default_claims() -> ClaimRegistry:
    """Every built-in claim."""
    registry = ClaimRegistry()
    registry.register(REFERENCE_IS_EXACT)
    registry.register(TIED_FEEDBACK_IS_BACKPROP)
    registry.register(OUTPUT_LAYER_IS_BACKPROP)
    registry.register(UNIFORM_SIGN_IS_BACKPROP)
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
    registry.register(GAUSS_NEWTON_TARGETS)
    registry.register(INVERSE_TRAINING)
    registry.register(FIXED_PREDICTION_IS_EXACT)
    registry.register(FIXED_PREDICTION_CONVERGES)
    registry.register(STRICT_GAP_GROWS_WITH_ERROR)
    registry.register(CHL_IS_EQPROP_AT_INFINITE_BETA)
    registry.register(CHL_OBJECTIVE_CAN_BE_NEGATIVE)
    registry.register(XIE_SEUNG_EQUIVALENCE)
    registry.register(EARLY_INFERENCE_WAVE)
    registry.register(IMPLICIT_GRADIENT_IS_EXACT)
    registry.register(ONE_SIDED_BIAS)
    registry.register(SYMMETRIC_SECOND_ORDER)
    registry.register(RANDOM_SIGN_IDENTITY)
    registry.register(NUDGING_LOWERS_COST)
    registry.register(ENERGY_DESCENT)
    for claim in (BALANCED_NUDGING, SELF_PREDICTING_IS_SILENT, APICAL_ENCODES_ERROR, DEVIATION_ORDER,
                  SELF_PREDICTION_IS_LEARNED, SWEEP_IS_THE_FIXED_POINT, SEGREGATION_IS_EXACT):
        registry.register(claim)
    registry.register(PLASTICITY_FA_POINT)
    registry.register(PLASTICITY_HEBB_OJA_POINTS)
    registry.register(PLASTICITY_OJA_BEATS_ZERO)
    registry.register(PLASTICITY_SEARCH_REACHES_OJA)
    registry.register(SPIKES_UNBIASED)
    registry.register(SPIKE_VARIANCE)
    registry.register(SPIKING_APPROACHES_RATES)
    registry.register(STDP_WINDOW_EMERGES)
    registry.register(STDP_DERIVATIVE_FILTER)
    registry.register(TD_SPIKING_APPROACHES_RATES)
    return registry


def verify(spec: CircuitSpec, rules: RuleRegistry, claims: ClaimRegistry | None = None) -> list[Outcome]:
    """Measure every claim about ``spec``'s rule on ``spec``'s circuit.

    Each claim draws from its own random stream, derived from the run seed and its name.
    """
    claims = claims or default_claims()
    outcomes = []
    for claim in claims.for_spec(spec):
        rng = np.random.default_rng(stream_seed(spec.run.seed, f"claim:{claim.name}"))
        outcomes.append(claim.run(spec, rules, rng))
    return outcomes
