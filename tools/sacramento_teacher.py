"""The nonlinear teacher regression task of Sacramento et al. 2018, on ``dendritic_error``.

Usage::

    python tools/sacramento_teacher.py                  # lr chosen on validation, 3 seeds → gallery/sacramento_teacher.{png,csv}
    python tools/sacramento_teacher.py --lr 30 --seeds 0 --steps 200 --out /tmp/t   # a short run elsewhere
    python tools/sacramento_teacher.py --rate plain     # the plain softplus log(1 + e^u) of the earlier run

A fixed random teacher, a 30-20-10 network of pyramidal cells with the paper's rate function
φ(u) = 0.1·log(1 + e^(u − 3)) (``activation = { name = "softplus", scale = 0.1, shift = 3 }``),
maps inputs to output potentials. A 30-50-10 dendritic student (pyramidal cells, interneurons
created in the self-predicting state, the same φ) is nudged toward the teacher's output
potential (``target_low = 0``, ``target_high = 1``: the target *is* the potential). The learning
curve is the mean squared difference of output rates, ``φ(û_student) − φ(u_teacher)``, on 500
held-out test inputs. Two students start from the same weights: every forward weight plastic,
and only the output weights plastic (the hidden layer frozen), the paper's comparison.

Set-up chosen here (the paper's main text does not give it): inputs ``N(0, 1)``; teacher and
student weights Gaussian, each layer's scale set so that its bottom-up potentials have standard
deviation 4 over the input distribution (so φ works both in its silent and in its rising part;
with fan-in-scaled N(0, 1/n) weights the teacher's rates would sit near 0.1·log(1 + e^−3) and
the map would be nearly constant); batch 10; the sweep solver; no biases. The learning rate of
each arm is chosen from ``--lr-grid`` on a *validation* task (teacher, student and 500 inputs
drawn from seed 100, which no reported run uses), by the final validation MSE; the test runs
use seeds 0, 1, 2 (their own teachers, students and test inputs).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from circuits.model import Model  # noqa: E402
from circuits.rules import default_registry  # noqa: E402
from circuits.rules.microcircuit import feedforward_pass, rate_pair  # noqa: E402
from circuits.spec import parse_spec  # noqa: E402

RATES = {
    "paper": '{ name = "softplus", scale = 0.1, shift = 3 }',   # 0.1·log(1 + e^(u − 3))
    "plain": '"softplus"',                                       # log(1 + e^u)
}
ARMS = ("all plastic", "hidden frozen")
POTENTIAL_STD = 4.0
VALIDATION_SEED = 100

SPEC = """
[circuit]
name = "sacramento-teacher-{name}"
[populations]
x = {{ size = 30, role = "input" }}
h = {{ size = {hidden}, activation = {rate}, cell = "pyramidal" }}
y = {{ size = 10, role = "output", activation = {rate}, cell = "pyramidal" }}
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


def model(name: str, hidden: int, lr: float, seed: int, registry: object, rate: str = "paper") -> Model:
    """A 30-``hidden``-10 dendritic circuit with the rate function ``RATES[rate]``."""
    text = SPEC.format(name=name, hidden=hidden, lr=lr, seed=seed, rate=RATES[rate])
    return Model(parse_spec(text, source=f"{name}.toml", rules=registry.signatures()), registry=registry)


def potentials(net: Model, x: np.ndarray) -> list[np.ndarray]:
    """Bottom-up potentials ``û_k`` of every layer (the equivalent feed-forward network)."""
    params = {k: net.backend.to_numpy(v) for k, v in net.params.items()}
    return feedforward_pass(net.graph, net.rule.layers(net.graph), params, x)[0]


def draw_weights(net: Model, rng: np.random.Generator, x: np.ndarray) -> None:
    """Gaussian forward weights, layer by layer scaled so that ``std(û_k) = POTENTIAL_STD`` on ``x``;
    then the interneurons are put in the self-predicting state for them."""
    for name in ("x->h", "h->y"):
        shape = net.backend.to_numpy(net.params[name]).shape
        net.set_params({name: rng.standard_normal(shape)})
        layer = 0 if name == "x->h" else 1
        spread = float(np.std(potentials(net, x)[layer]))
        scaled = POTENTIAL_STD / spread * np.asarray(net.backend.to_numpy(net.params[name]))
        net.set_params({name: scaled})
    net.rule.initialize(net)


def task(seed: int, rate: str, registry: object, n_eval: int = 500) -> tuple[Model, np.ndarray, np.ndarray]:
    """The teacher of ``seed`` and ``n_eval`` evaluation inputs with their target rates."""
    rng = np.random.default_rng(seed)
    teacher = model("teacher", 20, 1.0, seed + 1, registry, rate)
    draw_weights(teacher, rng, rng.standard_normal((2000, 30)))
    x_eval = rng.standard_normal((n_eval, 30))
    phi = rate_pair(teacher.graph, "y")[0]
    return teacher, x_eval, phi(potentials(teacher, x_eval)[-1])


