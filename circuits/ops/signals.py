"""Ops that combine and gate error signals: linear combinations, per-example losses, baselines
and reinforcement-style modulation (target propagation and the perturbation rules)."""

from __future__ import annotations

import attrs

from circuits.ir import Op, access
from circuits.ops.basic import Shapes, check_same

__all__ = [
    "LinearCombination",
    "ExampleLoss",
    "Offset",
    "RunningMean",
    "Modulate",
]


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
        check_same(self, shapes, self.out, *self.terms)
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
        check_same(self, shapes, self.a, self.out)
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
        check_same(self, shapes, self.trace, self.out)
