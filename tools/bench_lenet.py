"""The LeNet case of tools/bench.py: its circuit and its PyTorch and JAX references (a script helper).

The circuit is ``specs/lenet_bp_mnist.toml``'s (x [1, 28, 28] → conv 5×5 pad 2 → max pool 2 →
c1 [6, 14, 14] → conv 5×5 → max pool 2 → c2 [16, 5, 5] → h 120 → y 10, ReLU) trained by
plain SGD. circuits adds a population's bias after the pool, one bias per unit (a map's
every position has its own), and the references do the same. Layouts follow circuits: conv
kernels ``(out channels, in channels, k, k)``, dense weights ``(fan-in, fan-out)``, and the
maps flattened channel-major.

For feedback alignment every projection but the first sends the error down through a fixed
matrix of its own: a conv kernel shaped like the forward one (the transposed conv uses it in
place of the weight) and, for the dense ones, circuits' ``B->A`` matrix ``(size of B, size of A)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bench_jax import JaxSteps

__all__ = ["LENET_SPEC", "LENET_LAYERS", "TorchLeNet", "JaxLeNet"]

LENET_SPEC = """
[circuit]
name = "bench-lenet-{rule}"
doc = "LeNet-like MNIST circuit, plain SGD (tools/bench.py)"

[populations]
x  = {{ shape = [1, 28, 28], role = "input" }}
c1 = {{ shape = [6, 14, 14], activation = "relu" }}
c2 = {{ shape = [16, 5, 5], activation = "relu" }}
h  = {{ size = 120, activation = "relu" }}
y  = {{ size = 10, role = "output", activation = "linear" }}

[[projections]]
from = "x"
to = "c1"
conv = {{ kernel = 5, padding = 2 }}
pool = {{ kind = "max", size = 2 }}
init = "he_uniform"

[[projections]]
from = "c1"
to = "c2"
conv = {{ kernel = 5 }}
pool = {{ kind = "max", size = 2 }}
init = "he_uniform"

[[projections]]
chain = ["c2", "h", "y"]
init = "he_uniform"

[rule]
name = "{rule}"
lr = {lr}
momentum = 0.0
{extra}

[task]
dataset = "mnist"
loss = "cross_entropy"
normalize = "standard"
batch_size = {batch}

