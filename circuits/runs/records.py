"""What a run folder's tables hold: metrics rows, alignment rows, the summary, and epoch
records as JSON (for checkpoints).
"""

from __future__ import annotations

import csv
import importlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from circuits.model import budget_key
from circuits.spec import CircuitSpec
from circuits.training import EpochRecord

__all__ = ["metrics_row", "alignment_rows", "summarize", "read_metrics", "to_json", "from_json",
           "clean_json", "csv_text"]

METRIC_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "seconds")
_RELAXATION_FIELDS = ("steps", "residual")
"""Names of a relaxation entry's positions when it is a plain tuple."""


def _relaxation_items(value: Any) -> dict[str, Any]:
    """A relaxation entry as named numbers, whatever form it has (named tuple, attrs, tuple)."""
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if attrs.has(type(value)):
        return attrs.asdict(value)
    return {(_RELAXATION_FIELDS[i] if i < len(_RELAXATION_FIELDS) else f"value{i}"): v
            for i, v in enumerate(value)}


def metrics_row(record: EpochRecord) -> dict[str, Any]:
    """One row of ``metrics.csv``: the scalar numbers of an epoch."""
    row: dict[str, Any] = {"epoch": record.epoch, "train_loss": record.train_loss,
                           "test_loss": record.test_loss, "test_accuracy": record.test_accuracy,
                           "seconds": round(record.seconds, 4)}
    if not math.isnan(record.validation_loss):  # only runs with a validation split
        row.update(validation_loss=record.validation_loss,
                   validation_accuracy=record.validation_accuracy)
    row.update({f"align.{name}": angle for name, angle in record.mean_alignment().items()})
    for phase, value in record.relaxation.items():
        for key, number in _relaxation_items(value).items():
            if isinstance(number, bool):
                number = int(number)
            row[f"relax.{phase}.{key}"] = round(number, 2) if key == "steps" else number
    return row


def alignment_rows(records: Sequence[EpochRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of ``alignment.csv``: every recorded alignment step."""
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    for record in records:
        for r in record.alignment:
            names = names or sorted(r.angles)
            rows.append({"step": r.step, "epoch": r.epoch, **{n: r.angles[n] for n in names}})
    return ["step", "epoch", *names], rows


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV text with a header; columns are the union of the rows' keys, in order of appearance."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = []

    class _Sink:
        def write(self, text: str) -> None:
            lines.append(text)

    writer = csv.DictWriter(_Sink(), fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return "".join(lines)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (empty cells become NaN)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _validation_summary(records: Sequence[EpochRecord]) -> dict[str, Any]:
    """Final and best validation numbers, for runs with a validation split (else nothing)."""
    if not records or math.isnan(records[-1].validation_loss):
        return {}
    return {"final_validation": {"loss": records[-1].validation_loss,
                                 "accuracy": records[-1].validation_accuracy},
            "best_validation_accuracy": max(r.validation_accuracy for r in records),
            "best_validation_loss": min(r.validation_loss for r in records)}


def summarize(spec: CircuitSpec, records: Sequence[EpochRecord], *, status: str, message: str,
              wall_seconds: float, backend: str, unconverged: Mapping[str, int] | None = None,
              **extra: Any) -> dict[str, Any]:
    """The content of ``summary.json`` for the epochs that finished.

    ``unconverged`` counts, per relaxation phase, the runs that used their whole step budget
    without reaching the tolerance (every run of the model, evaluation included);
    ``converged_fraction`` and ``relaxations`` give, per phase, the fraction of the finished
    epochs' training relaxations that reached their tolerance, and how many ran and stopped at
    their budget; ``extra`` entries (run id, params epoch…) are added as given.
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
        **_relaxation_summary(spec, records),
        **extra,
    }


def _relaxation_summary(spec: CircuitSpec, records: Sequence[EpochRecord]) -> dict[str, Any]:
    """Per relaxation phase over the records: runs, runs stopped at their budget (and the key that
    sets it), converged fraction."""
    totals: dict[str, list[int]] = {}
    for record in records:
        for phase, stats in record.relaxation.items():
            total = totals.setdefault(phase, [0, 0])
            total[0] += stats.runs
            total[1] += stats.stopped
    return {"converged_fraction": {phase: 1.0 - stopped / runs for phase, (runs, stopped) in totals.items() if runs},
            "relaxations": {phase: {"runs": runs, "stopped_at_budget": stopped, "budget": budget_key(spec, phase)}
                            for phase, (runs, stopped) in totals.items()}}


def clean_json(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (what ``summary.json`` holds)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def to_json(value: Any) -> Any:
    """``value`` as JSON-ready data that :func:`from_json` turns back into equal objects.

    Handles what epoch records and model counters hold: attrs classes of circuits (tagged
    with their class), tuples (tagged), dicts with string keys, lists, numbers, strings.
    """
    if attrs.has(type(value)):
        cls = type(value)
        fields = {f.name: to_json(getattr(value, f.name)) for f in attrs.fields(cls)}
        return {"__attrs__": f"{cls.__module__}:{cls.__qualname__}", **fields}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    return float(value)


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`.

    Raises
    ------
    ValueError
        For a tagged class outside the ``circuits`` package.
    """
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(from_json(v) for v in value["__tuple__"])
    if "__attrs__" in value:
        module, _, name = value["__attrs__"].partition(":")
        if module != "circuits" and not module.startswith("circuits."):
            raise ValueError(f"checkpoint names class {value['__attrs__']!r} outside circuits")
        cls: Any = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
        fields = {k: from_json(v) for k, v in value.items() if k != "__attrs__"}
        return cls(**fields)
    return {k: from_json(v) for k, v in value.items()}
