"""Topographic circuits: shapes, conv and pool projections, their kernels, and every rule on them.

The conv kernels are checked against direct loops (the definition of convolution), the
backward ops against the adjoint identity and finite differences, and the rules against the
claims of :mod:`circuits.claims` on hypothesis-drawn conv circuits.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import conv_circuits, dag_spec_text

from circuits.backends import get_backend
from circuits.backends.kernels import KernelContext
from circuits.backends.catalogue import default_kernels
from circuits.claims import default_claims
from circuits.claims.gradient import finite_difference_error
from circuits.errors import CompileError, GraphError, SpecError
from circuits.graph import build_graph
from circuits.model import Model
from circuits import ops
from circuits.spec import parse_spec
from circuits.spec_writer import dump_spec

CLAIMS = default_claims()
KERNELS = default_kernels()


# -- kernels against loops ------------------------------------------------------------------------


def reference_conv(x, w, stride, padding):
    """``out[b, o, i, j] = Σ_{c,u,v} pad(x)[b, c, s·i + u, s·j + v] · w[o, c, u, v]`` by loops."""
    batch, _, height, width = x.shape
    out_channels, _, k, _ = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (height + 2 * padding - k) // stride + 1, (width + 2 * padding - k) // stride + 1
    out = np.zeros((batch, out_channels, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = padded[:, :, stride * i:stride * i + k, stride * j:stride * j + k]
            out[:, :, i, j] = np.einsum("bcuv,ocuv->bo", patch, w)
    return out


def reference_pool(x, kind, size):
    b, c, h, w = x.shape
    windows = x.reshape(b, c, h // size, size, w // size, size)
    return windows.max(axis=(3, 5)) if kind == "max" else windows.mean(axis=(3, 5))


def run_ops(op_list, arrays):
    ctx = KernelContext(xp=np, rng=lambda name: np.random.default_rng(0))
    for op in op_list:
        KERNELS.build(op, arrays, ctx)()


def conv_arrays(g, batch, rng):
    arrays = {
        "x": rng.standard_normal((batch, g.in_size)),
        "w": rng.standard_normal(g.kernel_shape),
        "cols": np.empty(g.cols_shape(batch)),
        "conv": np.empty((batch, g.conv_size)),
        "out": np.empty((batch, g.out_size)),
        "index": np.empty((batch, g.out_size), np.int64),
        "d": rng.standard_normal((batch, g.out_size)),
        "dx": np.empty((batch, g.in_size)),
        "dw": np.empty(g.kernel_shape),
    }
    return arrays


def forward_ops(g):
    index = "index" if g.pool == "max" else ""
    conv = ops.ConvGemm("cols", "w", "conv" if g.pool else "out", g)
    pool = [ops.Pool("conv", "out", index, g)] if g.pool else []
    return [ops.Im2Col("x", "cols", g), conv, *pool], index


geometries = st.builds(
    lambda c, h, w, o, k, s, p, pool: ops.ConvGeometry(c, h, w, o, k, s, min(p, k - 1), *pool),
    st.integers(1, 3), st.integers(4, 9), st.integers(4, 9), st.integers(1, 4), st.integers(1, 3),
    st.integers(1, 2), st.integers(0, 2), st.sampled_from([("", 1), ("max", 2), ("avg", 2), ("max", 1)]),
).filter(lambda g: g.out_height >= 1 and g.out_width >= 1 and (not g.pool or (
    g.out_height % g.pool_size == 0 and g.out_width % g.pool_size == 0)))


@settings(max_examples=40)
@given(g=geometries, seed=st.integers(0, 2**16))
def test_conv_and_pool_forward_equal_loops(g, seed):
    rng = np.random.default_rng(seed)
    a = conv_arrays(g, 3, rng)
    steps, _ = forward_ops(g)
    run_ops(steps, a)
    x = a["x"].reshape(3, g.channels, g.height, g.width)
    want = reference_conv(x, a["w"], g.stride, g.padding)
    if g.pool:
        want = reference_pool(want, g.pool, g.pool_size)
    np.testing.assert_allclose(a["out"].reshape(want.shape), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(g=geometries, seed=st.integers(0, 2**16))
def test_backward_ops_are_the_adjoint_and_the_kernel_gradient(g, seed):
    """``⟨d, conv∘pool(x)⟩`` has gradient ``conv_transpose(unpool(d))`` in x and ``ConvWeightGrad`` in w:
    checked by the adjoint identity (linear in x at fixed winners) and by central differences in w."""
    rng = np.random.default_rng(seed)
    a = conv_arrays(g, 2, rng)
    steps, index = forward_ops(g)
    run_ops(steps, a)
    run_ops([ops.ConvTranspose("d", index, "w", "dx", g), ops.ConvWeightGrad("cols", "d", index, "dw", g)], a)

    def objective(x, w):
        y = reference_conv(x.reshape(2, g.channels, g.height, g.width), w, g.stride, g.padding)
        if g.pool:
            y = reference_pool(y, g.pool, g.pool_size)
        return float(np.sum(y.reshape(2, -1) * a["d"]))

    h = 1e-6
    for grad, arg in ((a["dx"], 0), (a["dw"], 1)):
        for _ in range(5):
            where = tuple(int(rng.integers(0, n)) for n in grad.shape)
            args = [a["x"].copy(), a["w"].copy()]
            args[arg][where] += h
            up = objective(*args)
            args[arg][where] -= 2 * h
            down = objective(*args)
            assert abs((up - down) / (2 * h) - grad[where]) < 1e-6 * (1 + abs(grad[where]))


@pytest.mark.parametrize("size", [2, 3])
def test_max_pool_index_is_the_first_argmax_of_each_window_with_ties(size):
    """Values drawn from {0, 1, 2} tie often: the index is argmax's (the first place in row-major
    order), for the 2×2 path and the general running max alike."""
    g = ops.ConvGeometry(2, 6, 6, 3, 1, 1, 0, "max", size)
    rng = np.random.default_rng(size)
    conv = rng.integers(0, 3, (4, g.conv_size)).astype(np.float32)
    a = {"conv": conv, "out": np.empty((4, g.out_size), np.float32), "index": np.empty((4, g.out_size), np.int64)}
    run_ops([ops.Pool("conv", "out", "index", g)], a)
    n = 6 // size
    windows = conv.reshape(4, 3, n, size, n, size).transpose(0, 1, 2, 4, 3, 5).reshape(4, 3, n, n, size * size)
    assert np.array_equal(a["index"].reshape(4, 3, n, n), windows.argmax(axis=-1))
    assert np.array_equal(a["out"].reshape(4, 3, n, n), windows.max(axis=-1))


class _NotNumpy:
    """NumPy under another name: the kernels take their generic paths (strided views, no void items)."""

    __name__ = "not_numpy"

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.mark.parametrize("width", [6, 10])
def test_row_copies_and_generic_views_give_the_same_pool_and_columns(width):
    """The NumPy-only fast paths (window rows moved as opaque items in max pooling and im2col)
    write the same bits as the generic strided views, ties included."""
    g = ops.ConvGeometry(2, width, width, 3, 3, 1, 1, "max", 2)
    rng = np.random.default_rng(width)
    x = rng.integers(0, 3, (4, g.in_size)).astype(np.float32)
    w = rng.integers(-1, 2, g.kernel_shape).astype(np.float32)
    results = []
    for xp in (np, _NotNumpy()):
        a = {"x": x, "w": w, "cols": np.empty(g.cols_shape(4), np.float32),
             "conv": np.empty((4, g.conv_size), np.float32), "out": np.empty((4, g.out_size), np.float32),
             "index": np.empty((4, g.out_size), np.int64)}
        ctx = KernelContext(xp=xp, rng=lambda name: np.random.default_rng(0))
        for op in (ops.Conv("x", "cols", "w", "conv", g), ops.Pool("conv", "out", "index", g)):
            KERNELS.build(op, a, ctx)()
        results.append([a[name].tobytes() for name in ("cols", "conv", "out", "index")])
    assert results[0] == results[1]


def test_accumulating_conv_ops_add_to_what_is_there():
    g = ops.ConvGeometry(2, 6, 6, 3, 3, 1, 1, "max", 2)
    rng = np.random.default_rng(1)
    a = conv_arrays(g, 2, rng)
    run_ops(forward_ops(g)[0], a)
    once = a["out"].copy()
    run_ops([ops.Pool("conv", "out", "index", g, accumulate=True)], a)
    np.testing.assert_allclose(a["out"], 2 * once)
    run_ops([ops.ConvTranspose("d", "index", "w", "dx", g)], a)
    first = a["dx"].copy()
    run_ops([ops.ConvTranspose("d", "index", "w", "dx", g, accumulate=True)], a)
    np.testing.assert_allclose(a["dx"], 2 * first)


@pytest.mark.parametrize("chunk", [1, 2, 5])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_conv_op_in_chunks_equals_im2col_then_gemm(monkeypatch, chunk, accumulate, batched):
    """``Conv`` (im2col and GEMM a chunk of examples at a time) writes the columns that
    ``Im2Col`` writes bit for bit, and the maps that ``ConvGemm`` then writes: bit for bit with one
    GEMM per example, to rounding with one GEMM per chunk (OpenBLAS may sum a product of
    another width in another order); both equal the loops."""
    from circuits.backends import conv_kernels

    g = ops.ConvGeometry(2, 6, 5, 3, 3, 1, 1)
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", chunk * g.patch * g.positions * 8)
    monkeypatch.setattr(conv_kernels, "BATCHED_POSITIONS", 10 ** 9 if batched else 0)
    rng = np.random.default_rng(chunk)
    a = conv_arrays(g, 5, rng)
    start = rng.standard_normal((5, g.conv_size))
    a["out"][...] = start
    run_ops([ops.Im2Col("x", "cols", g), ops.ConvGemm("cols", "w", "out", g, accumulate=accumulate)], a)
    want, want_cols = a["out"].copy(), a["cols"].copy()
    a["out"][...], a["cols"][...] = start, np.nan
    run_ops([ops.Conv("x", "cols", "w", "out", g, accumulate=accumulate)], a)
    assert np.array_equal(a["cols"], want_cols)
    if batched:
        np.testing.assert_allclose(a["out"], want, rtol=1e-14, atol=1e-14)
    else:
        assert np.array_equal(a["out"], want)
    loops = reference_conv(a["x"].reshape(5, 2, 6, 5), a["w"], 1, 1).reshape(5, -1)
    np.testing.assert_allclose(a["out"], loops + (start if accumulate else 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 2), (2, 1)])
def test_im2col_columns_are_the_definition_bit_for_bit(monkeypatch, dtype, stride, padding):
    """``cols[(c, u, v), b, (i, j)] = pad(x)[b, c, s·i + u, s·j + v]`` exactly, from ``Im2Col`` and
    from ``Conv`` in chunks of 2 (at stride 1 the kernels copy whole window rows as opaque items)."""
    from circuits.backends import conv_kernels

    g = ops.ConvGeometry(2, 7, 6, 3, 3, stride, padding)
    rng = np.random.default_rng(stride + 3 * padding)
    x = rng.standard_normal((5, g.in_size)).astype(dtype)
    padded = np.pad(x.reshape(5, 2, 7, 6), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    want = np.empty((5, 2, 3, 3, g.out_height, g.out_width), dtype)
    for u in range(3):
        for v in range(3):
            want[:, :, u, v] = padded[:, :, u:u + stride * g.out_height:stride, v:v + stride * g.out_width:stride]
    want = want.reshape(5, g.patch, g.positions).transpose(1, 0, 2).copy()
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 2 * g.patch * g.positions * np.dtype(dtype).itemsize)
    a = {"x": x, "cols": np.full(g.cols_shape(5), np.nan, dtype), "w": np.ones(g.kernel_shape, dtype),
         "out": np.empty((5, g.conv_size), dtype)}
    run_ops([ops.Im2Col("x", "cols", g)], a)
    assert a["cols"].tobytes() == want.tobytes()
    a["cols"][...] = np.nan
    run_ops([ops.Conv("x", "cols", "w", "out", g)], a)
    assert a["cols"].tobytes() == want.tobytes()


@pytest.mark.parametrize("pool", [("max", 2), ("avg", 2), ("", 1)])
@pytest.mark.parametrize("threaded", [False, True])
def test_kernel_gradient_is_beta_out_plus_alpha_times_the_sum_over_examples(monkeypatch, pool, threaded):
    """``ConvWeightGrad`` (one GEMM over the batch's positions, after unpooling into a grid
    channel-major over the batch) writes ``β·out + α·Σ_b unpool(d)[b] @ cols[:, b]ᵀ``, the sum
    taken by loops here, on one BLAS thread or on all."""
    from circuits.backends import conv_kernels

    monkeypatch.setattr(conv_kernels, "THREADED_KERNEL", 0 if threaded else 10 ** 9)
    g = ops.ConvGeometry(2, 6, 6, 3, 3, 1, 1, *pool)
    rng = np.random.default_rng(7)
    a = conv_arrays(g, 5, rng)
    steps, index = forward_ops(g)
    run_ops(steps, a)
    d = a["d"].reshape(5, g.out_channels, g.out_height // g.pool_size, g.out_width // g.pool_size)
    if pool[0] == "max":
        where = a["index"].reshape(d.shape)
        full = np.zeros((5, g.out_channels, g.out_height, g.out_width))
        for u in range(2):
            for v in range(2):
                full[:, :, u::2, v::2] = np.where(where == 2 * u + v, d, 0.0)
    elif pool[0] == "avg":
        full = np.repeat(np.repeat(d, 2, axis=2), 2, axis=3) / 4
    else:
        full = d
    want = sum(full[b].reshape(g.out_channels, -1) @ a["cols"][:, b].T for b in range(5)).reshape(g.kernel_shape)
    start = rng.standard_normal(g.kernel_shape)
    a["dw"][...] = start
    run_ops([ops.ConvWeightGrad("cols", "d", index, "dw", g, alpha=-0.5, beta=0.9)], a)
    np.testing.assert_allclose(a["dw"], 0.9 * start - 0.5 * want, rtol=1e-12, atol=1e-12)
    run_ops([ops.ConvWeightGrad("cols", "d", index, "dw", g)], a)
    np.testing.assert_allclose(a["dw"], want, rtol=1e-12, atol=1e-12)


def reference_conv_transpose(d, w, g):
    """``dx`` with ``dx[b, c, s·i + u − p, s·j + v − p] += Σ_o d[b, o, i, j] · w[o, c, u, v]``, by loops."""
    batch, k, s, p = d.shape[0], g.kernel, g.stride, g.padding
    maps = d.reshape(batch, g.out_channels, g.out_height, g.out_width)
    padded = np.zeros((batch, g.channels, g.height + 2 * p, g.width + 2 * p))
    for i in range(g.out_height):
        for j in range(g.out_width):
            padded[:, :, s * i:s * i + k, s * j:s * j + k] += np.einsum("bo,ocuv->bcuv", maps[:, :, i, j], w)
    return padded[:, :, p:p + g.height, p:p + g.width].reshape(batch, -1)


@pytest.mark.parametrize("chunk", [1, 2, 5])
@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 2), (2, 1), (3, 2)])
def test_transposed_conv_in_chunks_of_examples_equals_loops(monkeypatch, chunk, stride, padding):
    """col2im runs a chunk of examples at a time (``BATCH_CHUNK_BYTES`` of wide columns): 5 examples
    one by one, in chunks of 2 (the last one short) and all at once give the loops' result."""
    from circuits.backends import conv_kernels

    g = ops.ConvGeometry(2, 5, 4 - 2 * padding + 2 * stride, 3, 3, stride, padding)
    wp = g.width + 2 * padding
    reach = 2 * wp + 2  # the largest tap offset, (k − 1)·wp + k − 1
    row = max(g.out_height * wp - (-reach // stride), -(-(g.height + 2 * padding) * wp // stride))
    monkeypatch.setattr(conv_kernels, "BATCH_CHUNK_BYTES", chunk * g.patch * row * 8)
    rng = np.random.default_rng(stride + 3 * padding)
    a = {"d": rng.standard_normal((5, g.out_size)), "w": rng.standard_normal(g.kernel_shape),
         "dx": np.empty((5, g.in_size))}
    run_ops([ops.ConvTranspose("d", "", "w", "dx", g)], a)
    np.testing.assert_allclose(a["dx"], reference_conv_transpose(a["d"], a["w"], g), rtol=1e-12, atol=1e-12)


def test_sign_op_and_its_scale():
    a = {"w": np.array([[-2.0, 0.0, 3.0]]), "s": np.empty((1, 3))}
    run_ops([ops.Sign("w", "s", scale=0.5)], a)
    assert a["s"].tolist() == [[-0.5, 0.0, 0.5]]


# -- spec and graph --------------------------------------------------------------------------


LENET = """
[circuit]
name = "tiny-lenet"
[populations]
x  = {{ shape = [1, 8, 8], role = "input" }}
c1 = {{ shape = {c1}, activation = "tanh" }}
c2 = {{ shape = [4, 2, 2], activation = "relu" }}
h  = {{ size = 5, activation = "tanh" }}
y  = {{ size = 10, role = "output" }}
[[projections]]
from = "x"
to = "c1"
conv = {{ kernel = 3, padding = 1 }}
pool = {{ kind = "max", size = 2 }}
[[projections]]
from = "c1"
to = "c2"
conv = {{ kernel = 3, stride = 2, padding = 1 }}
[[projections]]
from = "x"
to = "c2"
conv = {{ kernel = 2, stride = 4 }}
pool = {{ kind = "avg", size = 1 }}
[[projections]]
chain = ["c2", "h", "y"]
[[projections]]
from = "c1"
to = "y"
[rule]
name = "{rule}"
{extra}
[task]
dataset = "digits"
[run]
dtype = "float64"
"""


def lenet(registry, rule="backprop", extra="", c1="[3, 4, 4]"):
    spec = parse_spec(LENET.format(rule=rule, extra=extra, c1=c1), source="t.toml", rules=registry.signatures())
    return registry.get(rule).augment(spec)


def test_shape_sets_the_size_and_the_spec_round_trips(registry):
    spec = lenet(registry)
    assert spec.population("c1").size == 48 and spec.population("c1").shape == (3, 4, 4)
    proj = spec.projections[0]
    assert (proj.conv.kernel, proj.conv.stride, proj.conv.padding, proj.pool.kind) == (3, 1, 1, "max")
    assert parse_spec(dump_spec(spec), source="again.toml", rules=registry.signatures()) == spec


def test_wrong_target_shape_names_the_expected_shape(registry):
    spec = lenet(registry, c1="[3, 5, 5]")
    with pytest.raises(GraphError) as info:
        build_graph(spec)
    assert str(info.value) == ("t.toml: projection 'x->c1': conv then pool gives 4×4 maps, so 'c1' must have "
                               "shape = [3, 4, 4] (got [3, 5, 5])")


@pytest.mark.parametrize("edit, message", [
    (('x  = { shape = [1, 8, 8], role = "input" }', 'x  = { size = 64, role = "input" }'),
     "t.toml: projection 'x->c1': conv needs shaped populations, but 'x' has none; give it "
     "shape = [channels, height, width] (product 64)"),
    (("conv = { kernel = 3, padding = 1 }\n", ""),
     "t.toml: projection 'x->c1': pool follows a convolution; add conv = { kernel = 1 } to pool alone"),
    (("conv = { kernel = 3, padding = 1 }", "conv = { kernel = 9 }"),
     "t.toml: projection 'x->c1': a kernel of 9 with padding 0 does not fit the 8×8 maps of 'x'"),
])
def test_graph_errors_name_the_projection_and_the_fix(registry, edit, message):
    text = LENET.format(rule="backprop", extra="", c1="[3, 4, 4]").replace(*edit)
    with pytest.raises((GraphError, SpecError)) as info:
        build_graph(parse_spec(text, source="t.toml", rules=registry.signatures()))
    assert str(info.value) == message


def test_spec_errors_for_shape_and_conv_keys(registry):
    text = LENET.format(rule="backprop", extra="", c1="[3, 4, 4]")
    with pytest.raises(SpecError, match=r"populations.c1.size: is 40, but shape = \[3, 4, 4\] has 48 units"):
        parse_spec(text.replace("c1 = { shape", "c1 = { size = 40, shape"), source="t.toml",
                   rules=registry.signatures())
    with pytest.raises(SpecError, match=r"projections\[0\].conv.padding: must be less than the kernel \(3\)"):
        parse_spec(text.replace("padding = 1 }", "padding = 3 }", 1), source="t.toml", rules=registry.signatures())
    with pytest.raises(SpecError, match=r"projections\[0\].pool.kind: must be one of max, avg"):
        parse_spec(text.replace('kind = "max"', 'kind = "min"'), source="t.toml", rules=registry.signatures())


def test_rules_without_conv_support_refuse_with_the_alternatives(registry):
    spec = lenet(registry, "equilibrium_propagation")
    with pytest.raises(CompileError, match="rule 'equilibrium_propagation' does not run conv projections; "
                                           "choose backprop, feedback_alignment"):
        Model(spec, registry=registry)
    spec = lenet(registry, "predictive_coding", 'variant = "strict"')
    with pytest.raises(CompileError, match="conv projections in variant fixed_prediction only"):
        Model(spec, registry=registry)


def test_compile_shows_im2col_gemm_pool_and_transposed_conv(registry):
    text = Model(lenet(registry), registry=registry).program.describe()
    for piece in ("x->c1.cols = im2col(x.rate, 3×3/1 pad 1)", "x->c1.conv = x->c1.weight @ x->c1.cols (GEMM)",
                  "c1.pre = maxpool2(x->c1.conv) (argmax → x->c1.argmax)",
                  "conv_transpose(c2.delta, c1->c2.weight, 3×3/2 pad 1) (GEMM + col2im)",
                  "Σ_b unpool2(c1.delta, x->c1.argmax) @ x->c1.colsᵀ (GEMM)", "x->c1.weight   param  3×1×3×3"):
        assert piece in text, piece


# -- rules on conv circuits ------------------------------------------------------------------


def test_backprop_on_a_conv_circuit_with_two_conv_projections_into_one_population(registry):
    """Conv accumulation (x→c2 and c1→c2), average and max pooling, flattening into dense layers."""
    model = Model(lenet(registry), registry=registry)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 64)), rng.integers(0, 3, 4)
    error, count = finite_difference_error(model, x, y, model.gradients(x, y), rng, per_param=8)
    assert error < 1e-6 and count == 8 * len(model.params)