[run]
seed = {seed}
dtype = "float32"
"""

LENET_LR = 0.05
# (source, target, conv padding or None for a dense projection, shape of the target's bias)
LENET_LAYERS = (("x", "c1", 2, (6, 14, 14)), ("c1", "c2", 0, (16, 5, 5)), ("c2", "h", None, (120,)),
                ("h", "y", None, (10,)))


class TorchLeNet:
    """PyTorch reference: ``F.conv2d``, ``F.max_pool2d``, per-unit biases, ``F.cross_entropy``,
    ``optim.SGD``; feedback alignment through ``autograd.Function``s whose input gradient uses
    the fixed feedback (``torch.nn.grad.conv2d_input`` for a conv)."""

    label = "pytorch"

    def __init__(self, initial: dict[str, np.ndarray], batches: Sequence[tuple[np.ndarray, np.ndarray]],
                 x_test: np.ndarray, y_test: np.ndarray, *, lr: float, feedback: bool,
                 dense_feedback: Any) -> None:
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.initial = initial
        self.x_test, self.y_test = x_test, y_test
        self.weights = [torch.nn.Parameter(torch.empty(initial[f"{s}->{t}"].shape[::-1] if pad is None
                                                       else initial[f"{s}->{t}"].shape))
                        for s, t, pad, _ in LENET_LAYERS]
        self.biases = [torch.nn.Parameter(torch.empty(shape)) for *_, shape in LENET_LAYERS]
        self.feedbacks = [None] + [torch.from_numpy(np.array(initial[f"{t}->{s}"], dtype=np.float32))
                                   for s, t, _, _ in LENET_LAYERS[1:]] if feedback else None
        self.conv_fa = _torch_feedback_conv()
        self.dense_fa = dense_feedback
        self.optimizer = torch.optim.SGD([*self.weights, *self.biases], lr=lr, momentum=0.0)
        self.batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        self.reset()

    def reset(self) -> None:
        torch = self.torch
        with torch.no_grad():
            for (s, t, pad, _), w, b in zip(LENET_LAYERS, self.weights, self.biases):
                value = self.initial[f"{s}->{t}"]
                w.copy_(torch.from_numpy(value if pad is not None else value.T.copy()))
                b.copy_(torch.from_numpy(self.initial[f"{t}.bias"]).reshape(b.shape))

    def forward(self, x: Any) -> Any:
        F = self.F
        x = x.reshape(-1, 1, 28, 28)
        for index, ((_, _, pad, _), w, b) in enumerate(zip(LENET_LAYERS, self.weights, self.biases)):
            fixed = None if self.feedbacks is None else self.feedbacks[index]
            if pad is not None:
                x = F.conv2d(x, w, padding=pad) if fixed is None else self.conv_fa.apply(x, w, fixed, pad)
                x = F.max_pool2d(x, 2) + b
            else:
                x = x.flatten(1)
                x = self.torch.addmm(b, x, w.t()) if fixed is None else self.dense_fa.apply(x, w, b, fixed)
            if index < len(LENET_LAYERS) - 1:
                x = F.relu(x)
        return x

    def train(self, batches: Sequence[tuple[Any, Any]]) -> None:
        optimizer, F = self.optimizer, self.F
        for x, labels in batches:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.forward(x), labels).backward()
            optimizer.step()

    def accuracy(self) -> float:
        with self.torch.no_grad():
            logits = self.forward(self.torch.from_numpy(self.x_test)).numpy()
        return float((logits.argmax(axis=1) == self.y_test).mean())

    def parameters(self) -> dict[str, np.ndarray]:
        out = {}
        for (s, t, pad, _), w, b in zip(LENET_LAYERS, self.weights, self.biases):
            value = w.detach().numpy()
            out[f"{s}->{t}"] = value.copy() if pad is not None else value.T.copy()
            out[f"{t}.bias"] = b.detach().numpy().reshape(-1).copy()
        return out


def _torch_feedback_conv() -> Any:
    """``conv2d(x, W)`` whose input gradient is the transposed conv with a fixed kernel ``B``."""
    import torch
    import torch.nn.functional as F

    class FeedbackConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, feedback: Any, padding: int) -> Any:
            ctx.save_for_backward(x, feedback)
            ctx.padding, ctx.weight_shape = padding, weight.shape
            return F.conv2d(x, weight, padding=padding)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, feedback = ctx.saved_tensors
            grad_x = (torch.nn.grad.conv2d_input(x.shape, feedback, grad, padding=ctx.padding)
                      if ctx.needs_input_grad[0] else None)
            grad_w = torch.nn.grad.conv2d_weight(x, ctx.weight_shape, grad, padding=ctx.padding)
            return grad_x, grad_w, None, None

    return FeedbackConv


class JaxLeNet(JaxSteps):
    """JAX reference: ``lax.conv_general_dilated`` (NCHW, OIHW), max pool by a window reshape,
    per-unit biases, mean cross-entropy, ``jax.grad`` inside one jitted, buffer-donating SGD
    step; feedback alignment through ``jax.custom_vjp``s (the conv's input gradient is the
    VJP of the conv by the fixed kernel)."""

    label = "jax"

    def __init__(self, initial: dict[str, np.ndarray], batches: Sequence[tuple[np.ndarray, np.ndarray]],
                 x_test: np.ndarray, y_test: np.ndarray, *, lr: float, feedback: bool,
                 dense_feedback: Any) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.initial = initial
        self.x_test, self.y_test = x_test, y_test
        conv = _jax_conv()
        conv_fa = _jax_feedback_conv(conv)

        def pool(z: Any) -> Any:
            n, c, hh, ww = z.shape
            return z.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))

        def forward(params: Any, fixed: Any, x: Any) -> Any:
            x = x.reshape(-1, 1, 28, 28)
            for index, ((_, _, pad, _), (w, b)) in enumerate(zip(LENET_LAYERS, params)):
                fb = None if fixed is None or index == 0 else fixed[index - 1]
                if pad is not None:
                    x = pool(conv(x, w, pad) if fb is None else conv_fa(x, w, fb, pad)) + b
                else:
                    x = x.reshape(x.shape[0], -1)
                    x = x @ w + b if fb is None else dense_feedback(x, w, b, fb)
                if index < len(LENET_LAYERS) - 1:
                    x = jnp.maximum(x, 0.0)
            return x

        def loss(params: Any, fixed: Any, x: Any, labels: Any) -> Any:
            logits = forward(params, fixed, x)
            picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
            return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

        def step(params: Any, fixed: Any, x: Any, labels: Any) -> Any:
            grads = jax.grad(loss)(params, fixed, x, labels)
            return jax.tree.map(lambda p, g: p - lr * g, params, grads)

        self._feedbacks = (tuple(jnp.asarray(initial[f"{t}->{s}"]) for s, t, _, _ in LENET_LAYERS[1:])
                           if feedback else None)
        self._step = jax.jit(step, donate_argnums=0)
        self._forward = jax.jit(lambda params, x: forward(params, None, x))
        self.batches = [(jax.device_put(x), jax.device_put(y.astype(np.int32))) for x, y in batches]
        self.params: Any = None
        self.reset()

    def reset(self) -> None:
        jnp = self.jnp
        self.params = tuple((jnp.array(self.initial[f"{s}->{t}"]),
                             jnp.array(self.initial[f"{t}.bias"].reshape(shape)))
                            for s, t, _, shape in LENET_LAYERS)
        self.jax.block_until_ready(self.params)

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: np.array(value).reshape(-1) if name.endswith(".bias") else np.array(value)
                for (s, t, _, _), (w, b) in zip(LENET_LAYERS, self.params)
                for name, value in ((f"{s}->{t}", w), (f"{t}.bias", b))}


def _jax_conv() -> Any:
    from jax import lax

    def conv(x: Any, w: Any, padding: int) -> Any:
        return lax.conv_general_dilated(x, w, (1, 1), [(padding, padding)] * 2,
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return conv


def _jax_feedback_conv(conv: Any) -> Any:
    """``conv(x, W)`` whose input gradient is the conv's VJP by a fixed kernel ``B``."""
    import jax
    from functools import partial

    @partial(jax.custom_vjp, nondiff_argnums=(3,))
    def feedback_conv(x: Any, w: Any, feedback: Any, padding: int) -> Any:
        return conv(x, w, padding)

    def forward(x: Any, w: Any, feedback: Any, padding: int) -> tuple[Any, Any]:
        return conv(x, w, padding), (x, w, feedback)

    def backward(padding: int, saved: Any, grad: Any) -> tuple[Any, Any, Any]:
        x, w, feedback = saved
        grad_x = jax.vjp(lambda x_: conv(x_, feedback, padding), x)[1](grad)[0]
        grad_w = jax.vjp(lambda w_: conv(x, w_, padding), w)[1](grad)[0]
        return grad_x, grad_w, jax.numpy.zeros_like(feedback)

    feedback_conv.defvjp(forward, backward)
    return feedback_conv
