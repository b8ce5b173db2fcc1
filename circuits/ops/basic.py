"""The ops every rule uses: linear algebra, rate functions, noise, losses and optimizers."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from circuits.ir import Op, access
from circuits.rates import PLAIN, RateParams

__all__ = [
    "MatMul",
    "OuterUpdate",
    "ColSumUpdate",
    "AddBias",
    "Activate",
    "ActivationDeriv",
    "Multiply",
    "Dropout",
    "GaussianNoise",
    "SoftmaxCrossEntropy",
    "MeanSquaredError",
    "Accumulate",
    "Copy",
    "SgdStep",
    "MomentumStep",
    "AdamStep",
    "Shapes",
    "check_same",
]

Shapes = Mapping[str, tuple[int | str, ...]]


def check_same(op: Op, shapes: Shapes, *names: str) -> None:
    first = shapes[names[0]]
    for name in names[1:]:
        if shapes[name] != first:
            raise op.fail(f"'{names[0]}' has shape {first} but '{name}' has {shapes[name]}")


@attrs.frozen
class MatMul(Op):
    """Implements ``out = a @ b`` (or ``out += a @ b``; ``b.T`` when ``transpose_b``)."""

    a: str
    b: str
    out: str
    transpose_b: bool = False
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        target = (self.out,)
        return access(sets=() if self.accumulate else target, incs=target if self.accumulate else (),
                      reads=(self.a, self.b))

    def math(self) -> str:
        return f"{self.out} {'+=' if self.accumulate else '='} {self.a} @ {self.b}{'.T' if self.transpose_b else ''}"

    def check(self, shapes: Shapes) -> None:
        a, b, out = shapes[self.a], shapes[self.b], shapes[self.out]
        rows, cols = (b[1], b[0]) if self.transpose_b else (b[0], b[1])
        if a[-1] != rows or out != (a[0], cols):
            raise self.fail(f"shapes do not chain: {a} @ {'transposed ' if self.transpose_b else ''}{b} -> {out}")


@attrs.frozen
class OuterUpdate(Op):
    """Implements ``out = beta * out + alpha * a.T @ b`` (a batch of outer products).

    With ``beta = 0`` it writes a gradient estimate; with ``alpha = -lr`` and
    ``beta = 1 - lr * decay`` it is one fused SGD step with weight decay.
    """

    a: str
    b: str
    out: str
    alpha: float = 1.0
    beta: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        if self.beta == 0.0:
            return access(sets=(self.out,), reads=(self.a, self.b))
        return access(updates=(self.out,), reads=(self.a, self.b))

    def math(self) -> str:
        keep = "" if self.beta == 0.0 else (f"{self.out} + " if self.beta == 1.0 else f"{self.beta:g}·{self.out} + ")
        return f"{self.out} = {keep}{self.alpha:g}·{self.a}.T @ {self.b}"

    def check(self, shapes: Shapes) -> None:
        a, b, out = shapes[self.a], shapes[self.b], shapes[self.out]
        if a[0] != b[0] or out != (a[1], b[1]):
            raise self.fail(f"{a}.T @ {b} does not give {out}")


@attrs.frozen
class ColSumUpdate(Op):
    """Implements ``out = beta * out + alpha * a.sum(axis=0)``."""

    a: str
    out: str
    alpha: float = 1.0
    beta: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        if self.beta == 0.0:
            return access(sets=(self.out,), reads=(self.a,))
        return access(updates=(self.out,), reads=(self.a,))

    def math(self) -> str:
        keep = "" if self.beta == 0.0 else (f"{self.out} + " if self.beta == 1.0 else f"{self.beta:g}·{self.out} + ")
        return f"{self.out} = {keep}{self.alpha:g}·Σ_batch {self.a}"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out] != shapes[self.a][1:]:
            raise self.fail(f"sum over the batch of {shapes[self.a]} does not give {shapes[self.out]}")


@attrs.frozen
class AddBias(Op):
    """Implements ``out += bias`` (broadcast over the batch)."""

    bias: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.out,), reads=(self.bias,))

    def math(self) -> str:
        return f"{self.out} += {self.bias}"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out][1:] != shapes[self.bias]:
            raise self.fail(f"bias {shapes[self.bias]} does not fit {shapes[self.out]}")


@attrs.frozen
class Activate(Op):
    """Implements ``out = f(pre)`` for the rate function ``fn``.

    With ``params`` (:class:`~circuits.rates.RateParams`): ``out = scale·f(gain·(pre − shift))``.
    """

    fn: str
    pre: str
    out: str
    params: RateParams = PLAIN

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.pre,))

    def math(self) -> str:
        return f"{self.out} = {self.params.formula(self.fn, self.pre)}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.pre, self.out)
        _check_params(self, self.fn, self.params)


@attrs.frozen
class ActivationDeriv(Op):
    """Implements ``out = grad ⊙ f'(pre)``; ``rate = f(pre)`` is read where it is cheaper.

    ``masked`` says that ``rate`` was multiplied by a dropout mask after ``f``, so it no
    longer equals ``f(pre)`` and the kernel recomputes ``f(pre)`` where it needs it.
    With ``params``: ``out = grad ⊙ scale·gain·f'(gain·(pre − shift))`` (``f`` recomputed).
    """

    fn: str
    pre: str
    rate: str
    grad: str
    out: str
    masked: bool = False
    params: RateParams = PLAIN

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.pre, self.rate, self.grad))

    def math(self) -> str:
        return f"{self.out} = {self.grad} ⊙ {self.params.derivative_formula(self.fn, self.pre)}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.pre, self.rate, self.grad, self.out)
        _check_params(self, self.fn, self.params)


def _check_params(op: Op, fn: str, params: RateParams) -> None:
    if not params.plain and fn in ("linear", "softmax"):
        raise op.fail(f"'{fn}' takes no scale, shift or gain")


@attrs.frozen
class Multiply(Op):
    """Implements ``out *= factor`` (elementwise)."""

    factor: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.out,), reads=(self.factor,))

    def math(self) -> str:
        return f"{self.out} ⊙= {self.factor}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.factor, self.out)


@attrs.frozen
class Dropout(Op):
    """Implements ``mask = (u ≥ p) / (1 − p)`` with ``u ~ U[0, 1)``, then ``out ⊙= mask``.

    The random stream is seeded from the run seed and ``stream`` (the op's name), so it does
    not depend on the order of anything else.
    """

    p: float
    mask: str
    out: str
    stream: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.mask,), updates=(self.out,))

    def math(self) -> str:
        return f"{self.mask} = bernoulli(1−{self.p:g})/(1−{self.p:g}); {self.out} ⊙= {self.mask}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.mask, self.out)


@attrs.frozen
class GaussianNoise(Op):
    """Implements ``out = std · ξ`` with ``ξ ~ N(0, 1)`` from the seeded stream ``stream``."""

    std: float
    out: str
    stream: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,))

    def math(self) -> str:
        return f"{self.out} = {self.std:g}·N(0, 1)"


@attrs.frozen
class SoftmaxCrossEntropy(Op):
    """Implements ``loss = mean_b −log softmax(logits)[b, label_b]`` and
    ``delta = (softmax(logits) − onehot(labels)) / batch`` (the gradient wrt the logits)."""

    logits: str
    labels: str
    delta: str
    loss: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.delta, self.loss), reads=(self.logits, self.labels))

    def math(self) -> str:
        return (f"{self.loss} = mean −log softmax({self.logits})[{self.labels}]; "
                f"{self.delta} = (softmax({self.logits}) − onehot({self.labels}))/batch")

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.logits, self.delta)
        if shapes[self.labels] != shapes[self.logits][:1]:
            raise self.fail(f"labels {shapes[self.labels]} do not fit logits {shapes[self.logits]}")


@attrs.frozen
class MeanSquaredError(Op):
    """Implements ``loss = mean_b ½‖out_b − target_b‖²`` and ``grad = (out − target) / batch``."""

    out: str
    target: str
    grad: str
    loss: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.grad, self.loss), reads=(self.out, self.target))

    def math(self) -> str:
        return (f"{self.loss} = mean ½‖{self.out} − {self.target}‖²; "
                f"{self.grad} = ({self.out} − {self.target})/batch")

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.out, self.target, self.grad)


@attrs.frozen
class Accumulate(Op):
    """Implements ``out += a``."""

    a: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.out,), reads=(self.a,))

    def math(self) -> str:
        return f"{self.out} += {self.a}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.a, self.out)


@attrs.frozen
class Copy(Op):
    """Implements ``out = a``."""

    a: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.a,))

    def math(self) -> str:
        return f"{self.out} = {self.a}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.a, self.out)


@attrs.frozen
class SgdStep(Op):
    """Implements ``param = decay · param − lr · grad``."""

    param: str
    grad: str
    lr: float
    decay: float = 1.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.param,), reads=(self.grad,))

    def math(self) -> str:
        keep = self.param if self.decay == 1.0 else f"{self.decay:g}·{self.param}"
        return f"{self.param} = {keep} − {self.lr:g}·{self.grad}"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.param, self.grad)


@attrs.frozen
class MomentumStep(Op):
    """Implements ``velocity = momentum · velocity + grad + wd · param; param −= lr · velocity``."""

    param: str
    grad: str
    velocity: str
    lr: float
    momentum: float
    weight_decay: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.param, self.velocity), reads=(self.grad,))

    def math(self) -> str:
        decay = f" + {self.weight_decay:g}·{self.param}" if self.weight_decay else ""
        return (f"{self.velocity} = {self.momentum:g}·{self.velocity} + {self.grad}{decay}; "
                f"{self.param} −= {self.lr:g}·{self.velocity}")

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.param, self.grad, self.velocity)


@attrs.frozen
class AdamStep(Op):
    """Implements Adam: ``g = grad + wd·param; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
    param −= lr · m̂ / (√v̂ + eps)`` with bias-corrected ``m̂, v̂`` after ``count`` steps."""

    param: str
    grad: str
    m: str
    v: str
    count: str
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.param, self.m, self.v, self.count), reads=(self.grad,))

    def math(self) -> str:
        return f"{self.param} −= adam(lr={self.lr:g}, {self.grad}; {self.m}, {self.v}, {self.count})"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.param, self.grad, self.m, self.v)
