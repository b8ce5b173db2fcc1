"""The NumPy reference backend, with the weight update fused into one BLAS GEMM."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import blas

from circuits import ops
from circuits.backends.kernels import KernelContext, KernelTable, Step, default_kernels, outer_update

__all__ = ["numpy_kernels"]


def fused_outer_update(op: ops.OuterUpdate, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = beta·out + alpha·a.T @ b`` as a single in-place xGEMM call.

    A C-ordered ``out`` is the Fortran-ordered ``out.T``, so BLAS computes
    ``out.T = alpha·b.T @ a + beta·out.T`` in place, with no copy and no scratch.
    """
    a, b, out = arrays[op.a], arrays[op.b], arrays[op.out]
    usable = (out.ndim == 2 and out.flags.c_contiguous and a.flags.c_contiguous
              and b.flags.c_contiguous and a.dtype == b.dtype == out.dtype
              and out.dtype in (np.float32, np.float64))
    if not usable:
        return outer_update(op, arrays, ctx)
    gemm = blas.sgemm if out.dtype == np.float32 else blas.dgemm
    target, left, right = out.T, b.T, a.T
    alpha, beta = op.alpha, op.beta

    def step() -> None:
        gemm(alpha, left, right, beta=beta, c=target, trans_b=1, overwrite_c=1)
    return step


def numpy_kernels() -> KernelTable:
    """The default kernels with the fused GEMM update."""
    table = default_kernels().copy()
    table.register(ops.OuterUpdate, fused_outer_update, replace=True)
    return table