def conv_spec(registry, circuit, rule, extra=""):
    text = dag_spec_text(circuit, rule=rule, dtype="float64", extra_rule=extra)
    return registry.get(rule).augment(parse_spec(text, source="drawn.toml", rules=registry.signatures()))


def claim(name, spec, registry, seed=0):
    outcome = CLAIMS.get(name).run(spec, registry, np.random.default_rng(seed))
    assert outcome.passed, outcome


@settings(max_examples=25)
@given(circuit=conv_circuits())
def test_backprop_equals_finite_differences_on_conv_circuits(registry, circuit):
    claim("reference_gradient_is_exact", conv_spec(registry, circuit, "backprop"), registry)


@settings(max_examples=15)
@given(circuit=conv_circuits(), rule=st.sampled_from(["feedback_alignment", "kolen_pollack", "weight_mirror"]))
def test_tied_kernels_give_backprop(registry, circuit, rule):
    claim("tied_feedback_is_backprop", conv_spec(registry, circuit, rule, "auto_feedback = true"), registry)


@settings(max_examples=15)
@given(circuit=conv_circuits(), rule=st.sampled_from(
    ["feedback_alignment", "direct_feedback_alignment", "kolen_pollack", "weight_mirror"]))
def test_output_layer_is_backprop_on_conv_circuits(registry, circuit, rule):
    claim("output_layer_is_backprop", conv_spec(registry, circuit, rule, "auto_feedback = true"), registry)


