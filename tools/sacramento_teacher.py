"""The nonlinear teacher regression task of Sacramento et al. 2018, on ``dendritic_error``.

Usage::

    python tools/sacramento_teacher.py                 # gallery/sacramento_teacher.{png,csv}
    python tools/sacramento_teacher.py --steps 200 --out /tmp/t   # a short run elsewhere

A fixed random teacher, a 30-20-10 network of softplus units, maps inputs to output potentials.
A 30-50-10 dendritic student (pyramidal cells, interneurons created in the self-predicting
state, softplus rates) is nudged toward the teacher's output potential (``target_low = 0``,
``target_high = 1``: the target *is* the potential). The learning curve is the mean squared
difference of output rates, ``φ(û_student) − φ(u_teacher)``, on held-out inputs. Two students
start from the same weights: every forward weight plastic, and only the output weights plastic
(the hidden layer frozen), which shows whether the dendritic error teaches the hidden layer.

What differs from the paper: its rate function is ``0.1·log(1 + e^(u − 3))``; this one is the
plain softplus ``log(1 + e^u)`` (circuits has no parametrised rate functions). Inputs are
``N(0, 1)``, teacher weights ``N(0, 1/fan_in)``, student weights xavier, batch 10, the sweep
solver, learning rate chosen here (``--lr``), not the paper's.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from circuits.model import Model  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.rules.microcircuit import RATE_FUNCTIONS, feedforward_pass  # noqa: E402
from circuits.spec import parse_spec  # noqa: E402

SPEC = """
[circuit]
name = "sacramento-teacher-{name}"
[populations]
x = {{ size = 30, role = "input" }}
h = {{ size = {hidden}, activation = "softplus", cell = "pyramidal" }}
y = {{ size = 10, role = "output", activation = "softplus", cell = "pyramidal" }}
[[projections]]
chain = ["x", "h", "y"]
bias = false
[rule]
name = "dendritic_error"
microcircuit = "self_predicting"
lr = {lr}
target_low = 0.0
target_high = 1.0
[task]
loss = "mse"
[run]
seed = {seed}
dtype = "float64"
"""


def model(name: str, hidden: int, lr: float, seed: int, registry: object) -> Model:
    """A 30-``hidden``-10 softplus dendritic circuit."""
    text = SPEC.format(name=name, hidden=hidden, lr=lr, seed=seed)
    return Model(parse_spec(text, source=f"{name}.toml", rules=registry.signatures()), registry=registry)


def teacher_potentials(teacher: Model, x: np.ndarray) -> np.ndarray:
    """The teacher's output potential ``û_N`` (bottom-up: it has no target)."""
    params = {k: teacher.backend.to_numpy(v) for k, v in teacher.params.items()}
    return feedforward_pass(teacher.graph, teacher.rule.layers(teacher.graph), params, x)[0][-1]


def learning_curves(steps: int, lr: float, seed: int, every: int) -> dict[str, list[tuple[int, float]]]:
    """Test error against steps for the plastic and the frozen-hidden student."""
    registry = default_registry()
    rng = np.random.default_rng(seed)
    teacher = model("teacher", 20, lr, seed + 1, registry)
    teacher.set_params({name: rng.standard_normal(value.shape) / np.sqrt(value.shape[0])
                        for name, value in ((n, teacher.backend.to_numpy(v)) for n, v in teacher.params.items())
                        if name in ("x->h", "h->y")})
    teacher.rule.initialize(teacher)
    x_test = rng.standard_normal((500, 30))
    rate = RATE_FUNCTIONS["softplus"][0]
    y_rate = rate(teacher_potentials(teacher, x_test))
    curves = {}
    for arm in ("all plastic", "hidden frozen"):
        student = model("student", 50, lr, seed, registry)
        frozen = {"x->h": student.backend.to_numpy(student.params["x->h"]).copy()}
        data = np.random.default_rng(seed + 2)
        curve = []
        for step in range(steps + 1):
            if step % every == 0:
                curve.append((step, float(np.mean((student.predict(x_test) - y_rate) ** 2))))
            x = data.standard_normal((10, 30))
            student.step(x, teacher_potentials(teacher, x))
            if arm == "hidden frozen":
                student.set_params(frozen)
        curves[arm] = curve
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "gallery" / "sacramento_teacher")
    args = parser.parse_args()
    curves = learning_curves(args.steps, args.lr, args.seed, args.every)
    with open(args.out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *curves])
        for rows in zip(*curves.values()):
            writer.writerow([rows[0][0], *(f"{error:.6g}" for _, error in rows)])
    fig = Figure(figsize=(5, 3.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (arm, curve), color in zip(curves.items(), ("#3b5b7a", "#c07030")):
        ax.semilogy([s for s, _ in curve], [e for _, e in curve], color=color, label=arm)
    ax.set_xlabel("steps (batch 10)")
    ax.set_ylabel("test MSE of output rates")
    ax.set_title(f"teacher 30-20-10 → dendritic student 30-50-10 (softplus), lr {args.lr:g}", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), metadata={"Software": None})
    for arm, curve in curves.items():
        print(f"{arm}: test MSE {curve[0][1]:.4g} at step 0, {curve[-1][1]:.4g} at step {curve[-1][0]}")


if __name__ == "__main__":
    main()
