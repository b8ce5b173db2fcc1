"""Which projections of a circuit a compiled program actually uses.

A spec may hold projections that the chosen rule never consults: a feedback projection under
backprop (which uses the transposed forward weights), feedback under node perturbation or
predictive coding, an FA pathway h2→h1 under DFA (which sends only the output's error). Such a
projection still gets a weight, an initialization and a place in the diagram, so the user
would believe it plays a part; :func:`unused_projections` finds them so the command line can
say so.
"""

from __future__ import annotations

from circuits.graph import CircuitGraph
from circuits.ir import Program

__all__ = ["unused_projections", "describe_unused"]


def unused_projections(graph: CircuitGraph, program: Program) -> tuple[str, ...]:
    """Names of the projections whose weight no op of ``program`` reads, in spec order.

    A weight that is only updated (never read) does not count as used: its values reach
    nothing. Judge a ``train`` program: an ``infer`` program reads no feedback by design.
    """
    read = {name for phase in program.phases for op in phase.ops for name in op.access()["reads"]}
    return tuple(p.name for p in graph.projections() if program.params.get(p.name) not in read)


def describe_unused(source: str, rule: str, names: tuple[str, ...]) -> str:
    """The one-line warning about ``names``, or ``""`` when there are none."""
    if not names:
        return ""
    if len(names) == 1:
        return (f"{source}: rule '{rule}' does not use projection '{names[0]}' (no op reads its weight); "
                "remove it or choose a rule that uses it")
    listed = ", ".join(f"'{n}'" for n in names)
    return (f"{source}: rule '{rule}' does not use projections {listed} (no op reads their weights); "
            "remove them or choose a rule that uses them")
