"""The NumPy reference backend: the shared kernels over ``numpy``.

Every matrix product goes through NumPy's own BLAS. Mixing in a second BLAS (SciPy's
``sgemm`` would fuse the weight update into the GEMM) was measured to be 4–10× slower per
step on a 2-core machine: the two libraries' thread pools spin against each other between
calls. One pool, plus one add pass per weight, is the faster choice.
"""

from __future__ import annotations

from circuits.backends.catalogue import default_kernels
from circuits.backends.kernels import KernelTable

__all__ = ["numpy_kernels"]


def numpy_kernels() -> KernelTable:
    """The kernel table of the NumPy backend (the shared defaults)."""
    return default_kernels()
