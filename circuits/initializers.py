"""Weight initialisation schemes, drawn on the host from a named random stream."""

from __future__ import annotations

import numpy as np

from circuits.spec import InitSpec

__all__ = ["init_weight"]


def init_weight(init: InitSpec, shape: tuple[int, int], rng: np.random.Generator,
                dtype: str | np.dtype = "float64") -> np.ndarray:
    """Draw a weight of ``shape = (fan_in, fan_out)`` in ``dtype`` by ``init``'s scheme.

    xavier/glorot: ``U[±gain·√(6/(fan_in+fan_out))]``; xavier_normal: ``N(0, gain²·2/(fan_in+fan_out))``;
    he: ``N(0, gain²·2/fan_in)``; he_uniform: ``U[±gain·√(6/fan_in)]``; uniform: ``U[±scale]``;
    normal: ``N(0, std²)``; orthogonal: ``gain·Q`` from the QR factorisation of a Gaussian
    matrix; zeros.

    The numbers are drawn in ``dtype`` directly (NumPy's float32 generators for float32), so
    a float32 weight never passes through a float64 array twice its size; float64 draws are
    those of ``rng.uniform`` / ``rng.normal``.
    """
    dtype = np.dtype(dtype)
    fan_in, fan_out = shape
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
        q, r = np.linalg.qr(rng.standard_normal((big, small), dtype=dtype))
        q *= np.sign(np.diag(r))
        q *= dtype.type(init.gain)
        return q if shape[0] >= shape[1] else q.T
    if scheme == "zeros":
        return np.zeros(shape, dtype)
    raise ValueError(f"unknown init scheme '{scheme}'")


def _uniform(rng: np.random.Generator, limit: float, shape: tuple[int, ...],
             dtype: np.dtype) -> np.ndarray:
    """``U[-limit, limit]`` in ``dtype``: ``-limit + 2·limit·u`` as ``rng.uniform`` computes it."""
    if dtype == np.float64:
        return rng.uniform(-limit, limit, shape)
    draw = rng.random(shape, dtype=dtype)
    draw *= dtype.type(2.0 * limit)
    draw += dtype.type(-limit)
    return draw


def _normal(rng: np.random.Generator, std: float, shape: tuple[int, ...],
            dtype: np.dtype) -> np.ndarray:
    """``N(0, std²)`` in ``dtype``."""
    if dtype == np.float64:
        return rng.normal(0.0, std, shape)
    draw = rng.standard_normal(shape, dtype=dtype)
    draw *= dtype.type(std)
    return draw
