"""JAX (XLA:CPU, ``jax.jit``) references of tools/bench.py's cases (a script helper, not the package).

Each runner trains the same circuit as circuits does, from the same initial parameters, on the
same batches, with the same update: one jitted, buffer-donating training step per batch, called
from a Python loop (how JAX training code is written), and ``block_until_ready`` at the end so
the timing holds the whole epoch's work. Layouts follow circuits: a weight ``A->B`` has shape
``(size of A, size of B)`` and a layer computes ``x @ W + b``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["JaxMLP", "JaxSteps", "limit_xla_threads"]


def limit_xla_threads(threads: int) -> None:
    """Ask XLA:CPU for ``threads`` intra-op threads (only effective before JAX starts its backend).

    With one thread Eigen's thread pool is switched off; with more, XLA's intra-op
    parallelism is capped at ``threads``.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    extra = (" --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1
             else f" intra_op_parallelism_threads={threads}")
    os.environ["XLA_FLAGS"] = (flags + extra).strip()


def _feedback_linear() -> Any:
    """``x @ W + b`` whose input gradient goes through a fixed matrix ``B`` shaped ``(out, in)``."""
    import jax

    @jax.custom_vjp
    def linear(x: Any, w: Any, b: Any, feedback: Any) -> Any:
        return x @ w + b

    def forward(x: Any, w: Any, b: Any, feedback: Any) -> tuple[Any, Any]:
        return x @ w + b, (x, feedback)

    def backward(saved: Any, grad: Any) -> tuple[Any, Any, Any, Any]:
        x, feedback = saved
        # The feedback's cotangent is zeros that nothing reads: XLA drops it.
        return grad @ feedback, x.T @ grad, grad.sum(axis=0), jax.numpy.zeros_like(feedback)

    linear.defvjp(forward, backward)
    return linear


class JaxSteps:
    """What every JAX reference shares: a Python loop over the jitted step, ``block_until_ready``
    at the end, and test accuracy from the jitted forward pass. A subclass sets ``jax``, ``jnp``,
    ``params``, ``_step``, ``_feedbacks``, ``_forward``, ``x_test`` and ``y_test``."""

    def train(self, batches: Sequence[tuple[Any, Any]]) -> None:
        params, step, feedbacks = self.params, self._step, self._feedbacks
        for x, labels in batches:
            params = step(params, feedbacks, x, labels)
        self.params = self.jax.block_until_ready(params)

    def accuracy(self) -> float:
        logits = np.asarray(self._forward(self.params, self.jnp.asarray(self.x_test)))
        return float((logits.argmax(axis=1) == self.y_test).mean())


class JaxMLP(JaxSteps):
    """A ReLU MLP trained by backprop or feedback alignment, mean cross-entropy, plain SGD.

    Parameters
    ----------
    initial
        circuits' initial parameters by name (``A->B`` weights, ``B.bias`` biases, and for
        feedback alignment the fixed feedback ``B->A`` shaped ``(size of B, size of A)``).
    layers
        The forward projections ``(source, target)`` in order, ReLU after every one but the last.
    batches
        ``(inputs, labels)`` host arrays, moved to JAX once here.
    x_test, y_test
        Test set for :meth:`accuracy`.
    lr
        SGD learning rate.
    feedback
        Feedback alignment: the hidden layers' input gradients use the fixed feedback matrices.
    """

    label = "jax"

    def __init__(self, initial: dict[str, np.ndarray], layers: Sequence[tuple[str, str]],
                 batches: Sequence[tuple[np.ndarray, np.ndarray]], x_test: np.ndarray, y_test: np.ndarray,
                 *, lr: float, feedback: bool) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.initial = initial
        self.layers = tuple(layers)
        self.x_test, self.y_test = x_test, y_test
        linear = _feedback_linear()
        feedbacks = tuple(jnp.asarray(initial[f"{t}->{s}"]) for s, t in self.layers[1:]) if feedback else None

        def forward(params: Any, fixed: Any, x: Any) -> Any:
            for index, (w, b) in enumerate(params):
                x = linear(x, w, b, fixed[index - 1]) if fixed is not None and index > 0 else x @ w + b
                if index < len(params) - 1:
                    x = jnp.maximum(x, 0.0)
            return x

        def loss(params: Any, fixed: Any, x: Any, labels: Any) -> Any:
            logits = forward(params, fixed, x)
            picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
            return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

        def step(params: Any, fixed: Any, x: Any, labels: Any) -> Any:
            grads = jax.grad(loss)(params, fixed, x, labels)
            return jax.tree.map(lambda p, g: p - lr * g, params, grads)

        self._feedbacks = feedbacks
        self._step = jax.jit(step, donate_argnums=0)
        self._forward = jax.jit(lambda params, x: forward(params, None, x))
        self.batches = [(jax.device_put(x), jax.device_put(y.astype(np.int32))) for x, y in batches]
        self.params: Any = None
        self.reset()

    def reset(self) -> None:
        jnp = self.jnp
        self.params = tuple((jnp.array(self.initial[f"{s}->{t}"]), jnp.array(self.initial[f"{t}.bias"]))
                            for s, t in self.layers)
        self.jax.block_until_ready(self.params)

    def parameters(self) -> dict[str, np.ndarray]:
        out = {}
        for (s, t), (w, b) in zip(self.layers, self.params):
            out[f"{s}->{t}"] = np.array(w)
            out[f"{t}.bias"] = np.array(b)
        return out
