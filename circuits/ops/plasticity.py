"""Ops of the parametrized plasticity family (:mod:`circuits.rules.plasticity`).

A term ``θ · mean_batch(pre^a · err_pre^d · post^b · err^c) · w^e`` of a projection's update
is lowered as: the per-example factors of each side (:class:`PowerProduct`), one GEMM per
distinct pair of sides (:class:`PlasticGram`), then one elementwise pass that weights each
GEMM by its coefficient and a power of the weight (:class:`PlasticCombination`).
"""

from __future__ import annotations

import attrs

from circuits.ir import Op, access
from circuits.ops.basic import Shapes

__all__ = ["PowerProduct", "PlasticGram", "PlasticCombination"]


def _ints(values: object) -> tuple[int, ...]:
    return tuple(int(v) for v in values)  # type: ignore[union-attr]


def _floats(values: object) -> tuple[float, ...]:
    return tuple(float(v) for v in values)  # type: ignore[union-attr]


@attrs.frozen
class PowerProduct(Op):
    """Implements ``out = Π_i factors[i] ^ powers[i]`` elementwise (every power 1 or 2)."""

    factors: tuple[str, ...] = attrs.field(converter=tuple)
    powers: tuple[int, ...] = attrs.field(converter=_ints)
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=tuple(dict.fromkeys(self.factors)))

    def math(self) -> str:
        parts = [f if p == 1 else f"{f}^{p}" for f, p in zip(self.factors, self.powers)]
        return f"{self.out} = {' ⊙ '.join(parts)}"

    def check(self, shapes: Shapes) -> None:
        if len(self.factors) != len(self.powers) or not self.factors:
            raise self.fail("needs one power per factor and at least one factor")
        if any(p not in (1, 2) for p in self.powers):
            raise self.fail(f"powers must be 1 or 2 (got {self.powers})")
        for name in self.factors:
            if shapes[name] != shapes[self.out]:
                raise self.fail(f"'{name}' has shape {shapes[name]} but '{self.out}' has {shapes[self.out]}")


@attrs.frozen
class PlasticGram(Op):
    """Implements ``out = batch^batch_power · Σ_n a[n] ⊗ b[n]``; an empty ``a`` or ``b`` stands for ones.

    Both given: ``a.T @ b``, shape ``(n_a, n_b)``. Only ``b``: its column sums, shape
    ``(n_b,)`` (broadcast over a weight's rows). Only ``a``: ``(n_a, 1)``. ``batch_power``
    −1 makes it a batch mean; each error factor (a delta already divided by the batch)
    adds one.
    """

    a: str
    b: str
    out: str
    batch_power: int = -1

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=tuple(n for n in (self.a, self.b) if n))

    def math(self) -> str:
        scale = "" if self.batch_power == 0 else f"batch^{self.batch_power}·"
        if self.a and self.b:
            return f"{self.out} = {scale}{self.a}.T @ {self.b}"
        return f"{self.out} = {scale}Σ_batch {self.a or self.b}"

    def check(self, shapes: Shapes) -> None:
        if not (self.a or self.b):
            raise self.fail("needs at least one of a and b")
        out = shapes[self.out]
        if self.a and self.b:
            a, b = shapes[self.a], shapes[self.b]
            want = (a[1], b[1]) if a[0] == b[0] else None
        elif self.b:
            want = shapes[self.b][1:]
        else:
            want = (shapes[self.a][1], 1)
        if want is None or out != want:
            raise self.fail(f"gives shape {want} but '{self.out}' has {out}")


@attrs.frozen
class PlasticCombination(Op):
    """Implements ``out = beta·out + alpha · Σ_k coeffs[k] · grams[k] ⊙ w^w_powers[k]``.

    An empty gram name is the constant term (a gram of ones). Grams broadcast against
    ``w`` (a column-sum gram over a weight's rows). ``out`` may be ``w`` itself (a fused
    SGD step): the sum is formed in scratch before ``out`` changes.
    """

    grams: tuple[str, ...] = attrs.field(converter=tuple)
    coeffs: tuple[float, ...] = attrs.field(converter=_floats)
    w_powers: tuple[int, ...] = attrs.field(converter=_ints)
    w: str
    out: str
    alpha: float = 1.0
    beta: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        reads = tuple(dict.fromkeys([g for g in self.grams if g] + [self.w]))
        if self.out == self.w:
            return access(updates=(self.out,), reads=tuple(r for r in reads if r != self.out))
        if self.beta == 0.0:
            return access(sets=(self.out,), reads=reads)
        return access(updates=(self.out,), reads=reads)

    def math(self) -> str:
        keep = "" if self.beta == 0.0 else (f"{self.out} + " if self.beta == 1.0 else f"{self.beta:g}·{self.out} + ")
        parts = []
        for gram, c, e in zip(self.grams, self.coeffs, self.w_powers):
            factors = [gram or "1"] + ([self.w] if e == 1 else [f"{self.w}^{e}"] if e else [])
            parts.append(f"{c:g}·{' ⊙ '.join(factors)}")
        return f"{self.out} = {keep}{self.alpha:g}·({' + '.join(parts)})"

    def check(self, shapes: Shapes) -> None:
        if not (len(self.grams) == len(self.coeffs) == len(self.w_powers)) or not self.grams:
            raise self.fail("needs one coefficient and one power of w per gram, and at least one gram")
        if any(e not in (0, 1, 2) for e in self.w_powers):
            raise self.fail(f"powers of w must be 0, 1 or 2 (got {self.w_powers})")
        w = shapes[self.w]
        if shapes[self.out] != w:
            raise self.fail(f"'{self.out}' has shape {shapes[self.out]} but '{self.w}' has {w}")
        for gram in self.grams:
            if not gram:
                continue
            g = shapes[gram]
            ok = len(g) <= len(w) and all(x in (1, y) for x, y in zip(g[::-1], w[::-1]))
            if not ok:
                raise self.fail(f"gram '{gram}' of shape {g} does not broadcast over {w}")
