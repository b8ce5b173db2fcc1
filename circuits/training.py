"""The training loop: seeded batches, per-epoch evaluation, alignment records, NaN guard.

:func:`fit` is a generator of :class:`EpochRecord`, so a caller (the CLI, a notebook, a
test) decides what to do with each epoch as it ends, and everything already yielded stays
valid when a later epoch fails or the user presses Ctrl-C.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator

import attrs
import numpy as np

from circuits.data import DATASETS, Dataset, as_dataset, iterate_batches
from circuits.errors import DataError, RelaxationWarning, SimulationError
from circuits.graph import CircuitGraph
from circuits.lr_schedule import lr_factor
from circuits.model import Model, RelaxationStats
from circuits.spec import CircuitSpec

__all__ = ["EpochRecord", "AlignmentRecord", "batch_rng", "check_data_fit", "load_data", "fit"]


@attrs.frozen
class AlignmentRecord:
    """Angles (degrees) between the rule's change and −gradient at one training step."""

    step: int
    epoch: int
    angles: dict[str, float] = attrs.field(hash=False)


@attrs.frozen
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float
    examples: int
    alignment: tuple[AlignmentRecord, ...] = ()
    relaxation: dict[str, RelaxationStats] = attrs.field(factory=dict, hash=False)
    """Relaxation phase → how its runs ended over the epoch's training steps (and alignment
    probes): mean steps, largest final residual, converged fraction, runs."""
    validation_loss: float = math.nan
    validation_accuracy: float = math.nan
    """On the held-out validation split (``task.validation``); NaN when there is none."""

    def mean_alignment(self) -> dict[str, float]:
        """Per-parameter mean angle over the epoch's alignment records."""
        if not self.alignment:
            return {}
        names = self.alignment[0].angles
        return {n: float(np.mean([r.angles[n] for r in self.alignment])) for n in names}


def check_data_fit(spec: CircuitSpec, graph: CircuitGraph, *, n_features: int | None = None,
                   n_outputs: int | None = None, task: str | None = None,
                   label: str | None = None) -> None:
    """Check the circuit's input and output sizes against its data set.

    A classification set may be trained with ``mse`` (on one-hot targets, as Lillicrap et al.
    did) or ``cross_entropy``; a regression set needs ``mse``.

    Sizes not given are taken from the data set's registry entry when it knows them without
    loading anything (digits, MNIST), or from the user's file (``npz``, ``csv``: read and
    checked here), so ``circuits check`` catches a mismatch or a bad file early.
    ``label`` is what errors call the data (default: ``data set '<task.dataset>'``).

    Raises
    ------
    DataError
        Naming the population and the size to set.
    """
    info = DATASETS.info(spec.task.dataset)
    label = label or f"data set '{spec.task.dataset}'"
    if info.files and n_features is None:  # the user's file: read and check it now, not at training
        t = spec.task
        data = DATASETS.load(t.dataset, seed=spec.run.seed, n_train=t.n_train, n_test=t.n_test,
                             normalize="none", options=t.options, validation=t.validation,
                             path=t.path, test_path=t.test_path, label=t.label)
        n_features, n_outputs, task = data.n_features, data.n_outputs, data.task
    n_features = n_features if n_features is not None else info.n_features
    n_outputs = n_outputs if n_outputs is not None else info.n_outputs
    task = task or info.task
    widths = {p: graph.population(p).size for p in graph.inputs}
    if n_features is not None and sum(widths.values()) != n_features:
        listing = " + ".join(f"{p} {w}" for p, w in widths.items())
        raise DataError(f"{spec.source}: {label} has {n_features} features "
                        f"but the input populations take {listing} = {sum(widths.values())}; "
                        "make the input sizes add up to the feature count")
    if spec.task.autoencode:
        n_outputs, task = n_features, "regression"
    size = graph.population(graph.output).size
    if n_outputs is not None and n_outputs != size:
        what = "classes" if task == "classification" else "target values"
        raise DataError(f"{spec.source}: {label} has {n_outputs} {what} "
                        f"but output population '{graph.output}' has size {size}; set "
                        f"populations.{graph.output}.size = {n_outputs}")
    if task == "regression" and spec.task.loss == "cross_entropy":
        raise DataError(f"{spec.source}: {label} is a regression task; "
                        "set task.loss = \"mse\"")


def load_data(model: Model, *, download: bool = True) -> Dataset:
    """Load the spec's data set and check that it fits the circuit's input and output sizes.

    Raises
    ------
    DataError
        When the data set cannot be read, or its feature or class count does not match.
    """
    task = model.spec.task
    data = DATASETS.load(task.dataset, seed=model.spec.run.seed, data_dir=task.data_dir,
                         n_train=task.n_train, n_test=task.n_test, normalize=task.normalize,
                         options=task.options, download=download, validation=task.validation,
                         path=task.path, test_path=task.test_path, label=task.label)
    check_data_fit(model.spec, model.graph, n_features=data.n_features, n_outputs=data.n_outputs,
                   task=data.task)
    return data


