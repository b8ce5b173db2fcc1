"""Output target rates of the feed-forward rules (rule.target_low / rule.target_high): the MSE
gradient against the rates ``low + (high − low)·onehot`` by hand, the FA family on the same code
path, the resolved spec, identity of runs at the default, and the one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import circuits
from circuits.errors import CircuitsError
from circuits.rules import default_registry
from circuits.runs import run_id
from circuits.spec import parse_spec
from circuits.spec_writer import dump_spec

RULES = default_registry().signatures()

SPEC = """
[circuit]
name = "targets"

[populations]
x = { size = 5, role = "input" }
h = { size = 4, activation = "sigmoid" }
y = { size = 3, role = "output", activation = "sigmoid" }

[[projections]]
chain = ["x", "h", "y"]
bias = false
init = { scheme = "normal", std = 0.8 }

[rule]
name = "backprop"
lr = 0.1

[task]
dataset = "digits"
loss = "mse"
batch_size = 4

[run]
seed = 3
"""


def _model(tmp_path: Path, overrides: list[str]) -> circuits.Model:
    path = tmp_path / "targets.toml"
    path.write_text(SPEC)
    return circuits.load(path, overrides)


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-u))


def _hand_gradients(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, labels: np.ndarray,
                    low: float, high: float, feedback: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """∂/∂W of mean_b ½‖σ(σ(x W1) W2) − t_b‖², t = low + (high − low)·onehot (feedback replaces W2ᵀ)."""
    h = _sigmoid(x @ w1)
    y = _sigmoid(h @ w2)
    t = low + (high - low) * np.eye(3)[labels]
    delta_y = (y - t) / len(x) * y * (1 - y)
    delta_h = delta_y @ (w2.T if feedback is None else feedback) * h * (1 - h)
    return {"x->h": x.T @ delta_h, "h->y": h.T @ delta_y}


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(4, 5)), np.array([0, 2, 1, 2])


def test_backprop_gradient_with_target_rates_matches_the_hand_computation(tmp_path):
    model = _model(tmp_path, ["rule.target_low=0.1", "rule.target_high=0.8"])
    x, labels = _batch()
    params = model.params
    w1, w2 = np.asarray(params["x->h"], np.float64), np.asarray(params["h->y"], np.float64)
    expected = _hand_gradients(w1, w2, x, labels, 0.1, 0.8)
    deltas = model.deltas(x.astype(np.float32), labels)
    for name, grad in expected.items():
        np.testing.assert_allclose(deltas[name], -0.1 * grad, rtol=2e-4, atol=1e-7)
    # the targets changed the gradient: at 0/1 it differs
    plain = _hand_gradients(w1, w2, x, labels, 0.0, 1.0)
    assert not np.allclose(plain["h->y"], expected["h->y"], rtol=0.05)
    default = _model(tmp_path, []).deltas(x.astype(np.float32), labels)
    np.testing.assert_allclose(default["h->y"], -0.1 * plain["h->y"], rtol=2e-4, atol=1e-7)
    # the loss value is the MSE against the target rates, too
    loss, _ = model.evaluate(x.astype(np.float32), labels)
    y = _sigmoid(_sigmoid(x @ w1) @ w2)
    t = 0.1 + 0.7 * np.eye(3)[labels]
    assert loss == pytest.approx(np.mean(0.5 * np.sum((y - t) ** 2, axis=1)), rel=1e-4)


def test_feedback_alignment_shares_the_output_error(tmp_path):
    model = _model(tmp_path, ["rule.name=feedback_alignment", "rule.auto_feedback=true",
                              "rule.target_low=0.1", "rule.target_high=0.8"])
    x, labels = _batch()
    params = model.params
    w1, w2 = np.asarray(params["x->h"], np.float64), np.asarray(params["h->y"], np.float64)
    feedback = np.asarray(params["y->h"], np.float64)
    expected = _hand_gradients(w1, w2, x, labels, 0.1, 0.8, feedback=feedback)
    deltas = model.deltas(x.astype(np.float32), labels)
    for name, grad in expected.items():
        np.testing.assert_allclose(deltas[name], -0.1 * grad, rtol=2e-4, atol=1e-7)


def test_target_rates_are_in_the_resolved_spec_and_defaults_keep_run_ids(tmp_path):
    scaled = _model(tmp_path, ["rule.target_low=0.1", "rule.target_high=0.8"]).spec
    text = dump_spec(scaled)
    assert "target_low = 0.1" in text and "target_high = 0.8" in text
    assert parse_spec(text, source="again.toml", rules=RULES) == scaled
    plain = _model(tmp_path, []).spec
    assert plain.rule.params["target_low"] == 0.0 and plain.rule.params["target_high"] == 1.0
    assert "target_" not in dump_spec(plain)  # a run without target rates keeps its identity
    assert run_id(plain) == run_id(parse_spec(dump_spec(plain), rules=RULES)) != run_id(scaled)


def test_target_rates_with_cross_entropy_are_a_one_line_error(tmp_path):
    with pytest.raises(CircuitsError) as info:
        model = _model(tmp_path, ["task.loss=cross_entropy", "rule.target_low=0.1"])
        model.compiled("train")
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith('rule.target_low/target_high: output target rates need task.loss = "mse" (got '
                            '"cross_entropy"); set task.loss = "mse" or remove rule.target_low and rule.target_high')
