"""The simulator: buffers allocated once, ops turned into step closures, phases run in order.

Persistent buffers (parameters, optimizer state) live in one store shared by every program
of a model, so a train program and its probe and infer programs see the same weights.
Per-batch buffers are allocated per (program, batch size) in an :class:`Executable`, built
on first use and cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from circuits.backends import Backend, stream_seed
from circuits.errors import CompileError
from circuits.initializers import init_weight
from circuits.ir import Buffer, Program
from circuits.spec import InitSpec

__all__ = ["Simulator", "Executable", "Relaxation"]


class Relaxation(NamedTuple):
    """How a relaxation phase ended: steps taken, final residual, whether it met its tolerance."""

    steps: int
    residual: float
    converged: bool


class Executable:
    """One program at one batch size: arrays plus the step closures of each phase."""

    def __init__(self, program: Program, batch: int, arrays: dict[str, Any], backend: Backend) -> None:
        self.program = program
        self.batch = batch
        self.arrays = arrays
        owner = f"{program.name}/{program.rule}@{batch}"
        self.phases = [(phase, [backend.step(op, arrays, owner=owner) for op in phase.ops])
                       for phase in program.phases]
        self.relaxation: dict[str, Relaxation] = {}

    def rebind(self, program: Program, backend: Backend) -> None:
        """Run ``program`` from now on: a program with the same buffers and the same ops up to
        their constants (another epoch's learning rates).

        The step closures of unchanged ops are kept, with the random generators they hold, so
        a stream (dropout, noise) continues where it was; only changed ops are rebuilt.

        Raises
        ------
        CompileError
            When ``program`` has other buffers, phases or op types than the current one.
        """
        old = self.program
        same = old.buffers == program.buffers and [
            (p.name, [type(op) for op in p.ops]) for p in old.phases] == [
            (p.name, [type(op) for op in p.ops]) for p in program.phases]
        if not same:
            raise CompileError(f"program '{program.name}' differs from '{old.name}' in more than the "
                               "constants of its ops; build a new executable")
        owner = f"{program.name}/{program.rule}@{self.batch}"
        phases = []
        for (_, steps), before, phase in zip(self.phases, old.phases, program.phases):
            phases.append((phase, [step if op == previous else backend.step(op, self.arrays, owner=owner)
                                   for step, previous, op in zip(steps, before.ops, phase.ops)]))
        self.program, self.phases = program, phases

    def run(self, phases: Iterable[str] | None = None) -> None:
        """Run the named phases (all, in program order, when ``None``).

        A relaxation phase stops once its residual is within tolerance; how many steps it
        took and where its residual ended are kept in :attr:`relaxation`.
        """
        wanted = None if phases is None else set(phases)
        for phase, steps in self.phases:
            if wanted is not None and phase.name not in wanted:
                continue
            if not phase.until:
                for _ in range(phase.repeat):
                    for step in steps:
                        step()
                continue
            residual, count = float("inf"), 0
            while count < phase.repeat and not residual <= phase.tol:
                for step in steps:
                    step()
                count += 1
                residual = float(self.arrays[phase.until])
            self.relaxation[phase.name] = Relaxation(count, residual, residual <= phase.tol)


class Simulator:
    """Allocates buffers on a backend and runs programs.

    Parameters
    ----------
    backend
        Where arrays live and which kernels run.
    dtype
        ``float32`` or ``float64``.
    """

    def __init__(self, backend: Backend, dtype: str) -> None:
        self.backend = backend
        self.dtype = dtype
        self.store: dict[str, Any] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._executables: dict[tuple[str, int], Executable] = {}
        self._pending: dict[str, np.ndarray] = {}

    def state(self) -> dict[str, np.ndarray]:
        """Host copies of every persistent buffer allocated so far (parameters, optimizer state)."""
        return {name: np.array(self.backend.to_numpy(array)) for name, array in self.store.items()}

    def restore(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite persistent buffers from host arrays (see :meth:`state`).

        Buffers not allocated yet (a program not built yet) take their values when they are.

        Raises
        ------
        CompileError
            When a value's shape differs from its buffer's.
        """
        for name, value in values.items():
            if name in self.store:
                if tuple(value.shape) != self._shapes[name]:
                    raise CompileError(f"buffer '{name}' has shape {self._shapes[name]} but the saved "
                                       f"value has {tuple(value.shape)}")
                self.store[name][...] = self.backend.from_numpy(value)
            else:
                self._pending[name] = value

    def _dtype(self, buf: Buffer) -> str:
        return "int64" if buf.dtype == "int64" else self.dtype

    def persistent(self, buf: Buffer) -> Any:
        """The store's array for a persistent buffer, allocated and initialised on first use."""
        shape = buf.concrete_shape(1)
        if buf.name in self.store:
            if self._shapes[buf.name] != shape:
                raise CompileError(f"buffer '{buf.name}' has shape {shape} here but "
                                   f"{self._shapes[buf.name]} in another program")
            return self.store[buf.name]
        if buf.name in self._pending:
            saved = self._pending.pop(buf.name)
            if tuple(saved.shape) != shape:
                raise CompileError(f"buffer '{buf.name}' has shape {shape} but the saved value has "
                                   f"{tuple(saved.shape)}")
            array = self.backend.from_numpy(np.array(saved), dtype=self._dtype(buf))
        elif isinstance(buf.init, InitSpec):
            rng = np.random.default_rng(stream_seed(self.backend.seed, f"init:{buf.name}"))
            host = init_weight(buf.init, shape, rng, self._dtype(buf))
            array = self.backend.from_numpy(host, dtype=self._dtype(buf))
        else:
            array = self.backend.empty(shape, self._dtype(buf))
            if buf.init == "ones":
                array += 1
        self.store[buf.name] = array
        self._shapes[buf.name] = shape
        return array

    def executable(self, program: Program, batch: int) -> Executable:
        """The executable of ``program`` at ``batch`` (built once, then cached).

        A program of the same name and rule that differs only in its ops' constants (another
        epoch of a learning-rate schedule) reuses the cached executable through
        :meth:`Executable.rebind`.
        """
        key = (program.name + "/" + program.rule, batch)
        cached = self._executables.get(key)
        if cached is not None and cached.program is not program:
            try:
                cached.rebind(program, self.backend)
            except CompileError:
                del self._executables[key]
        if key not in self._executables:
            arrays = {}
            for name, buf in program.buffers.items():
                if buf.persistent:
                    arrays[name] = self.persistent(buf)
                else:
                    arrays[name] = self.backend.empty(buf.concrete_shape(batch), self._dtype(buf))
            self._executables[key] = Executable(program, batch, arrays, self.backend)
        return self._executables[key]
