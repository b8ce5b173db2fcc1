"""Train the example specs to the end and collect their results into ``gallery/``.

Usage::

    python tools/make_results.py                      # every digits spec (a minute or two)
    python tools/make_results.py --mnist              # also the MNIST circuits (long)
    python tools/make_results.py specs/fa_digits.toml # just these

Stages, for each spec:

1. ``circuits simulate SPEC --quiet --out runs/gallery/<stem>`` (a subprocess, exactly the
   command a user would type, recorded in the table);
2. copy its ``curves.png`` to ``gallery/curves/<stem>.png`` and plot its alignment records,
   if any, to ``gallery/alignment/<stem>.png``;
3. rewrite ``gallery/results.md``: measured numbers beside the published ones, with commands.

Then the claims' convergence plots: the FA conserved quantity's drift against η (log-log).
MNIST specs read ``$CIRCUITS_DATA`` (default here: ``../shared/data`` beside the repo).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from circuits.claims import default_claims  # noqa: E402
from circuits.plots import plot_alignment  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.spec import load_spec  # noqa: E402

GALLERY = ROOT / "gallery"
RUNS = ROOT / "runs" / "gallery"
PUBLISHED = {
    "lillicrap_bp_mnist": "2.4 % error (Lillicrap et al. 2016, mean of 20 runs)",
    "lillicrap_fa_mnist": "2.1 % error (Lillicrap et al. 2016, mean of 20 runs)",
    "bartunov_bp_mnist": "1.48 % error (Bartunov et al. 2018, best of 500 epochs)",
    "bartunov_fa_mnist": "1.85 % error (Bartunov et al. 2018)",
    "bartunov_dfa_mnist": "2.75 % error (Bartunov et al. 2018)",
    "bartunov_dtp_mnist": "1.83 % error alternating, 2.86 % parallel (Bartunov et al. 2018)",
    "hinton_bp_mnist": "153 errors = 1.53 % (Hinton, talk; UNVERIFIED)",
    "hinton_td_mnist": "160 errors fixed, 150 adaptive (Hinton, talk; UNVERIFIED)",
    "hinton_td_adaptive_mnist": "150 errors = 1.50 % (Hinton, talk; UNVERIFIED)",
    "scellier_mnist": "2–3 % error (Scellier & Bengio 2017)",
}
TARGETS = {"backprop": 0.95, "feedback_alignment": 0.95, "kolen_pollack": 0.95,
           "direct_feedback_alignment": 0.90, "weight_mirror": 0.90, "target_propagation": 0.90,
           "difference_target_propagation": 0.90, "temporal_derivative": 0.90, "node_perturbation": 0.80,
           "equilibrium_propagation": 0.90, "contrastive_hebbian": 0.90, "predictive_coding": 0.90}


def run(spec: Path) -> dict:
    """Simulate one spec; return its summary with the command that produced it."""
    out = RUNS / spec.stem
    command = ["circuits", "simulate", str(spec.relative_to(ROOT)), "--quiet", "--out", str(out.relative_to(ROOT)),
               "--overwrite"]  # a gallery run replaces the previous one of its spec
    env = {**os.environ}
    env.setdefault("CIRCUITS_DATA", str(ROOT.parent / "shared" / "data"))
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    summary = json.loads((out / "summary.json").read_text())
    summary["command"] = " ".join(command)
    collect_pictures(out, spec.stem, summary)
    return summary


def collect_pictures(out: Path, stem: str, summary: dict) -> None:
    """Copy a run folder's learning curves into the gallery and plot its alignment records."""
    (GALLERY / "curves").mkdir(parents=True, exist_ok=True)
    if (out / "curves.png").exists():
        shutil.copyfile(out / "curves.png", GALLERY / "curves" / f"{stem}.png")
    if (out / "alignment.csv").exists():
        with open(out / "alignment.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        records = [(int(r["step"]), {k: float(v) for k, v in r.items() if k not in ("step", "epoch")})
                   for r in rows]
        (GALLERY / "alignment").mkdir(parents=True, exist_ok=True)
        plot_alignment(records, GALLERY / "alignment" / f"{stem}.png",
                       title=f"{summary['circuit']} · angle to the backprop update")


