"""Kernel of the spiking populations' sampling op (:class:`circuits.ops.PoissonSample`)."""

from __future__ import annotations

from typing import Any

from circuits import ops
from circuits.backends.kernels import KernelContext, Step

__all__ = ["poisson_sample"]


def poisson_sample(op: ops.PoissonSample, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = Poisson(T·out)/T``; the expected count ``T·out`` is formed in a scratch array once per step.

    NumPy's and CuPy's generators both draw Poisson counts from an array of means; the counts
    come back as integers and are cast into ``out``.
    """
    xp = ctx.xp
    out = arrays[op.out]
    rng = ctx.rng(op.stream)
    window = float(op.window)
    mean = xp.empty_like(out)

    def step() -> None:
        xp.multiply(out, window, out=mean)
        # fmax/fmin: a rounding-negative rate becomes 0, and a diverged run's NaN or huge rate
        # becomes a count the generator accepts (its loss turns NaN anyway and is reported).
        xp.fmax(mean, 0, out=mean)
        xp.fmin(mean, 1e15, out=mean)
        out[...] = rng.poisson(mean)
        xp.divide(out, window, out=out)
    return step
