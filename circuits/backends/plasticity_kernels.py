"""Kernels of :mod:`circuits.ops.plasticity` (the parametrized plasticity family)."""

from __future__ import annotations

from typing import Any

from circuits import ops
from circuits.backends.kernels import KernelContext, Step

__all__ = ["power_product", "plastic_gram", "plastic_combination"]


def power_product(op: ops.PowerProduct, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = Π factor^power``: the first factor (squared if asked) into ``out``, then in-place products."""
    xp = ctx.xp
    out = arrays[op.out]
    pairs = [(arrays[f], p) for f, p in zip(op.factors, op.powers)]

    def step() -> None:
        first, power = pairs[0]
        if power == 2:
            xp.multiply(first, first, out=out)
        else:
            xp.copyto(out, first)
        for factor, p in pairs[1:]:
            for _ in range(p):
                xp.multiply(out, factor, out=out)
    return step


def plastic_gram(op: ops.PlasticGram, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """One GEMM (or one column sum), scaled by ``batch^batch_power`` where the batch is fixed."""
    xp = ctx.xp
    out = arrays[op.out]
    a = arrays[op.a] if op.a else None
    b = arrays[op.b] if op.b else None
    batch = (a if a is not None else b).shape[0]
    scale = float(batch) ** op.batch_power

    if a is not None and b is not None:
        def gram() -> None:
            xp.matmul(a.T, b, out=out)
            if scale != 1.0:
                xp.multiply(out, scale, out=out)
        return gram
    source = b if b is not None else a
    flat = out.reshape(-1)

    def colsum() -> None:
        xp.sum(source, axis=0, out=flat)
        if scale != 1.0:
            xp.multiply(flat, scale, out=flat)
    return colsum


def plastic_combination(op: ops.PlasticCombination, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = beta·out + alpha·Σ c_k G_k ⊙ w^e_k``, summed in scratch (``out`` may be ``w``)."""
    xp = ctx.xp
    w, out = arrays[op.w], arrays[op.out]
    total = xp.empty_like(w)
    term = xp.empty_like(w)
    square = xp.empty_like(w) if 2 in op.w_powers else None
    terms = [(arrays[g] if g else None, op.alpha * c, e) for g, c, e in zip(op.grams, op.coeffs, op.w_powers)]
    beta = op.beta

    def step() -> None:
        if square is not None:
            xp.multiply(w, w, out=square)
        total.fill(0)
        for gram, coeff, power in terms:
            if power == 0:
                if gram is None:
                    xp.add(total, coeff, out=total)
                    continue
                xp.multiply(gram, coeff, out=term)  # broadcasts a column-sum gram over the rows
            else:
                xp.multiply(w if power == 1 else square, coeff, out=term)
                if gram is not None:
                    xp.multiply(term, gram, out=term)
            xp.add(total, term, out=total)
        if beta == 0.0:
            xp.copyto(out, total)
        else:
            if beta != 1.0:
                xp.multiply(out, beta, out=out)
            xp.add(out, total, out=out)
    return step
