"""Topographic circuits: population shapes, convolution and pooling of projections.

A population may be a sheet of feature maps, ``shape = [channels, height, width]`` (or
``[height, width]`` for one channel); its ``size`` is their product and its activity is stored
flat, channel by channel, row by row (C, H, W order: a dense projection out of it sees the
flattened maps). A projection between two shaped populations may convolve,
``conv = { kernel = 5, stride = 1, padding = 2 }``, with a weight of shape
``(out_channels, in_channels, kernel, kernel)``, and then pool,
``pool = { kind = "max" | "avg", size = 2 }`` (non-overlapping windows, stride = size). The
output shape of conv then pool must be the target's shape.

This module holds the spec's data classes and readers for these keys and the geometry
arithmetic; it sits beside :mod:`circuits.schema`, below :mod:`circuits.spec`.
"""

from __future__ import annotations

from typing import Any

import attrs

from circuits.schema import Param, TableReader, describe_value

__all__ = ["ConvSpec", "PoolSpec", "POOL_KINDS", "read_shape", "read_conv", "read_pool",
           "channels_first", "conv_output", "pool_output", "format_shape"]

POOL_KINDS = ("max", "avg")


@attrs.frozen
class ConvSpec:
    """A square convolution: kernel side, stride and zero padding (on every border)."""

    kernel: int
    stride: int = 1
    padding: int = 0


@attrs.frozen
class PoolSpec:
    """Non-overlapping ``size × size`` pooling (stride = size) of the convolution's output."""

    kind: str = "max"
    size: int = 2


def format_shape(shape: tuple[int, ...]) -> str:
    """``[6, 14, 14]``, the way a spec writes a shape."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def channels_first(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of a population shape (``[H, W]`` has one channel)."""
    return (1, *shape) if len(shape) == 2 else (shape[0], shape[1], shape[2])


def conv_output(shape: tuple[int, ...], conv: ConvSpec) -> tuple[int, int] | None:
    """Height and width after ``conv`` over a ``shape`` population (None: the kernel does not fit)."""
    _, height, width = channels_first(shape)
    sides = [(side + 2 * conv.padding - conv.kernel) for side in (height, width)]
    if min(sides) < 0:
        return None
    return sides[0] // conv.stride + 1, sides[1] // conv.stride + 1


def pool_output(hw: tuple[int, int], pool: PoolSpec | None) -> tuple[int, int] | None:
    """Height and width after ``pool`` (None: ``pool.size`` does not divide them)."""
    if pool is None:
        return hw
    if hw[0] % pool.size or hw[1] % pool.size:
        return None
    return hw[0] // pool.size, hw[1] // pool.size


def read_shape(reader: TableReader) -> tuple[int, ...] | None:
    """The optional ``shape = [C, H, W]`` (or ``[H, W]``) of a population."""
    value = reader.raw("shape")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) not in (2, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value)):
        raise reader.error("must be [channels, height, width] or [height, width], integers >= 1 "
                           f"(got {describe_value(value) if not isinstance(value, list) else value})",
                           key="shape")
    return tuple(value)


def read_conv(reader: TableReader) -> ConvSpec | None:
    """The optional ``conv = { kernel, stride, padding }`` of a projection."""
    value = reader.raw("conv")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"kernel": value}
    sub = TableReader(value, reader.where("conv"), reader.source)
    kernel = sub.get(Param("kernel", 3, "side of the square kernel", minimum=1), required=True)
    stride = sub.get(Param("stride", 1, "step between kernel positions", minimum=1))
    padding = sub.get(Param("padding", 0, "zeros added on every border", minimum=0))
    sub.finish(["kernel", "stride", "padding"])
    if padding >= kernel:
        raise sub.error(f"must be less than the kernel ({kernel}) (got {padding})", key="padding")
    return ConvSpec(kernel=kernel, stride=stride, padding=padding)


def read_pool(reader: TableReader) -> PoolSpec | None:
    """The optional ``pool = { kind, size }`` of a projection."""
    value: Any = reader.raw("pool")
    if value is None:
        return None
    sub = TableReader(value, reader.where("pool"), reader.source)
    kind = sub.get(Param("kind", "max", "max or avg pooling", choices=POOL_KINDS))
    size = sub.get(Param("size", 2, "side of the pooling window (and its stride)", minimum=1))
    sub.finish(["kind", "size"])
    return PoolSpec(kind=kind, size=size)
