"""The Python API: :func:`load` a spec into a :class:`Model` that predicts, probes and learns.

Stages of building a model:

1. look the rule up and let it add any feedback projections its options create;
2. build and check the graph (a DAG unless the rule is energy-based);
3. compile the train program (the infer, probe and reference programs on first use);
4. pick the backend and allocate the parameters, each drawn from the run seed and its name.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from circuits.backends import get_backend
from circuits.compile import compile_circuit
from circuits.errors import DataError, RelaxationWarning
from circuits.graph import CircuitGraph, build_graph
from circuits.ir import Program
from circuits.rules import RuleRegistry, default_registry
from circuits.simulate import Executable, Relaxation, Simulator
from circuits.spec import CircuitSpec, load_spec

__all__ = ["Model", "RelaxationStats", "load", "angle_degrees", "budget_key", "schedule_markdown"]


def angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two arrays seen as vectors, in degrees (90 when either is zero)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0.0:
        return 90.0
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / norm, -1.0, 1.0))))


def budget_key(spec: CircuitSpec, phase: str) -> str:
    """The spec key that sets a relaxation phase's step budget: ``rule.free_steps`` for ``free``,
    ``rule.nudged_steps`` for ``nudged_plus``, …"""
    budget = [name for name in spec.rule.params if name.endswith("_steps") and phase.startswith(name[:-len("_steps")])]
    return f"rule.{budget[0]}" if budget else "the rule's step budget"


@attrs.frozen
class RelaxationStats:
    """How the runs of one relaxation phase ended (one run = one batch through the phase).

    A run *converged* when its largest per-example force norm fell to the phase's tolerance
    within its step budget; otherwise it *stopped at its budget*. A converged run means every
    example of its batch converged, so :attr:`converged` is a lower bound on the fraction of
    examples that did. The fields are what ``metrics.csv`` shows as ``relax.<phase>.<field>``.
    """

    steps: float = math.nan
    """Mean steps per run."""
    residual: float = 0.0
    """Largest final residual (force norm) of the runs."""
    converged: float = math.nan
    """Fraction of the runs that converged."""
    runs: int = 0

    @property
    def stopped(self) -> int:
        """Runs that stopped at their step budget above tolerance."""
        return self.runs - self.converged_runs

    @property
    def converged_runs(self) -> int:
        return round(self.converged * self.runs) if self.runs else 0

    @classmethod
    def of(cls, run: Relaxation) -> RelaxationStats:
        """The statistics of one run."""
        return cls(float(run.steps), float(run.residual), float(run.converged), 1)

    def merge(self, other: RelaxationStats) -> RelaxationStats:
        """The statistics of both sets of runs together."""
        if not self.runs or not other.runs:
            return other if not self.runs else self
        runs = self.runs + other.runs
        return RelaxationStats((self.steps * self.runs + other.steps * other.runs) / runs,
                               max(self.residual, other.residual),
                               (self.converged_runs + other.converged_runs) / runs, runs)


class Model:
    """A compiled circuit with its parameters, on one backend.

    Parameters
    ----------
    spec
        A resolved spec (see :func:`load` to read one from a file).
    registry
        Where rules are looked up (default: every built-in rule and plug-in).
    backend
        Overrides ``spec.run.backend``.
    """

    def __init__(self, spec: CircuitSpec, *, registry: RuleRegistry | None = None,
                 backend: str | None = None) -> None:
        self.registry = registry or default_registry()
        self.rule = self.registry.get(spec.rule.name)
        self.spec = self.rule.augment(spec)
        self.graph: CircuitGraph = build_graph(self.spec, require_dag=not self.rule.signature.energy_based)
        self.program: Program = compile_circuit(self.graph, self.rule, mode="train")
        self.backend = get_backend(backend or self.spec.run.backend, self.spec.run.seed)
        self.sim = Simulator(self.backend, self.spec.run.dtype)
        self._programs: dict[str, Program] = {"train": self.program}
        self.lr_scale = 1.0
        """What every learning rate of the train program is multiplied by (see :meth:`set_lr_scale`)."""
        self.unconverged: dict[str, int] = {}
        """Relaxation phase → how many runs ended at the step budget above tolerance."""
        self.relaxations: dict[str, RelaxationStats] = {}
        """Relaxation phase → how its runs ended, over every run of this model (train, probe, infer)."""
        self._relaxed: dict[str, RelaxationStats] = {}
        self.particles: dict[str, Any] = {}
        """Particle input buffer → per-example cache (examples × units, on the backend); see
        :meth:`run`'s ``index``. Examples never run start at zero."""
        for buf in self.program.buffers.values():
            if buf.persistent:
                self.sim.persistent(buf)
        initialize = getattr(self.rule, "initialize", None)
        if initialize is not None:  # a rule that sets weights from others once drawn (a closed-form state)
            initialize(self)

    # -- programs --------------------------------------------------------------------------------

    def compiled(self, mode: str) -> Program:
        """The program of ``mode``: ``train``, ``infer``, ``probe`` or ``reference``."""
        if mode not in self._programs:
            if mode == "reference":
                reference = self.registry.get(self.rule.reference)
                self._programs[mode] = compile_circuit(self.graph, reference, mode="probe")
            else:
                self._programs[mode] = compile_circuit(self.graph, self.rule, mode=mode)
        return self._programs[mode]

    def set_lr_scale(self, scale: float) -> None:
        """Train from now on with every learning rate multiplied by ``scale`` (1: the spec's).

        :func:`circuits.training.fit` sets each epoch's factor of the spec's learning-rate
        schedule (:func:`circuits.lr_schedule.lr_factor`). The train program is recompiled with
        the scaled rates; parameters, optimizer state and random streams carry on unchanged.
        :meth:`deltas` keeps the spec's rates.
        """
        if scale == self.lr_scale:
            return
        if scale == 1.0:
            self._programs["train"] = self.program
        else:
            self._programs["train"] = compile_circuit(self.graph, self.rule, mode="train", lr_scale=scale)
        self.lr_scale = scale

    def _bind(self, exe: Executable, x: np.ndarray, y: np.ndarray | None) -> None:
        x = np.asarray(x)
        widths = [self.graph.population(p).size for p in self.graph.inputs]
        if x.ndim != 2 or x.shape[1] != sum(widths):
            raise DataError(f"inputs must have shape (batch, {sum(widths)}) for input populations "
                            f"{', '.join(self.graph.inputs)} (got {x.shape})")
        start = 0
        for pop, width in zip(self.graph.inputs, widths):
            exe.arrays[f"{pop}.rate"][...] = self.backend.from_numpy(x[:, start:start + width])
            start += width
        if y is None:
            return
        out = self.graph.output
        if self.spec.task.loss == "cross_entropy":
            labels = np.asarray(y)
            _check_labels(labels, x.shape[0], self.graph.population(out).size, out)
            exe.arrays[f"{out}.labels"][...] = self.backend.from_numpy(labels.astype(np.int64))
        else:
            target = np.asarray(y)
            if target.ndim == 1 and np.issubdtype(target.dtype, np.integer):
                _check_labels(target, x.shape[0], self.graph.population(out).size, out)
                target = np.eye(self.graph.population(out).size)[target]  # class labels → one-hot
            if target.shape != (x.shape[0], self.graph.population(out).size):
                raise DataError(f"targets must have shape ({x.shape[0]}, {self.graph.population(out).size}) "
                                f"(got {target.shape})")
            exe.arrays[f"{out}.target"][...] = self.backend.from_numpy(target)

    def _load_particles(self, exe: Executable, index: np.ndarray | None) -> None:
        """Fill each particle input with the named examples' saved states (zeros without names)."""
        if not exe.program.particles:
            return
        if index is not None:
            index = np.asarray(index)
            if index.shape != (exe.batch,) or not np.issubdtype(index.dtype, np.integer) or index.min(initial=0) < 0:
                raise DataError(f"index must hold one non-negative integer example number per row of the "
                                f"batch, shape ({exe.batch},) (got {index.dtype} with shape {index.shape})")
        for load in exe.program.particles:
            if index is None:
                exe.arrays[load].fill(0)
                continue
            cache = self.particles.get(load)
            need = int(index.max(initial=-1)) + 1
            if cache is None or cache.shape[0] < need:
                grown = self.backend.empty((max(need, 2 * (0 if cache is None else cache.shape[0])),
                                            exe.arrays[load].shape[1]), self.spec.run.dtype)
                if cache is not None:
                    grown[:cache.shape[0]] = cache
                cache = self.particles[load] = grown
            exe.arrays[load][...] = cache[self.backend.from_numpy(index)]

    def _store_particles(self, exe: Executable, index: np.ndarray | None) -> None:
        if index is None:
            return
        where = self.backend.from_numpy(np.asarray(index))
        for load, store in exe.program.particles.items():
            self.particles[load][where] = exe.arrays[store]

    def run(self, mode: str, x: np.ndarray, y: np.ndarray | None = None,
            phases: Sequence[str] | None = None, index: np.ndarray | None = None) -> Executable:
        """Bind a batch and run ``mode``'s program (or some of its phases).

        ``index`` numbers the batch's examples (rows of the training set): a program with
        persistent particles starts each example from the state it saved on that example's
        last run, and saves the new one. Without ``index`` particles start at zero and nothing
        is saved; programs without particles ignore it.
        """
        exe = self.sim.executable(self.compiled(mode), len(x))
        self._bind(exe, x, y)
        self._load_particles(exe, index)
        # A diverging run overflows before its loss turns NaN; the caller checks the loss and
        # reports it, so NumPy's floating-point warnings would only repeat the news.
        exe.relaxation.clear()  # count only the relaxations of this run
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            exe.run(phases)
        for phase, relaxed in exe.relaxation.items():
            if not relaxed.converged:
                self.unconverged[phase] = self.unconverged.get(phase, 0) + 1
            self._relaxed[phase] = self._relaxed.get(phase, RelaxationStats()).merge(RelaxationStats.of(relaxed))
            self.relaxations[phase] = self.relaxations.get(phase, RelaxationStats()).merge(RelaxationStats.of(relaxed))
        self._store_particles(exe, index)
        return exe

    def take_relaxation(self) -> dict[str, RelaxationStats]:
        """Per relaxation phase, how its runs since the last call ended (then forgets them)."""
        taken, self._relaxed = self._relaxed, {}
        return taken

    def _warn_budget(self, exe: Executable) -> None:
        """One :class:`RelaxationWarning` naming every relaxation of this run that stopped at its budget."""
        stopped = [(phase, relaxed) for phase, relaxed in exe.relaxation.items() if not relaxed.converged]
        if not stopped:
            return
        tols = {p.name: p.tol for p in exe.program.phases}
        what = ", ".join(f"'{phase}' after {r.steps} steps with a force norm of {r.residual:.3g} > {tols[phase]:g}"
                         for phase, r in stopped)
        keys = ", ".join(dict.fromkeys(self.budget_key(phase) for phase, _ in stopped))
        warnings.warn(RelaxationWarning(
            f"relaxation stopped at its step budget above tolerance: {what}; raise {keys} or loosen rule.tol "
            "(the update is computed away from the fixed point)"), stacklevel=3)

    def budget_key(self, phase: str) -> str:
        """The spec key that sets a relaxation phase's step budget (see :func:`budget_key`)."""
        return budget_key(self.spec, phase)

    # -- public API ------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """Parameter name → live array (``"A->B"`` weights ``(size_A, size_B)``, ``"B.bias"``)."""
        return {name: self.sim.store[buf] for name, buf in self.program.params.items()}

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        """Overwrite parameters in place from host arrays of the same shapes."""
        for name, value in values.items():
            target = self.params[name]
            if tuple(np.shape(value)) != tuple(target.shape):
                raise DataError(f"parameter '{name}' has shape {tuple(target.shape)} (got {np.shape(value)})")
            target[...] = self.backend.from_numpy(np.asarray(value))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output population's activity for a batch of inputs (host array)."""
        chunks = []
        for start in range(0, len(x), self.spec.run.eval_batch_size):
            part = x[start:start + self.spec.run.eval_batch_size]
            exe = self.run("infer", part, phases=self.compiled("infer").predict_phases)
            chunks.append(np.array(self.backend.to_numpy(exe.arrays[self.program.output])))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.graph.population(self.graph.output).size))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy over a data set, without learning.

        Accuracy (argmax of the output against integer labels) is NaN for regression targets.
        """
        total, correct = 0.0, 0
        labelled = np.ndim(y) == 1 and np.issubdtype(np.asarray(y).dtype, np.integer)
        for start in range(0, len(x), self.spec.run.eval_batch_size):
            xs = x[start:start + self.spec.run.eval_batch_size]
            ys = y[start:start + len(xs)]
            exe = self.run("infer", xs, ys)
            total += float(exe.arrays["loss.value"]) * len(xs)
            if labelled:
                out = self.backend.to_numpy(exe.arrays[self.program.output])
                correct += int(np.sum(np.argmax(out, axis=1) == ys))
        accuracy = correct / len(x) if labelled else float("nan")
        return total / max(len(x), 1), accuracy

    def step(self, x: np.ndarray, y: np.ndarray, index: np.ndarray | None = None) -> float:
        """One learning step on a batch; returns the batch loss before the update.

        ``index`` numbers the examples (see :meth:`run`); rules with persistent particles need it.
        A relaxation that stops at its step budget above tolerance emits a
        :class:`~circuits.errors.RelaxationWarning` (:func:`circuits.training.fit` silences it and
        counts such runs in its epoch records instead).
        """
        exe = self.run("train", x, y, index=index)
        self._warn_budget(exe)
        return float(exe.arrays["loss.value"])

    def deltas(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The changes the rule would make under plain SGD on this batch (``−lr ·`` estimate), not applied.

        Warns like :meth:`step` when a relaxation stops at its budget.
        """
        program = self.compiled("probe")
        exe = self.run("probe", x, y)
        self._warn_budget(exe)
        return {name: -program.lrs[name] * np.array(self.backend.to_numpy(exe.arrays[buf]))
                for name, buf in program.grads.items()}

    def gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The exact gradient of the batch loss for every parameter the loss depends on.

        Feed-forward rules compile their reference rule's probe program (backprop); energy
        rules differentiate the loss at the free fixed point implicitly, the fixed point found
        by a float64 relaxation with its own tolerance and budget, whatever the rule's
        (:func:`circuits.rules.energy.fixed_point`).

        Raises
        ------
        FixedPointError
            When an energy rule's free fixed point is not reached.
        """
        exact = getattr(self.rule, "exact_gradients", None)
        if exact is not None:
            return exact(self, x, y)
        program = self.compiled("reference")
        exe = self.run("reference", x, y)
        return {name: np.array(self.backend.to_numpy(exe.arrays[program.grads[name]]))
                for name in program.loss_params if name in program.grads}

    def alignment(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Angle in degrees between the rule's change and ``−gradient``, per loss parameter."""
        deltas, grads = self.deltas(x, y), self.gradients(x, y)
        return {name: angle_degrees(deltas[name], -grads[name]) for name in grads if name in deltas}

    # -- notebooks -------------------------------------------------------------------------------

    def _repr_markdown_(self) -> str:
        """What Jupyter shows for a model: populations, rule and the schedule, as Markdown.

        The circuit's diagram needs :mod:`circuits.render`, above this module: a run from
        :func:`circuits.load_run` shows it, or ``circuits.notebook.diagram(model)``.
        """
        spec = self.spec
        lines = [f"**{spec.name}** · rule `{spec.rule.name}` · {self.program.parameter_count():,} parameters · "
                 f"{spec.run.dtype} on {spec.run.backend}", ""]
        if spec.doc:
            lines += [spec.doc, ""]
        lines += ["| population | size | role | activation |", "|---|---:|---|---|"]
        lines += [f"| {p.name} | {p.size} | {p.role} | {p.rate_params.formula(p.activation, 'u') if not p.rate_params.plain else p.activation} |"
                  for p in spec.populations]
        lines += ["", schedule_markdown(self.program)]
        return "\n".join(lines)


