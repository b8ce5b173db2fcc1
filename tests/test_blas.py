"""The in-place GEMM through NumPy's own BLAS: bit for bit NumPy's GEMM-then-add, or not used."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from circuits import ops
from circuits.backends import blas, get_backend

needs_blas = pytest.mark.skipif(blas._cblas() is None, reason="NumPy's BLAS has no cblas gemm that ctypes finds")

# (batch, fan-in, fan-out): the benchmark's layers, the EqProp case's, tiny and odd ones, the largest batch
SHAPES = [(100, 784, 800), (100, 800, 10), (20, 784, 500), (8, 5, 3), (2, 2, 2), (3, 300, 7), (blas.MAX_INNER, 64, 96)]


@needs_blas
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,fan_in,fan_out", SHAPES)
def test_accumulating_gemm_equals_numpy_gemm_then_add(threads, dtype, batch, fan_in, fan_out):
    rng = np.random.default_rng([batch, fan_in, fan_out])
    a = (0.1 * rng.standard_normal((batch, fan_in))).astype(dtype)
    b = rng.standard_normal((batch, fan_out)).astype(dtype)
    w = rng.standard_normal((fan_in, fan_out)).astype(dtype)
    x = rng.standard_normal((fan_in, batch)).astype(dtype)
    v = rng.standard_normal((fan_out, batch)).astype(dtype)
    with threadpool_limits(threads):
        expected = w + a.T @ b  # a weight update: transposed left operand
        got = w.copy()
        blas.accumulating_gemm(a.T, b, got)()
        np.testing.assert_array_equal(got, expected)
        expected = w + x @ v.T  # a transposed right operand
        got = w.copy()
        blas.accumulating_gemm(x, v.T, got)()
        np.testing.assert_array_equal(got, expected)


@needs_blas
def test_accumulating_gemm_follows_the_arrays_memory():
    a, b, out = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32), np.zeros((4, 2), np.float32)
    gemm = blas.accumulating_gemm(a, b, out)
    gemm()
    a[...] = 2.0
    gemm()
    np.testing.assert_array_equal(out, np.full((4, 2), 3.0 + 6.0))


def test_accumulating_gemm_declines_what_numpy_must_do():
    f32 = np.float32
    square = np.ones((4, 4), f32)
    assert blas.accumulating_gemm(np.ones((4, 1), f32), np.ones((1, 4), f32), np.zeros((4, 4), f32)) is None  # k = 1
    assert blas.accumulating_gemm(np.ones((1, 3), f32), np.ones((3, 4), f32), np.zeros((1, 4), f32)) is None  # GEMV
    inner = blas.MAX_INNER + 1
    assert blas.accumulating_gemm(np.ones((4, inner), f32), np.ones((inner, 4), f32), np.zeros((4, 4), f32)) is None
    assert blas.accumulating_gemm(square, square, np.zeros((4, 4), np.float64)) is None  # mixed dtypes
    assert blas.accumulating_gemm(square, square, np.zeros((4, 8), f32)[:, ::2]) is None  # strided out
    assert blas.accumulating_gemm(square, square, square) is None  # out overlaps an operand
    assert blas.accumulating_gemm(np.ones((4, 8), f32)[:, ::2], square, np.zeros((4, 4), f32)) is None
    assert blas.accumulating_gemm(np.ones((4, 4), np.int64), np.ones((4, 4), np.int64),
                                  np.zeros((4, 4), np.int64)) is None


@pytest.mark.parametrize("alpha,beta", [(-0.1, 1.0), (-0.05, 0.99)])
def test_outer_update_kernel_is_numpys_gemm_then_add(alpha, beta):
    """The SGD step of a float32 weight equals, bit for bit, the scaled operand's GEMM into
    scratch followed by the passes over the weight (the kernel before the in-place GEMM)."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((100, 784), dtype=np.float32)
    d = rng.standard_normal((100, 800), dtype=np.float32)
    w0 = rng.standard_normal((784, 800), dtype=np.float32)
    backend = get_backend("numpy", seed=0)
    arrays = {"a": a, "d": d, "w": w0.copy()}
    backend.step(ops.OuterUpdate("a", "d", "w", alpha=alpha, beta=beta), arrays)()
    expected = w0.copy()
    scratch = np.empty_like(expected)
    np.matmul(np.multiply(a, alpha).T, d, out=scratch)
    if beta != 1.0:
        np.multiply(expected, beta, out=expected)
    np.add(expected, scratch, out=expected)
    np.testing.assert_array_equal(arrays["w"], expected)


def test_relu_kernel_keeps_nan_and_the_sign_of_zero():
    pre = np.array([[-0.0, 0.0, -1.5, np.nan, 2.0, -np.inf, np.inf, 1e-40]], dtype=np.float32)
    arrays = {"pre": pre, "rate": np.empty_like(pre)}
    get_backend("numpy", seed=0).step(ops.Activate("relu", "pre", "rate"), arrays)()
    expected = np.maximum(pre, 0)
    np.testing.assert_array_equal(arrays["rate"], expected)
    np.testing.assert_array_equal(np.signbit(arrays["rate"]), np.signbit(expected))


