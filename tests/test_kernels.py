"""Every op kernel against a hand computation, on every available backend."""

from __future__ import annotations

import numpy as np
import pytest

from circuits import ops
from circuits.backends import get_backend

RNG = np.random.default_rng(7)
A = RNG.standard_normal((4, 3))
B = RNG.standard_normal((3, 5))
D = RNG.standard_normal((4, 5))
W0 = RNG.standard_normal((3, 5))


def run(backend_name: str, op: ops.Op, arrays: dict[str, np.ndarray], *, times: int = 1) -> dict[str, np.ndarray]:
    """Copy ``arrays`` to the backend, run ``op`` ``times``, return host copies."""
    backend = get_backend(backend_name, seed=3)
    device = {k: backend.from_numpy(np.array(v)) for k, v in arrays.items()}
    step = backend.step(op, device)
    for _ in range(times):
        step()
    return {k: np.asarray(backend.to_numpy(v)) for k, v in device.items()}


def test_matmul_sets_and_accumulates(backend):
    out = run(backend, ops.MatMul("a", "b", "out"), {"a": A, "b": B, "out": np.full((4, 5), 9.0)})
    np.testing.assert_allclose(out["out"], A @ B, rtol=1e-12)
    out = run(backend, ops.MatMul("a", "b", "out", accumulate=True), {"a": A, "b": B, "out": D})
    np.testing.assert_allclose(out["out"], D + A @ B, rtol=1e-12)
    out = run(backend, ops.MatMul("d", "b", "out", transpose_b=True), {"d": D, "b": B, "out": np.zeros((4, 3))})
    np.testing.assert_allclose(out["out"], D @ B.T, rtol=1e-12)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.1, 1.0), (-0.05, 0.99), (2.0, 0.5)])
def test_outer_update(backend, alpha, beta):
    out = run(backend, ops.OuterUpdate("a", "d", "w", alpha=alpha, beta=beta), {"a": A, "d": D, "w": W0})
    np.testing.assert_allclose(out["w"], beta * W0 + alpha * A.T @ D, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.1, 1.0), (0.5, 0.9)])
def test_colsum_update(backend, alpha, beta):
    bias = RNG.standard_normal(5)
    out = run(backend, ops.ColSumUpdate("d", "b", alpha=alpha, beta=beta), {"d": D, "b": bias})
    np.testing.assert_allclose(out["b"], beta * bias + alpha * D.sum(axis=0), rtol=1e-12)


def test_add_bias_and_multiply(backend):
    bias = RNG.standard_normal(5)
    out = run(backend, ops.AddBias("b", "out"), {"b": bias, "out": D})
    np.testing.assert_allclose(out["out"], D + bias, rtol=1e-12)
    out = run(backend, ops.Multiply("f", "out"), {"f": A, "out": A})
    np.testing.assert_allclose(out["out"], A * A, rtol=1e-12)


def test_copy(backend):
    out = run(backend, ops.Copy("a", "out"), {"a": A, "out": np.zeros_like(A)})
    np.testing.assert_array_equal(out["out"], A)


REFERENCE = {
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "hard_sigmoid": (lambda x: np.clip(x, 0, 1), lambda x: ((x > 0) & (x < 1)).astype(float)),
}


@pytest.mark.parametrize("fn", sorted(REFERENCE))
def test_activation_and_derivative(backend, fn):
    pre = np.linspace(-3, 3, 20).reshape(4, 5) + 0.013
    grad = RNG.standard_normal((4, 5))
    f, df = REFERENCE[fn]
    out = run(backend, ops.Activate(fn, "pre", "out"), {"pre": pre, "out": np.zeros_like(pre)})
    np.testing.assert_allclose(out["out"], f(pre), rtol=1e-12, atol=1e-15)
    out = run(backend, ops.ActivationDeriv(fn, "pre", "rate", "grad", "out"),
              {"pre": pre, "rate": f(pre), "grad": grad, "out": np.zeros_like(pre)})
    np.testing.assert_allclose(out["out"], grad * df(pre), rtol=1e-10, atol=1e-15)


