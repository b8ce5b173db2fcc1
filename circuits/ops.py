"""The op catalogue. Each op holds buffer names and constants, never arrays.

Every docstring opens with the math the op implements; the NumPy kernels in
:mod:`circuits.backends.numpy_backend` are the living definition of that math. Batched
buffers have the batch as their first dimension, so activity is ``(batch, n)`` and a weight
of projection A→B is ``(n_A, n_B)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from circuits.ir import Op, access

__all__ = [
    "MatMul", "OuterUpdate", "ColSumUpdate", "AddBias", "Activate", "ActivationDeriv",
    "Multiply", "Dropout", "GaussianNoise", "SoftmaxCrossEntropy", "MeanSquaredError",
    "Accumulate", "Copy", "SgdStep", "MomentumStep", "AdamStep",
    "LinearCombination",
    "ExampleLoss", "Offset", "RunningMean", "Modulate",
    "Fill", "Nudge", "LeakyIntegrate", "ResidualNorm",
    "RandomSign",
]

Shapes = Mapping[str, tuple[int | str, ...]]


def _same(op: Op, shapes: Shapes, *names: str) -> None:
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
    """Implements ``out = f(pre)`` for the rate function ``fn``."""

    fn: str
    pre: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.pre,))

    def math(self) -> str:
        return f"{self.out} = {self.fn}({self.pre})"

    def check(self, shapes: Shapes) -> None:
        _same(self, shapes, self.pre, self.out)


@attrs.frozen
class ActivationDeriv(Op):
    """Implements ``out = grad ⊙ f'(pre)``; ``rate = f(pre)`` is read where it is cheaper.

    ``masked`` says that ``rate`` was multiplied by a dropout mask after ``f``, so it no
    longer equals ``f(pre)`` and the kernel recomputes ``f(pre)`` where it needs it.
    """

    fn: str
    pre: str
    rate: str
    grad: str
    out: str
    masked: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.pre, self.rate, self.grad))

    def math(self) -> str:
        return f"{self.out} = {self.grad} ⊙ {self.fn}'({self.pre})"

    def check(self, shapes: Shapes) -> None:
        _same(self, shapes, self.pre, self.rate, self.grad, self.out)


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
        _same(self, shapes, self.factor, self.out)


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
        _same(self, shapes, self.mask, self.out)


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
        _same(self, shapes, self.logits, self.delta)
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
        _same(self, shapes, self.out, self.target, self.grad)


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
        _same(self, shapes, self.a, self.out)


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
        _same(self, shapes, self.a, self.out)


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
        _same(self, shapes, self.param, self.grad)


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
        _same(self, shapes, self.param, self.grad, self.velocity)


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
        _same(self, shapes, self.param, self.grad, self.m, self.v)


@attrs.frozen
class LinearCombination(Op):
    """Implements ``out = Σ_i coeffs[i] · batch^powers[i] · terms[i]``, summed left to right.

    ``batch`` is the run's batch size (the leading dimension of ``out``); ``powers`` (each
    −1, 0 or 1; all 0 when empty) turn a batch-mean quantity into a per-example one and
    back. The sum runs in the order the terms are given, so ``a − b + c`` with ``a`` and
    ``b`` equal bit for bit gives exactly ``c`` (target propagation's difference correction
    relies on this). ``out`` must not be one of the terms.
    """

    terms: tuple[str, ...] = attrs.field(converter=tuple)
    coeffs: tuple[float, ...] = attrs.field(converter=lambda c: tuple(float(x) for x in c))
    out: str
    powers: tuple[int, ...] = attrs.field(default=(), converter=tuple)

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=tuple(dict.fromkeys(self.terms)))

    def _powers(self) -> tuple[int, ...]:
        return self.powers or (0,) * len(self.terms)

    def math(self) -> str:
        parts = []
        for index, (term, coeff, power) in enumerate(zip(self.terms, self.coeffs, self._powers())):
            sign = "−" if coeff < 0 else ("+" if index else "")
            size = abs(coeff)
            text = ("" if size == 1.0 else f"{size:g}·") + ("batch·" if power == 1 else "") + term
            text += "/batch" if power == -1 else ""
            parts.append(f"{sign} {text}" if index else f"{sign}{text}")
        return f"{self.out} = {' '.join(parts)}"

    def check(self, shapes: Shapes) -> None:
        if not self.terms or len(self.coeffs) != len(self.terms) or len(self._powers()) != len(self.terms):
            raise self.fail("needs one coefficient (and one batch power, if any) per term")
        if any(p not in (-1, 0, 1) for p in self._powers()):
            raise self.fail(f"batch powers must be -1, 0 or 1 (got {self.powers})")
        if self.out in self.terms:
            raise self.fail(f"'{self.out}' is both a term and the output")
        _same(self, shapes, self.out, *self.terms)
        if any(self._powers()) and not (shapes[self.out] and isinstance(shapes[self.out][0], str)):
            raise self.fail(f"batch powers need a batched output (got shape {shapes[self.out]})")


@attrs.frozen
class ExampleLoss(Op):
    """Implements ``losses_b = −log softmax(out_b)[target_b]`` (``kind = "cross_entropy"``) or
    ``losses_b = ½‖out_b − target_b‖²`` (``kind = "mse"``), and ``mean = mean_b losses_b``.

    The per-example losses of :class:`SoftmaxCrossEntropy` and :class:`MeanSquaredError`,
    without their gradient: ``mean`` is the same batch loss. Perturbation rules correlate each
    example's loss change with that example's own noise.
    """

    kind: str = attrs.field(validator=attrs.validators.in_(("cross_entropy", "mse")))
    out: str
    target: str
    losses: str
    mean: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.losses, self.mean), reads=(self.out, self.target))

    def math(self) -> str:
        each = (f"−log softmax({self.out})[{self.target}]" if self.kind == "cross_entropy"
                else f"½‖{self.out} − {self.target}‖²")
        return f"{self.losses} = {each} per example; {self.mean} = mean {self.losses}"

    def check(self, shapes: Shapes) -> None:
        out = shapes[self.out]
        want = out[:1] if self.kind == "cross_entropy" else out
        if shapes[self.target] != want:
            raise self.fail(f"target {shapes[self.target]} does not fit output {out}")
        if shapes[self.losses] != out[:1] or shapes[self.mean] != ():
            raise self.fail(f"losses must have shape {out[:1]} and mean shape () "
                            f"(got {shapes[self.losses]} and {shapes[self.mean]})")


@attrs.frozen
class Offset(Op):
    """Implements ``out = a − offset`` with a scalar ``offset`` broadcast over ``a``."""

    a: str
    offset: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.a, self.offset))

    def math(self) -> str:
        return f"{self.out} = {self.a} − {self.offset}"

    def check(self, shapes: Shapes) -> None:
        _same(self, shapes, self.a, self.out)
        if shapes[self.offset] != ():
            raise self.fail(f"offset must be a scalar (got shape {shapes[self.offset]})")


@attrs.frozen
class RunningMean(Op):
    """Implements ``average = decay · average + (1 − decay) · mean(value)`` (a scalar average)."""

    value: str
    average: str
    decay: float

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.average,), reads=(self.value,))

    def math(self) -> str:
        return f"{self.average} = {self.decay:g}·{self.average} + {1 - self.decay:g}·mean {self.value}"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.average] != ():
            raise self.fail(f"the average must be a scalar (got shape {shapes[self.average]})")


@attrs.frozen
class Modulate(Op):
    """Implements ``out = beta · out + alpha · signal ⊙ trace`` (divided by the batch size when
    ``per_batch``), with ``signal`` (a scalar, or one value per example) broadcast over the
    remaining axes of ``trace``.

    A global or per-example reinforcement signal gating a local trace: the perturbation
    rules' gradient estimate ``(loss change) · noise / σ²``. With ``beta = 0`` it writes the
    estimate; with ``alpha = −lr/σ²`` and ``beta = 1 − lr·decay`` it is one SGD step.
    """

    signal: str
    trace: str
    out: str
    alpha: float = 1.0
    beta: float = 0.0
    per_batch: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        if self.beta == 0.0:
            return access(sets=(self.out,), reads=(self.signal, self.trace))
        return access(updates=(self.out,), reads=(self.signal, self.trace))

    def math(self) -> str:
        keep = "" if self.beta == 0.0 else (f"{self.out} + " if self.beta == 1.0 else f"{self.beta:g}·{self.out} + ")
        per = "/batch" if self.per_batch else ""
        return f"{self.out} = {keep}{self.alpha:g}·{self.signal} ⊙ {self.trace}{per}"

    def check(self, shapes: Shapes) -> None:
        signal, trace = shapes[self.signal], shapes[self.trace]
        if signal != trace[:len(signal)]:
            raise self.fail(f"signal {signal} does not broadcast over trace {trace}")
        if self.per_batch and not (trace and isinstance(trace[0], str)):
            raise self.fail(f"per_batch needs a batched trace (got shape {trace})")
        _same(self, shapes, self.trace, self.out)


# -- neural dynamics -----------------------------------------------------------------------------


@attrs.frozen
class Fill(Op):
    """Implements ``out = value`` everywhere (a relaxation's starting state)."""

    out: str
    value: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,))

    def math(self) -> str:
        return f"{self.out} = {self.value:g}"


