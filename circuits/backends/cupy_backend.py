"""The CuPy (GPU) backend: the shared kernels over ``cupy``, with cuBLAS for fused updates.

CuPy is an optional dependency (``pip install circuits[gpu]``); it is imported here and only
here, when the backend is asked for.
"""

from __future__ import annotations

from typing import Any

from circuits import ops
from circuits.backends.catalogue import default_kernels
from circuits.backends.kernels import KernelContext, KernelTable, Step
from circuits.errors import BackendError

__all__ = ["import_cupy", "cupy_kernels"]


def import_cupy() -> Any:
    """Import CuPy and check that a GPU is visible.

    Raises
    ------
    BackendError
        When CuPy is not installed or no CUDA device can be used.
    """
    try:
        import cupy  # the one optional import of the package
    except ImportError:
        raise BackendError("backend 'cupy' needs CuPy: pip install 'circuits[gpu]' "
                           "(or choose run.backend = \"numpy\")") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own error types when no driver is present
        raise BackendError(f"backend 'cupy' found no usable GPU ({exc}); "
                           "choose run.backend = \"numpy\"") from None
    if count < 1:
        raise BackendError("backend 'cupy' found no GPU; choose run.backend = \"numpy\"")
    return cupy


def cublas_outer_update(op: ops.OuterUpdate, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    """``out = beta·out + alpha·a.T @ b`` as one cuBLAS GEMM, in place."""
    from cupy import cublas  # submodule of the already-imported optional package

    a, b, out = arrays[op.a], arrays[op.b], arrays[op.out]
    alpha, beta = op.alpha, op.beta
    return lambda: cublas.gemm("T", "N", a, b, out=out, alpha=alpha, beta=beta)


def cupy_kernels() -> KernelTable:
    """The default kernels with the cuBLAS fused update."""
    table = default_kernels().copy()
    table.register(ops.OuterUpdate, cublas_outer_update, replace=True)
    return table
