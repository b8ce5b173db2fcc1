"""Weight initialisation schemes, drawn on the host from a named random stream."""

from __future__ import annotations

import numpy as np

from circuits.spec import InitSpec

__all__ = ["init_weight"]


def init_weight(init: InitSpec, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Draw a weight of ``shape = (fan_in, fan_out)`` (float64) by ``init``'s scheme.

    xavier/glorot: ``U[±gain·√(6/(fan_in+fan_out))]``; xavier_normal: ``N(0, gain²·2/(fan_in+fan_out))``;
    he: ``N(0, gain²·2/fan_in)``; he_uniform: ``U[±gain·√(6/fan_in)]``; uniform: ``U[±scale]``;
    normal: ``N(0, std²)``; orthogonal: ``gain·Q`` from the QR factorisation of a Gaussian
    matrix; zeros.
    """
    fan_in, fan_out = shape
    scheme = init.scheme
    if scheme in ("xavier", "glorot"):
        limit = init.gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if scheme in ("xavier_normal", "glorot_normal"):
        return rng.normal(0.0, init.gain * np.sqrt(2.0 / (fan_in + fan_out)), shape)
    if scheme == "he":
        return rng.normal(0.0, init.gain * np.sqrt(2.0 / fan_in), shape)
    if scheme == "he_uniform":
        limit = init.gain * np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, shape)
    if scheme == "uniform":
        return rng.uniform(-init.scale, init.scale, shape)
    if scheme == "normal":
        return rng.normal(0.0, init.std, shape)
    if scheme == "orthogonal":
        big, small = max(shape), min(shape)
        q, r = np.linalg.qr(rng.standard_normal((big, small)))
        q = q * np.sign(np.diag(r))
        return init.gain * (q if shape[0] >= shape[1] else q.T)
    if scheme == "zeros":
        return np.zeros(shape)
    raise ValueError(f"unknown init scheme '{scheme}'")
