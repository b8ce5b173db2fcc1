"""The program IR: buffers, ops, phases and programs. Pure data; no arrays live here.

A :class:`Program` is what the compiler makes of a circuit under a rule: a table of named
buffers and an ordered list of phases, each an ordered tuple of ops. Every op declares which
buffers it *sets* (overwrites), *increments* (adds into, after the setter), *updates*
(modifies in place) and *reads*; :func:`order_ops` sorts a phase by those declarations and
:meth:`Program.validate` checks the result before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import networkx as nx

from circuits.errors import CompileError

__all__ = ["BATCH", "Buffer", "Op", "Phase", "Program", "order_ops"]

BATCH = "batch"
"""The symbolic leading dimension of per-example buffers; fixed when a program is run."""

BUFFER_KINDS = ("param", "state", "input", "temp")


@attrs.frozen
class Buffer:
    """A named array of the program.

    ``kind`` is ``param`` (learned weights and biases, kept across calls), ``state``
    (optimizer moments, counters: kept across calls), ``input`` (written by the caller before
    a run: data, targets) or ``temp`` (written by the program itself). ``init`` names how a
    persistent buffer is filled when allocated: ``"zeros"``, ``"ones"`` or a weight-init
    spec; ``dtype`` is ``"float"`` (the program's float type) or ``"int64"``.
    """

    name: str
    shape: tuple[int | str, ...]
    kind: str = attrs.field(validator=attrs.validators.in_(BUFFER_KINDS))
    dtype: str = "float"
    init: Any = "zeros"
    doc: str = ""

    @property
    def batched(self) -> bool:
        """Whether the first dimension is the batch."""
        return BATCH in self.shape

    @property
    def persistent(self) -> bool:
        """Whether the buffer keeps its value between runs."""
        return self.kind in ("param", "state")

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape with the batch dimension set to ``batch``."""
        return tuple(batch if dim == BATCH else int(dim) for dim in self.shape)

    def size(self, batch: int = 1) -> int:
        """Number of elements for a given batch size."""
        total = 1
        for dim in self.concrete_shape(batch):
            total *= dim
        return total


@attrs.frozen
class Op:
    """Base class of every op. Subclasses are frozen attrs classes holding buffer *names*.

    Subclasses implement :meth:`access` (which buffers they set, increment, update and read),
    :meth:`math` (one line of math over buffer names) and :meth:`check` (shapes).
    """

    def access(self) -> dict[str, tuple[str, ...]]:
        """``{"sets": ..., "incs": ..., "updates": ..., "reads": ...}`` buffer names."""
        raise NotImplementedError

    def math(self) -> str:
        """The op's math as one line, e.g. ``h1.pre = x.rate @ x->h1.weight``."""
        raise NotImplementedError

    def check(self, shapes: Mapping[str, tuple[int | str, ...]]) -> None:
        """Raise :class:`CompileError` when the buffers' shapes do not fit this op."""

    def buffers(self) -> tuple[str, ...]:
        """Every buffer the op touches."""
        acc = self.access()
        return tuple(dict.fromkeys(acc["sets"] + acc["incs"] + acc["updates"] + acc["reads"]))

    def fail(self, message: str) -> CompileError:
        """A :class:`CompileError` naming this op."""
        return CompileError(f"op '{self.math()}': {message}")


def access(sets: tuple[str, ...] = (), incs: tuple[str, ...] = (), updates: tuple[str, ...] = (),
           reads: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Build an access declaration (helper for op classes)."""
    return {"sets": tuple(sets), "incs": tuple(incs), "updates": tuple(updates), "reads": tuple(reads)}


@attrs.frozen
class Phase:
    """A named, ordered group of ops, run ``repeat`` times in a row.

    A *relaxation* phase names a scalar buffer in ``until``: it stops early, after the first
    pass at which that buffer (a residual its ops write) is at most ``tol``, so ``repeat`` is
    its step budget.
    """

    name: str
    ops: tuple[Op, ...]
    repeat: int = 1
    doc: str = ""
    until: str = ""
    tol: float = 0.0


@attrs.frozen
class Program:
    """A compiled circuit: buffers plus ordered phases.

    ``mode`` is ``train`` (apply updates), ``probe`` (write the rule's gradient estimates
    into ``<param>.grad`` buffers without applying them) or ``infer`` (forward pass only).
    ``params`` maps public parameter names (``"x->h1"``, ``"h1.bias"``) to their buffers, and
    ``grads`` maps the same names to the gradient-estimate buffers of a probe program,
    ``lrs`` to their learning rates; ``loss_params`` are the names the loss depends on.
    ``predict_phases`` are the phases that produce ``output`` from the inputs alone.
    """

    name: str
    rule: str
    mode: str
    dtype: str
    buffers: dict[str, Buffer] = attrs.field(hash=False)
    phases: tuple[Phase, ...]
    params: dict[str, str] = attrs.field(factory=dict, hash=False)
    grads: dict[str, str] = attrs.field(factory=dict, hash=False)
    lrs: dict[str, float] = attrs.field(factory=dict, hash=False)
    loss_params: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    output: str = ""
    loss: str = ""
    predict_phases: tuple[str, ...] = ()
    particles: dict[str, str] = attrs.field(factory=dict, hash=False)
    """Persistent particles: input buffer → the buffer saved back into it after a run. A caller
    that names the batch's examples (``Model.run(..., index=...)``) loads each example's last
    saved value into the input before the run; without names the input starts at zero."""

    def phase(self, name: str) -> Phase:
        """The phase called ``name``."""
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(name)

    def parameter_count(self) -> int:
        """Number of learned scalars (forward and feedback)."""
        return sum(b.size() for b in self.buffers.values() if b.kind == "param")

    def memory_bytes(self, batch: int) -> int:
        """Bytes of all buffers for one batch size."""
        width = {"float32": 4, "float64": 8}[self.dtype]
        return sum(b.size(batch) * (8 if b.dtype == "int64" else width) for b in self.buffers.values())

    def validate(self) -> None:
        """Check shapes, single writers and read-after-write over the whole program.

        Raises
        ------
        CompileError
            Naming the op and buffer at fault.
        """
        shapes = {name: buf.shape for name, buf in self.buffers.items()}
        written = {name for name, buf in self.buffers.items() if buf.kind != "temp"}
        for phase in self.phases:
            setters: dict[str, Op] = {}
            for op in phase.ops:
                for name in op.buffers():
                    if name not in self.buffers:
                        raise op.fail(f"uses buffer '{name}', which the program does not declare")
                op.check(shapes)
                acc = op.access()
                for name in acc["reads"] + acc["incs"] + acc["updates"]:
                    if name not in written:
                        raise op.fail(f"reads '{name}' in phase '{phase.name}' before anything writes it")
                for name in acc["sets"]:
                    if name in setters:
                        raise op.fail(f"sets '{name}', which '{setters[name].math()}' already sets "
                                      f"in phase '{phase.name}'")
                    setters[name] = op
                    written.add(name)
            if phase.until and (phase.until not in setters or self.buffers[phase.until].shape != ()):
                raise CompileError(f"phase '{phase.name}' stops on '{phase.until}', which must be a "
                                   "scalar that one of its ops sets")
        for load, store in self.particles.items():
            if self.buffers.get(load, Buffer(load, (), "temp")).kind != "input" or store not in self.buffers \
                    or self.buffers[store].shape != self.buffers[load].shape or BATCH not in self.buffers[load].shape:
                raise CompileError(f"particle '{load}' ← '{store}' needs a batched input buffer and a "
                                   "buffer of the same shape")

    def describe(self, batch: int | None = None) -> str:
        """The schedule as text: phases, ops in run order, buffers with shapes and sizes."""
        def shape(name: str) -> str:
            dims = self.buffers[name].shape if batch is None else self.buffers[name].concrete_shape(batch)
            return "×".join(str(d) for d in dims) or "scalar"

        lines = [f"program '{self.name}' · rule {self.rule} · mode {self.mode} · {self.dtype}", ""]
        for phase in self.phases:
            times = f" × {phase.repeat}" if phase.repeat != 1 else ""
            if phase.until:
                times = f" × at most {phase.repeat}, until {phase.until} ≤ {phase.tol:g}"
            doc = f"  — {phase.doc}" if phase.doc else ""
            lines.append(f"phase {phase.name}{times}{doc}")
            for index, op in enumerate(phase.ops, 1):
                lines.append(f"  {index:>3}. {op.math()}")
            lines.append("")
        for load, store in self.particles.items():
            lines.append(f"particle {load} ← {store} of the same examples at the end of their last run")
        if self.particles:
            lines.append("")
        lines.append("buffers")
        width = max((len(n) for n in self.buffers), default=0)
        for name, buf in self.buffers.items():
            lines.append(f"  {name:<{width}}  {buf.kind:<5}  {shape(name)}")
        size = self.memory_bytes(batch or 1)
        lines += ["", f"parameters: {self.parameter_count():,}",
                  f"memory: {size / 2**20:.2f} MiB" + ("" if batch else " (per example of the batch, plus parameters)")]
        return "\n".join(lines)


def order_ops(ops: list[Op]) -> tuple[Op, ...]:
    """Sort one phase's ops by their declared accesses, deterministically.

    Per buffer, the order is: its setter, then its incrementers, then reads and in-place
    updates in the order the ops were emitted (a read emitted before an update stays before
    it). Ties are broken by emission order, so a phase emitted in a valid order keeps it.

    Raises
    ------
    CompileError
        When the declarations contradict each other (a cycle).
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(ops)))
    timeline: dict[str, list[tuple[str, int]]] = {}
    for index, op in enumerate(ops):
        acc = op.access()
        for role in ("sets", "incs", "updates", "reads"):
            for name in acc[role]:
                timeline.setdefault(name, []).append((role, index))
    for events in timeline.values():
        setters = [i for role, i in events if role == "sets"]
        incs = [i for role, i in events if role == "incs"]
        rest = [(role, i) for role, i in events if role in ("updates", "reads")]
        for s in setters:
            graph.add_edges_from((s, j) for j in incs + [i for _, i in rest] if j != s)
        for j in incs:
            graph.add_edges_from((j, i) for _, i in rest if i != j)
        for pos, (role, i) in enumerate(rest):
            for role2, k in rest[pos + 1:]:
                if (role == "updates" or role2 == "updates") and i != k:
                    graph.add_edge(i, k)
    try:
        order = list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        raise CompileError("the ops of a phase have contradictory read/write declarations") from None
    return tuple(ops[i] for i in order)