def conservation_plot() -> Path:
    """Drift of FA's conserved quantity per step against η, on the fa_digits circuit."""
    registry = default_registry()
    spec = load_spec(ROOT / "specs" / "fa_digits.toml", rules=registry.signatures())
    outcome = default_claims().get("fa_conserved_quantity").run(spec, registry, np.random.default_rng(0))
    rates = [float(k.split("=")[1]) for k in outcome.measured if k.startswith("drift_per_step@")]
    drifts = [v for k, v in outcome.measured.items() if k.startswith("drift_per_step@")]
    fig = Figure(figsize=(4.5, 3.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.loglog(rates, drifts, "o-", color="#3b5b7a", label="measured")
    ref = drifts[0] * (np.array(rates) / rates[0]) ** 2
    ax.loglog(rates, ref, "--", color="#999999", label="slope 2 (theory)")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("‖Q_t − Q_0‖ per step")
    ax.set_title(f"FA conserved quantity: slope {outcome.measured['drift_slope']:.3f}", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = GALLERY / "claims" / "fa_conserved_quantity.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    return path


def write_table(summaries: list[dict]) -> Path:
    """``gallery/results.md``, merged with the rows of earlier runs of other specs.

    The ``## `` sections after the table (written by other tools) are kept as they are.
    """
    path = GALLERY / "results.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    for s in summaries:
        table[s["spec"]] = s
    path.write_text(json.dumps(table, indent=2) + "\n")
    lines = ["# Results", "",
             "Measured by `python tools/make_results.py` (digits) and `--mnist` (MNIST); one run each, "
             "seed 0, on the 2-core CPU machine. Each row's command reproduces it (MNIST rows read "
             "`$CIRCUITS_DATA/mnist`, e.g. `CIRCUITS_DATA=../shared/data`).", "",
             "| spec | rule | data | epochs | final test acc | best test acc | target / published | s | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stem, s in sorted(table.items()):
        target = PUBLISHED.get(stem) or (f"≥ {100 * TARGETS[s['rule']]:.0f} % acc" if s["dataset"] == "digits"
                                         and s["rule"] in TARGETS else "")
        if s["final"]["test_accuracy"] is None or s["final"]["test_accuracy"] != s["final"]["test_accuracy"]:
            final, best = f"test loss {s['final']['test_loss']:.4f}", "—"  # regression: no accuracy
        else:
            final = f"{100 * s['final']['test_accuracy']:.2f} %"
            best = f"{100 * s['best_test_accuracy']:.2f} %"
        lines.append(f"| {stem} | {s['rule']} | {s['dataset']} | {s['epochs']} | {final} | {best} | "
                     f"{target} | {s['wall_seconds']:.1f} | `{s['command']}` |")
    out = GALLERY / "results.md"
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    later = re.search(r"^## ", old, flags=re.MULTILINE)  # sections other tools write (## Paper experiments)
    out.write_text("\n".join(lines) + "\n" + ("\n" + old[later.start():] if later else ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--mnist", action="store_true", help="also run the MNIST specs")
    parser.add_argument("--record", nargs=3, metavar=("RUN_DIR", "ROW", "COMMAND"),
                        help="add a finished run folder to the table as ROW, produced by COMMAND "
                             "(for long runs made by hand, e.g. with fewer epochs)")
    args = parser.parse_args()
    if args.record:
        folder, row, command = args.record
        summary = json.loads((Path(folder) / "summary.json").read_text())
        summary.update(spec=row, command=command)
        collect_pictures(Path(folder), row, summary)
        print(f"wrote {write_table([summary])}")
        return
    specs = [p.resolve() for p in args.specs] or sorted(
        p for p in (ROOT / "specs").glob("*.toml") if args.mnist or "mnist" not in p.stem)
    summaries = []
    for spec in specs:
        summary = run(spec)
        summary["spec"] = spec.stem
        summaries.append(summary)
        accuracy = summary["final"]["test_accuracy"]
        measured = f"test loss {summary['final']['test_loss']:.4f}" if accuracy is None or accuracy != accuracy \
            else f"{100 * accuracy:.2f} % test accuracy"
        print(f"{spec.stem}: {measured} in {summary['wall_seconds']:.0f} s", flush=True)
    print(f"wrote {write_table(summaries)}")
    print(f"wrote {conservation_plot()}")


if __name__ == "__main__":
    main()