def test_sigmoid_has_no_overflow(backend):
    pre = np.array([[-1000.0, 0.0, 1000.0]])
    out = run(backend, ops.Activate("sigmoid", "pre", "out"), {"pre": pre, "out": np.zeros_like(pre)})
    np.testing.assert_allclose(out["out"], [[0.0, 0.5, 1.0]])


def test_softmax(backend):
    pre = RNG.standard_normal((4, 5)) * 10
    e = np.exp(pre - pre.max(axis=1, keepdims=True))
    out = run(backend, ops.Activate("softmax", "pre", "out"), {"pre": pre, "out": np.zeros_like(pre)})
    np.testing.assert_allclose(out["out"], e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_softmax_cross_entropy(backend):
    logits = RNG.standard_normal((4, 5)) * 3
    labels = np.array([0, 4, 2, 2])
    out = run(backend, ops.SoftmaxCrossEntropy("z", "t", "d", "l"),
              {"z": logits, "t": labels, "d": np.zeros_like(logits), "l": np.zeros(())})
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(out["l"], -np.mean(np.log(p[np.arange(4), labels])), rtol=1e-12)
    np.testing.assert_allclose(out["d"], (p - onehot) / 4, rtol=1e-12, atol=1e-15)


def test_mean_squared_error(backend):
    target = RNG.standard_normal((4, 5))
    out = run(backend, ops.MeanSquaredError("y", "t", "g", "l"),
              {"y": D, "t": target, "g": np.zeros_like(D), "l": np.zeros(())})
    np.testing.assert_allclose(out["l"], 0.5 * np.sum((D - target) ** 2) / 4, rtol=1e-12)
    np.testing.assert_allclose(out["g"], (D - target) / 4, rtol=1e-12)


def test_dropout_mask_is_scaled_bernoulli(backend):
    rate = np.ones((200, 50))
    out = run(backend, ops.Dropout(0.25, "m", "r", stream="h.dropout"), {"m": np.zeros_like(rate), "r": rate})
    values = set(np.unique(out["m"]).tolist())
    assert values <= {0.0, 1 / 0.75}
    assert abs(np.mean(out["m"] == 0) - 0.25) < 0.02
    np.testing.assert_array_equal(out["r"], out["m"])


def test_random_streams_are_named_not_ordered(backend):
    """The same stream name gives the same numbers, whatever else was drawn before."""
    first = run(backend, ops.GaussianNoise(0.5, "n", stream="a"), {"n": np.zeros((3, 4))})["n"]
    again = run(backend, ops.GaussianNoise(0.5, "n", stream="a"), {"n": np.zeros((3, 4))})["n"]
    other = run(backend, ops.GaussianNoise(0.5, "n", stream="b"), {"n": np.zeros((3, 4))})["n"]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_sgd_step(backend):
    out = run(backend, ops.SgdStep("w", "g", lr=0.1, decay=0.99), {"w": W0, "g": B})
    np.testing.assert_allclose(out["w"], 0.99 * W0 - 0.1 * B, rtol=1e-12)


def test_adam_step_against_hand_computation(backend):
    grads = [RNG.standard_normal((3, 5)) for _ in range(3)]
    w, m, v = W0.copy(), np.zeros((3, 5)), np.zeros((3, 5))
    for t, g in enumerate(grads, 1):
        g = g + 0.01 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    backend_ = get_backend(backend, seed=0)
    arrays = {"w": backend_.from_numpy(W0.copy()), "g": backend_.from_numpy(np.zeros((3, 5))),
              "m": backend_.from_numpy(np.zeros((3, 5))), "v": backend_.from_numpy(np.zeros((3, 5))),
              "t": backend_.from_numpy(np.zeros(()))}
    step = backend_.step(ops.AdamStep("w", "g", "m", "v", "t", lr=0.01, beta1=0.9, beta2=0.999,
                                      eps=1e-8, weight_decay=0.01), arrays)
    for g in grads:
        arrays["g"][...] = backend_.from_numpy(g)
        step()
    np.testing.assert_allclose(backend_.to_numpy(arrays["w"]), w, rtol=1e-10)
