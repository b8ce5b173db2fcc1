"""Run a spec into a run folder: :func:`execute_run` and its :class:`RunOutcome`.

Stages of :func:`execute_run`:

1. fold the backend and thread count into the spec, open and lock the folder (refusing a
   used one unless resuming or overwriting); when resuming, check the saved spec and return
   at once if that run already completed;
2. under a BLAS thread limit, build the model, load the data and write ``spec.toml`` and
   ``schedule.txt``; restore the last checkpoint, or write the initial ``params.npz``;
3. train; after every finished epoch write, each atomically, ``checkpoint.npz``,
   ``params.npz``, ``metrics.csv`` (and ``alignment.csv``) and ``summary.json``;
4. on completion, NaN, a failed write or an interruption, finish any half-written epoch from
   its in-memory snapshot, write the final ``summary.json`` and ``curves.png``, release the lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from threadpoolctl import threadpool_limits

from circuits.data import Dataset
from circuits.errors import SimulationError, SpecError
from circuits.model import Model
from circuits.rules import RuleRegistry, default_registry
from circuits.runs.checkpoint import Checkpoint, restore_checkpoint, take_checkpoint
from circuits.runs.files import RunWriteError
from circuits.runs.folder import RunFolder, RunFolderError, read_summary
from circuits.runs.identity import first_difference, run_id, without_out
from circuits.runs.records import metrics_row, summarize
from circuits.runs.signals import Terminated
from circuits.spec import CircuitSpec, parse_spec
from circuits.training import EpochRecord, batch_rng, check_data_fit, fit, load_data

__all__ = ["RunOutcome", "execute_run", "resolve_run_spec", "STATUSES", "SIGTERM_MESSAGE", "CTRL_C_MESSAGE"]

STATUSES = ("completed", "failed", "interrupted")
SIGTERM_MESSAGE = "stopped by SIGTERM"
"""The message of a run interrupted by :class:`~circuits.runs.signals.Terminated` (SIGTERM)."""
CTRL_C_MESSAGE = "stopped by the user (Ctrl-C)"


@attrs.frozen
class RunOutcome:
    """How a run ended.

    ``status`` is ``completed``, ``failed`` (NaN loss, a file that could not be written) or
    ``interrupted`` (Ctrl-C, SIGTERM); ``message`` says why for the last two; ``summary`` is
    the content of ``summary.json``; ``epochs`` counts finished epochs; ``records`` are their
    :class:`~circuits.training.EpochRecord` (those of earlier sessions of a resumed run too).
    """

    path: Path
    status: str = attrs.field(validator=attrs.validators.in_(STATUSES))
    message: str
    summary: dict[str, Any] = attrs.field(eq=False, hash=False)
    epochs: int
    records: tuple[EpochRecord, ...] = attrs.field(default=(), eq=False, hash=False, repr=False)


def resolve_run_spec(spec: CircuitSpec, *, threads: int | None = None, backend: str | None = None,
                     registry: RuleRegistry | None = None) -> CircuitSpec:
    """``spec`` with the rule's ``augment`` applied and ``backend``/``threads`` folded into ``[run]``.

    This is the spec a run saves and hashes (:func:`~circuits.runs.identity.run_id`).

    Raises
    ------
    SpecError
        For a negative thread count or an unknown backend.
    """
    registry = registry or default_registry()
    run = spec.run
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise SpecError(f"threads: must be an integer >= 0, 0 for the BLAS library's default "
                            f"(got {threads!r})")
        run = attrs.evolve(run, threads=threads)
    if backend is not None:
        if backend not in ("numpy", "cupy"):
            raise SpecError(f"backend: must be one of numpy, cupy (got {backend!r})")
        run = attrs.evolve(run, backend=backend)
    return registry.get(spec.rule.name).augment(attrs.evolve(spec, run=run))


def _thread_limit(threads: int) -> Any:
    return contextlib.nullcontext() if threads == 0 else threadpool_limits(limits=threads)


def _check_resumable(folder: RunFolder, spec: CircuitSpec, registry: RuleRegistry) -> CircuitSpec | None:
    """The saved spec of ``folder`` (``None`` without one), refusing a different one.

    ``task.epochs`` may grow (to extend a run); any other difference is refused by name.
    """
    text = folder.saved_spec_text()
    if text is None:
        return None
    saved = parse_spec(text, source=str(folder.path / "spec.toml"), rules=registry.signatures())
    if spec.task.epochs < saved.task.epochs:
        raise RunFolderError(f"{folder.path}: task.epochs may only grow when resuming (saved "
                             f"{saved.task.epochs}, given {spec.task.epochs})")
    same_length = attrs.evolve(without_out(spec), task=attrs.evolve(spec.task, epochs=saved.task.epochs))
    difference = first_difference(without_out(saved), same_length)
    if difference is not None:
        raise RunFolderError(f"{folder.path} holds a run of another spec: {difference}; resume with "
                             "the saved spec (only task.epochs may grow), or choose another --out")
    return saved


def execute_run(spec: CircuitSpec, out: str | os.PathLike[str], *, resume: bool = False,
                overwrite: bool = False, threads: int | None = None, backend: str | None = None,
                registry: RuleRegistry | None = None, data: Dataset | None = None,
                on_batch: Callable[[int, int, float], None] | None = None,
                on_epoch: Callable[[EpochRecord], None] | None = None,
                on_start: Callable[[int, int, int], None] | None = None) -> RunOutcome:
    """Train ``spec`` into the run folder ``out``.

    Parameters
    ----------
    spec
        The resolved spec (as :func:`circuits.load_spec` returns it).
    out
        The run folder (``~`` expanded). A folder holding files is refused unless
        ``resume`` or ``overwrite``.
    resume
        Continue from the folder's last checkpoint (start afresh when it has none). The spec
        must equal the saved one except that ``task.epochs`` may grow. A folder whose run
        completed (with as many epochs) is returned at once, without training.
    overwrite
        Empty the folder first (only a run folder: one holding spec.toml, summary.json…).
    threads
        BLAS threads for the run (``None``: ``spec.run.threads``; 0: leave the BLAS library as it
        is). Set with threadpoolctl around the whole run and restored after it; the limit is
        process-wide, so runs in threads of one process should all ask for the same count.
    backend
        Overrides ``spec.run.backend``.
    registry
        Where rules are looked up (default: built-ins and plug-ins).
    data
        An already loaded data set for this spec (default: loaded from the spec).
    on_batch, on_epoch, on_start
        Called with ``(epoch, batch index, loss)`` after every step, with each finished
        epoch's record, and once before training with ``(first epoch, last epoch, batches
        per epoch)``.

    Returns
    -------
    RunOutcome
        Training failures (NaN, a file that cannot be written) and interruptions (Ctrl-C,
        :class:`~circuits.runs.signals.Terminated` for SIGTERM) are returned, not raised, after
        everything finished is written; the caller decides the exit code.

    Raises
    ------
    CircuitsError
        For bad input, before anything is trained: a used or locked folder
        (:class:`RunFolderError`, ``FolderLockedError``), a changed spec on resume, data
        that does not fit; :class:`RunWriteError` when the folder cannot be created or its
        first files cannot be written.
    KeyboardInterrupt
        When interrupted before training starts (model build, data loading).
    """
    registry = registry or default_registry()
    spec = resolve_run_spec(spec, threads=threads, backend=backend, registry=registry)
    if resume and overwrite:
        raise RunFolderError("--resume continues a run and --overwrite replaces it; give one of them")
    folder = RunFolder.open(out, resume=resume, overwrite=overwrite)
    try:
        checkpoint = None
        if resume:
            saved = _check_resumable(folder, spec, registry)
            summary = read_summary(folder.path)
            checkpoint = folder.checkpoint() if saved is not None else None
            if (saved is not None and summary is not None and summary.get("status") == "completed"
                    and saved.task.epochs == spec.task.epochs and checkpoint is not None
                    and checkpoint.epoch == spec.task.epochs):
                return RunOutcome(folder.path, "completed", "", summary, checkpoint.epoch, checkpoint.records)
        with _thread_limit(spec.run.threads):
            return _train(folder, spec, registry, checkpoint, data, on_batch, on_epoch, on_start)
    finally:
        folder.close()


class _Session:
    """The mutable bookkeeping of one training session (kept out of :class:`RunOutcome`)."""

    def __init__(self, folder: RunFolder, model: Model, rid: str, wall_before: float) -> None:
        self.folder, self.model, self.rid = folder, model, rid
        self.started = time.perf_counter()
        self.wall_before = wall_before

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def summary(self, records: list[EpochRecord], status: str, message: str) -> dict[str, Any]:
        model = self.model
        return summarize(model.spec, records, status=status, message=message, wall_seconds=self.wall(),
                         backend=model.backend.name, unconverged=model.unconverged, run_id=self.rid,
                         params_epoch=self.folder.params_epoch, threads=model.spec.run.threads)

    def commit(self, checkpoint: Checkpoint) -> None:
        """Write one finished epoch: checkpoint first (it is what resume trusts), then the rest."""
        folder = self.folder
        records = list(checkpoint.records)
        folder.write_checkpoint(checkpoint)
        folder.write_params(checkpoint.params(self.model), checkpoint.epoch)
        folder.write_metrics(checkpoint.rows, records)
        folder.write_summary(self.summary(records, "running", ""))


def _train(folder: RunFolder, spec: CircuitSpec, registry: RuleRegistry, checkpoint: Checkpoint | None,
           data: Dataset | None, on_batch: Callable[[int, int, float], None] | None,
           on_epoch: Callable[[EpochRecord], None] | None,
           on_start: Callable[[int, int, int], None] | None) -> RunOutcome:
    model = Model(spec, registry=registry)
    if data is None:
        data = load_data(model)
    else:
        check_data_fit(model.spec, model.graph, n_features=data.n_features, n_outputs=data.n_outputs,
                       task=data.task)
    rid = run_id(model.spec)
    rng = batch_rng(model.spec)
    records: list[EpochRecord] = []
    rows: list[dict[str, Any]] = []
    folder.write_start(model.spec, model.program)
    if checkpoint is not None:
        restore_checkpoint(model, checkpoint, rng)
        records, rows = list(checkpoint.records), list(checkpoint.rows)
        session = _Session(folder, model, rid, float(checkpoint.counters.get("wall_seconds", 0.0)))
        folder.write_params(checkpoint.params(model), checkpoint.epoch)
        folder.write_metrics(rows, records)  # drops rows of an epoch after the checkpoint
    else:
        session = _Session(folder, model, rid, 0.0)
        for name in ("checkpoint.npz", "metrics.csv", "alignment.csv", "curves.png", "params.npz"):
            folder.remove(name)
        folder.write_params({k: model.backend.to_numpy(v) for k, v in model.params.items()}, 0)
    folder.write_summary(session.summary(records, "running", ""))
    first = len(records) + 1
    if on_start is not None:
        on_start(first, model.spec.task.epochs, -(-data.n_train // model.spec.task.batch_size))
    status, message = "completed", ""
    pending: Checkpoint | None = None
    try:
        for record in fit(model, data, on_batch=on_batch, first_epoch=first, rng=rng):
            # Everything of the epoch goes into one snapshot first; `records` and `rows` only
            # ever hold epochs whose files are all written, whenever an interruption comes.
            pending = take_checkpoint(model, rng, [*records, record], [*rows, metrics_row(record)],
                                      run_id=rid, wall_seconds=session.wall())
            session.commit(pending)
            records, rows, pending = list(pending.records), list(pending.rows), None
            if on_epoch is not None:
                on_epoch(record)
    except SimulationError as exc:
        status, message = "failed", str(exc)
    except Terminated:
        status, message = "interrupted", SIGTERM_MESSAGE
    except KeyboardInterrupt:
        status, message = "interrupted", CTRL_C_MESSAGE
    return _finish(session, records, rows, pending, status, message)


def _finish(session: _Session, records: list[EpochRecord], rows: list[dict[str, Any]],
            pending: Checkpoint | None, status: str, message: str) -> RunOutcome:
    """Finish the writes of an epoch an interruption cut short, then write the final summary
    and curves. ``records``/``rows`` are the epochs whose files are complete."""
    folder, model = session.folder, session.model
    try:
        if pending is not None and status == "interrupted":
            session.commit(pending)
            records, rows = list(pending.records), list(pending.rows)
        if rows:
            folder.write_curves(rows, title=f"{model.spec.name} · {model.spec.rule.name}")
    except RunWriteError as exc:
        if status != "failed":
            status, message = "failed", str(exc)
    summary = session.summary(records, status, message)
    try:
        folder.write_summary(summary)
    except RunWriteError as exc:
        if status != "failed":
            status, message = "failed", str(exc)
            summary = {**summary, "status": status, "message": message}
    return RunOutcome(folder.path, status, message, summary, len(records), tuple(records))
