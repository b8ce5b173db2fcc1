"""Kernels of :mod:`circuits.ops.dynamics` (leaky integrators, nudges, residuals)."""

from __future__ import annotations

from typing import Any

import numpy as np

from circuits import ops
from circuits.backends.kernels import KernelContext, Step, activation_deriv

__all__ = ["fill", "nudge", "leaky_integrate", "residual_norm", "random_sign"]


def fill(op: ops.Fill, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    out, value = arrays[op.out], op.value
    return lambda: out.fill(value)


def nudge(op: ops.Nudge, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    rate, target, drive = arrays[op.rate], arrays[op.target], arrays[op.drive]
    scratch = xp.empty_like(drive)
    beta = op.beta
    sign = arrays[op.sign] if op.sign else None

    def step() -> None:
        xp.subtract(target, rate, out=scratch)
        xp.multiply(scratch, beta, out=scratch)
        if sign is not None:  # ±1: exact, so β·sign and −β nudge bit for bit alike
            xp.multiply(scratch, sign, out=scratch)
        xp.add(drive, scratch, out=drive)
    return step


def leaky_integrate(op: ops.LeakyIntegrate, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """One Euler(–Maruyama) step; ``move`` holds the step taken, so ``‖move‖/ε`` is the force."""
    xp = ctx.xp
    state, rate, drive, residual = (arrays[n] for n in (op.state, op.rate, op.drive, op.residual))
    move = xp.empty_like(state)
    norms = xp.empty_like(residual)
    eps, fn = op.step, op.fn
    rng = ctx.rng(op.stream) if op.noise else None
    noise = op.noise * float(np.sqrt(eps))

    def pass_drive() -> None:  # ρ' = 1 (on the state's domain for hard sigmoid)
        xp.copyto(move, drive)

    def tanh_gain() -> None:
        xp.multiply(rate, rate, out=move)
        xp.subtract(1, move, out=move)
        xp.multiply(move, drive, out=move)

    def sigmoid_gain() -> None:
        xp.subtract(1, rate, out=move)
        xp.multiply(move, rate, out=move)
        xp.multiply(move, drive, out=move)

    def relu_gain() -> None:
        xp.greater(state, 0, out=move)
        xp.multiply(move, drive, out=move)

    gains = {"hard_sigmoid": pass_drive, "linear": pass_drive, "tanh": tanh_gain, "sigmoid": sigmoid_gain,
             "relu": relu_gain}
    if fn not in gains and fn != "softplus":
        raise NotImplementedError(f"dynamics of rate function '{fn}'")
    # move = ρ'(s) ⊙ drive, chosen once; softplus and parametrised rates go through the ActivationDeriv kernel
    gain = gains[fn] if op.params.plain and fn in gains else _general_gain(op, arrays, ctx, move)

    def step() -> None:
        gain()
        xp.subtract(move, state, out=move)
        xp.multiply(move, eps, out=move)
        if rng is not None:
            xp.add(move, noise * rng.standard_normal(move.shape, dtype=move.dtype), out=move)
        if fn == "hard_sigmoid":
            xp.add(state, move, out=move)
            xp.clip(move, 0, 1, out=move)
            xp.subtract(move, state, out=move)
        xp.add(state, move, out=state)
        xp.multiply(move, move, out=move)
        if op.accumulate:
            xp.sum(move, axis=1, out=norms)
            xp.divide(norms, eps * eps, out=norms)
            xp.add(residual, norms, out=residual)
        else:
            xp.sum(move, axis=1, out=residual)
            xp.divide(residual, eps * eps, out=residual)
    return step


def _general_gain(op: ops.LeakyIntegrate, arrays: dict[str, Any], ctx: KernelContext, move: Any) -> Step:
    """``move = ρ'(s) ⊙ drive`` by the :func:`~circuits.backends.kernels.activation_deriv` kernel
    (``scale·gain·f'(gain·(s − shift))`` with parameters, ``f(z)`` recomputed there)."""
    deriv = ops.ActivationDeriv(op.fn, op.state, op.rate, op.drive, "~move", params=op.params)
    return activation_deriv(deriv, {**arrays, "~move": move}, ctx)


def residual_norm(op: ops.ResidualNorm, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    squared, out = arrays[op.squared], arrays[op.out]

    def step() -> None:
        out[...] = xp.sqrt(xp.max(squared)) if squared.size else 0.0
    return step


def random_sign(op: ops.RandomSign, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    out = arrays[op.out]
    rng = ctx.rng(op.stream)

    def step() -> None:
        out[...] = 1.0 if float(rng.random()) < 0.5 else -1.0
    return step