@attrs.frozen
class Nudge(Op):
    """Implements ``drive += beta · (target − rate)``, or ``drive += beta · sign · (target − rate)``
    with a scalar buffer ``sign`` (a sign of β drawn at run time): the output pulled toward its target.

    Added to the output's drive before :class:`LeakyIntegrate` multiplies by ``ρ'(s)``, this is
    the force ``−β ∂C/∂s`` of the cost ``C = ½‖ρ(s) − target‖²``.
    """

    rate: str
    target: str
    drive: str
    beta: float
    sign: str = ""

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(incs=(self.drive,), reads=(self.rate, self.target) + ((self.sign,) if self.sign else ()))

    def math(self) -> str:
        sign = f"{self.sign}·" if self.sign else ""
        return f"{self.drive} += {self.beta:g}·{sign}({self.target} − {self.rate})"

    def check(self, shapes: Shapes) -> None:
        _same(self, shapes, self.drive, self.rate, self.target)
        if self.sign and shapes[self.sign] != ():
            raise self.fail(f"the sign must be a scalar (got shape {shapes[self.sign]})")


@attrs.frozen
class LeakyIntegrate(Op):
    """Implements one Euler step of leaky-integrator dynamics ``ds/dt = ρ'(s) ⊙ drive − s``:

    ``s ← clip(s + step·(ρ'(s) ⊙ drive − s) + noise·√step·ξ)``, with ``ξ`` standard normal
    (Euler–Maruyama for Langevin dynamics; ``noise = 0`` for none) and the clip to [0, 1]
    only for ``hard_sigmoid`` units, whose state lives in that box (where ``ρ' = 1``, so a
    unit at a bound leaves it whenever its drive pulls inward). ``rate`` must hold ``ρ(s)``
    of the state before the step. ``residual`` (one value per example) receives, or with
    ``accumulate`` adds, the squared norm of the step taken divided by ``step``: the force
    that was applied, zero at a fixed point.
    """

    fn: str
    state: str
    rate: str
    drive: str
    residual: str
    step: float
    noise: float = 0.0
    stream: str = ""
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        res = (self.residual,)
        return access(updates=(self.state,), sets=() if self.accumulate else res,
                      incs=res if self.accumulate else (), reads=(self.rate, self.drive))

    def math(self) -> str:
        clip = "clip₀¹" if self.fn == "hard_sigmoid" else ""
        noise = f" + {self.noise:g}·√ε·ξ" if self.noise else ""
        return (f"{self.state} = {clip}({self.state} + {self.step:g}·({self.fn}'({self.state}) ⊙ "
                f"{self.drive} − {self.state}){noise}); {self.residual} {'+=' if self.accumulate else '='} "
                "‖Δs/ε‖²")

    def check(self, shapes: Shapes) -> None:
        _same(self, shapes, self.state, self.rate, self.drive)
        if shapes[self.residual] != shapes[self.state][:1]:
            raise self.fail(f"residual must have shape {shapes[self.state][:1]} (got {shapes[self.residual]})")
        if self.fn == "softmax":
            raise self.fail("softmax units have no leaky-integrator dynamics")
        if self.noise and not self.stream:
            raise self.fail("noisy dynamics need a random stream name")


@attrs.frozen
class ResidualNorm(Op):
    """Implements ``out = max_b √squared_b``: the largest per-example force norm of a step.

    A relaxation phase stops once this falls to its tolerance.
    """

    squared: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.squared,))

    def math(self) -> str:
        return f"{self.out} = max over the batch of √{self.squared}"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out] != () or len(shapes[self.squared]) != 1:
            raise self.fail("needs one squared norm per example and a scalar output")


@attrs.frozen
class RandomSign(Op):
    """Implements ``out = ±1``, each with probability ½, a scalar drawn from the seeded stream ``stream``.

    EqProp's random-sign estimator draws the sign of β once per batch with it.
    """

    out: str
    stream: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,))

    def math(self) -> str:
        return f"{self.out} = ±1 with probability ½ each (stream '{self.stream}')"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out] != ():
            raise self.fail(f"the sign must be a scalar (got shape {shapes[self.out]})")
