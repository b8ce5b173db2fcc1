"""Ops of topographic projections: im2col, the conv GEMM, pooling, and their backward passes.

Activity buffers stay flat, ``(batch, C·H·W)`` in channel-major order, so every elementwise op
works on feature maps unchanged; these ops view them as ``(batch, C, H, W)``. A convolution is
lowered to one strided copy (im2col, :class:`Im2Col`) and a GEMM (:class:`ConvGemm`),
or both in one op (:class:`Conv`, which the builder emits); its backward pass is the transposed
convolution (:class:`ConvTranspose`: a GEMM, then col2im) and its weight gradient one GEMM
over the saved columns of the whole batch (:class:`ConvWeightGrad`). Both
backward ops take the error at the *pooled* maps and undo the pooling first
(``unpool``: each window's error goes to the place of its max, saved by :class:`Pool` in
``index``, or is spread evenly, ``/ size²``, for average pooling).

Conventions (``W`` is the kernel ``(O, C, k, k)``, ``s`` the stride, ``p`` the padding,
``pad(x)`` is ``x`` with ``p`` zeros on every border)::

    cols[(c, u, v), b, (i, j)] = pad(x)[b, c, s·i + u, s·j + v]
    conv[b, o, i, j]            = Σ_{c,u,v} W[o, c, u, v] · cols[(c, u, v), b, (i, j)]

(the columns are ``(patch, batch, positions)``, :meth:`ConvGeometry.cols_shape`: one row per
kernel tap over every example's positions, so that one GEMM ``W @ cols`` can take many
examples at once, and ``W @ cols[:, b]`` one example's channel-major maps, as the activity
buffers hold them).
"""

from __future__ import annotations

import attrs

from circuits.ir import Op, access
from circuits.ops.basic import Shapes, check_same

__all__ = ["ConvGeometry", "Im2Col", "ConvGemm", "Conv", "Pool", "ConvTranspose", "ConvWeightGrad", "Sign"]


@attrs.frozen
class ConvGeometry:
    """Shapes of one conv (then pool) projection: ``C×H×W`` maps in, ``O`` maps out."""

    channels: int
    height: int
    width: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: str = ""
    """``"max"``, ``"avg"`` or ``""`` (no pooling)."""
    pool_size: int = 1

    @property
    def out_height(self) -> int:
        """Rows of the convolution's output maps (before pooling)."""
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        """Columns of the convolution's output maps (before pooling)."""
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def positions(self) -> int:
        """Kernel positions per map, ``out_height · out_width``."""
        return self.out_height * self.out_width

    @property
    def patch(self) -> int:
        """Numbers in one column, ``C · k · k``."""
        return self.channels * self.kernel * self.kernel

    def cols_shape(self, batch: int | str) -> tuple[int | str, ...]:
        """The im2col columns of ``batch`` examples, ``(patch, batch, positions)``: patch-major,
        so that a GEMM can run over the positions of many examples at once."""
        return (self.patch, batch, self.positions)

    @property
    def in_size(self) -> int:
        """Units of the source, ``C · H · W``."""
        return self.channels * self.height * self.width

    @property
    def conv_size(self) -> int:
        """Units of the convolution's output, ``O · out_height · out_width``."""
        return self.out_channels * self.positions

    @property
    def out_size(self) -> int:
        """Units after pooling."""
        return self.conv_size // (self.pool_size * self.pool_size) if self.pool else self.conv_size

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """``(O, C, k, k)``."""
        return (self.out_channels, self.channels, self.kernel, self.kernel)

    def text(self) -> str:
        """``5×5/1 pad 2`` for op descriptions."""
        return f"{self.kernel}×{self.kernel}/{self.stride} pad {self.padding}"


def _check(op: Op, shapes: Shapes, name: str, want: tuple[int, ...]) -> None:
    if tuple(shapes[name][1:]) != want:
        raise op.fail(f"'{name}' has shape {shapes[name]}, the geometry needs (batch, {', '.join(map(str, want))})")


def _check_cols(op: Op, shapes: Shapes, name: str, geometry: ConvGeometry) -> None:
    shape = tuple(shapes[name])
    if len(shape) != 3 or (shape[0], shape[2]) != (geometry.patch, geometry.positions):
        raise op.fail(f"'{name}' has shape {shapes[name]}, the geometry needs "
                      f"({geometry.patch}, batch, {geometry.positions})")


def _gemm_text(out: str, weight: str, cols: str, accumulate: bool) -> str:
    return f"{out} {'+=' if accumulate else '='} {weight} @ {cols} (GEMM)"


def _check_kernel(op: Op, shapes: Shapes, weight: str, geometry: ConvGeometry) -> None:
    if tuple(shapes[weight]) != geometry.kernel_shape:
        raise op.fail(f"kernel '{weight}' has shape {shapes[weight]}, not {geometry.kernel_shape}")


def _unpooled(op: ConvTranspose | ConvWeightGrad) -> str:
    g = op.geometry
    if not g.pool:
        return op.delta
    return f"unpool{g.pool_size}({op.delta}{', ' + op.index if op.index else ''})"


@attrs.frozen
class Im2Col(Op):
    """Implements ``cols[(c, u, v), b, (i, j)] = pad(x)[b, c, s·i + u, s·j + v]`` (one strided copy)."""

    x: str
    cols: str
    geometry: ConvGeometry

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.cols,), reads=(self.x,))

    def math(self) -> str:
        return f"{self.cols} = im2col({self.x}, {self.geometry.text()})"

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check(self, shapes, self.x, (g.in_size,))
        _check_cols(self, shapes, self.cols, g)


