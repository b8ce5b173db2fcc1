"""The benchmark's helper functions (tools/bench.py is a script, not part of the package)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
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
