"""The report of a sweep folder: selection on validation, statistics over seeds, figures.

:func:`make_report` works in four stages:

1. read ``results.csv``, ``curves.csv`` and ``experiment.json`` of the sweep folder;
2. per variant, choose the grid point by the mean over seeds of the *final* validation
   metric (``experiment.select``): highest ``validation_accuracy`` or lowest
   ``validation_loss``. A run that failed counts as the worst value (accuracy 0, loss +inf),
   so a learning rate that diverges on some seeds loses. Test numbers never choose;
3. at that point, over the completed seeds: mean, standard deviation and the 95 %
   confidence interval of the mean, ``t(0.975, n - 1) · sd / √n`` (Student's t, from SciPy,
   which scikit-learn already installs), of final test accuracy and loss; mean epochs and
   wall time;
4. write ``report.csv`` and ``report.md`` (mean ± 95 % CI, mean ± sd, and each variant's
   ``published`` text from the experiment file: empty for a folder swept before the file
   format had it, or pass ``published=``), ``curves.png`` (mean test accuracy and loss per
   epoch with 95 % bands) and, where runs recorded alignment, ``alignment.png``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from rich.table import Table

from circuits.experiments.optional import require_sweep_extra
from circuits.experiments.figures import plot_report
from circuits.experiments.file import ExperimentError
from circuits.experiments.stats import mean_ci
from circuits.experiments.tables import read_manifest, write_csv
from circuits.runs.files import write_text

__all__ = ["VariantReport", "Report", "format_ci", "format_sd", "load_curves", "load_results", "make_report",
           "report_rows", "report_table"]


@attrs.frozen
class VariantReport:
    """One variant at its selected grid point."""

    variant: str
    point: dict[str, str] = attrs.field(hash=False)
    score: float
    seeds: int
    failed: int
    test_accuracy: tuple[float, float, float]
    """Mean, standard deviation, 95 % CI half-width."""
    test_loss: tuple[float, float, float]
    epochs: float
    wall_seconds: float
    run_ids: tuple[str, ...] = ()
    published: str = ""
    """The paper's number for this variant, with its source (free text; ``""`` if none)."""


@attrs.frozen
class Report:
    """A sweep's report: its design, the selected point per variant, and every point's score."""

    name: str
    out: Path
    select: str
    grid_keys: tuple[str, ...]
    variants: tuple[VariantReport, ...]
    scores: tuple[dict[str, Any], ...] = attrs.field(hash=False)
    files: tuple[Path, ...] = ()


def load_results(out: str | Path) -> Any:
    """``results.csv`` of a sweep folder as a pandas DataFrame."""
    return _read(Path(out) / "results.csv")


def load_curves(out: str | Path) -> Any:
    """``curves.csv`` of a sweep folder as a pandas DataFrame (one row per run and epoch)."""
    return _read(Path(out) / "curves.csv")


def _read(path: Path) -> Any:
    pandas = require_sweep_extra("pandas")
    if not path.is_file():
        raise ExperimentError(f"{path}: no such file; is {path.parent} a sweep folder "
                              "(made by `circuits sweep`)?")
    frame = pandas.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    return frame


def _key(row: Any, grid_keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in grid_keys)


def _score(rows: Any, select: str) -> float:
    column = f"final_{select}"
    worst = 0.0 if select == "validation_accuracy" else math.inf
    values = [float(r[column]) if r["status"] == "completed" and math.isfinite(float(r[column])) else worst
              for _, r in rows.iterrows()]
    return float(np.mean(values)) if values else worst


def _select(results: Any, variant: str, select: str, grid_keys: Sequence[str]) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    mine = results[results["variant"] == variant]
    points: dict[tuple[str, ...], Any] = {}
    for index, row in mine.iterrows():
        points.setdefault(_key(row, grid_keys), []).append(index)
    scores = [{"variant": variant, **dict(zip(grid_keys, point)), select: _score(mine.loc[idx], select)}
              for point, idx in points.items()]
    if len(points) == 1:
        return next(iter(points)), scores
    values = [s[select] for s in scores]
    best = int(np.argmax(values) if select == "validation_accuracy" else np.argmin(values))
    return list(points)[best], scores


def make_report(out: str | Path, *, figures: bool = True,
                published: Mapping[str, str] | None = None) -> Report:
    """Select, summarize and write the report files of the sweep folder ``out``.

    ``published`` maps a variant to the paper's number; by default it is the ``published``
    of ``experiment.json`` (written by the sweep from the experiment file; a folder swept
    before the file format had it has none, and its column stays empty).

    Raises
    ------
    ExperimentError
        When ``out`` is not a sweep folder.
    """
    out = Path(out)
    manifest = read_manifest(out)
    if manifest is None:
        raise ExperimentError(f"{out}: not a sweep folder (no experiment.json); run "
                              "`circuits sweep EXPERIMENT.toml --out DIR` first")
    results = load_results(out)
    grid_keys = tuple(manifest.get("grid", {}))
    select = manifest.get("select", "validation_accuracy")
    if published is None:
        published = manifest.get("published") or {}
    reports, scores = [], []
    for variant in dict.fromkeys(results["variant"]):
        point, point_scores = _select(results, variant, select, grid_keys)
        scores += point_scores
        rows = results[(results["variant"] == variant)
                       & results.apply(lambda r: _key(r, grid_keys) == point, axis=1)]
        done = rows[rows["status"] == "completed"]
        reports.append(VariantReport(
            variant=str(variant), point=dict(zip(grid_keys, point)),
            score=next(s[select] for s in point_scores if _key(s, grid_keys) == point),
            seeds=len(done), failed=int((rows["status"] == "failed").sum()),
            test_accuracy=mean_ci(done["final_test_accuracy"].tolist()),
            test_loss=mean_ci(done["final_test_loss"].tolist()),
            epochs=float(done["epochs"].mean()) if len(done) else math.nan,
            wall_seconds=float(done["wall_seconds"].mean()) if len(done) else math.nan,
            run_ids=tuple(done["run_id"].astype(str)), published=str(published.get(str(variant), ""))))
    report = Report(name=manifest.get("name", out.name), out=out, select=select, grid_keys=grid_keys,
                    variants=tuple(reports), scores=tuple(scores))
    files = [write_csv(out / "report.csv", report_rows(report)),
             write_text(out / "report.md", report_markdown(report, manifest))]
    if figures:
        curves = load_curves(out) if (out / "curves.csv").is_file() else None
        if curves is not None and len(curves):
            files += plot_report(report, curves)
    return attrs.evolve(report, files=tuple(files))


