"""Segregated dendrites (Guerguiev et al. 2017, rate version): a two-hidden-layer update against a
hand computation, per-projection learning rates and ``plastic = false``, and the target rates
of the loss and the reference gradient (the output layer's update is parallel to it)."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.claims import verify
from circuits.model import Model
from circuits.rules import default_registry
from circuits.spec import parse_spec

RULES = default_registry(plugins=False)

DEEP = """
[circuit]
name = "seg-deep"
[populations]
x = { size = 3, role = "input" }
h1 = { size = 2, activation = "sigmoid" }
h2 = { size = 2, activation = "sigmoid" }
y = { size = 2, role = "output", activation = "sigmoid" }
[[projections]]
chain = ["x", "h1", "h2", "y"]
[rule]
name = "segregated_dendrites"
lr = 0.3
target_low = 0.1
target_high = 0.8
[task]
loss = "mse"
[run]
seed = 0
dtype = "float64"
"""


def sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def deep_model(**overrides):
    return Model(parse_spec(DEEP, source="seg-deep.toml", overrides=overrides, rules=RULES.signatures()),
                 registry=RULES)


def set_known_params(model):
    rng = np.random.default_rng(7)
    params = {"x->h1": rng.normal(0, 0.8, (3, 2)), "h1.bias": rng.normal(0, 0.3, 2),
              "h1->h2": rng.normal(0, 0.8, (2, 2)), "h2.bias": rng.normal(0, 0.3, 2),
              "h2->y": rng.normal(0, 0.8, (2, 2)), "y.bias": rng.normal(0, 0.3, 2),
              "y->h1": rng.normal(0, 1.0, (2, 2)), "y->h2": rng.normal(0, 1.0, (2, 2))}
    model.set_params(params)
    return params


def hand_updates(p, x, labels, lr):
    """The paper's updates written out for a batch (defaults g_lk = 0.1, g_B = 1, g_A = 0.8)."""
    gain, k_b, k_d = 1.0 / 1.1, 1.0 / 1.9, 1.0 / 1.1
    c1 = gain * (x @ p["x->h1"] + p["h1.bias"])
    r1 = sigmoid(c1)
    c2 = gain * (r1 @ p["h1->h2"] + p["h2.bias"])
    r2 = sigmoid(c2)
    cy = gain * (r2 @ p["h2->y"] + p["y.bias"])
    ry = sigmoid(cy)
    target = 0.1 + 0.7 * np.eye(2)[labels]
    n = len(x)
    errors = {}
    for pop, rate in (("h1", r1), ("h2", r2)):
        fb = p[f"y->{pop}"]
        errors[pop] = k_b * (sigmoid(target @ fb) - sigmoid(ry @ fb)) * rate * (1 - rate)
    errors["y"] = k_d * (target - ry) * ry * (1 - ry)
    below = {"h1": x, "h2": r1, "y": r2}
    names = {"h1": "x->h1", "h2": "h1->h2", "y": "h2->y"}
    out = {}
    for pop, err in errors.items():
        out[names[pop]] = lr[names[pop]] * below[pop].T @ err / n
        out[f"{pop}.bias"] = lr["bias"] * err.sum(axis=0) / n
    return out


def test_two_hidden_layer_updates_match_a_hand_computation():
    model = deep_model()
    params = set_known_params(model)
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7], [0.0, 0.9, 0.4]])
    labels = np.array([1, 0, 1])
    lr = {"x->h1": 0.3, "h1->h2": 0.3, "h2->y": 0.3, "bias": 0.3}
    expected = hand_updates(params, x, labels, lr)
    deltas = model.deltas(x, labels)
    assert set(deltas) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(deltas[name], value, rtol=1e-10, atol=1e-15, err_msg=name)


def test_projection_learning_rates_and_frozen_projections_are_respected():
    model = deep_model(**{"projections.h2->y.lr": 0.05, "projections.h1->h2.plastic": False})
    params = set_known_params(model)
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7]])
    labels = np.array([0, 1])
    expected = hand_updates(params, x, labels, {"x->h1": 0.3, "h1->h2": 0.3, "h2->y": 0.05, "bias": 0.3})
    deltas = model.deltas(x, labels)
    assert "h1->h2" not in deltas
    np.testing.assert_allclose(deltas["h2->y"], expected["h2->y"], rtol=1e-10)
    np.testing.assert_allclose(deltas["x->h1"], expected["x->h1"], rtol=1e-10)
    before = np.array(model.backend.to_numpy(model.params["h1->h2"]), dtype=np.float64)
    model.step(x, labels)
    np.testing.assert_array_equal(np.array(model.backend.to_numpy(model.params["h1->h2"])), before)


def test_output_update_is_parallel_to_the_reference_gradient_with_target_rates():
    model = deep_model()
    set_known_params(model)
    x = np.random.default_rng(3).normal(size=(5, 3))
    labels = np.array([0, 1, 1, 0, 1])
    angles = model.alignment(x, labels)
    assert angles["h2->y"] == pytest.approx(0.0, abs=1e-4)
    assert angles["y.bias"] == pytest.approx(0.0, abs=1e-4)
    assert angles["x->h1"] > 1.0  # the hidden layers follow the random feedback, not the gradient


def test_loss_and_reference_gradient_use_the_target_rates():
    outcome = {o.claim: o for o in verify(deep_model().spec, RULES)}
    assert outcome["reference_gradient_is_exact"].status == "pass", outcome["reference_gradient_is_exact"]
    model = deep_model()
    set_known_params(model)
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7]])
    labels = np.array([0, 1])
    rates = np.asarray(model.predict(x), dtype=np.float64)
    target = 0.1 + 0.7 * np.eye(2)[labels]
    expected = 0.5 * np.mean(np.sum((rates - target) ** 2, axis=1))
    assert model.evaluate(x, labels)[0] == pytest.approx(expected, rel=1e-9)