@attrs.frozen
class ConvGemm(Op):
    """Implements ``out[b, o, i, j] (+)= Σ_{c,u,v} W[o, c, u, v] · cols[(c, u, v), b, (i, j)]`` (GEMM)."""

    cols: str
    weight: str
    out: str
    geometry: ConvGeometry
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        target = (self.out,)
        return access(sets=() if self.accumulate else target, incs=target if self.accumulate else (),
                      reads=(self.cols, self.weight))

    def math(self) -> str:
        return _gemm_text(self.out, self.weight, self.cols, self.accumulate)

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check_cols(self, shapes, self.cols, g)
        _check(self, shapes, self.out, (g.conv_size,))
        _check_kernel(self, shapes, self.weight, g)


@attrs.frozen
class Conv(Op):
    """Implements :class:`Im2Col` then :class:`ConvGemm` as one op: ``cols = im2col(x)``, then
    ``out (+)= W @ cols``, a chunk of examples at a time, so that each GEMM reads columns just
    written, from cache (the columns stay, for the kernel gradient)."""

    x: str
    cols: str
    weight: str
    out: str
    geometry: ConvGeometry
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        target = (self.out,)
        return access(sets=(self.cols, *(() if self.accumulate else target)),
                      incs=target if self.accumulate else (), reads=(self.x, self.weight))

    def math(self) -> str:
        return (f"{self.cols} = im2col({self.x}, {self.geometry.text()}); "
                + _gemm_text(self.out, self.weight, self.cols, self.accumulate))

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check(self, shapes, self.x, (g.in_size,))
        _check_cols(self, shapes, self.cols, g)
        _check(self, shapes, self.out, (g.conv_size,))
        _check_kernel(self, shapes, self.weight, g)


@attrs.frozen
class Pool(Op):
    """Implements ``out (+)= max (or mean) of x over non-overlapping size×size windows``;
    max pooling writes each window's winner (0 … size²−1, row-major) into ``index``."""

    x: str
    out: str
    index: str
    geometry: ConvGeometry
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        target = (self.out,)
        return access(sets=(*(() if self.accumulate else target), *((self.index,) if self.index else ())),
                      incs=target if self.accumulate else (), reads=(self.x,))

    def math(self) -> str:
        g = self.geometry
        where = f" (argmax → {self.index})" if self.index else ""
        return f"{self.out} {'+=' if self.accumulate else '='} {g.pool}pool{g.pool_size}({self.x}){where}"

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check(self, shapes, self.x, (g.conv_size,))
        _check(self, shapes, self.out, (g.out_size,))
        if self.index:
            _check(self, shapes, self.index, (g.out_size,))


@attrs.frozen
class ConvTranspose(Op):
    """Implements ``out[b, c, y, x] (+)= Σ_{o,i,j: s·i+u−p = y, s·j+v−p = x} delta[b, o, i, j] · K[o, c, u, v]``,
    the transposed convolution (one GEMM ``delta @ K`` into columns, then col2im)."""

    delta: str
    index: str
    kernel: str
    out: str
    geometry: ConvGeometry
    accumulate: bool = False

    def access(self) -> dict[str, tuple[str, ...]]:
        target = (self.out,)
        return access(sets=() if self.accumulate else target, incs=target if self.accumulate else (),
                      reads=(self.delta, self.kernel, *((self.index,) if self.index else ())))

    def math(self) -> str:
        return (f"{self.out} {'+=' if self.accumulate else '='} conv_transpose({_unpooled(self)}, {self.kernel}, "
                f"{self.geometry.text()}) (GEMM + col2im)")

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check(self, shapes, self.delta, (g.out_size,))
        _check(self, shapes, self.out, (g.in_size,))
        _check_kernel(self, shapes, self.kernel, g)


@attrs.frozen
class ConvWeightGrad(Op):
    """Implements ``out = beta · out + alpha · Σ_b Σ_{i,j} delta[b, o, i, j] · cols[(c, u, v), b, (i, j)]``
    (one GEMM over batch × positions, after unpooling ``delta``; the kernel gradient when
    ``delta`` is ∂loss/∂(pooled conv))."""

    cols: str
    delta: str
    index: str
    out: str
    geometry: ConvGeometry
    alpha: float = 1.0
    beta: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        reads = (self.cols, self.delta, *((self.index,) if self.index else ()))
        if self.beta == 0.0:
            return access(sets=(self.out,), reads=reads)
        return access(updates=(self.out,), reads=reads)

    def math(self) -> str:
        keep = "" if self.beta == 0.0 else (f"{self.out} + " if self.beta == 1.0 else f"{self.beta:g}·{self.out} + ")
        return f"{self.out} = {keep}{self.alpha:g}·Σ_b {_unpooled(self)} @ {self.cols}ᵀ (GEMM)"

    def check(self, shapes: Shapes) -> None:
        g = self.geometry
        _check_cols(self, shapes, self.cols, g)
        _check(self, shapes, self.delta, (g.out_size,))
        if tuple(shapes[self.out]) != g.kernel_shape:
            raise self.fail(f"'{self.out}' has shape {shapes[self.out]}, not the kernel's {g.kernel_shape}")


@attrs.frozen
class Sign(Op):
    """Implements ``out = scale · sign(a)`` (elementwise; the feedback of sign symmetry)."""

    a: str
    out: str
    scale: float = 1.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.a,))

    def math(self) -> str:
        return f"{self.out} = {'' if self.scale == 1.0 else f'{self.scale:g}·'}sign({self.a})"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.a, self.out)