def report_rows(report: Report) -> list[dict[str, Any]]:
    """The rows of ``report.csv``: one per variant."""
    rows = []
    for v in report.variants:
        rows.append({"variant": v.variant, **v.point, f"selected_{report.select}": v.score,
                     "seeds": v.seeds, "failed": v.failed,
                     "test_accuracy_mean": v.test_accuracy[0], "test_accuracy_sd": v.test_accuracy[1],
                     "test_accuracy_ci95": v.test_accuracy[2], "published": v.published,
                     "test_loss_mean": v.test_loss[0],
                     "test_loss_sd": v.test_loss[1], "test_loss_ci95": v.test_loss[2],
                     "epochs": v.epochs, "wall_seconds": v.wall_seconds})
    return rows


def format_ci(triple: tuple[float, float, float], scale: float = 1.0, digits: int = 2) -> str:
    """``"97.81 ± 0.12"`` (the 95 % CI half-width), ``"97.81"`` for one seed, ``"—"`` for none."""
    mean, _, half = triple
    if not math.isfinite(mean):
        return "—"
    if not math.isfinite(half):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


def format_sd(triple: tuple[float, float, float], scale: float = 1.0, digits: int = 2) -> str:
    """``"97.81 ± 0.45"`` (the standard deviation over seeds), ``"97.81"`` for one seed, ``"—"`` for none."""
    mean, sd, _ = triple
    return format_ci((mean, sd, sd), scale, digits)


def report_markdown(report: Report, manifest: dict[str, Any]) -> str:
    """``report.md``: the table, how the point was chosen, and every point's score."""
    point_head = " | ".join(report.grid_keys)
    lines = [f"# {report.name}", "",
             f"Experiment `{manifest.get('source', '')}` on the base spec `{manifest.get('spec', '')}`, "
             f"seeds {manifest.get('seeds', [])}, overrides {manifest.get('set', {})}; mean ± 95 % "
             "confidence interval over seeds (Student's t), and mean ± standard deviation over seeds; "
             "published: the paper's number for the variant, from the experiment file.", ""]
    head = ["variant", *(["selected " + point_head] if report.grid_keys else []), "seeds",
            "test accuracy (%), mean ± 95 % CI", "mean ± sd", "published", "test loss", "epochs", "wall s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in report.variants:
        cells = [v.variant, *([", ".join(f"{k}={x}" for k, x in v.point.items())] if report.grid_keys else []),
                 f"{v.seeds}" + (f" ({v.failed} failed)" if v.failed else ""),
                 format_ci(v.test_accuracy, 100.0), format_sd(v.test_accuracy, 100.0),
                 v.published.replace("|", "\\|") or "—", format_ci(v.test_loss, 1.0, 4),
                 f"{v.epochs:.0f}" if math.isfinite(v.epochs) else "—",
                 f"{v.wall_seconds:.1f}" if math.isfinite(v.wall_seconds) else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    if report.grid_keys:
        lines += ["", f"Grid points chosen per variant by the mean final {report.select} over seeds "
                      "(failed runs count as the worst value); test numbers are never used to choose.", "",
                  "| variant | " + point_head + f" | mean {report.select} |",
                  "|" + "---|" * (len(report.grid_keys) + 2)]
        for s in report.scores:
            lines.append(f"| {s['variant']} | " + " | ".join(str(s[k]) for k in report.grid_keys)
                         + f" | {s[report.select]:.4f} |")
    return "\n".join(lines) + "\n"


def report_table(report: Report) -> Any:
    """The report as a rich table for the terminal."""
    table = Table(title=f"{report.name}: mean ± 95 % CI over seeds ({report.out})")
    for column in ("variant", *(["selected point"] if report.grid_keys else []), "seeds",
                   "test accuracy (%)", "test loss", "epochs", "wall s"):
        table.add_column(column, justify="left" if column in ("variant", "selected point") else "right")
    for v in report.variants:
        table.add_row(v.variant, *([", ".join(f"{k}={x}" for k, x in v.point.items())] if report.grid_keys else []),
                      f"{v.seeds}" + (f" ({v.failed} failed)" if v.failed else ""),
                      format_ci(v.test_accuracy, 100.0), format_ci(v.test_loss, 1.0, 4),
                      f"{v.epochs:.0f}" if math.isfinite(v.epochs) else "—",
                      f"{v.wall_seconds:.1f}" if math.isfinite(v.wall_seconds) else "—")
    return table
