"""The rule base class and the steps that every feed-forward rule shares."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from circuits.compile import Builder, Carrier, topographic
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.schema import Param, RuleSignature
from circuits.spec import CircuitSpec, InitSpec, ProjectionSpec

__all__ = ["Rule", "emit_feedforward", "learn_forward", "refuse_conv", "find_feedback", "add_feedback",
           "OUTPUT_TARGET_PARAMS", "output_target_range"]

OUTPUT_TARGET_PARAMS: tuple[Param, ...] = (
    Param("target_low", 0.0, "target rate of the output for a target of 0 (task.loss = \"mse\"; "
          "one-hot class labels become target_low/target_high, e.g. 0.1/0.8)"),
    Param("target_high", 1.0, "target rate of the output for a target of 1 (task.loss = \"mse\")"),
)
"""Output target rates of the feed-forward rules (the key names of ``segregated_dendrites``)."""


class Rule:
    """A learning rule: a signature, a graph check, and the ops it emits.

    Subclasses set :attr:`signature` and implement :meth:`emit`. ``reference`` names the
    rule whose probe gives the exact gradient of the same model (backprop for every
    feed-forward circuit).
    """

    signature: RuleSignature
    reference: str = "backprop"
    spikes: bool = False
    """Whether the rule runs spiking populations (``populations.<p>.spikes``, see :mod:`circuits.spikes`)."""
    topographic: bool = False
    """Whether the rule runs conv and pooled projections (``conv``/``pool``, see :mod:`circuits.shapes`)."""

    @property
    def name(self) -> str:
        """The registered name."""
        return self.signature.name

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        """Return ``spec`` with any projections a rule option creates (default: unchanged)."""
        return spec

    def check(self, graph: CircuitGraph) -> None:
        """Raise :class:`CompileError` when the graph lacks a pathway this rule needs."""
        refuse_conv(self, graph)
        for proj in graph.projections("lateral"):
            if proj.source != proj.target:
                raise CompileError(
                    f"{graph.spec.source}: projection '{proj.name}': rule '{self.name}' runs one "
                    "feed-forward pass, where a lateral projection can only connect a population to "
                    "itself; connect it within one population or choose an energy-based rule")

    def emit(self, builder: Builder) -> None:
        """Emit the rule's phases through ``builder``."""
        raise NotImplementedError


def refuse_conv(rule: Rule, graph: CircuitGraph) -> None:
    """Raise :class:`CompileError` for a conv projection when ``rule`` is not topographic."""
    if rule.topographic:
        return
    for proj in graph.projections("forward"):
        if proj.conv is not None:
            raise CompileError(
                f"{graph.spec.source}: projection '{proj.name}': rule '{rule.name}' does not run "
                "conv projections; choose backprop, feedback_alignment, direct_feedback_alignment, "
                "kolen_pollack, weight_mirror, sign_symmetry, node_perturbation or predictive_coding, "
                "or make the projection dense (remove conv and pool)")


def emit_feedforward(b: Builder, carriers: dict[str, Sequence[Carrier]]) -> None:
    """Forward pass, loss, error signals by ``carriers``, local updates of every plastic weight.

    Each plastic forward projection A→B learns ``A.rate.T @ B.delta``, each lateral
    projection of B ``B.rate0.T @ B.delta2`` and each bias ``Σ_batch B.delta``: the rules of the backprop and feedback-alignment family differ only
    in how ``delta`` reaches the hidden populations.
    """
    b.lower_forward()
    b.lower_loss(target_range=output_target_range(b))
    if b.mode == "infer":
        return
    b.lower_backward(carriers)
    for proj in b.graph.projections("forward"):
        if proj.plastic:
            learn_forward(b, proj, b.rate(proj.source), b.delta(proj.target))
    for proj in b.graph.projections("lateral"):
        if proj.plastic:
            b.learn(proj.name, b.rate0(proj.target), b.delta2(proj.target))
    for pop in b.graph.populations:
        if b.graph.population(pop).role != "input":
            b.learn_bias(pop, b.delta(pop))


def output_target_range(b: Builder) -> tuple[float, float]:
    """The rule's ``(target_low, target_high)`` (``(0, 1)`` when it has none); they need an MSE loss."""
    low, high = float(b.params.get("target_low", 0.0)), float(b.params.get("target_high", 1.0))
    loss = b.graph.spec.task.loss
    if (low, high) != (0.0, 1.0) and loss != "mse":
        raise CompileError(
            f"{b.graph.spec.source}: rule.target_low/target_high: output target rates need task.loss = "
            f"\"mse\" (got \"{loss}\"); set task.loss = \"mse\" or remove rule.target_low and rule.target_high")
    return low, high


def learn_forward(b: Builder, proj: ProjectionSpec, rate: str, delta: str) -> None:
    """Add ``rate.T @ delta`` to the estimate of a dense projection's weight, or the kernel
    gradient ``unpool(delta)ᵀ @ cols`` (from the clean forward pass) to a conv projection's."""
    if proj.conv is not None:
        topographic.learn_kernel(b, proj.name, proj, delta)
    else:
        b.learn(proj.name, rate, delta)


def find_feedback(graph: CircuitGraph, source: str, target: str) -> ProjectionSpec | None:
    """The feedback projection from ``source`` to ``target``, if the spec has one."""
    for proj in graph.projections("feedback"):
        if proj.source == source and proj.target == target:
            return proj
    return None


def add_feedback(spec: CircuitSpec, pairs: Sequence[tuple[str, str]], *, scale: float,
                 plastic: bool) -> CircuitSpec:
    """Add ``U[-scale, scale]`` feedback projections for the ``(source, target)`` pairs lacking one."""
    existing = {(p.source, p.target) for p in spec.projections if p.type == "feedback"}
    taken = {p.name for p in spec.projections}
    extra = []
    for source, target in pairs:
        if (source, target) in existing:
            continue
        name = f"{source}->{target}"
        if name in taken:
            name = f"{source}->{target}_feedback"
        extra.append(ProjectionSpec(source=source, target=target, type="feedback", name=name,
                                    init=InitSpec(scheme="uniform", scale=scale), bias=False,
                                    plastic=plastic))
        existing.add((source, target))
    return attrs.evolve(spec, projections=spec.projections + tuple(extra)) if extra else spec
