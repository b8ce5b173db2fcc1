"""A sweep folder's tables: ``results.csv`` (one row per run) and ``curves.csv`` (per epoch).

Both are rebuilt from the run folders (``runs/<run id>/summary.json`` and ``metrics.csv``)
and the sweep's plan, so each planned run has exactly one row however often its task ran.
A run whose summary is not final (``running``: its worker died every time, or the sweep
was stopped) gets the status the executor reported, else ``interrupted``; a run without a
summary gets the reported status, else ``pending``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuits.runs import read_summary
from circuits.runs.files import write_text
from circuits.experiments.plan import RunPlan

__all__ = ["RESULT_COLUMNS", "result_rows", "curve_rows", "write_tables", "write_csv", "read_csv",
           "write_manifest", "read_manifest"]

RESULT_COLUMNS = ("run_id", "status", "epochs", "final_test_accuracy", "final_test_loss",
                  "final_train_loss", "final_validation_accuracy", "final_validation_loss",
                  "best_validation_accuracy", "best_validation_loss", "wall_seconds", "message",
                  "folder")
"""Columns after ``variant``, ``seed`` and one column per grid key."""

MANIFEST = "experiment.json"
FINAL = ("completed", "failed", "interrupted")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def result_rows(plans: Sequence[RunPlan], out: Path, grid_keys: Sequence[str],
                reported: Mapping[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """One row per planned run, read from its folder.

    ``reported`` maps a run id to the (status, message) its executor gave, used when the
    folder holds no summary.
    """
    rows = []
    for plan in plans:
        folder = plan.folder(out)
        summary = read_summary(folder) or {}
        final = summary.get("final") or {}
        validation = summary.get("final_validation") or {}
        status, message = (reported or {}).get(plan.run_id, ("pending", ""))
        if summary.get("status") in FINAL or (summary and plan.run_id not in (reported or {})):
            # a summary still saying "running" belongs to a run that stopped mid-way
            status = summary["status"] if summary.get("status") in FINAL else "interrupted"
            message = summary.get("message", "")
        row: dict[str, Any] = {"variant": plan.variant, "seed": plan.seed}
        row.update({key: plan.point.get(key, "") for key in grid_keys})
        row.update({
            "run_id": plan.run_id, "status": status, "epochs": int(summary.get("epochs", 0)),
            "final_test_accuracy": _number(final.get("test_accuracy")),
            "final_test_loss": _number(final.get("test_loss")),
            "final_train_loss": _number(final.get("train_loss")),
            "final_validation_accuracy": _number(validation.get("accuracy")),
            "final_validation_loss": _number(validation.get("loss")),
            "best_validation_accuracy": _number(summary.get("best_validation_accuracy")),
            "best_validation_loss": _number(summary.get("best_validation_loss")),
            "wall_seconds": _number(summary.get("wall_seconds")),
            "message": " ".join(str(message).split()),
            "folder": os.path.relpath(folder, out),
        })
        rows.append(row)
    return rows


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def curve_rows(plans: Sequence[RunPlan], out: Path, grid_keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run and finished epoch: the run's design columns, then its metrics.csv row."""
    rows, seen = [], set()
    for plan in plans:
        if plan.run_id in seen:  # two variants that resolve to the same spec share one run
            continue
        seen.add(plan.run_id)
        head = {"variant": plan.variant, "seed": plan.seed,
                **{key: plan.point.get(key, "") for key in grid_keys}, "run_id": plan.run_id}
        rows += [{**head, **metrics} for metrics in _read_metrics(plan.folder(out) / "metrics.csv")]
    return rows


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write rows atomically; the columns are ``columns`` or the union of the rows' keys in order."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts of strings."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_tables(plans: Sequence[RunPlan], out: Path, grid_keys: Sequence[str],
                 reported: Mapping[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Write ``results.csv`` and ``curves.csv`` into ``out``; return the results rows."""
    rows = result_rows(plans, out, grid_keys, reported)
    write_csv(out / "results.csv", rows, ["variant", "seed", *grid_keys, *RESULT_COLUMNS])
    write_csv(out / "curves.csv", curve_rows(plans, out, grid_keys))
    return rows


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> Path:
    """``experiment.json``: what ``circuits report`` needs to know about the design."""
    return write_text(out / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The sweep folder's ``experiment.json``, or ``None`` when it has none."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
