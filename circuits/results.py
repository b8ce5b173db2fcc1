"""The run folder: resolved spec, schedule, metrics, alignment, parameters and summary.

Files are written as the run goes (metrics.csv gets one flushed row per epoch), so a run
that fails or is interrupted leaves everything it finished readable.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from circuits.errors import SimulationError
from circuits.ir import Program
from circuits.spec import CircuitSpec
from circuits.spec_writer import dump_spec
from circuits.training import AlignmentRecord, EpochRecord

__all__ = ["RunFolder", "read_metrics", "summarize"]

METRIC_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "seconds")


class RunFolder:
    """Writes one run's files into ``path`` (created if needed).

    Raises
    ------
    SimulationError
        When a file cannot be written (full disk, permissions), naming the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._columns: list[str] | None = None
        self._guard(lambda: self.path.mkdir(parents=True, exist_ok=True), self.path)

    def _guard(self, action: Any, target: Path) -> Any:
        try:
            return action()
        except OSError as exc:
            raise SimulationError(f"cannot write {target}: {exc.strerror or exc}") from None

    def _text(self, name: str, text: str) -> Path:
        target = self.path / name
        self._guard(lambda: target.write_text(text, encoding="utf-8"), target)
        return target

    def write_start(self, spec: CircuitSpec, program: Program) -> None:
        """The resolved spec (``spec.toml``) and the compiled schedule (``schedule.txt``)."""
        self._text("spec.toml", dump_spec(spec) + "\n")
        self._text("schedule.txt", program.describe(batch=spec.task.batch_size) + "\n")
        for name in ("metrics.csv", "alignment.csv"):
            target = self.path / name
            if target.exists():
                self._guard(target.unlink, target)

    def append_epoch(self, record: EpochRecord) -> None:
        """One row of ``metrics.csv`` (header first), flushed at once."""
        row = {"epoch": record.epoch, "train_loss": record.train_loss, "test_loss": record.test_loss,
               "test_accuracy": record.test_accuracy, "seconds": round(record.seconds, 4)}
        if not math.isnan(record.validation_loss):  # only runs with a validation split
            row.update(validation_loss=record.validation_loss,
                       validation_accuracy=record.validation_accuracy)
        row.update({f"align.{name}": angle for name, angle in record.mean_alignment().items()})
        for phase, (steps, residual) in record.relaxation.items():
            row.update({f"relax.{phase}.steps": round(steps, 2), f"relax.{phase}.residual": residual})
        if self._columns is None:
            self._columns = list(row)
        self._append("metrics.csv", self._columns, [row])
        if record.alignment:
            names = sorted(record.alignment[0].angles)
            rows = [{"step": r.step, "epoch": r.epoch, **{n: r.angles[n] for n in names}}
                    for r in record.alignment]
            self._append("alignment.csv", ["step", "epoch", *names], rows)

    def _append(self, name: str, columns: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
        target = self.path / name

        def write() -> None:
            new = not target.exists()
            with target.open("a", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                if new:
                    writer.writeheader()
                writer.writerows(rows)
        self._guard(write, target)

    def write_params(self, params: Mapping[str, np.ndarray]) -> Path:
        """``params.npz``: parameter name → array."""
        target = self.path / "params.npz"
        self._guard(lambda: np.savez(target, **{k: np.asarray(v) for k, v in params.items()}), target)
        return target

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """``summary.json`` (NaN written as null)."""
        clean = json.loads(json.dumps(summary, default=float), parse_constant=lambda _: None)
        return self._text("summary.json", json.dumps(_nan_to_none(clean), indent=2) + "\n")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _validation_summary(records: list[EpochRecord]) -> dict[str, Any]:
    """Final and best validation numbers, for runs with a validation split (else nothing)."""
    if not records or math.isnan(records[-1].validation_loss):
        return {}
    return {"final_validation": {"loss": records[-1].validation_loss,
                                 "accuracy": records[-1].validation_accuracy},
            "best_validation_accuracy": max(r.validation_accuracy for r in records),
            "best_validation_loss": min(r.validation_loss for r in records)}


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (empty cells become NaN)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(handle)]


def summarize(spec: CircuitSpec, records: list[EpochRecord], *, status: str, message: str,
              wall_seconds: float, backend: str, unconverged: dict[str, int] | None = None) -> dict[str, Any]:
    """The content of ``summary.json`` for the epochs that finished.

    ``unconverged`` counts, per relaxation phase, the runs that used their whole step budget
    without reaching the tolerance.
    """
    last = records[-1] if records else None
    trained = sum(r.seconds for r in records)
    examples = sum(r.examples for r in records)
    return {
        "circuit": spec.name, "rule": spec.rule.name, "status": status, "message": message,
        "epochs": len(records), "epochs_planned": spec.task.epochs,
        "dataset": spec.task.dataset, "backend": backend, "dtype": spec.run.dtype, "seed": spec.run.seed,
        "final": {
            "train_loss": last.train_loss if last else float("nan"),
            "test_loss": last.test_loss if last else float("nan"),
            "test_accuracy": last.test_accuracy if last else float("nan"),
        },
        "best_test_accuracy": max((r.test_accuracy for r in records), default=float("nan")),
        **_validation_summary(records),
        "wall_seconds": round(wall_seconds, 3),
        "examples_per_second": round(examples / trained, 1) if trained > 0 else float("nan"),
        "unconverged_relaxations": dict(unconverged or {}),
    }
