"""Kernels of the conv ops (:mod:`circuits.ops.conv`) over the array module ``xp``.

Every conv is one strided copy (im2col through an ``as_strided`` window view of the padded
maps) and one GEMM; the transposed conv is one GEMM and ``k²`` strided adds (col2im, each
vectorised over batch, channels and positions); the kernel gradient is one GEMM. Scratch is
allocated once per kernel; no Python loop runs over channels, examples or positions.
"""

from __future__ import annotations

from typing import Any

from circuits import ops
from circuits.backends.kernels import KernelContext, Step
from circuits.ops.conv import ConvGeometry

__all__ = ["im2col", "conv_gemm", "pool", "conv_transpose", "conv_weight_grad", "sign"]


def _maps(array: Any, channels: int, height: int, width: int) -> Any:
    """The flat ``(batch, C·H·W)`` activity viewed as ``(batch, C, H, W)``."""
    return array.reshape(array.shape[0], channels, height, width)


def _unpooler(xp: Any, g: ConvGeometry, delta: Any, index: Any | None) -> tuple[Any, Step]:
    """A ``(batch, O, Ho, Wo)`` scratch and the step that writes ``unpool(delta)`` into it.

    Without pooling the scratch is ``delta`` itself, viewed as maps, and the step does nothing.
    """
    batch = delta.shape[0]
    if not g.pool:
        return _maps(delta, g.out_channels, g.out_height, g.out_width), lambda: None
    s = g.pool_size
    ph, pw = g.out_height // s, g.out_width // s
    full = xp.empty((batch, g.out_channels, g.out_height, g.out_width), delta.dtype)
    windows = full.reshape(batch, g.out_channels, ph, s, pw, s)
    small = delta.reshape(batch, g.out_channels, ph, 1, pw, 1)
    if g.pool == "avg":
        scale = 1.0 / (s * s)
        return full, lambda: xp.multiply(small, scale, out=windows)
    where = index.reshape(batch, g.out_channels, ph, pw)
    errors = delta.reshape(batch, g.out_channels, ph, pw)
    places = [(u * s + v, windows[:, :, :, u, :, v]) for u in range(s) for v in range(s)]
    hit = xp.empty(where.shape, bool)

    def step() -> None:
        for place, target in places:  # one pass per window place: whole maps, no 6-D broadcast
            xp.equal(where, place, out=hit)  # window place (u, v) won when index == u·s + v
            xp.multiply(hit, errors, out=target)
    return full, step


def im2col(op: ops.Im2Col, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    x, cols = arrays[op.x], arrays[op.cols]
    batch, p, k, s = x.shape[0], g.padding, g.kernel, g.stride
    maps = _maps(x, g.channels, g.height, g.width)
    if p:
        padded = xp.zeros((batch, g.channels, g.height + 2 * p, g.width + 2 * p), x.dtype)
        inner = padded[:, :, p:p + g.height, p:p + g.width]
    else:
        padded, inner = maps, None
    sb, sc, sh, sw = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, shape=(batch, g.out_height, g.out_width, g.channels, k, k),
        strides=(sb, sh * s, sw * s, sc, sh, sw))
    target = cols.reshape(windows.shape)

    def step() -> None:
        if inner is not None:
            inner[...] = maps  # the zero border was written once, at allocation
        target[...] = windows
    return step