def batch_rng(spec: CircuitSpec) -> np.random.Generator:
    """The generator of the batch order, fresh from the run seed."""
    return np.random.default_rng([spec.run.seed, 1])


def fit(model: Model, data: object, *, epochs: int | None = None,
        on_batch: Callable[[int, int, float], None] | None = None, first_epoch: int = 1,
        rng: np.random.Generator | None = None) -> Iterator[EpochRecord]:
    """Train ``model`` on ``data``, yielding one record per epoch.

    Parameters
    ----------
    model
        The model; its parameters are updated in place.
    data
        Training and test sets: a :class:`~circuits.data.Dataset` (see :func:`load_data`), the
        name of a registered data set, or arrays ``x_train, y_train, x_test, y_test`` (a
        :class:`circuits.data.Arrays`, a dataclass, a mapping or a tuple; used as given, not
        normalized), checked against the circuit's input and output sizes.
    epochs
        The last epoch to train; defaults to the spec's ``task.epochs``.
        Each epoch trains at its factor of the spec's learning-rate schedule
        (``rule.lr_schedule``, :func:`circuits.lr_schedule.lr_factor`), which depends on the
        epoch number only, so starting at ``first_epoch`` continues a schedule exactly.
    on_batch
        Called with ``(epoch, batch index, batch loss)`` after every step.
    first_epoch
        Where to start: a resumed run passes the epoch after its checkpoint, together with
        the model state and ``rng`` saved there.
    rng
        The batch-order generator (default :func:`batch_rng`). When :func:`fit` yields epoch
        ``k``, it has drawn exactly the orders of epochs ``first_epoch … k``, so its state at
        that point is what a checkpoint of epoch ``k`` saves.

    Raises
    ------
    SimulationError
        When the loss becomes NaN or infinite (naming the epoch and batch).
    DataError
        When ``data`` is none of these, its arrays fail their checks, or they do not fit.
    """
    spec = model.spec
    if not isinstance(data, Dataset):
        data = as_dataset(data, DATASETS, seed=spec.run.seed, normalize=spec.task.normalize)
        check_data_fit(spec, model.graph, n_features=data.n_features, n_outputs=data.n_outputs,
                       task=data.task, label=f"data set '{data.name}'")
    epochs = spec.task.epochs if epochs is None else epochs
    dtype = np.dtype(spec.run.dtype)
    x_train = np.ascontiguousarray(data.x_train, dtype=dtype)
    x_test = np.ascontiguousarray(data.x_test, dtype=dtype)
    x_valid = np.ascontiguousarray(data.x_validation, dtype=dtype)
    y_train, y_test, y_valid = data.y_train, data.y_test, data.y_validation
    if spec.task.autoencode:
        y_train, y_test, y_valid = x_train, x_test, x_valid
    elif data.task == "regression":
        y_train, y_test, y_valid = y_train.astype(dtype), y_test.astype(dtype), y_valid.astype(dtype)
    rng = batch_rng(spec) if rng is None else rng
    every = spec.run.align_every
    step = (first_epoch - 1) * -(-data.n_train // spec.task.batch_size)
    for epoch in range(first_epoch, epochs + 1):
        model.set_lr_scale(lr_factor(spec.rule.params, epoch))
        start = time.perf_counter()
        losses, aligned = [], []
        model.take_relaxation()
        with warnings.catch_warnings():  # counted in the record's relaxation stats instead
            warnings.simplefilter("ignore", RelaxationWarning)
            for index, batch in enumerate(iterate_batches(data.n_train, spec.task.batch_size, rng)):
                xb, yb = x_train[batch], y_train[batch]
                if every and step % every == 0:
                    aligned.append(AlignmentRecord(step, epoch, model.alignment(xb, yb)))
                loss = model.step(xb, yb, index=batch)
                if not math.isfinite(loss):
                    raise SimulationError(f"loss became {loss} at epoch {epoch}, batch {index + 1}; "
                                          "lower rule.lr or check the init scale (everything up to the "
                                          "previous epoch is kept)")
                losses.append(loss)
                step += 1
                if on_batch is not None:
                    on_batch(epoch, index, loss)
        seconds = time.perf_counter() - start
        relaxation = model.take_relaxation()
        test_loss, test_accuracy = model.evaluate(x_test, y_test)
        validation = model.evaluate(x_valid, y_valid) if len(x_valid) else (math.nan, math.nan)
        yield EpochRecord(epoch=epoch, train_loss=float(np.mean(losses)), test_loss=test_loss,
                          test_accuracy=test_accuracy, seconds=seconds, examples=data.n_train,
                          alignment=tuple(aligned), relaxation=relaxation,
                          validation_loss=validation[0], validation_accuracy=validation[1])