@settings(max_examples=10)
@given(circuit=conv_circuits(), gain=st.sampled_from([0.2, 1.0]))
def test_sign_symmetry_claims_hold_on_conv_circuits(registry, circuit, gain):
    """With kernels and weights of one magnitude g, the sign kernels are the kernels: backprop."""
    spec = conv_spec(registry, circuit, "sign_symmetry", f"feedback_gain = {gain}")
    claim("uniform_sign_is_backprop", spec, registry)
    claim("output_layer_is_backprop", spec, registry)


@settings(max_examples=10)
@given(circuit=conv_circuits(), decay=st.sampled_from([0.0, 0.05]))
def test_kp_contraction_holds_for_kernels(registry, circuit, decay):
    spec = conv_spec(registry, circuit, "kolen_pollack", f"auto_feedback = true\nweight_decay = {decay}\nlr = 0.1")
    claim("kp_exact_contraction", spec, registry)


@pytest.mark.parametrize("rule, extra", [
    ("predictive_coding", "inference_rate = 1.0\ninference_steps = 5"), ("node_perturbation", ""),
    ("feedback_alignment", "auto_feedback = true"), ("direct_feedback_alignment", "auto_feedback = true"),
    ("kolen_pollack", "auto_feedback = true"), ("weight_mirror", "auto_feedback = true"), ("sign_symmetry", "")])
