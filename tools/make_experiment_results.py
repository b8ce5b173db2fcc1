"""Put the reports of paper-experiment sweeps into ``gallery/``.

Usage::

    python tools/make_experiment_results.py SWEEP_DIR [SWEEP_DIR ...]
        [--command "circuits sweep ..."]...   # the sweep command of each folder, in order
        [--results gallery/results.md] [--gallery gallery/experiments] [--no-figures]

For each sweep folder (made by ``circuits sweep``), in the order given:

1. ``make_report`` (the Python API of ``circuits report``) writes ``report.md``,
   ``report.csv``, ``curves.png`` and ``alignment.png`` into the folder. The published
   numbers come from the folder's ``experiment.json``; a folder swept before the experiment
   file format had ``published`` takes them from the experiment file it names (``source``,
   read relative to the working directory, then to the repository);
2. ``report.md``, ``report.csv``, ``results.csv``, ``curves.png`` and ``alignment.png``
   (those the folder has) are copied to ``gallery/experiments/<experiment name>/``;
3. one row per experiment and variant goes into the section ``## Paper experiments`` of
   ``gallery/results.md``: the grid point chosen on validation, completed seeds, epochs,
   final test accuracy and error as mean ± sd over seeds, the published number, and the
   commands that made it. The section is replaced where it exists and appended otherwise;
   every other byte of the file stays as it was.

The sweep command is ``--command`` when given (once per folder, in the same order), else it
is rebuilt from ``experiment.json``: ``circuits sweep <source> --out <out>`` plus a ``--set``
for every shared override that differs from the experiment file's own ``set`` (the
``--set task.epochs=N`` of a shortened sweep). Worker counts are not recorded (they do not
change the numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from circuits.errors import CircuitsError  # noqa: E402
from circuits.experiments import Experiment, Report, load_experiment, make_report  # noqa: E402
from circuits.experiments.tables import read_manifest  # noqa: E402

SECTION = "## Paper experiments"
COPIED = ("report.md", "report.csv", "results.csv", "curves.png", "alignment.png")


def _source_experiment(manifest: Mapping[str, Any]) -> Experiment | None:
    """The experiment file the sweep names, if it can still be read (else ``None``)."""
    source = manifest.get("source")
    if not source:
        return None
    for path in (Path(source), ROOT / source):
        if path.is_file():
            try:
                return load_experiment(path)
            except CircuitsError:
                return None
    return None


def _set_value(value: Any) -> str:
    """``value`` as ``--set`` reads it back (a TOML value, strings bare unless they parse as one)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and not re.fullmatch(r"[-+0-9.eE]+|true|false|\[.*\]|\{.*\}", value):
        return value
    return json.dumps(value)


def sweep_command(manifest: Mapping[str, Any], experiment: Experiment | None) -> str:
    """The ``circuits sweep`` command that makes this folder, rebuilt from ``experiment.json``."""
    own = experiment.overrides if experiment is not None else {}
    words = ["circuits", "sweep", str(manifest.get("source", "EXPERIMENT.toml")),
             "--out", str(manifest.get("out", "DIR"))]
    for key, value in (manifest.get("set") or {}).items():
        if key not in own or own[key] != value:
            words += ["--set", f"{key}={_set_value(value)}"]
    return shlex.join(words)


def _percent(triple: tuple[float, float, float], error: bool = False) -> str:
    mean, sd, _ = triple
    if not math.isfinite(mean):
        return "—"
    mean = 100.0 * (1.0 - mean if error else mean)
    return f"{mean:.2f}" if not math.isfinite(sd) else f"{mean:.2f} ± {100.0 * sd:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def section_rows(report: Report, commands: Sequence[str], link: str) -> list[str]:
    """The table rows of one experiment: its variants; the first row carries the commands."""
    rows = []
    for index, v in enumerate(report.variants):
        point = ", ".join(f"{k}={x}" for k, x in v.point.items()) or "—"
        seeds = f"{v.seeds}" + (f" ({v.failed} failed)" if v.failed else "")
        epochs = f"{v.epochs:.0f}" if math.isfinite(v.epochs) else "—"
        said = "<br>".join(f"`{c}`" for c in commands) if index == 0 else "as above"
        name = f"[{report.name}]({link})" if index == 0 else report.name
        rows.append(f"| {name} | {v.variant} | {point} | {seeds} | {epochs} | {_percent(v.test_accuracy)} | "
                    f"{_percent(v.test_accuracy, error=True)} | {_cell(v.published)} | {said} |")
    return rows


def _sweep_out(command: str) -> str | None:
    """The ``--out`` folder a ``circuits sweep`` command names, so its report command names it too."""
    words = shlex.split(command)
    return next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"), None)


