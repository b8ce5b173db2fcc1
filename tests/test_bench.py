"""The benchmark's helper functions (tools/bench.py is a script, not part of the package)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

import circuits
from circuits.spec import parse_spec


def _bench():
    if "bench" in sys.modules:
        return sys.modules["bench"]
    spec = importlib.util.spec_from_file_location("bench", REPO_ROOT / "tools" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_param_differences_measures_against_scale_and_change():
    bench = _bench()
    initial = {"w": np.zeros((2, 2))}
    ours = {"w": np.array([[4.0, 0.0], [0.0, 2.0]])}
    ref = {"w": np.array([[4.0, 0.0], [0.0, 1.5]])}
    row = bench.param_differences(ours, ref, initial)["w"]
    assert row == {"max_abs": 0.5, "rel": 0.125, "rel_change": 0.125}


def test_program_gemms_counts_each_product_per_relaxation_step():
    bench = _bench()
    text = bench.EQPROP_SPEC.format(batch=4, seed=0, **{**bench.EQPROP, "hidden": 6})
    registry = circuits.default_registry()
    model = circuits.Model(parse_spec(text, source="bench", rules=registry.signatures()), registry=registry)
    gemms = bench.program_gemms(model.compiled("train"), 4)
    budget = bench.EQPROP["free_steps"] + bench.EQPROP["nudged_steps"]
    # every step: ρ_h @ W_hy (4×6×10) and ρ_y @ W_hyᵀ (4×10×6)
    assert sum(g.count for g in gemms if (g.m, g.k, g.n) == (4, 6, 10)) == budget
    assert sum(g.count for g in gemms if (g.m, g.k, g.n) == (4, 10, 6)) == budget
    # the update: one outer product per phase for each weight
    assert sum(g.count for g in gemms if (g.m, g.k, g.n) == (784, 4, 6)) == 2
    assert all(g.flops == 2 * g.m * g.k * g.n * g.count for g in gemms)


def _random_workload(bench, steps: int = 2, batch: int = 8):
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((batch, 784), dtype=np.float32), rng.integers(0, 10, batch))
               for _ in range(steps)]
    x_test = rng.standard_normal((50, 784), dtype=np.float32)
    return bench.Workload(x_test=x_test, y_test=rng.integers(0, 10, 50), batches=batches, seed=0, batch=batch)


@pytest.mark.parametrize("reference", ["jax", "pytorch"])
@pytest.mark.parametrize("case", ["bp", "fa", "lenet_bp", "lenet_fa"])
def test_reference_makes_circuits_update(case, reference):
    """Each reference starts from circuits' parameters and makes the same SGD steps (to float32
    rounding); its reset puts the initial parameters back.

    A small batch: with standard-normal inputs a pre-activation within float32 rounding of zero
    flips a ReLU derivative between implementations (at batch 100 it happens within two steps).
    """
    pytest.importorskip({"jax": "jax", "pytorch": "torch"}[reference])
    bench = _bench()
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        work = _random_workload(bench)
        ours, refs = bench.make_cases("step", (reference,))[case].build(work)
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))
    (runner,) = refs
    assert runner.label == reference
    rows = bench.compare_parameters(ours, runner, steps=2)
    assert set(rows) == set(runner.parameters()) and len(rows) == (6 if case in ("bp", "fa") else 8)
    # every parameter moved, and both sides moved it the same way
    assert all(row["rel_change"] < 1e-4 for row in rows.values()), rows
    runner.reset()
    assert all(np.array_equal(value, ours.initial[name]) for name, value in runner.parameters().items())
    assert 0.0 <= runner.accuracy() <= 1.0


def test_program_gemms_counts_the_conv_gemms_as_the_kernels_make_them():
    """The LeNet program at batch 4 lists the first conv (28 × 28 positions) as a GEMM per
    example, 4 times, on one thread; the second (10 × 10), the transposed conv and the kernel
    gradients as one GEMM over the batch; the first conv sends no error down."""
    bench = _bench()
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        from bench_lenet import LENET_SPEC
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))
    text = LENET_SPEC.format(rule="backprop", lr=0.05, extra="", batch=4, seed=0)
    registry = circuits.default_registry()
    model = circuits.Model(parse_spec(text, source="bench", rules=registry.signatures()), registry=registry)
    conv = {g.label.split(": ")[1]: (g.m, g.k, g.n, g.count, g.one_thread)
            for g in bench.program_gemms(model.compiled("train"), 4) if "Conv" in g.label}
    # x (1×28×28) -> 5×5 pad 2 -> 6×28×28 maps; c1 (6×14×14) -> 5×5 -> 16×10×10 maps
    assert conv == {"Conv x->c1.conv": (6, 25, 784, 4, True), "Conv c1->c2.conv": (16, 150, 400, 1, False),
                    "ConvTranspose c1.grad": (150, 16, 400, 1, False),
                    "ConvWeightGrad x->c1.weight": (6, 3136, 25, 1, True),
                    "ConvWeightGrad c1->c2.weight": (16, 400, 150, 1, False)}


def test_cpu_time_script_alternates_both_sides_for_each_round():
    pytest.importorskip("torch")
    bench = _bench()
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        import bench_cpu_time

        times = bench_cpu_time.cpu_times("bp", _random_workload(bench), rounds=3)
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))
    assert set(times) == {"circuits", "pytorch"}
    assert all(len(v) == 3 and all(t > 0 for t in v) for v in times.values())


@pytest.mark.parametrize("case, rule", [("lenet", "backprop"), ("mlp", "feedback_alignment")])
def test_ab_step_loads_a_revision_beside_the_tree_and_times_both(capsys, case, rule):
    """``tools/ab_step.py HEAD`` builds the benchmark's circuit with HEAD's ``circuits/`` (a second
    package) and with the working tree's, and prints both medians and their parameter difference."""
    import shutil
    import subprocess

    if shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                                                     capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: ab_step compares against a revision")
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        import ab_step
    finally:
        sys.path.remove(str(REPO_ROOT / "tools"))
    assert ab_step.main(["HEAD", "--case", case, "--rule", rule, "--rounds", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "HEAD: median" in out and "tree: median" in out and "ratio to HEAD" in out
    assert "parameter difference after 3 steps" in out
    assert "circuits_rev" not in sys.modules  # the second package is gone again
