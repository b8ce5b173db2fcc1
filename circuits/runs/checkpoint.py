"""Checkpoints: everything a run needs to continue as if it had never stopped.

A :class:`Checkpoint` is taken after each finished epoch and holds host copies of

- every persistent buffer of the simulator's store (weights, biases, optimizer state:
  momentum, Adam moments and step counts),
- every random stream: the batch-order generator of :func:`circuits.training.fit` and each
  generator the backend handed to a kernel (noise, dropout, perturbations, random signs),
- the model's persistent particles and its relaxation counters,
- the epoch records and ``metrics.csv`` rows so far.

It is saved as one ``checkpoint.npz`` (arrays plus a JSON ``meta`` entry, no pickles).
On CuPy the kernel generators' states are not saved (see
:meth:`circuits.backends.Backend.stream_states`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import numpy as np

from circuits.model import Model
from circuits.runs.records import from_json, to_json
from circuits.training import EpochRecord

__all__ = ["Checkpoint", "take_checkpoint", "restore_checkpoint", "save_checkpoint", "load_checkpoint"]

FORMAT = 1
COUNTERS = ("unconverged", "relaxations")
"""The model's relaxation counters (dicts) a checkpoint saves, where the model has them."""


@attrs.frozen
class Checkpoint:
    """A run's state after ``epoch`` finished epochs."""

    epoch: int
    run_id: str
    store: dict[str, np.ndarray] = attrs.field(hash=False)
    particles: dict[str, np.ndarray] = attrs.field(hash=False)
    batch_rng: dict[str, Any] = attrs.field(hash=False)
    streams: dict[str, Any] | None = attrs.field(hash=False)
    counters: dict[str, Any] = attrs.field(hash=False)
    records: tuple[EpochRecord, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()

    def params(self, model: Model) -> dict[str, np.ndarray]:
        """Parameter name → array, as ``params.npz`` holds them."""
        return {name: self.store[buf] for name, buf in model.program.params.items()}


def take_checkpoint(model: Model, rng: np.random.Generator, records: Sequence[EpochRecord],
                    rows: Sequence[dict[str, Any]], *, run_id: str, wall_seconds: float = 0.0) -> Checkpoint:
    """Copy the state of ``model`` and the batch-order ``rng`` to the host.

    ``wall_seconds`` (the run's wall time so far) is kept among the counters.
    """
    return Checkpoint(
        epoch=records[-1].epoch if records else 0, run_id=run_id, store=model.sim.state(),
        particles={name: np.array(model.backend.to_numpy(cache)) for name, cache in model.particles.items()},
        batch_rng=rng.bit_generator.state, streams=model.backend.stream_states(),
        counters={"wall_seconds": wall_seconds,
                  **{name: to_json(dict(getattr(model, name))) for name in COUNTERS if hasattr(model, name)}},
        records=tuple(records), rows=tuple(rows))


def restore_checkpoint(model: Model, checkpoint: Checkpoint, rng: np.random.Generator) -> None:
    """Put ``checkpoint``'s state into a freshly built ``model`` and the batch-order ``rng``."""
    model.sim.restore(checkpoint.store)
    model.particles.clear()
    model.particles.update({name: model.backend.from_numpy(np.array(cache))
                            for name, cache in checkpoint.particles.items()})
    if checkpoint.streams is not None:
        model.backend.restore_streams(checkpoint.streams)
    for name in COUNTERS:
        if hasattr(model, name) and name in checkpoint.counters:
            getattr(model, name).clear()
            getattr(model, name).update(from_json(checkpoint.counters[name]))
    rng.bit_generator.state = checkpoint.batch_rng


def save_checkpoint(handle: IO[bytes], checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` as an ``.npz`` to an open binary file."""
    meta = {"format": FORMAT, "epoch": checkpoint.epoch, "run_id": checkpoint.run_id,
            "batch_rng": checkpoint.batch_rng, "streams": checkpoint.streams,
            "counters": checkpoint.counters, "records": [to_json(r) for r in checkpoint.records],
            "rows": list(checkpoint.rows), "store": sorted(checkpoint.store),
            "particles": sorted(checkpoint.particles)}
    arrays = {f"store{i}": checkpoint.store[name] for i, name in enumerate(meta["store"])}
    arrays.update({f"particles{i}": checkpoint.particles[name] for i, name in enumerate(meta["particles"])})
    np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a ``checkpoint.npz`` written by :func:`save_checkpoint`.

    Raises
    ------
    OSError, ValueError, KeyError
        When the file is unreadable or not a checkpoint (the caller names the file).
    """
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"checkpoint format {meta.get('format')!r}, expected {FORMAT}")
        store = {name: np.array(data[f"store{i}"]) for i, name in enumerate(meta["store"])}
        particles = {name: np.array(data[f"particles{i}"]) for i, name in enumerate(meta["particles"])}
    return Checkpoint(epoch=meta["epoch"], run_id=meta["run_id"], store=store, particles=particles,
                      batch_rng=meta["batch_rng"], streams=meta["streams"], counters=meta["counters"],
                      records=tuple(from_json(r) for r in meta["records"]),
                      rows=tuple(_rows(meta["rows"])))


def _rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]
