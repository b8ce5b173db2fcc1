"""NumPy's own BLAS, called directly for the one product NumPy cannot write in place, ``C += A @ B``,
and held to one thread where a small product would lose on more (:func:`one_thread`).

``np.matmul`` always overwrites its ``out``, so an update ``W += aᵀ @ b`` costs a GEMM into
scratch plus an add pass over ``W`` (read ``W`` and the scratch, write ``W``). GEMM itself can
accumulate (``beta = 1``): this module finds the ``cblas_?gemm`` of the very library NumPy
calls, through ctypes, and makes closures that update ``C`` in place in one call. Staying on
NumPy's library matters: a second BLAS (SciPy's) brings a second thread pool, and the two spin
against each other on a small machine (README, "Performance").

The result equals NumPy's GEMM-then-add bit for bit where the library computes the product in
one pass over the inner dimension and adds ``C`` once at the end. :func:`accumulating_gemm`
therefore hands out a closure only for shapes where that holds for OpenBLAS (every dimension
at least 2, so NumPy itself would call GEMM rather than GEMV; the inner dimension at most
:data:`MAX_INNER`, below OpenBLAS's blocking of it), and returns ``None`` otherwise, as it
does when NumPy's BLAS cannot be found: the caller then keeps the NumPy path.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

__all__ = ["accumulating_gemm", "blas_threads", "one_thread", "MAX_INNER"]

MAX_INNER = 128
"""Largest inner dimension (a batch, for a weight update) given to the in-place GEMM: OpenBLAS
blocks the inner dimension by at least 256 on x86-64, so below that it sums in one pass."""

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@functools.cache
def _library() -> Any | None:
    """NumPy's own OpenBLAS through ctypes, or ``None`` where it cannot be found.

    The library is the loaded BLAS that lives in NumPy's own folders, as threadpoolctl lists it.
    """
    numpy_root = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    for pool in threadpool_info():
        path = pool.get("filepath") or ""
        if pool.get("user_api") != "blas" or pool.get("internal_api") != "openblas":
            continue
        top = os.path.relpath(os.path.abspath(path), numpy_root).split(os.sep)[0]
        if top not in ("numpy", "numpy.libs"):  # numpy/.dylibs (macOS) or numpy.libs (Linux wheels)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            return None
    return None


@functools.cache
def _cblas() -> dict[str, tuple[Any, type]] | None:
    """``{"float32": (sgemm, int type), "float64": (dgemm, int type)}`` of NumPy's BLAS, or ``None``.

    NumPy's wheels bundle OpenBLAS under a prefixed name (``scipy_cblas_sgemm64_``: 64-bit
    integers); other builds expose plain ``cblas_sgemm``.
    """
    library = _library()
    if library is None:
        return None
    found = {}
    for dtype, letter, real in (("float32", "s", ctypes.c_float), ("float64", "d", ctypes.c_double)):
        for name, integer in ((f"scipy_cblas_{letter}gemm64_", ctypes.c_int64),
                              (f"cblas_{letter}gemm64_", ctypes.c_int64),
                              (f"scipy_cblas_{letter}gemm", ctypes.c_int),
                              (f"cblas_{letter}gemm", ctypes.c_int)):
            function = getattr(library, name, None)
            if function is not None:
                function.restype = None
                function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                                     real, ctypes.c_void_p, integer, ctypes.c_void_p, integer,
                                     real, ctypes.c_void_p, integer]
                found[dtype] = (function, real)
                break
    return found or None


@functools.cache
def _thread_calls() -> tuple[Any, Any] | None:
    """``(get, set)`` of the thread count of NumPy's OpenBLAS, or ``None``."""
    library = _library()
    if library is None:
        return None
    for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("scipy_openblas", ""),
                           ("openblas", "")):
        get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
        put = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
        if get is not None and put is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            put.restype, put.argtypes = None, [ctypes.c_int]
            return get, put
    return None


def blas_threads() -> int:
    """The thread count NumPy's OpenBLAS would use now (1 where that library is not found)."""
    calls = _thread_calls()
    return max(1, int(calls[0]())) if calls is not None else 1


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """NumPy's OpenBLAS on one thread inside, whatever its count outside (a setting of about a
    microsecond each way). OpenBLAS threads a product by its size alone, and a small product
    per example (the conv kernels make a hundred per op) costs more on two threads than on one.
    Nothing changes where the library is not found."""
    calls = _thread_calls()
    if calls is None:
        yield
        return
    previous = calls[0]()
    if previous == 1:
        yield
        return
    calls[1](1)
    try:
        yield
    finally:
        calls[1](previous)


def _operand(array: np.ndarray) -> tuple[int, int] | None:
    """``(transpose flag, leading dimension)`` of a 2-D array for row-major GEMM, or ``None``."""
    item = array.itemsize
    rows, cols = array.shape
    if array.strides == (cols * item, item):
        return _NO_TRANS, cols
    if array.strides == (item, rows * item):
        return _TRANS, rows
    return None


def accumulating_gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> Callable[[], None] | None:
    """A closure doing ``out += a @ b`` in one GEMM, or ``None`` where NumPy's path must stay.

    ``a`` (m × k) and ``b`` (k × n) may be transposed views of C-contiguous arrays; ``out``
    (m × n) must be C-contiguous; all three of one float dtype. The closure reads the arrays'
    memory at call time, so it follows in-place changes to them.
    """
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and isinstance(out, np.ndarray)):
        return None
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2 or not a.dtype == b.dtype == out.dtype:
        return None
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2 or out.shape != (m, n) or min(m, n, k) < 2 or k > MAX_INNER:
        return None
    if not out.flags.c_contiguous or not out.flags.writeable:
        return None
    if np.shares_memory(out, a) or np.shares_memory(out, b):
        return None
    table = _cblas()
    if table is None or str(out.dtype) not in table:
        return None
    left, right = _operand(a), _operand(b)
    if left is None or right is None:
        return None
    function, real = table[str(out.dtype)]
    args = (_ROW_MAJOR, left[0], right[0], m, n, k, real(1.0), a.ctypes.data, left[1],
            b.ctypes.data, right[1], real(1.0), out.ctypes.data, n)

    def gemm(_owners: tuple[np.ndarray, ...] = (a, b, out)) -> None:  # keeps alive the memory args points to
        function(*args)
    return gemm
