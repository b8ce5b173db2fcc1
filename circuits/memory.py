"""How much memory a run needs, estimated from its compiled programs before anything is allocated.

:func:`estimate_memory` adds up the buffers of a program at a batch size (persistent buffers
once, per-batch buffers at the batch), an optional evaluation program at its batch, and the
data set. :func:`estimate_run` does it for a spec as ``simulate`` runs it; :func:`check_memory`
and :func:`check_run_memory` raise :class:`MemoryLimitError` when the estimate exceeds the
memory this machine has available (:func:`available_memory`), naming the biggest buffers.

The estimate is a lower bound: kernels' scratch arrays, persistent particles, the alignment
probe programs and Python itself come on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import attrs

from circuits.compile import compile_circuit
from circuits.data import DATASETS
from circuits.errors import CircuitsError
from circuits.graph import build_graph
from circuits.ir import Program
from circuits.rules.base import Rule
from circuits.spec import CircuitSpec

__all__ = ["MemoryEstimate", "MemoryLimitError", "available_memory", "check_memory",
           "check_run_memory", "dataset_bytes", "estimate_memory", "estimate_run",
           "format_bytes", "require_fit"]

_WIDTH = {"float32": 4, "float64": 8}
_SHOWN = 3  # buffers named in an estimate's text


class MemoryLimitError(CircuitsError):
    """A run would need more memory than the machine has available."""


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``; binary units up to PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"


@attrs.frozen
class MemoryEstimate:
    """Bytes a run needs, by part.

    ``persistent``: parameters and optimizer state; ``per_batch``: the training program's
    other buffers at ``batch``; ``evaluation``: the inference program's per-batch buffers at
    its batch; ``data``: the data set (``None`` when unknown). ``biggest`` lists the largest
    buffers, ``(name, bytes)``, largest first.
    """

    persistent: int
    per_batch: int
    batch: int
    evaluation: int = 0
    data: int | None = None
    biggest: tuple[tuple[str, int], ...] = ()

    @property
    def total(self) -> int:
        """Every part added up."""
        return self.persistent + self.per_batch + self.evaluation + (self.data or 0)

    def describe(self) -> str:
        """One line: the total and its parts, e.g. ``≈ 12.1 MiB (parameters and state …)``."""
        parts = [f"parameters and state {format_bytes(self.persistent)}",
                 f"batch of {self.batch} {format_bytes(self.per_batch)}"]
        if self.evaluation:
            parts.append(f"evaluation {format_bytes(self.evaluation)}")
        if self.data is not None:
            parts.append(f"data {format_bytes(self.data)}")
        return f"≈ {format_bytes(self.total)} ({', '.join(parts)})"

    def biggest_text(self) -> str:
        """``"x->h1.weight 7.3 TiB, h1.pre 2.0 GiB"``: the largest buffers."""
        return ", ".join(f"{name} {format_bytes(size)}" for name, size in self.biggest[:_SHOWN])


def _buffer_bytes(program: Program, batch: int, persistent: bool) -> Iterable[tuple[str, int]]:
    width = _WIDTH[program.dtype]
    for name, buf in program.buffers.items():
        if buf.persistent == persistent:
            size = buf.size(1 if persistent else batch)
            yield name, size * (8 if buf.dtype == "int64" else width)


def estimate_memory(program: Program, batch: int, *, data_bytes: int | None = None,
                    eval_program: Program | None = None,
                    eval_batch: int | None = None) -> MemoryEstimate:
    """Estimate a run of ``program`` at ``batch`` (and ``eval_program`` at ``eval_batch``).

    Persistent buffers (``param``, ``state``) count once, as the simulator keeps one copy of
    each for every program; every other buffer counts at its batch size.
    """
    kept = dict(_buffer_bytes(program, batch, True))
    temps = dict(_buffer_bytes(program, batch, False))
    evaluation: dict[str, int] = {}
    if eval_program is not None:
        evaluation = dict(_buffer_bytes(eval_program, eval_batch or batch, False))
    named = [*kept.items(), *temps.items(),
             *((f"{name} (evaluation)", size) for name, size in evaluation.items())]
    named.sort(key=lambda item: -item[1])
    return MemoryEstimate(persistent=sum(kept.values()), per_batch=sum(temps.values()),
                          batch=batch, evaluation=sum(evaluation.values()), data=data_bytes,
                          biggest=tuple(named[:10]))


def dataset_bytes(spec: CircuitSpec) -> int | None:
    """Bytes that loading the spec's data set takes (see ``DatasetRegistry.estimated_bytes``)."""
    task = spec.task
    return DATASETS.estimated_bytes(task.dataset, n_train=task.n_train, n_test=task.n_test,
                                    options=task.options)