def conv_gemm(op: ops.ConvGemm, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    cols, weight, out = arrays[op.cols], arrays[op.weight], arrays[op.out]
    batch = out.shape[0]
    rows = cols.reshape(batch * g.positions, g.patch)
    kernel = weight.reshape(g.out_channels, g.patch).T
    product = xp.empty((batch * g.positions, g.out_channels), out.dtype)
    by_position = product.reshape(batch, g.positions, g.out_channels).transpose(0, 2, 1)
    channel_major = out.reshape(batch, g.out_channels, g.positions)

    def step() -> None:
        xp.matmul(rows, kernel, out=product)
        if op.accumulate:
            xp.add(channel_major, by_position, out=channel_major)
        else:
            channel_major[...] = by_position
    return step


def pool(op: ops.Pool, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    x, out = arrays[op.x], arrays[op.out]
    batch, s = x.shape[0], g.pool_size
    ph, pw = g.out_height // s, g.out_width // s
    windows = x.reshape(batch, g.out_channels, ph, s, pw, s)
    result = xp.empty((batch, g.out_channels, ph, pw), x.dtype) if op.accumulate else \
        out.reshape(batch, g.out_channels, ph, pw)
    finish = (lambda: xp.add(out, result.reshape(out.shape), out=out)) if op.accumulate else (lambda: None)
    if g.pool == "avg":
        def average() -> None:
            xp.mean(windows, axis=(3, 5), out=result)
            finish()
        return average
    index = arrays[op.index].reshape(batch, g.out_channels, ph, pw)
    first, *rest = [(u * s + v, windows[:, :, :, u, :, v]) for u in range(s) for v in range(s)]
    larger = xp.empty(index.shape, bool)

    def maximum() -> None:
        # A running max over the window places in row-major order, whole maps at a time; a
        # place wins only when strictly larger, so ties go to the first, as argmax has them.
        xp.copyto(result, first[1])
        index.fill(first[0])
        for place, plane in rest:
            xp.greater(plane, result, out=larger)
            xp.maximum(result, plane, out=result)
            xp.copyto(index, place, where=larger)
        finish()
    return maximum


def conv_transpose(op: ops.ConvTranspose, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    delta, kernel, out = arrays[op.delta], arrays[op.kernel], arrays[op.out]
    batch, p, k, s = delta.shape[0], g.padding, g.kernel, g.stride
    full, unpool = _unpooler(xp, g, delta, arrays[op.index] if op.index else None)
    rows = xp.empty((batch, g.positions, g.out_channels), delta.dtype)
    by_channel = full.reshape(batch, g.out_channels, g.positions).transpose(0, 2, 1)
    matrix = kernel.reshape(g.out_channels, g.patch)
    columns = xp.empty((batch * g.positions, g.patch), delta.dtype)
    taps = columns.reshape(batch, g.out_height, g.out_width, g.channels, k, k).transpose(0, 3, 4, 5, 1, 2)
    padded = xp.empty((batch, g.channels, g.height + 2 * p, g.width + 2 * p), delta.dtype)
    reach_h, reach_w = s * (g.out_height - 1) + 1, s * (g.out_width - 1) + 1
    places = [(u, v, padded[:, :, u:u + reach_h:s, v:v + reach_w:s]) for u in range(k) for v in range(k)]
    inner = padded[:, :, p:p + g.height, p:p + g.width]
    maps = _maps(out, g.channels, g.height, g.width)

    def step() -> None:
        unpool()
        rows[...] = by_channel
        xp.matmul(rows.reshape(batch * g.positions, g.out_channels), matrix, out=columns)
        padded.fill(0)
        for u, v, place in places:  # col2im: k² strided adds, each over batch × channels × positions
            xp.add(place, taps[:, :, u, v], out=place)
        if op.accumulate:
            xp.add(maps, inner, out=maps)
        else:
            maps[...] = inner
    return step


def conv_weight_grad(op: ops.ConvWeightGrad, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    cols, delta, out = arrays[op.cols], arrays[op.delta], arrays[op.out]
    batch = delta.shape[0]
    full, unpool = _unpooler(xp, g, delta, arrays[op.index] if op.index else None)
    rows = xp.empty((batch, g.positions, g.out_channels), delta.dtype)
    by_channel = full.reshape(batch, g.out_channels, g.positions).transpose(0, 2, 1)
    left = rows.reshape(batch * g.positions, g.out_channels).T
    right = cols.reshape(batch * g.positions, g.patch)
    matrix = out.reshape(g.out_channels, g.patch)
    scratch = xp.empty_like(matrix)
    alpha, beta = op.alpha, op.beta

    def step() -> None:
        unpool()
        xp.multiply(by_channel, alpha, out=rows)
        if beta == 0.0:
            xp.matmul(left, right, out=matrix)
            return
        xp.matmul(left, right, out=scratch)
        if beta != 1.0:
            xp.multiply(matrix, beta, out=matrix)
        xp.add(matrix, scratch, out=matrix)
    return step


def sign(op: ops.Sign, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp = ctx.xp
    a, out, scale = arrays[op.a], arrays[op.out], op.scale
    if scale == 1.0:
        return lambda: xp.sign(a, out=out)

    def step() -> None:
        xp.sign(a, out=out)
        xp.multiply(out, scale, out=out)
    return step
