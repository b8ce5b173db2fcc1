"""Lowering of conv (and pooled) projections, used by the builder and by rules.

A forward conv projection ``h→C`` becomes, in the pass that drives ``C``::

    h->C.cols = im2col(h.rate)                  one strided copy   } one op (Conv), a chunk
    h->C.conv = h->C.weight @ h->C.cols         GEMM               } of examples at a time
                                                (into C.pre when unpooled)
    C.pre     = pool(h->C.conv)                 max pooling also saves h->C.argmax

An error ``C.delta`` goes back down a kernel ``K`` (the forward weight for backprop, a fixed
random kernel of the same shape for feedback alignment, its sign for sign symmetry) as the
transposed convolution of the unpooled error, and the kernel learns
``Σ_b unpool(C.delta) @ h->C.colsᵀ``. Max pooling routes errors through the *forward* pass's
winners, whatever carries them back: it is part of the forward computation, like ``f'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuits import ops
from circuits.graph import CircuitGraph
from circuits.ir import BATCH
from circuits.shapes import channels_first
from circuits.spec import ProjectionSpec

if TYPE_CHECKING:  # annotations only: the builder imports this module
    from circuits.compile.builder import Builder

__all__ = ["geometry", "kernel_shape", "drive", "send_back", "learn_kernel", "carrier_projection"]


def geometry(graph: CircuitGraph, proj: ProjectionSpec) -> ops.ConvGeometry:
    """The geometry of the forward conv projection ``proj``."""
    channels, height, width = channels_first(graph.population(proj.source).shape)
    pool = proj.pool
    return ops.ConvGeometry(channels=channels, height=height, width=width,
                            out_channels=channels_first(graph.population(proj.target).shape)[0],
                            kernel=proj.conv.kernel, stride=proj.conv.stride, padding=proj.conv.padding,
                            pool=pool.kind if pool else "", pool_size=pool.size if pool else 1)


def kernel_shape(graph: CircuitGraph, proj: ProjectionSpec) -> tuple[int, ...] | None:
    """``(O, C, k, k)`` when ``proj``'s weight is a kernel (a conv projection or its feedback)."""
    forward = graph.kernel_of(proj)
    return None if forward is None else geometry(graph, forward).kernel_shape


def drive(b: Builder, phase: str, proj: ProjectionSpec, source: str, out: str, *,
          accumulate: bool, tag: str = "", weight: str | None = None) -> None:
    """``out (+)= source`` through ``proj``: a GEMM for a dense projection, conv (+ pool) otherwise.

    ``tag`` suffixes the conv's own buffers, for a second pass over the same projection
    (the perturbed pass of node perturbation writes ``h->C.cols~``); ``weight`` replaces the
    projection's weight buffer (a perturbed copy).
    """
    weight = weight or b.weight(proj)
    if proj.conv is None:
        b.emit(phase, ops.MatMul(source, weight, out, accumulate=accumulate))
        return
    g = geometry(b.graph, proj)
    cols = b.add_buffer(f"{proj.name}.cols{tag}", g.cols_shape(BATCH), "temp",
                        doc="im2col of the source maps")
    if not g.pool:
        b.emit(phase, ops.Conv(source, cols, weight, out, g, accumulate=accumulate))
        return
    conv = b.add_buffer(f"{proj.name}.conv{tag}", (BATCH, g.conv_size), "temp", doc="conv output before pooling")
    index = b.add_buffer(f"{proj.name}.argmax{tag}", (BATCH, g.out_size), "temp", dtype="int64",
                         doc="winner of each pooling window") if g.pool == "max" else ""
    b.emit(phase, ops.Conv(source, cols, weight, conv, g),
           ops.Pool(conv, out, index, g, accumulate=accumulate))


def _index(b: Builder, proj: ProjectionSpec, g: ops.ConvGeometry, tag: str = "") -> str:
    return f"{proj.name}.argmax{tag}" if g.pool == "max" else ""


def send_back(b: Builder, phase: str, proj: ProjectionSpec, kernel: str, delta: str, out: str, *,
              accumulate: bool) -> None:
    """``out (+)= conv_transpose(unpool(delta), kernel)`` for the forward conv projection ``proj``."""
    g = geometry(b.graph, proj)
    b.emit(phase, ops.ConvTranspose(delta, _index(b, proj, g), kernel, out, g, accumulate=accumulate))


def learn_kernel(b: Builder, param: str, proj: ProjectionSpec, delta: str, sign: float = 1.0) -> None:
    """Add ``sign · Σ_b unpool(delta) @ proj.colsᵀ`` (the clean pass's columns) to ∂loss/∂``param``.

    ``param`` is ``proj``'s own kernel or a feedback kernel of the same shape (Kolen–Pollack).
    """
    g = geometry(b.graph, proj)
    cols, index = f"{proj.name}.cols", _index(b, proj, g)
    b.learn_op(param, lambda out, alpha, beta: ops.ConvWeightGrad(cols, delta, index, out, g,
                                                                  alpha=alpha * sign, beta=beta))


def carrier_projection(graph: CircuitGraph, pop: str, source: str) -> ProjectionSpec:
    """The forward conv projection ``pop→source`` whose kernel a carrier from ``source`` uses."""
    for proj in graph.outgoing(pop):
        if proj.target == source and proj.conv is not None:
            return proj
    raise KeyError(f"{pop}->{source}")