def schedule_markdown(program: Program) -> str:
    """The schedule in brief as a Markdown table: each phase, how often it runs, its op count."""
    rows = ["| phase | runs | ops | what it does |", "|---|---|---:|---|"]
    for phase in program.phases:
        runs = f"until {phase.until} ≤ {phase.tol:g}, ≤ {phase.repeat}×" if phase.until else f"{phase.repeat}×"
        rows.append(f"| {phase.name} | {runs} | {len(phase.ops)} | {phase.doc.replace('|', '/')} |")
    return "\n".join(rows)


def _check_labels(labels: np.ndarray, batch: int, classes: int, output: str) -> None:
    """Class labels: shape ``(batch,)``, integers in ``[0, classes)``; name the first bad one."""
    whole = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and bool(np.all(labels == np.round(labels))))
    if labels.shape != (batch,) or not whole:
        raise DataError(f"labels must be one whole number per example, shape ({batch},) "
                        f"(got {labels.dtype} with shape {labels.shape})")
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise DataError(f"label {labels[bad[0]]} (row {bad[0]} of the batch) is outside "
                        f"0..{classes - 1}: output population '{output}' has {classes} units")


def load(path: str | os.PathLike[str], overrides: Mapping[str, Any] | Sequence[str] | None = None,
         *, registry: RuleRegistry | None = None, backend: str | None = None) -> Model:
    """Read a spec file and build its :class:`Model`."""
    registry = registry or default_registry()
    spec = load_spec(path, overrides, rules=registry.signatures())
    return Model(spec, registry=registry, backend=backend)
