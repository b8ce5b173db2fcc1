"""Each rule's update on a tiny circuit, pinned against a hand computation in plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.model import Model
from circuits.spec import parse_spec

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h = {{ size = 4, activation = "tanh" }}
y = {{ size = 2, role = "output", activation = "{out}" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
lr = 0.1
{extra}
[task]
dataset = "teacher_linear"
loss = "{loss}"
[run]
dtype = "float64"
seed = 3
"""

RNG = np.random.default_rng(11)
X = RNG.standard_normal((5, 3))
T = RNG.standard_normal((5, 2))
LABELS = np.array([0, 1, 1, 0, 1])


def tiny(registry, rule="backprop", extra="", loss="mse", out="sigmoid") -> Model:
    text = TINY.format(rule=rule, extra=extra, loss=loss, out=out)
    spec = parse_spec(text, source="tiny.toml", rules=registry.signatures())
    return Model(spec, registry=registry)


def forward(p):
    h = np.tanh(X @ p["x->h"] + p["h.bias"])
    y = 1 / (1 + np.exp(-(h @ p["h->y"] + p["y.bias"])))
    return h, y


def hand_deltas(p, feedback):
    """Hand computation for the 3-4-2 tanh/sigmoid circuit with MSE loss and feedback matrix ``feedback``."""
    h, y = forward(p)
    dy = (y - T) / len(X) * y * (1 - y)
    dh = (dy @ feedback) * (1 - h ** 2)
    grads = {"x->h": X.T @ dh, "h.bias": dh.sum(0), "h->y": h.T @ dy, "y.bias": dy.sum(0)}
    return {k: -0.1 * g for k, g in grads.items()}, dy, h


def params(model):
    return {k: np.array(v) for k, v in model.params.items()}


def assert_same(got, want):
    assert set(want) <= set(got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_backprop_hand_computation(registry):
    model = tiny(registry)
    p = params(model)
    want, _, _ = hand_deltas(p, p["h->y"].T)
    assert_same(model.deltas(X, T), want)
    grads = model.gradients(X, T)
    assert_same({k: -0.1 * g for k, g in grads.items()}, want)


def test_backprop_cross_entropy_hand_computation(registry):
    model = tiny(registry, loss="cross_entropy", out="linear")
    p = params(model)
    h = np.tanh(X @ p["x->h"] + p["h.bias"])
    z = h @ p["h->y"] + p["y.bias"]
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    dz = (prob - np.eye(2)[LABELS]) / len(X)
    dh = dz @ p["h->y"].T * (1 - h ** 2)
    got = model.deltas(X, LABELS)
    np.testing.assert_allclose(got["x->h"], -0.1 * X.T @ dh, rtol=1e-10)
    np.testing.assert_allclose(got["h->y"], -0.1 * h.T @ dz, rtol=1e-10)
    loss = model.step(X, LABELS)
    assert loss == pytest.approx(-np.mean(np.log(prob[np.arange(5), LABELS])), rel=1e-12)


def test_step_applies_the_deltas(registry):
    model = tiny(registry)
    before = params(model)
    deltas = model.deltas(X, T)
    model.step(X, T)
    for name, change in deltas.items():
        np.testing.assert_allclose(model.params[name], before[name] + change, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rule", ["feedback_alignment", "direct_feedback_alignment"])
def test_fa_and_dfa_hand_computation(registry, rule):
    model = tiny(registry, rule, "auto_feedback = true")
    p = params(model)
    assert p["y->h"].shape == (2, 4)
    want, _, _ = hand_deltas(p, p["y->h"])
    assert_same(model.deltas(X, T), want)


def test_kolen_pollack_hand_computation(registry):
    model = tiny(registry, "kolen_pollack", "auto_feedback = true")
    p = params(model)
    want, dy, h = hand_deltas(p, p["y->h"])
    want["y->h"] = -0.1 * dy.T @ h
    got = model.deltas(X, T)
    assert_same(got, want)
    np.testing.assert_allclose(got["y->h"], got["h->y"].T, rtol=1e-12)


def test_weight_mirror_hand_computation(registry):
    model = tiny(registry, "weight_mirror", "auto_feedback = true\nmirror_lr = 0.2\nmirror_std = 0.3\nmirror_batch = 7")
    before = params(model)
    model.step(X, T)
    after = params(model)
    exe = model.sim.executable(model.program, len(X))
    noise = np.array(exe.arrays["h->y.mirror_noise"])
    assert noise.shape == (7, 4)
    echo = noise @ after["h->y"]
    want = 0.8 * before["y->h"] + 0.2 * echo.T @ noise / (0.09 * 7)
    np.testing.assert_allclose(after["y->h"], want, rtol=1e-10)


def test_fa_with_feedback_tied_to_the_transpose_is_backprop(registry):
    model = tiny(registry, "feedback_alignment", "auto_feedback = true")
    model.set_params({"y->h": np.array(model.params["h->y"]).T})
    grads = model.gradients(X, T)
    assert_same(model.deltas(X, T), {k: -0.1 * g for k, g in grads.items()})
