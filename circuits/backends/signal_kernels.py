"""Kernels of :mod:`circuits.ops.signals` (target propagation and the perturbation rules)."""

from __future__ import annotations

from typing import Any

from circuits import ops
from circuits.backends.kernels import KernelContext, Step

__all__ = ["linear_combination", "example_loss", "offset", "running_mean", "modulate"]


def linear_combination(op: ops.LinearCombination, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = Σ c_i · batch^p_i · a_i`` left to right; unit coefficients add or subtract in place."""
    xp = ctx.xp
    out = arrays[op.out]
    terms = [arrays[name] for name in op.terms]
    batch = float(out.shape[0]) if out.ndim else 1.0
    coeffs = [c * batch ** p for c, p in zip(op.coeffs, op.powers or (0,) * len(op.terms))]
    scratch = xp.empty_like(out) if any(c not in (1.0, -1.0) for c in coeffs[1:]) else None
    first, rest = (terms[0], coeffs[0]), list(zip(terms[1:], coeffs[1:]))

    def step() -> None:
        if first[1] == 1.0:
            xp.copyto(out, first[0])
        else:
            xp.multiply(first[0], first[1], out=out)
        for a, c in rest:
            if c == 1.0:
                xp.add(out, a, out=out)
            elif c == -1.0:
                xp.subtract(out, a, out=out)
            else:
                xp.multiply(a, c, out=scratch)
                xp.add(out, scratch, out=out)
    return step


def example_loss(op: ops.ExampleLoss, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    out, target, losses, mean = (arrays[n] for n in (op.out, op.target, op.losses, op.mean))
    scratch = xp.empty_like(out)
    if op.kind == "mse":
        def squared() -> None:
            xp.subtract(out, target, out=scratch)
            xp.multiply(scratch, scratch, out=scratch)
            xp.sum(scratch, axis=1, out=losses)
            xp.multiply(losses, 0.5, out=losses)
            mean[...] = xp.mean(losses)
        return squared
    rows = xp.arange(out.shape[0])
    top = xp.empty(out.shape[0], dtype=out.dtype)

    def cross_entropy() -> None:
        # log Σ exp(out) − out[label], shifted by the row maximum so that exp never overflows.
        xp.max(out, axis=1, out=top)
        xp.subtract(out, top[:, None], out=scratch)
        xp.exp(scratch, out=scratch)
        xp.sum(scratch, axis=1, out=losses)
        xp.log(losses, out=losses)
        xp.add(losses, top, out=losses)
        xp.subtract(losses, out[rows, target], out=losses)
        mean[...] = xp.mean(losses)
    return cross_entropy


def offset(op: ops.Offset, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    a, shift, out = arrays[op.a], arrays[op.offset], arrays[op.out]
    return lambda: ctx.xp.subtract(a, shift, out=out)


def running_mean(op: ops.RunningMean, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    value, average = arrays[op.value], arrays[op.average]
    decay = op.decay

    def step() -> None:
        xp.multiply(average, decay, out=average)
        xp.add(average, (1.0 - decay) * xp.mean(value), out=average)
    return step


def modulate(op: ops.Modulate, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    trace, out = arrays[op.trace], arrays[op.out]
    signal = arrays[op.signal]
    signal = signal.reshape(signal.shape + (1,) * (trace.ndim - signal.ndim))  # a view
    alpha = op.alpha / trace.shape[0] if op.per_batch else op.alpha
    beta = op.beta
    if beta == 0.0:
        def overwrite() -> None:
            xp.multiply(trace, signal, out=out)
            xp.multiply(out, alpha, out=out)
        return overwrite
    scratch = xp.empty_like(out)

    def step() -> None:
        xp.multiply(trace, signal, out=scratch)
        xp.multiply(scratch, alpha, out=scratch)
        if beta != 1.0:
            xp.multiply(out, beta, out=out)
        xp.add(out, scratch, out=out)
    return step