def test_every_claim_of_the_conv_rules_holds_or_says_why_not(registry, rule, extra):
    """Each claim of the rule passes on the LeNet-like circuit, or its precondition skips it with a reason."""
    spec = lenet(registry, rule, extra)
    outcomes = [c.run(spec, registry, np.random.default_rng(0)) for c in CLAIMS.for_rule(rule)]
    assert all(o.passed or (o.status == "skip" and o.reason) for o in outcomes), outcomes
    assert any(o.passed for o in outcomes)


def test_weight_mirror_teaches_a_feedback_kernel_the_forward_kernel(registry):
    """The mirror noise covers the padded maps, so B → W in mean for every tap, border taps included."""
    model = Model(lenet(registry, "weight_mirror", "auto_feedback = true\nmirror_lr = 0.05\nmirror_batch = 64"),
                  registry=registry)
    exe = model.sim.executable(model.program, model.spec.task.batch_size)
    w = np.array(model.params["c1->c2"])
    before = np.linalg.norm(np.array(model.params["c2->c1"]) - w) / np.linalg.norm(w)
    for _ in range(200):
        exe.run(["mirror"])
    after = np.linalg.norm(np.array(model.params["c2->c1"]) - w) / np.linalg.norm(w)
    assert before > 0.9 and after < 0.15