def estimate_run(spec: CircuitSpec, rule: Rule) -> MemoryEstimate:
    """Estimate ``simulate``'s run of ``spec`` under ``rule``: train and infer programs, data.

    Raises
    ------
    GraphError, CompileError
        As :func:`circuits.graph.build_graph` and :func:`circuits.compile.compile_circuit` do.
    """
    graph = build_graph(spec, require_dag=not rule.signature.energy_based)
    return estimate_memory(compile_circuit(graph, rule), spec.task.batch_size,
                           data_bytes=dataset_bytes(spec),
                           eval_program=compile_circuit(graph, rule, mode="infer"),
                           eval_batch=spec.run.eval_batch_size)


def available_memory() -> int | None:
    """Bytes this process may still allocate, or ``None`` when the system does not say.

    The smaller of ``MemAvailable`` in ``/proc/meminfo`` (else physical memory from
    ``os.sysconf``) and a cgroup's memory limit less its usage (containers).
    """
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file, encoding="ascii") as limit, open(usage_file, encoding="ascii") as usage:
                found.append(int(limit.read().strip()) - int(usage.read().strip()))
        except (OSError, ValueError):  # no such cgroup file, or "max": no limit
            continue
    return min(found) if found else None


def _program_of(program_or_model: object) -> Program:
    program = getattr(program_or_model, "program", program_or_model)
    if not isinstance(program, Program):
        raise TypeError(f"check_memory takes a Program or a Model (got {type(program_or_model).__name__})")
    return program


def check_memory(program_or_model: object, batch: int, data_bytes: int | None = None, *,
                 available: int | None = None, where: str = "") -> MemoryEstimate:
    """Estimate a run of a program (or a Model's train program) and refuse one that cannot fit.

    Parameters
    ----------
    program_or_model
        A :class:`~circuits.ir.Program`, or anything with a ``program`` attribute holding one
        (a :class:`~circuits.model.Model`).
    batch, data_bytes
        The batch size; the data set's bytes, where known.
    available
        Bytes available; by default :func:`available_memory`.
    where
        Put in front of the error message (e.g. the spec's path).

    Returns
    -------
    MemoryEstimate

    Raises
    ------
    MemoryLimitError
        When the estimate exceeds the available memory; the message names the biggest buffers.
    """
    estimate = estimate_memory(_program_of(program_or_model), batch, data_bytes=data_bytes)
    require_fit(estimate, available=available, where=where)
    return estimate


def check_run_memory(spec: CircuitSpec, rule: Rule, *, available: int | None = None) -> MemoryEstimate:
    """:func:`estimate_run` for ``spec``, refusing a run that cannot fit (see :func:`check_memory`)."""
    estimate = estimate_run(spec, rule)
    require_fit(estimate, available=available, where=spec.source)
    return estimate


def require_fit(estimate: MemoryEstimate, *, available: int | None = None, where: str = "") -> None:
    """Raise :class:`MemoryLimitError` if ``estimate`` exceeds ``available`` (default: this machine's)."""
    available = available_memory() if available is None else available
    if available is None or estimate.total <= available:
        return
    prefix = f"{where}: " if where else ""
    largest = estimate.biggest[0][1] if estimate.biggest else 0
    if estimate.data is not None and estimate.data >= largest:
        fix = (f"the data set takes {format_bytes(estimate.data)}: make it smaller (task.options, "
               "task.n_train, task.n_test)")
    else:
        fix = (f"the biggest buffers are {estimate.biggest_text()}: make those populations "
               "smaller (or the batch)")
    raise MemoryLimitError(f"{prefix}the run needs {estimate.describe()} but this machine has "
                           f"{format_bytes(available)} available; {fix}")
