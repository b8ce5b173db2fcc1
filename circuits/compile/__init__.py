"""Compilation: a checked circuit graph plus a learning rule → a validated :class:`Program`.

Stages of :func:`compile_circuit`:

1. the rule checks that the graph has the pathways it needs (``rule.check``), and spiking
   populations meet a rule that runs them (a rule's ``spikes = True``);
2. a :class:`Builder` declares every parameter buffer;
3. the rule emits its phases and ops through the builder (``rule.emit``), reusing the
   shared forward, loss, backward and update lowerings;
4. each phase is ordered from its ops' declared accesses and the program is validated.
"""

from __future__ import annotations

from typing import Protocol

from circuits.compile.builder import MODES, Builder, Carrier
from circuits.compile.usage import describe_unused, unused_projections
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.ir import Program
from circuits.schema import RuleSignature

__all__ = ["Builder", "Carrier", "MODES", "RuleLike", "compile_circuit", "describe_unused",
           "unused_projections"]


class RuleLike(Protocol):
    """What the compiler needs from a rule (see :class:`circuits.rules.base.Rule`)."""

    signature: RuleSignature

    def check(self, graph: CircuitGraph) -> None: ...

    def emit(self, builder: Builder) -> None: ...


def compile_circuit(graph: CircuitGraph, rule: RuleLike, *, mode: str = "train",
                    dtype: str | None = None, lr_scale: float = 1.0) -> Program:
    """Compile ``graph`` under ``rule`` into a validated program.

    Parameters
    ----------
    graph
        A graph built by :func:`circuits.graph.build_graph`.
    rule
        A registered rule; its parameters come from ``graph.spec.rule.params``.
    mode
        ``train`` (apply updates), ``probe`` (write gradient estimates) or ``infer``.
    dtype
        Float type; defaults to the spec's ``run.dtype``.
    lr_scale
        Multiplies every learning rate of the optimizer in ``train`` mode (one epoch's factor of
        a learning-rate schedule, :func:`circuits.lr_schedule.lr_factor`).

    Raises
    ------
    CompileError
        When the rule cannot run on this circuit or the program is invalid.
    """
    rule.check(graph)
    _check_spikes(graph, rule)
    builder = Builder(graph, rule=rule.signature.name, params=dict(graph.spec.rule.params),
                      mode=mode, dtype=dtype or graph.spec.run.dtype,
                      separate_rates=rule.signature.energy_based, lr_scale=lr_scale)
    rule.emit(builder)
    return builder.finish(f"{graph.spec.name}:{mode}")


def _check_spikes(graph: CircuitGraph, rule: RuleLike) -> None:
    """Spiking populations only under rules that declare ``spikes = True`` (they sample every pass)."""
    if getattr(rule, "spikes", False):
        return
    for pop in graph.populations:
        if graph.population(pop).spikes is not None:
            raise CompileError(
                f"{graph.spec.source}: populations.{pop}.spikes: rule '{rule.signature.name}' does not run "
                "spiking populations; remove spikes or choose backprop, feedback_alignment, "
                "direct_feedback_alignment, kolen_pollack, weight_mirror or temporal_derivative")