def learning_curves(steps: int, lr: float | dict[str, float], seed: int, every: int, rate: str = "paper",
                    arms: Sequence[str] = ARMS) -> dict[str, list[tuple[int, float]]]:
    """Evaluation MSE of output rates against steps for each arm (``lr`` one value or one per arm)."""
    registry = default_registry()
    teacher, x_eval, y_eval = task(seed, rate, registry)
    rates = lr if isinstance(lr, dict) else {arm: lr for arm in arms}
    init = np.random.default_rng(seed + 3)
    start = model("student", 50, 1.0, seed, registry, rate)
    draw_weights(start, init, init.standard_normal((2000, 30)))
    weights = {k: start.backend.to_numpy(v).copy() for k, v in start.params.items()}
    curves = {}
    for arm in arms:
        student = model("student", 50, rates[arm], seed, registry, rate)
        student.set_params(weights)
        frozen = {"x->h": weights["x->h"]}
        data = np.random.default_rng(seed + 2)
        curve = []
        for step in range(steps + 1):
            if step % every == 0:
                curve.append((step, float(np.mean((student.predict(x_eval) - y_eval) ** 2))))
            if step == steps:
                break
            x = data.standard_normal((10, 30))
            student.step(x, potentials(teacher, x)[-1])
            if arm == "hidden frozen":
                student.set_params(frozen)
        curves[arm] = curve
    return curves


def choose_lr(grid: Sequence[float], steps: int, rate: str) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Per arm, the lr of ``grid`` with the lowest final MSE on the validation task (seed 100)."""
    scores: dict[str, dict[float, float]] = {arm: {} for arm in ARMS}
    for lr in grid:
        curves = learning_curves(steps, lr, VALIDATION_SEED, steps, rate)
        for arm in ARMS:
            final = curves[arm][-1][1]
            scores[arm][lr] = final if np.isfinite(final) else np.inf
    return {arm: min(scores[arm], key=scores[arm].get) for arm in ARMS}, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=None, help="one lr for both arms (skips the validation choice)")
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0, 100.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rate", choices=sorted(RATES), default="paper")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "gallery" / "sacramento_teacher")
    args = parser.parse_args()
    if args.lr is None:
        lrs, scores = choose_lr(args.lr_grid, args.steps, args.rate)
        for arm in ARMS:
            listed = ", ".join(f"{lr:g}: {mse:.4g}" for lr, mse in scores[arm].items())
            print(f"validation (seed {VALIDATION_SEED}) {arm}: final MSE by lr {listed} → lr {lrs[arm]:g}")
    else:
        lrs = {arm: args.lr for arm in ARMS}
    runs = {seed: learning_curves(args.steps, lrs, seed, args.every, args.rate) for seed in args.seeds}
    steps = [s for s, _ in runs[args.seeds[0]][ARMS[0]]]
    table = {arm: np.array([[e for _, e in runs[seed][arm]] for seed in args.seeds]) for arm in ARMS}
    with open(args.out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *(f"{arm} {stat}" for arm in ARMS for stat in ("mean", "sd")),
                         *(f"{arm} seed {seed}" for arm in ARMS for seed in args.seeds)])
        for i, step in enumerate(steps):
            stats = [f"{f(table[arm][:, i]):.6g}" for arm in ARMS for f in (np.mean, lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0)]
            writer.writerow([step, *stats, *(f"{table[arm][k, i]:.6g}" for arm in ARMS for k in range(len(args.seeds)))])
    fig = Figure(figsize=(5, 3.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for arm, color in zip(ARMS, ("#3b5b7a", "#c07030")):
        mean, sd = table[arm].mean(axis=0), table[arm].std(axis=0, ddof=1) if len(args.seeds) > 1 else 0 * table[arm][0]
        ax.semilogy(steps, mean, color=color, label=f"{arm} (lr {lrs[arm]:g})")
        ax.fill_between(steps, np.maximum(mean - sd, mean * 1e-3), mean + sd, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("steps (batch 10)")
    ax.set_ylabel("test MSE of output rates")
    form = "0.1·log(1 + e^(u−3))" if args.rate == "paper" else "log(1 + e^u)"
    ax.set_title(f"teacher 30-20-10 → dendritic student 30-50-10\n"
                 f"φ(u) = {form}, mean ± sd over seeds {', '.join(map(str, args.seeds))}", fontsize=8)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), metadata={"Software": None})
    for arm in ARMS:
        final = table[arm][:, -1]
        sd = float(np.std(final, ddof=1)) if len(final) > 1 else 0.0
        print(f"{arm} (lr {lrs[arm]:g}): test MSE {table[arm][:, 0].mean():.4g} at step 0, "
              f"{final.mean():.4g} ± {sd:.2g} at step {steps[-1]} (seeds: {', '.join(f'{v:.4g}' for v in final)})")


if __name__ == "__main__":
    main()