def test_sign_symmetry_sends_errors_through_the_sign_of_the_weights(registry):
    """Dense and conv: the update equals FA's with every feedback set to g·sign(W) (g = 0.3)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 64)), rng.integers(0, 3, 4)
    signs = Model(lenet(registry, "sign_symmetry", "feedback_gain = 0.3"), registry=registry)
    fa = Model(lenet(registry, "feedback_alignment", "auto_feedback = true"), registry=registry)
    fa.set_params({n: np.array(v) for n, v in signs.params.items()})
    for proj in fa.graph.projections("feedback"):
        forward = np.array(signs.params[f"{proj.target}->{proj.source}"])
        fa.set_params({proj.name: 0.3 * np.sign(forward if forward.ndim == 4 else forward.T)})
    got, want = signs.deltas(x, y), fa.deltas(x, y)
    for name in signs.graph.spec.projections:
        if name.type == "forward":
            np.testing.assert_allclose(got[name.name], want[name.name], rtol=1e-12, atol=1e-14)
    assert not np.allclose(got["x->c1"], Model(lenet(registry), registry=registry).deltas(x, y)["x->c1"])


def test_sign_symmetry_by_hand_on_a_dense_circuit(registry):
    text = """
[circuit]
name = "ss"
[populations]
x = { size = 2, role = "input" }
h = { size = 2, activation = "linear" }
y = { size = 1, role = "output" }
[[projections]]
chain = ["x", "h", "y"]
bias = false
[rule]
name = "sign_symmetry"
lr = 1.0
[task]
dataset = "xor"
loss = "mse"
[run]
dtype = "float64"
"""
    model = Model(parse_spec(text, source="ss.toml", rules=registry.signatures()), registry=registry)
    w1, w2 = np.array([[1.0, -2.0], [0.5, 1.0]]), np.array([[3.0], [-0.25]])
    model.set_params({"x->h": w1, "h->y": w2})
    x, target = np.array([[1.0, 2.0]]), np.array([[0.0]])
    e = (x @ w1 @ w2) - target                     # output error (batch 1)
    hidden_error = e @ np.sign(w2).T                # [e, -e], not e @ w2.T
    deltas = model.deltas(x, target)
    np.testing.assert_allclose(deltas["x->h"], -(x.T @ hidden_error))
    np.testing.assert_allclose(deltas["h->y"], -((x @ w1).T @ e))


def test_conv_kernels_get_xavier_fans(registry):
    model = Model(lenet(registry), registry=registry)
    w = np.array(model.params["c1->c2"])   # (4, 3, 3, 3): fan_in 27, fan_out 36
    assert w.shape == (4, 3, 3, 3) and np.abs(w).max() <= np.sqrt(6 / (27 + 36))
    assert np.abs(w).max() > 0.8 * np.sqrt(6 / (27 + 36))


def test_numpy_backend_trains_a_conv_circuit(registry):
    model = Model(lenet(registry, extra="lr = 0.1"), registry=registry)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 64)), rng.integers(0, 3, 32)
    first = model.step(x, y)
    for _ in range(30):
        last = model.step(x, y)
    assert last < 0.5 * first
    assert get_backend("numpy", seed=0).name == "numpy"


# -- CIFAR-10 binary batches -------------------------------------------------------------------


def write_cifar(folder, counts=(3, 2, 2, 2, 2), test=4):
    """Small fake batches: image k of a file has red = k, green = 100 + k, blue = 200 + k."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    labels = []
    for name, count in zip(names, [*counts, test]):
        records = np.zeros((count, 3073), np.uint8)
        for k in range(count):
            records[k, 0] = (k + len(name)) % 10
            records[k, 1:1025], records[k, 1025:2049], records[k, 2049:] = k, 100 + k, 200 + k
        records.tofile(folder / name)
        labels.append(records[:, 0].astype(np.int64))
    return labels


