"""Weight initialisation schemes, drawn on the host from a named random stream."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from circuits.spec import InitSpec

__all__ = ["init_weight"]


def init_weight(init: InitSpec, shape: tuple[int, ...], rng: np.random.Generator,
                dtype: str | np.dtype = "float64", *, fans: tuple[int, int] | None = None) -> np.ndarray:
    """Draw a weight of ``shape = (fan_in, fan_out)`` in ``dtype`` by ``init``'s scheme.

    A conv kernel ``(O, C, k, k)`` has ``fan_in = C·k²`` and ``fan_out = O·k²``; it is drawn as
    the ``(O, C·k²)`` matrix with those fans (orthogonal: its rows or columns orthonormal).

    xavier/glorot: ``U[±gain·√(6/(fan_in+fan_out))]``; xavier_normal: ``N(0, gain²·2/(fan_in+fan_out))``;
    he: ``N(0, gain²·2/fan_in)``; he_uniform: ``U[±gain·√(6/fan_in)]``; uniform: ``U[±scale]``;
    normal: ``N(0, std²)``; orthogonal: ``gain·Q`` from the QR factorisation of a Gaussian
    matrix; zeros.

    The result is allocated in ``dtype``; a float32 weight is filled block by block from
    float64 draws of at most ``_BLOCK`` numbers, so it never passes through a float64 array of
    its own size, and its numbers are exactly the float32 rounding of the float64 draws (NumPy's
    generators fill arrays element by element, so drawing in blocks consumes the stream as one
    call would). This keeps every float32 run's numbers those of earlier releases.
    """
    dtype = np.dtype(dtype)
    if len(shape) == 4:
        taps = shape[2] * shape[3]
        matrix = init_weight(init, (shape[0], shape[1] * taps), rng, dtype, fans=(shape[1] * taps, shape[0] * taps))
        return matrix.reshape(shape)
    fan_in, fan_out = fans or shape
    scheme = init.scheme
    if scheme in ("xavier", "glorot"):
        return _uniform(rng, init.gain * np.sqrt(6.0 / (fan_in + fan_out)), shape, dtype)
    if scheme in ("xavier_normal", "glorot_normal"):
        return _normal(rng, init.gain * np.sqrt(2.0 / (fan_in + fan_out)), shape, dtype)
    if scheme == "he":
        return _normal(rng, init.gain * np.sqrt(2.0 / fan_in), shape, dtype)
    if scheme == "he_uniform":
        return _uniform(rng, init.gain * np.sqrt(6.0 / fan_in), shape, dtype)
    if scheme == "uniform":
        return _uniform(rng, init.scale, shape, dtype)
    if scheme == "normal":
        return _normal(rng, init.std, shape, dtype)
    if scheme == "orthogonal":
        big, small = max(shape), min(shape)
        # QR needs the whole Gaussian matrix at once; it is factorised in float64
        q, r = np.linalg.qr(rng.standard_normal((big, small)))
        q *= np.sign(np.diag(r)) * init.gain
        return (q if shape[0] >= shape[1] else q.T).astype(dtype, copy=False)
    if scheme == "zeros":
        return np.zeros(shape, dtype)
    raise ValueError(f"unknown init scheme '{scheme}'")


_BLOCK = 1 << 16
"""Most float64 numbers drawn at once while filling a narrower weight (512 KiB of scratch)."""


def _draw(fill: Callable[[tuple[int, ...]], np.ndarray], shape: tuple[int, int],
          dtype: np.dtype) -> np.ndarray:
    """``fill(shape)`` (float64) cast to ``dtype``, drawn in row blocks when ``dtype`` is narrower."""
    if dtype == np.float64:
        return fill(shape)
    out = np.empty(shape, dtype)
    rows = max(1, _BLOCK // max(1, shape[1]))
    for start in range(0, shape[0], rows):
        stop = min(shape[0], start + rows)
        out[start:stop] = fill((stop - start, shape[1]))
    return out


def _uniform(rng: np.random.Generator, limit: float, shape: tuple[int, int],
             dtype: np.dtype) -> np.ndarray:
    """``U[-limit, limit]`` in ``dtype``."""
    return _draw(lambda size: rng.uniform(-limit, limit, size), shape, dtype)


def _normal(rng: np.random.Generator, std: float, shape: tuple[int, int],
            dtype: np.dtype) -> np.ndarray:
    """``N(0, std²)`` in ``dtype``."""
    return _draw(lambda size: rng.normal(0.0, std, size), shape, dtype)