def section_text(blocks: Sequence[list[str]]) -> str:
    """The whole ``## Paper experiments`` section, ending in one newline."""
    lines = [SECTION, "",
             "Made by `python tools/make_experiment_results.py SWEEP_DIR...` from the folders of "
             "`circuits sweep`. One row per experiment and variant, at the grid point chosen on "
             "the validation split; ours: final test accuracy and error (%), mean ± sd over the "
             "completed seeds; published: the paper's number with its source, from the experiment "
             "file. Each experiment's report (with 95 % confidence intervals), curves and per-run "
             "table are in `gallery/experiments/<experiment>/`. The epochs column says what ran: "
             "where it is below a paper's budget (the sweep command's `--set task.epochs`), the "
             "row measures that shorter run, not the paper's set-up.", "",
             "| experiment | variant | selected point | seeds | epochs | test accuracy (%) | "
             "test error (%) | published | commands |",
             "|---|---|---|---|---|---|---|---|---|"]
    for block in blocks:
        lines += block
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str) -> str:
    """``text`` with its ``## Paper experiments`` section (up to the next ``## `` heading) replaced.

    Without one the section is appended after a blank line. Everything outside the section
    is kept byte for byte.
    """
    start = re.search(rf"^{re.escape(SECTION)}[ \t]*$", text, flags=re.MULTILINE)
    if start is None:
        head = text if text.endswith("\n") or not text else text + "\n"
        return head + ("\n" if head else "") + section
    following = re.search(r"^## ", text[start.end():], flags=re.MULTILINE)
    if following is None:
        return text[:start.start()] + section
    end = start.end() + following.start()
    return text[:start.start()] + section + "\n" + text[end:]


def copy_reports(out: Path, target: Path) -> list[Path]:
    """Copy the report files the sweep folder has into ``target``; return the copies."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in COPIED:
        if (out / name).is_file():
            copied.append(Path(shutil.copyfile(out / name, target / name)))
    return copied


def make_experiment_results(sweeps: Sequence[str | os.PathLike[str]], *,
                            results: str | os.PathLike[str] = ROOT / "gallery" / "results.md",
                            gallery: str | os.PathLike[str] = ROOT / "gallery" / "experiments",
                            commands: Sequence[str] | None = None, figures: bool = True) -> list[Report]:
    """Report each sweep folder, copy its files into ``gallery`` and rewrite the section of ``results``.

    Raises
    ------
    CircuitsError
        A folder that is not a sweep folder, or ``commands`` of another length than ``sweeps``.
    """
    if commands and len(commands) != len(sweeps):
        raise CircuitsError(f"--command: given {len(commands)} times for {len(sweeps)} sweep folders; "
                            "give one per folder, in the same order, or none")
    results, gallery = Path(results), Path(gallery)
    reports, blocks = [], []
    for index, folder in enumerate(sweeps):
        out = Path(folder)
        manifest = read_manifest(out)
        if manifest is None:
            raise CircuitsError(f"{out}: not a sweep folder (no experiment.json); "
                                "give folders made by `circuits sweep`")
        experiment = _source_experiment(manifest)
        published = None
        if "published" not in manifest and experiment is not None:
            published = {v.name: v.published for v in experiment.variants}
        report = make_report(out, figures=figures, published=published)
        target = gallery / report.name
        copy_reports(out, target)
        sweep = commands[index] if commands else sweep_command(manifest, experiment)
        said = [sweep, shlex.join(["circuits", "report", _sweep_out(sweep) or str(manifest.get("out", out))])]
        link = Path(os.path.relpath(target / "report.md", results.parent)).as_posix()
        blocks.append(section_rows(report, said, link))
        reports.append(report)
    text = results.read_text(encoding="utf-8") if results.is_file() else ""
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("w", encoding="utf-8", newline="") as handle:
        handle.write(replace_section(text, section_text(blocks)))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="sweep folders made by `circuits sweep`")
    parser.add_argument("--command", action="append", dest="commands", metavar="COMMAND",
                        help="the sweep command of each folder, in order (default: rebuilt from experiment.json)")
    parser.add_argument("--results", type=Path, default=ROOT / "gallery" / "results.md",
                        help="the results page whose '## Paper experiments' section is rewritten")
    parser.add_argument("--gallery", type=Path, default=ROOT / "gallery" / "experiments",
                        help="where each experiment's report files are copied, one folder per experiment")
    parser.add_argument("--no-figures", action="store_true", help="skip curves.png and alignment.png")
    args = parser.parse_args(argv)
    try:
        reports = make_experiment_results(args.sweeps, results=args.results, gallery=args.gallery,
                                          commands=args.commands, figures=not args.no_figures)
    except CircuitsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for report in reports:
        print(f"{report.name}: {len(report.variants)} variants -> {args.gallery / report.name}")
    print(f"wrote the section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
