"""Learning rules, looked up by name in an explicit registry.

:func:`default_registry` fills a fresh :class:`RuleRegistry` by explicit lines, then adds
rules that installed plug-ins declare in the ``circuits.rules`` entry-point group.
"""

from __future__ import annotations

import warnings
from importlib import metadata

from circuits.errors import CompileError, did_you_mean
from circuits.rules.alignment import DirectFeedbackAlignment, FeedbackAlignment, KolenPollack, WeightMirror
from circuits.rules.backprop import Backprop
from circuits.rules.base import Rule
from circuits.rules.chl import ContrastiveHebbian
from circuits.rules.dendritic import DendriticError
from circuits.rules.segregated import SegregatedDendrites
from circuits.rules.early_inference import EarlyInference
from circuits.rules.eqprop import EquilibriumPropagation
from circuits.rules.plasticity import Plasticity
from circuits.rules.perturbation import NodePerturbation, WeightPerturbation
from circuits.rules.predictive import PredictiveCoding
from circuits.rules.recirculation import Recirculation
from circuits.rules.targetprop import DifferenceTargetPropagation, TargetPropagation
from circuits.rules.sign_symmetry import SignSymmetry
from circuits.rules.temporal import TemporalDerivative
from circuits.schema import RuleSignature

__all__ = ["PluginWarning", "Rule", "RuleRegistry", "default_registry"]

PLUGIN_GROUP = "circuits.rules"


class PluginWarning(UserWarning):
    """A rule plug-in could not be loaded; it is skipped and every other rule still works."""


class RuleRegistry:
    """Rule name → rule. Registering a name twice raises ``ValueError``."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(self, rule: Rule) -> None:
        """Add ``rule`` under its signature's name."""
        name = rule.signature.name
        if name in self._rules:
            raise ValueError(f"a rule named '{name}' is already registered")
        self._rules[name] = rule

    def get(self, name: str) -> Rule:
        """The rule called ``name``."""
        if name not in self._rules:
            raise CompileError(f"unknown rule '{name}'; registered rules are "
                               f"{', '.join(sorted(self._rules))}{did_you_mean(name, self._rules)}")
        return self._rules[name]

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._rules)

    def signatures(self) -> dict[str, RuleSignature]:
        """Name → signature, what :func:`circuits.spec.load_spec` checks ``[rule]`` against."""
        return {name: rule.signature for name, rule in self._rules.items()}


def default_registry(*, plugins: bool = True) -> RuleRegistry:
    """A registry holding every built-in rule (and plug-in rules when ``plugins``)."""
    registry = RuleRegistry()
    registry.register(Backprop())
    registry.register(FeedbackAlignment())
    registry.register(DirectFeedbackAlignment())
    registry.register(KolenPollack())
    registry.register(WeightMirror())
    registry.register(NodePerturbation())
    registry.register(SignSymmetry())
    registry.register(WeightPerturbation())
    registry.register(TargetPropagation())
    registry.register(DifferenceTargetPropagation())
    registry.register(Recirculation())
    registry.register(TemporalDerivative())
    registry.register(PredictiveCoding())
    registry.register(EquilibriumPropagation())
    registry.register(ContrastiveHebbian())
    registry.register(EarlyInference())
    registry.register(DendriticError())
    registry.register(SegregatedDendrites())
    registry.register(Plasticity())
    if plugins:
        for entry in metadata.entry_points(group=PLUGIN_GROUP):
            _register_plugin(registry, entry)
    return registry


def _register_plugin(registry: RuleRegistry, entry: metadata.EntryPoint) -> None:
    """Load one plug-in rule; any failure is a :class:`PluginWarning` naming it, not an error.

    A broken or clashing plug-in must not take every command down with it.
    """
    where = f"rule plug-in '{entry.name}' ({entry.value}, entry point group {PLUGIN_GROUP})"
    try:
        rule = entry.load()()
    except Exception as exc:  # third-party code: import, attribute and constructor errors alike
        problem = f"failed to load: {type(exc).__name__}: {exc}"
    else:
        name = getattr(getattr(rule, "signature", None), "name", None)
        if not isinstance(rule, Rule) or not isinstance(name, str):
            problem = f"is not a circuits Rule (got {type(rule).__name__})"
        elif name in registry.names():
            problem = f"reuses the name '{name}' of a rule already registered"
        else:
            registry.register(rule)
            return
    warnings.warn(f"{where} {problem}; it is skipped", PluginWarning, stacklevel=3)
