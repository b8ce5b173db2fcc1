"""Time circuits' training step against an older commit's, alternating in one process.

    python tools/ab_step.py REV [--rule backprop] [--rounds 16] [--steps 15] [--case lenet|mlp]

On a machine whose speed drifts within minutes (a shared virtual machine), two separate runs do
not compare: this tool builds the same circuit (the benchmark's LeNet, or its 784-800-800-10
MLP) with the working tree's ``circuits`` and with the ``circuits/`` of git revision ``REV``,
loaded side by side as a second package (``circuits_rev``: ``git archive``, its imports
renamed), and alternates blocks of steps between the two on one fixed batch. It prints the
median step time of each, the median of the per-round ratios, and how far apart the two
models' parameters are after the three warm-up steps (later steps on one random batch are
chaotic: rounding-level differences grow after about a hundred). Run it alone, with the BLAS environment the benchmark uses (``env -u
OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``).
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load_revision(rev: str, into: Path) -> object:
    """``circuits/`` of ``rev`` as the importable package ``circuits_rev`` under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "circuits"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    package = into / "circuits_rev"
    (into / "circuits").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bfrom circuits([. ])", r"from circuits_rev\1", text)
        text = re.sub(r"\bimport circuits\b", "import circuits_rev", text)
        text = re.sub(r"([\"'])circuits\.", r"\1circuits_rev.", text)
        text = text.replace('f"circuits.{name}"', 'f"circuits_rev.{name}"')
        text = text.replace("metadata.entry_points(group=PLUGIN_GROUP)", "[]")  # plug-ins are the tree's
        path.write_text(text)
    sys.path.insert(0, str(into))
    import circuits_rev
    return circuits_rev


def spec_text(case: str, rule: str) -> str:
    """The benchmark's spec of ``case`` (``tools/bench_lenet.py``, ``tools/bench.py``) under ``rule``."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench
        from bench_lenet import LENET_LR, LENET_SPEC
    finally:
        sys.path.remove(str(ROOT / "tools"))
    feedback = rule != "backprop"
    if case == "lenet":
        return LENET_SPEC.format(rule=rule, lr=LENET_LR, extra="auto_feedback = true" if feedback else "",
                                 batch=100, seed=0)
    extra = f"auto_feedback = true\nfeedback_scale = {bench.FA_FEEDBACK_SCALE}" if feedback else ""
    return bench.SPEC_TEMPLATE.format(rule=rule, lr=bench.LR, extra=extra, batch=100, seed=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="git revision to compare against (e.g. HEAD~1)")
    parser.add_argument("--rule", default="backprop")
    parser.add_argument("--case", choices=("lenet", "mlp"), default="lenet")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15, help="steps per block")
    args = parser.parse_args(argv)
    import circuits
    with tempfile.TemporaryDirectory() as folder:
        old = load_revision(args.rev, Path(folder))
        text = spec_text(args.case, args.rule)
        models = {}
        for name, package in ((args.rev, old), ("tree", circuits)):
            registry = package.default_registry()
            spec = package.spec.parse_spec(text, source="ab_step", rules=registry.signatures())
            models[name] = package.Model(spec, registry=registry)
        rng = np.random.default_rng(0)
        x = rng.random((100, 784)).astype(np.float32)
        y = rng.integers(0, 10, 100)
        times: dict[str, list[float]] = {name: [] for name in models}
        for model in models.values():
            for _ in range(3):
                model.step(x, y)
        first, second = (dict(model.params) for model in models.values())
        moved = max(float(np.max(np.abs(np.asarray(second[k]) - np.asarray(first[k]))))
                    / max(float(np.max(np.abs(np.asarray(first[k])))), 1e-30) for k in first)
        print(f"largest parameter difference after 3 steps, relative to the parameter's largest value: {moved:.2e}")
        for _ in range(args.rounds):
            for name, model in models.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    model.step(x, y)
                times[name].append((time.perf_counter() - start) / args.steps * 1e3)
        base = times[args.rev]
        for name, values in times.items():
            ratio = statistics.median(new / old for new, old in zip(values, base))
            print(f"{name:>12}: median {statistics.median(values):7.2f} ms/step, ratio to {args.rev} {ratio:.3f} "
                  f"(rounds {min(values):.2f}-{max(values):.2f})")
        sys.path.remove(folder)
        for module in [name for name in sys.modules if name == "circuits_rev" or name.startswith("circuits_rev.")]:
            del sys.modules[module]
    return 0


if __name__ == "__main__":
    sys.exit(main())
