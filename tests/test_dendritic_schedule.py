"""The dendritic rule honours rule.lr_schedule: at an epoch's rate factor every plastic weight
of the microcircuit (forward with layer_lr = "compensate", a projection's own lr, the
interneurons' dendrites) moves by that factor times its step at the spec's rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import circuits
from circuits.lr_schedule import lr_factor

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "specs" / "dendritic_deep_digits.toml"
SMALL = ["task.n_train=40", "task.n_test=20", "rule.momentum=0.0", "rule.optimizer=sgd",
         "rule.layer_lr=compensate", "projections.x->h1.lr=0.3"]


def _step(scale: float, x: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    model = circuits.load(SPEC, SMALL)
    before = {name: np.array(value, np.float64) for name, value in model.params.items()}
    model.set_lr_scale(scale)
    model.step(x, labels)
    return {name: np.array(value, np.float64) - before[name] for name, value in model.params.items()}


def test_a_scheduled_rate_scales_every_dendritic_update():
    factor = lr_factor({"lr_schedule": "cosine", "lr_epochs": 4, "lr_floor": 0.0}, 3)
    assert factor == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 64)).astype(np.float32)
    labels = rng.integers(0, 10, size=10)
    full, scaled = _step(1.0, x, labels), _step(factor, x, labels)
    moved = [name for name, change in full.items() if np.abs(change).max() > 0]
    assert {"x->h1", "h1->h2", "h2->y", "h1->h1_inter", "h2->h2_inter"} <= set(moved)
    for name in moved:
        np.testing.assert_allclose(scaled[name], factor * full[name], rtol=1e-3, atol=1e-7)
