"""Plot the early-inference wave: ‖Δh_k‖ against the step for each population, log y axis.

Usage::

    python tools/plot_wave.py              # writes gallery/wave/early_inference_wave.png

Stages: (1) a noise-free 3-hidden-layer hard-sigmoid chain under ``early_inference`` (weights halved,
biases at ½, inputs of std 0.3, so that units sit inside the box); (2) :func:`circuits.rules.early_inference.wave`
on one batch; (3) the mean per-example norm of each population's change at every step, one line per
population, with the prediction ``ε^{k+1}β‖∂C/∂h_k‖`` marked at its onset step ``k + 1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from circuits.model import Model  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.rules.early_inference import wave  # noqa: E402
from circuits.spec import parse_spec  # noqa: E402

SPEC = """
[circuit]
name = "wave"
[populations]
x = { size = 16, role = "input" }
h1 = { size = 12, activation = "hard_sigmoid" }
h2 = { size = 12, activation = "hard_sigmoid" }
h3 = { size = 12, activation = "hard_sigmoid" }
y = { size = 6, role = "output", activation = "hard_sigmoid" }
[[projections]]
chain = ["x", "h1", "h2", "h3", "y"]
[rule]
name = "early_inference"
beta = 0.01
steps = 8
tol = 1e-13
free_steps = 20000
[task]
dataset = "xor"
loss = "mse"
[run]
dtype = "float64"
seed = 1
"""


def main(out: Path = ROOT / "gallery" / "wave" / "early_inference_wave.png") -> Path:
    """Draw the wave and return the file written."""
    registry = default_registry()
    model = Model(parse_spec(SPEC, source="plot_wave.toml", rules=registry.signatures()), registry=registry)
    weights = {k: 0.5 * np.array(v) for k, v in model.params.items() if not k.endswith(".bias")}
    model.set_params(weights)  # weak couplings, biases at ½: every unit inside the box
    model.set_params({k: np.full(np.shape(v), 0.5) for k, v in model.params.items() if k.endswith(".bias")})
    rng = np.random.default_rng(0)
    x, y = 0.3 * rng.standard_normal((16, 16)), rng.uniform(0.0, 1.0, (16, 6))
    moves = wave(model, x, y)
    steps = np.arange(1, len(moves) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, pop in enumerate(["y", "h3", "h2", "h1"]):
        norms = np.array([np.mean(np.linalg.norm(m[pop], axis=1)) for m in moves])
        shown = np.where(norms > 0, norms, np.nan)  # exactly zero before the wave arrives
        ax.plot(steps, shown, marker="o", label=f"{pop} (k = {k}, onset at step {k + 1})")
    ax.set_yscale("log")
    ax.set_xlabel("step t of the nudged dynamics (ε = 0.5, β = 0.01)")
    ax.set_ylabel("mean ‖Δh_k‖ (change from the free fixed point)")
    ax.set_title("Early inference: the error signal travels one layer per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
