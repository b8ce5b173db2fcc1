"""Kernels of the conv ops (:mod:`circuits.ops.conv`) over the array module ``xp``.

Columns are laid out *patch-major over the batch*, ``(patch, batch, positions)``
(:meth:`ConvGeometry.cols_shape`): one row per kernel tap holds every example's
positions, so one GEMM can take the columns of many examples at once, and every copy still runs
along a map's rows.

- The conv is one strided copy (im2col through an ``as_strided`` window view of the padded
  maps, rows of ``out_width`` numbers at a time) and the GEMM ``W @ cols``, a chunk of examples
  at a time. With few positions per map (below :data:`BATCHED_POSITIONS`) it is one GEMM over a
  chunk's examples (:data:`BATCH_CHUNK_BYTES` of columns), whose channel-major product is copied
  into the maps; with many, one GEMM per example writes each example's maps directly, in chunks
  of :data:`CHUNK_BYTES` of columns read from cache just after im2col wrote them, OpenBLAS held
  to one thread
  (:func:`~circuits.backends.blas.one_thread`: a product that small is slower on two).
- The transposed conv is one GEMM ``Wᵀ @ delta`` over a chunk's examples into *wide* columns,
  then ``k²`` adds (col2im). Wide: the error is laid on a grid ``out_height × (width +
  2·padding)`` whose extra columns hold zeros, so that one tap's contributions land on the
  padded maps at ``s·r + u·Wp + v`` for its wide position ``r``; each example's row of the grid
  is followed by zeros, enough that a tap's run spilling past one example's padded maps into the
  next adds only zeros, so one tap's contributions for a whole channel over the chunk's examples
  are one run (every ``s``-th number) and col2im is one add per tap and channel.
- The kernel gradient is one GEMM ``delta @ colsᵀ`` over the inner dimension batch ×
  positions, after unpooling the error into a channel-major grid over the batch; a small
  kernel (below :data:`THREADED_KERNEL` numbers) is computed on one BLAS thread, as splitting
  so few outputs between threads only costs.

Scratch is allocated once per kernel; Python loops run over chunks of examples and the k²
taps only, never over single examples, channels or positions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ContextManager

from circuits import ops
from circuits.backends.blas import one_thread
from circuits.backends.kernels import KernelContext, Step
from circuits.ops.conv import ConvGeometry

__all__ = ["im2col", "conv_gemm", "conv", "pool", "conv_transpose", "conv_weight_grad", "sign", "CHUNK_BYTES",
           "BATCH_CHUNK_BYTES", "BATCHED_POSITIONS", "THREADED_KERNEL"]

CHUNK_BYTES = 2 ** 21
"""Size of the columns of one chunk of examples (2 MiB: about a core's L2 and L3 share) in a
conv that makes one GEMM per example: they read the columns im2col just wrote, from cache."""

BATCH_CHUNK_BYTES = 2 ** 25
"""Size of the columns of one chunk of examples (32 MiB) where one GEMM takes a whole chunk
(a conv with few positions, the transposed conv): as few products as memory allows, since
OpenBLAS wakes its threads for each (LeNet's transposed conv on two threads: one product over
100 examples took 0.96 ms, five over 24 took 1.93 ms, and the one product on a single thread 1.55 ms)."""

BATCHED_POSITIONS = 256
"""Output positions per map below which the conv makes one GEMM over a chunk's examples (LeNet's
second conv, 10 × 10) instead of one per example (its first, 28 × 28)."""

THREADED_KERNEL = 1024
"""Kernel numbers (out channels × patch) from which the kernel gradient's GEMM may use every
BLAS thread; below, its few outputs are computed on one."""


def _one_thread(xp: Any) -> Callable[[], ContextManager[None]]:
    """:func:`~circuits.backends.blas.one_thread` for NumPy arrays; elsewhere, nothing."""
    return one_thread if getattr(xp, "__name__", "") == "numpy" else contextlib.nullcontext


def _maps(array: Any, channels: int, height: int, width: int) -> Any:
    """The flat ``(batch, C·H·W)`` activity viewed as ``(batch, C, H, W)``."""
    return array.reshape(array.shape[0], channels, height, width)


def _windows(xp: Any, maps: Any, size: int) -> Any:
    """``(batch, C, H, W)`` maps (any strides) viewed as ``(batch, C, H/size, size, W/size, size)``."""
    b, c, h, w = maps.shape
    sb, sc, sh, sw = maps.strides
    return xp.lib.stride_tricks.as_strided(maps, shape=(b, c, h // size, size, w // size, size),
                                           strides=(sb, sc, sh * size, sh, sw * size, sw))


def _unpooler(xp: Any, g: ConvGeometry, delta: Any, index: Any | None, full: Any) -> Step:
    """The step that writes ``unpool(delta)`` into ``full``, ``(batch, O, Ho, Wo)`` maps of any strides."""
    if not g.pool:
        maps = _maps(delta, g.out_channels, g.out_height, g.out_width)
        return lambda: xp.copyto(full, maps)
    batch, s = delta.shape[0], g.pool_size
    ph, pw = g.out_height // s, g.out_width // s
    windows = _windows(xp, full, s)
    small = delta.reshape(batch, g.out_channels, ph, 1, pw, 1)
    if g.pool == "avg":
        scale = 1.0 / (s * s)
        return lambda: xp.multiply(small, scale, out=windows)
    where = index.reshape(batch, g.out_channels, ph, pw)
    errors = delta.reshape(batch, g.out_channels, ph, pw)
    places = [(u * s + v, windows[:, :, :, u, :, v]) for u in range(s) for v in range(s)]
    hit = xp.empty(where.shape, bool)

    def step() -> None:
        for place, target in places:  # one pass per window place: whole maps, no 6-D broadcast
            xp.equal(where, place, out=hit)  # window place (u, v) won when index == u·s + v
            xp.multiply(hit, errors, out=target)
    return step


def _im2col_views(xp: Any, g: ConvGeometry, x: Any, cols: Any) -> tuple[Step, Any, Any]:
    """The step that copies ``x`` into its padded maps (nothing without padding), the window
    view of those maps ``(batch, C, k, k, Ho, Wo)``, and ``cols`` (``(patch, batch, positions)``)
    viewed in the same order; at stride 1 (NumPy, contiguous arrays) both views are
    ``(batch, C, k, k, Ho)`` of rows of ``Wo`` numbers as one opaque (void) item each, which
    NumPy copies about 2.5× faster than number by number."""
    batch, p, k, s = x.shape[0], g.padding, g.kernel, g.stride
    maps = _maps(x, g.channels, g.height, g.width)
    if p:
        padded = xp.zeros((batch, g.channels, g.height + 2 * p, g.width + 2 * p), x.dtype)
        inner = padded[:, :, p:p + g.height, p:p + g.width]

        def fill() -> None:
            inner[...] = maps  # the zero border was written once, at allocation
    else:
        padded, fill = maps, lambda: None
    sb, sc, sh, sw = padded.strides
    shape = (batch, g.channels, k, k, g.out_height, g.out_width)
    if s == 1 and getattr(xp, "__name__", "") == "numpy" and padded.flags.c_contiguous and cols.flags.c_contiguous:
        # At stride 1 a window row is out_width adjacent numbers in the maps as in the columns:
        # view both as rows of one opaque item each, so the copy moves whole rows, not numbers.
        row = xp.dtype((xp.void, g.out_width * padded.itemsize))
        target = xp.ndarray((g.channels, k, k, batch, g.out_height), row, buffer=cols)
        return (fill, xp.ndarray(shape[:-1], row, buffer=padded, strides=(sb, sc, sh, sw, sh)),
                target.transpose(3, 0, 1, 2, 4))
    windows = xp.lib.stride_tricks.as_strided(padded, shape=shape, strides=(sb, sc, sh, sw, sh * s, sw * s))
    target = cols.reshape(g.channels, k, k, batch, g.out_height, g.out_width).transpose(3, 0, 1, 2, 4, 5)
    return fill, windows, target


def _chunks(batch: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk, batch)) for start in range(0, batch, chunk)]


def _products(xp: Any, g: ConvGeometry, weight: Any, cols: Any, out: Any, accumulate: bool,
              chunks: list[tuple[int, int]]) -> list[Step]:
    """One step per chunk ``(start, stop)`` of examples: ``out[start:stop] (+)= W @ cols`` for
    those examples, into the channel-major maps of ``out`` (``(batch, O·positions)``)."""
    batch, channels, positions = out.shape[0], g.out_channels, g.positions
    kernel = weight.reshape(channels, g.patch)
    maps = out.reshape(batch, channels, positions)
    widest = max(stop - start for start, stop in chunks)
    steps: list[Step] = []
    if g.positions < BATCHED_POSITIONS:  # one GEMM over the chunk's examples, then into the maps
        product = xp.empty((channels, widest * positions), out.dtype)
        for start, stop in chunks:
            n = stop - start
            part = product[:, :n * positions]
            columns = cols[:, start:stop].reshape(g.patch, n * positions)
            result, spread = maps[start:stop], part.reshape(channels, n, positions).transpose(1, 0, 2)

            def batched(columns: Any = columns, part: Any = part, result: Any = result, spread: Any = spread) -> None:
                xp.matmul(kernel, columns, out=part)
                if accumulate:
                    xp.add(result, spread, out=result)
                else:
                    result[...] = spread
            steps.append(batched)
        return steps
    hold = _one_thread(xp)
    scratch = xp.empty((widest, channels, positions), out.dtype) if accumulate else None
    for start, stop in chunks:
        columns, result = cols[:, start:stop].transpose(1, 0, 2), maps[start:stop]

        def each(columns: Any = columns, result: Any = result) -> None:
            with hold():  # a hundred small products: faster on one thread
                if scratch is None:
                    xp.matmul(kernel, columns, out=result)
                    return
                part = scratch[:len(result)]
                xp.matmul(kernel, columns, out=part)
            xp.add(result, part, out=result)
        steps.append(each)
    return steps


def im2col(op: ops.Im2Col, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    fill, windows, target = _im2col_views(ctx.xp, op.geometry, arrays[op.x], arrays[op.cols])

    def step() -> None:
        fill()
        target[...] = windows
    return step


def conv_gemm(op: ops.ConvGemm, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    out = arrays[op.out]
    [product] = _products(ctx.xp, op.geometry, arrays[op.weight], arrays[op.cols], out, op.accumulate,
                          [(0, out.shape[0])])
    return product


def conv(op: ops.Conv, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    cols, out = arrays[op.cols], arrays[op.out]
    batch = out.shape[0]
    fill, windows, target = _im2col_views(xp, g, arrays[op.x], cols)
    size = BATCH_CHUNK_BYTES if g.positions < BATCHED_POSITIONS else CHUNK_BYTES
    chunks = _chunks(batch, max(1, min(batch, size // (g.patch * g.positions * cols.itemsize))))
    products = _products(xp, g, arrays[op.weight], cols, out, op.accumulate, chunks)
    jobs = [(target[start:stop], windows[start:stop], product) for (start, stop), product in zip(chunks, products)]

    def step() -> None:
        fill()
        for copy, source, product in jobs:  # each GEMM reads the columns just copied
            copy[...] = source
            product()
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
    if s == 2:
        return _max_pool2(xp, x, result, index, finish)
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


def _max_pool2(xp: Any, x: Any, result: Any, index: Any, finish: Step) -> Step:
    """2×2 max pooling of the flat maps ``x`` into ``result`` and ``index`` (``(batch, O, Ho/2, Wo/2)``).

    First the two columns of every window row: every other number of ``x`` (the width is even,
    so even places are the left column) is copied apart into two contiguous runs in one pass,
    which are then compared (faster than comparing the strided runs in place); then the two rows of each window;
    a right column or lower row wins only when strictly larger, so ties go to the first place in
    row-major order, as argmax has them.
    """
    batch, channels, ph, pw = index.shape
    flat = x.reshape(-1)
    pairs = flat.reshape(-1, 2).T  # (2, n): the left and right columns, every other number of x
    halves = xp.empty(pairs.shape, x.dtype)
    left, right = halves
    row_max = xp.empty(left.shape, x.dtype)
    right_won = xp.empty(left.shape, bool)
    split_rows, (upper, lower) = _rows_apart(xp, row_max, index.shape)
    split_right, (upper_right, lower_right) = _rows_apart(xp, right_won, index.shape)
    lower_won = xp.empty(index.shape, bool)
    column = xp.empty(index.shape, bool)
    both_right = xp.empty(index.shape, bool)

    def step() -> None:
        xp.copyto(halves, pairs)  # one pass apart into two contiguous runs, then compare those
        xp.greater(right, left, out=right_won)
        xp.maximum(left, right, out=row_max)
        split_rows()
        split_right()
        xp.greater(lower, upper, out=lower_won)
        xp.maximum(upper, lower, out=result)
        # The winning row's column: (upper right won and not lower) or (lower right won and lower),
        # two logical passes instead of a masked copy (copyto with where, about 4× slower here).
        xp.greater(upper_right, lower_won, out=column)  # True > False only
        xp.logical_and(lower_right, lower_won, out=both_right)
        xp.logical_or(column, both_right, out=column)
        xp.multiply(lower_won, 2, out=index)  # place u·2 + v
        xp.add(index, column, out=index)
        finish()
    return step


def _rows_apart(xp: Any, runs: Any, shape: tuple[int, ...]) -> tuple[Step, tuple[Any, Any]]:
    """The upper and lower rows of every 2×2 window of ``runs`` (flat, ``(batch, O, ph, 2, pw)``),
    as two arrays of ``shape`` ``(batch, O, ph, pw)``, and the step that fills them.

    With NumPy they are contiguous copies, each row of ``pw`` numbers moved as one opaque (void)
    item, so the comparisons after run along whole arrays instead of rows of ``pw`` numbers (5 on
    LeNet's second maps); elsewhere they are views of ``runs`` and the step does nothing.
    """
    pw = shape[-1]
    paired = runs.reshape(*shape[:-1], 2, pw)
    if getattr(xp, "__name__", "") != "numpy":
        return (lambda: None), (paired[..., 0, :], paired[..., 1, :])
    apart = xp.empty((2, *shape), runs.dtype)
    row = xp.dtype((xp.void, pw * runs.itemsize))
    source = runs.reshape(-1, 2, pw).view(row).reshape(-1, 2).T
    target = apart.reshape(2, -1, pw).view(row).reshape(2, -1)
    return (lambda: xp.copyto(target, source)), (apart[0], apart[1])


def conv_transpose(op: ops.ConvTranspose, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    delta, kernel, out = arrays[op.delta], arrays[op.kernel], arrays[op.out]
    batch, p, k, s = delta.shape[0], g.padding, g.kernel, g.stride
    hp, wp = g.height + 2 * p, g.width + 2 * p
    wide = g.out_height * wp  # positions of the wide grid
    reach = (k - 1) * wp + k - 1  # the largest tap offset on the padded maps
    # Each example's error row: the wide grid, then zeros, long enough that a tap's run spilling
    # past its row adds only zeros to the next, and that s·row holds the padded maps.
    row = max(wide - (-reach // s), -(-(hp * wp) // s))
    spread = xp.zeros((g.out_channels, batch, row), delta.dtype)  # channel-major over the batch
    grid = spread[:, :, :wide].reshape(g.out_channels, batch, g.out_height, wp)[:, :, :, :g.out_width]
    unpool = _unpooler(xp, g, delta, arrays[op.index] if op.index else None, grid.transpose(1, 0, 2, 3))
    errors = spread.reshape(g.out_channels, batch * row)
    matrix = kernel.reshape(g.out_channels, g.patch).T
    # The padded input maps, channel-major over the batch: (C, batch, s·row), then room for spills.
    flat = xp.empty(g.channels * batch * s * row + reach, delta.dtype)
    item = flat.itemsize
    # One GEMM over a chunk's examples (as many as BATCH_CHUNK_BYTES of columns allow), then col2im:
    # one add per tap over every channel and example of the chunk, each channel one long run.
    chunk = max(1, min(batch, BATCH_CHUNK_BYTES // (g.patch * row * delta.itemsize)))
    taps = xp.empty((g.patch, chunk * row), delta.dtype)
    jobs = []
    for start, stop in _chunks(batch, chunk):
        n = stop - start
        columns = taps[:, :n * row]
        per_tap = columns.reshape(g.channels, k * k, n * row)
        places = []
        for u in range(k):
            for v in range(k):
                first = flat[start * s * row + u * wp + v:]
                places.append((xp.lib.stride_tricks.as_strided(first, shape=(g.channels, n * row),
                                                               strides=(batch * s * row * item, s * item)),
                               per_tap[:, u * k + v]))
        jobs.append((errors[:, start * row:stop * row], columns, places))
    padded = flat[:g.channels * batch * s * row].reshape(g.channels, batch, s * row)[:, :, :hp * wp]
    inner = padded.reshape(g.channels, batch, hp, wp)[:, :, p:p + g.height, p:p + g.width].transpose(1, 0, 2, 3)
    maps = _maps(out, g.channels, g.height, g.width)

    def step() -> None:
        unpool()
        flat.fill(0)
        for error, columns, places in jobs:
            xp.matmul(matrix, error, out=columns)
            for place, tap in places:  # col2im: k² adds, one run of n·row numbers per channel each
                xp.add(place, tap, out=place)
        if op.accumulate:
            xp.add(maps, inner, out=maps)
        else:
            maps[...] = inner
    return step


def conv_weight_grad(op: ops.ConvWeightGrad, arrays: dict[str, Any], ctx: KernelContext) -> Step:
    xp, g = ctx.xp, op.geometry
    cols, delta, out = arrays[op.cols], arrays[op.delta], arrays[op.out]
    batch = delta.shape[0]
    # The unpooled error, channel-major over the batch: one GEMM over batch × positions.
    grid = xp.empty((g.out_channels, batch, g.out_height, g.out_width), delta.dtype)
    unpool = _unpooler(xp, g, delta, arrays[op.index] if op.index else None, grid.transpose(1, 0, 2, 3))
    left = grid.reshape(g.out_channels, batch * g.positions)
    right = cols.reshape(g.patch, batch * g.positions).T
    matrix = out.reshape(g.out_channels, g.patch)
    total = xp.empty_like(matrix)
    hold = _one_thread(xp) if g.out_channels * g.patch < THREADED_KERNEL else contextlib.nullcontext
    alpha, beta = op.alpha, op.beta

    def step() -> None:
        unpool()
        with hold():
            xp.matmul(left, right, out=total)
        if beta == 0.0:
            xp.multiply(total, alpha, out=matrix)
            return
        xp.multiply(total, alpha, out=total)
        if beta != 1.0:
            xp.multiply(matrix, beta, out=matrix)
        xp.add(matrix, total, out=matrix)
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