def test_cifar10_reads_the_binary_batches_in_order_as_channel_major_maps(tmp_path):
    from circuits.data import load_dataset

    labels = write_cifar(tmp_path / "cifar-10-batches-bin")
    data = load_dataset("cifar10", seed=0, data_dir=tmp_path, normalize="none")
    assert data.x_train.shape == (11, 3072) and data.x_test.shape == (4, 3072)
    np.testing.assert_array_equal(data.y_train, np.concatenate(labels[:5]))
    np.testing.assert_array_equal(data.y_test, labels[5])
    maps = data.x_test[2].reshape(3, 32, 32)
    assert (maps[0] == 2).all() and (maps[1] == 102).all() and (maps[2] == 202).all()
    unit = load_dataset("cifar10", seed=0, data_dir=tmp_path / "cifar-10-batches-bin", normalize="unit")
    assert unit.x_test.max() == pytest.approx(203 / 255)


def test_cifar10_errors_say_where_it_looked_and_where_to_get_it(tmp_path, monkeypatch):
    from circuits.data import load_dataset
    from circuits.errors import DataError

    monkeypatch.delenv("CIRCUITS_DATA", raising=False)
    with pytest.raises(DataError, match=r"cifar10.*task.data_dir.*https://www.cs.toronto.edu/~kriz/cifar.html"):
        load_dataset("cifar10", seed=0)
    with pytest.raises(DataError, match="test_batch.bin is in neither"):
        load_dataset("cifar10", seed=0, data_dir=tmp_path)
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(DataError, match="holds 100 bytes, not a whole number of 3073-byte records"):
        load_dataset("cifar10", seed=0, data_dir=tmp_path)


def test_render_shows_maps_and_kernels(registry):
    from circuits.render_text import to_dot, to_mermaid

    graph = build_graph(lenet(registry))
    dot, mermaid = to_dot(graph), to_mermaid(graph)
    assert '"c1\\n3×4×4 · tanh"' in dot and 'label="conv 3×3 pad 1 · max 2"' in dot
    assert "c1 -->|conv 3×3/2 pad 1| c2" in mermaid and 'x -->|conv 2×2/4 · avg 1| c2' in mermaid
    assert "h --> y" in mermaid
