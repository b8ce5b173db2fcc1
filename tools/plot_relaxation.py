"""Plot the free relaxation of an energy-based spec: energy and residual against step.

Usage::

    python tools/plot_relaxation.py specs/eqprop_digits.toml                       # at init
    python tools/plot_relaxation.py specs/eqprop_digits.toml --params RUN/params.npz \\
        --out gallery/relaxation/eqprop_digits.png                                  # trained

Stages of :func:`plot_relaxation`:

1. load the spec and build its model (float64), optionally with trained parameters;
2. take the first ``batch`` test examples of the spec's data set and run the NumPy reference
   dynamics (:func:`circuits.rules.energy.relaxation_trace`) from rest for ``steps`` steps;
3. draw the mean energy E(s) and the largest per-example force norm (log scale) against the
   step, with the spec's free-step budget and tolerance marked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import attrs
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # run as a script from a checkout without installing circuits
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from circuits.model import Model  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.rules.energy import relaxation_trace  # noqa: E402
from circuits.spec import load_spec  # noqa: E402
from circuits.training import load_data  # noqa: E402


def plot_relaxation(spec_path: Path, out: Path, *, params: Path | None = None, steps: int = 80,
                    batch: int = 64) -> Path:
    """Write the relaxation picture of ``spec_path`` to ``out`` (PNG) and return its path."""
    registry = default_registry()
    spec = load_spec(spec_path, rules=registry.signatures())
    spec = attrs.evolve(spec, run=attrs.evolve(spec.run, dtype="float64"))
    model = Model(registry.get(spec.rule.name).augment(spec), registry=registry)
    if params is not None:
        with np.load(params) as stored:
            model.set_params({name: stored[name] for name in stored.files})
    data = load_data(model)
    x = np.asarray(data.x_test[:batch], dtype=np.float64)
    trace = relaxation_trace(model, x, steps)
    rule = spec.rule.params
    step_axis = np.arange(1, steps + 1)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True)
    top.plot(step_axis, trace["energy"], color="tab:blue")
    top.set_ylabel("mean energy E(s)")
    top.set_title(f"{spec.name}: free relaxation of {len(x)} test examples "
                  f"({'trained' if params is not None else 'at init'})", fontsize=10)
    bottom.semilogy(step_axis, np.maximum(trace["residual"], 1e-300), color="tab:red")
    bottom.set_ylabel("largest force norm ‖Δs/ε‖")
    bottom.set_xlabel("step")
    for axis in (top, bottom):
        axis.axvline(rule["free_steps"], color="grey", linestyle=":", label=f"free_steps = {rule['free_steps']}")
    bottom.axhline(rule["tol"], color="grey", linestyle="--", label=f"tol = {rule['tol']:g}")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--params", type=Path, default=None, help="params.npz of a run folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="PNG path (default: gallery/relaxation/<spec stem>.png)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    out = args.out or ROOT / "gallery" / "relaxation" / f"{args.spec.stem}.png"
    print(plot_relaxation(args.spec, out, params=args.params, steps=args.steps, batch=args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