@needs_blas
def test_sgd_weight_update_is_one_accumulating_gemm(monkeypatch):
    """A float32 SGD step of a weight runs the in-place GEMM (no scratch GEMM, no add pass)."""
    from circuits.backends import kernels

    calls = []

    def counting(a, b, out):
        gemm = blas.accumulating_gemm(a, b, out)
        return None if gemm is None else (lambda: (calls.append(out.shape), gemm()))

    monkeypatch.setattr(kernels, "accumulating_gemm", counting)
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((16, 30), dtype=np.float32),
              "d": rng.standard_normal((16, 20), dtype=np.float32), "w": np.zeros((30, 20), np.float32)}
    step = get_backend("numpy", seed=0).step(ops.OuterUpdate("a", "d", "w", alpha=-0.1, beta=1.0), arrays)
    step()
    step()
    assert calls == [(30, 20), (30, 20)]
    np.testing.assert_allclose(arrays["w"], 2 * (-0.1) * arrays["a"].T @ arrays["d"], rtol=1e-5, atol=1e-6)


@needs_blas
def test_accumulating_gemm_keeps_its_arrays_alive():
    """The closure names raw pointers: it must hold the arrays, or a dropped array's memory is reused."""
    import gc
    import weakref

    a, b, out = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32), np.zeros((4, 2), np.float32)
    gemm = blas.accumulating_gemm(a, b, out)
    probe = weakref.ref(a)
    del a
    gc.collect()
    assert probe() is not None
    gemm()
    np.testing.assert_array_equal(out, np.full((4, 2), 3.0))


def test_one_thread_holds_numpys_blas_to_one_thread_and_restores_it_even_after_an_error():
    if blas._thread_calls() is None:
        pytest.skip("NumPy's OpenBLAS not found here: one_thread changes nothing")
    with threadpool_limits(2):
        if blas.blas_threads() < 2:
            pytest.skip("OpenBLAS here cannot run two threads")
        with blas.one_thread():
            assert blas.blas_threads() == 1
            with blas.one_thread():  # nested: still one, and the outer hold is kept
                assert blas.blas_threads() == 1
            assert blas.blas_threads() == 1
        assert blas.blas_threads() == 2
        with pytest.raises(RuntimeError, match="inside"):
            with blas.one_thread():
                raise RuntimeError("inside")
        assert blas.blas_threads() == 2


def test_one_thread_without_the_library_changes_nothing(monkeypatch):
    monkeypatch.setattr(blas, "_thread_calls", lambda: None)
    with blas.one_thread():
        assert blas.blas_threads() == 1  # what it reports without the library


def _lenet_conv_ops(count):
    """LeNet's two conv projections' forward, pooling, transposed conv and kernel gradient at
    ``count`` BLAS threads (batch 20, float32): their outputs, in order."""
    from circuits.backends.catalogue import default_kernels
    from circuits.backends.kernels import KernelContext

    kernels = default_kernels()
    rng = np.random.default_rng(5)
    outs = []
    for g in (ops.ConvGeometry(1, 28, 28, 6, 5, 1, 2, "max", 2), ops.ConvGeometry(6, 14, 14, 16, 5, 1, 0, "max", 2)):
        batch = 20
        a = {"x": rng.standard_normal((batch, g.in_size), dtype=np.float32),
             "w": rng.standard_normal(g.kernel_shape, dtype=np.float32),
             "cols": np.empty(g.cols_shape(batch), np.float32), "conv": np.empty((batch, g.conv_size), np.float32),
             "out": np.empty((batch, g.out_size), np.float32), "index": np.empty((batch, g.out_size), np.int64),
             "d": rng.standard_normal((batch, g.out_size), dtype=np.float32),
             "dx": np.empty((batch, g.in_size), np.float32), "dw": np.empty(g.kernel_shape, np.float32)}
        ctx = KernelContext(xp=np, rng=lambda name: np.random.default_rng(0))
        with threadpool_limits(count):
            for op in (ops.Conv("x", "cols", "w", "conv", g), ops.Pool("conv", "out", "index", g),
                       ops.ConvTranspose("d", "index", "w", "dx", g), ops.ConvWeightGrad("cols", "d", "index", "dw", g)):
                kernels.build(op, a, ctx)()
        outs += [a[name].copy() for name in ("conv", "out", "index", "dx", "dw")]
    return outs


def test_conv_kernels_repeat_bit_for_bit_at_a_thread_count_and_agree_across_counts():
    """The conv ops hold BLAS to one thread for their per-example products and let OpenBLAS
    thread the batch-wide ones, whose last bits depend on the thread count (README, "BLAS
    threads"): at a fixed count they repeat exactly, and one and two threads agree to float32
    rounding."""
    one, again = _lenet_conv_ops(1), _lenet_conv_ops(1)
    two, twice = _lenet_conv_ops(2), _lenet_conv_ops(2)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(one, again))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(two, twice))
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * max(1.0, float(np.max(np.abs(a)))))
