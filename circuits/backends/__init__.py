"""Array backends: NumPy (the reference) and CuPy (GPU).

A :class:`Backend` owns an array module, a kernel table and the random streams; it turns a
program's ops into step closures over arrays it allocated. Nothing moves between devices
unless :meth:`Backend.to_numpy` or :meth:`Backend.from_numpy` is called.

The backend remembers every generator it hands to a kernel, under a key made of the owner
(the program and batch size asking) and the stream name, so a checkpoint can save their
states (:meth:`Backend.stream_states`) and a resumed run restore them
(:meth:`Backend.restore_streams`), even for generators not created yet.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from circuits.backends.cupy_backend import cupy_kernels, import_cupy
from circuits.backends.kernels import KernelContext, KernelTable, Step
from circuits.backends.numpy_backend import numpy_kernels
from circuits.errors import BackendError
from circuits.ir import Op

__all__ = ["Backend", "get_backend", "stream_seed", "BACKENDS"]

BACKENDS = ("numpy", "cupy")


def stream_seed(seed: int, name: str) -> list[int]:
    """Seed material for the random stream called ``name`` in a run seeded ``seed``.

    Derived from the name's SHA-256 (not Python's salted ``hash``), so a stream does not
    depend on the order in which anything was declared.
    """
    digest = hashlib.sha256(name.encode()).digest()
    return [seed, int.from_bytes(digest[:8], "little")]


class Backend:
    """An array module with its kernels.

    Parameters
    ----------
    name
        ``numpy`` or ``cupy``.
    xp
        The array module.
    kernels
        Op type → kernel factory.
    seed
        The run seed, from which every random stream derives.
    """

    def __init__(self, name: str, xp: Any, kernels: KernelTable, seed: int) -> None:
        self.name = name
        self.xp = xp
        self.kernels = kernels
        self.seed = seed
        self.streams: dict[str, Any] = {}
        """Key (``owner|stream``, ``#2``… for repeats) → every generator handed out, in order."""
        self._pending: dict[str, Any] = {}

    def rng(self, stream: str, *, owner: str = "") -> Any:
        """A fresh generator for the stream called ``stream``, remembered under ``owner``.

        Each generator starts from the stream's seed; which owner asked only names it for
        :meth:`stream_states`.
        """
        if self.name == "numpy":
            generator = np.random.default_rng(stream_seed(self.seed, stream))
        else:
            seed = int(np.random.SeedSequence(stream_seed(self.seed, stream)).generate_state(1)[0])
            generator = self.xp.random.default_rng(seed)
        key, number = f"{owner}|{stream}", 1
        while key in self.streams:
            number += 1
            key = f"{owner}|{stream}#{number}"
        if key in self._pending:
            self._set_state(generator, self._pending.pop(key))
        self.streams[key] = generator
        return generator

    def stream_states(self) -> dict[str, Any] | None:
        """Every remembered generator's state (JSON-serialisable), or ``None`` on CuPy.

        CuPy's generators keep their state on the device without a portable form, so a CuPy
        run resumes with fresh random streams (not bit for bit; see the README).
        """
        if self.name != "numpy":
            return None
        return {key: generator.bit_generator.state for key, generator in self.streams.items()}

    def restore_streams(self, states: dict[str, Any]) -> None:
        """Set remembered generators to ``states``; the others get theirs when created."""
        for key, state in states.items():
            if key in self.streams:
                self._set_state(self.streams[key], state)
            else:
                self._pending[key] = state

    def _set_state(self, generator: Any, state: Any) -> None:
        if self.name == "numpy":
            generator.bit_generator.state = state

    def step(self, op: Op, arrays: dict[str, Any], *, owner: str = "") -> Step:
        """The step closure of ``op`` over ``arrays``; its generators are remembered under ``owner``."""
        def rng(stream: str) -> Any:
            return self.rng(stream, owner=owner)
        return self.kernels.build(op, arrays, KernelContext(xp=self.xp, rng=rng))

    def empty(self, shape: tuple[int, ...], dtype: str) -> Any:
        """Zero-filled array on this backend."""
        return self.xp.zeros(shape, dtype=dtype)

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """Copy a host array onto this backend."""
        return self.xp.asarray(array, dtype=dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this backend to the host (no copy for NumPy)."""
        return array if self.name == "numpy" else self.xp.asnumpy(array)


def get_backend(name: str, seed: int) -> Backend:
    """The backend called ``name``.

    Raises
    ------
    BackendError
        For an unknown name, or ``cupy`` without CuPy or without a GPU.
    """
    if name == "numpy":
        return Backend("numpy", np, numpy_kernels(), seed)
    if name == "cupy":
        return Backend("cupy", import_cupy(), cupy_kernels(), seed)
    raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
