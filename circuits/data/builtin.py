"""The built-in data sets: digits, MNIST, Fashion-MNIST and the small synthetic tasks."""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from circuits.data.registry import Dataset, DatasetInfo, DatasetRegistry, _require
from circuits.idx import read_idx_split

__all__ = ["register_builtin"]


def _load_idx_set(name: str, *, seed: int, data_dir: pathlib.Path | None,
                  download: bool) -> Dataset:
    """The official 60k/10k split of ``name`` in file order, images flattened to 784 features.

    ``seed`` is unused; :func:`circuits.idx.read_idx_split` says where the files are looked
    for and how they are checked.
    """
    x_train, y_train, x_test, y_test = read_idx_split(name, data_dir=data_dir, download=download)
    return Dataset(name, "classification", x_train.reshape(-1, 784), y_train,
                   x_test.reshape(-1, 784), y_test, 10)


def _load_digits(*, seed: int, test_fraction: float, **_location: object) -> Dataset:
    """scikit-learn's 8x8 digits, split per class: ``round(test_fraction * count)`` to test."""
    _require(0.0 < test_fraction < 1.0, "digits",
             f"option 'test_fraction' must be in (0, 1) (got {test_fraction})")
    from sklearn.datasets import load_digits  # here, not at the top: sklearn is slow to import

    bunch = load_digits()
    x, y = np.asarray(bunch.data), np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train, test = (rng.permutation(np.concatenate(parts)) for parts in (train_parts, test_parts))
    return Dataset("digits", "classification", x[train], y[train], x[test], y[test], 10)


def _check_sizes(name: str, **sizes: int | None) -> None:
    for key, value in sizes.items():
        least = 4 if key == "n" else 1  # n // 4 test examples must not be empty
        _require(value is None or value >= least, name,
                 f"option '{key}' must be >= {least} (got {value})")


def _load_xor(*, seed: int, n: int, noise: float, **_location: object) -> Dataset:
    """Implements ``x = s + noise·ε``, ``y = [s₀ ≠ s₁]`` for corners ``s ∈ {±1}²``, ε ~ N(0, I).

    Draws from ``default_rng(seed)``: train (``n``) then test (``n // 4``), each s then ε.
    """
    _check_sizes("xor", n=n)
    _require(noise >= 0.0, "xor", f"option 'noise' must be >= 0 (got {noise})")
    rng = np.random.default_rng(seed)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        corners = rng.choice(np.array([-1.0, 1.0]), size=(count, 2))
        x = corners + noise * rng.standard_normal((count, 2))
        return x, (corners[:, 0] != corners[:, 1]).astype(np.int64)

    (x_train, y_train), (x_test, y_test) = draw(n), draw(n // 4)
    return Dataset("xor", "classification", x_train, y_train, x_test, y_test, 2)


def _load_parity(*, seed: int, n: int, bits: int, **_location: object) -> Dataset:
    """Implements ``y = (number of +1 entries of x) mod 2``, ``x`` uniform on ``{±1}^bits``.

    Sampled with replacement from ``default_rng(seed)``: ``n`` train, then ``n // 4`` test.
    """
    _check_sizes("parity", n=n, bits=bits)
    rng = np.random.default_rng(seed)
    x_train, x_test = (rng.choice(np.array([-1.0, 1.0]), size=(m, bits)) for m in (n, n // 4))
    y_train, y_test = (((x > 0).sum(axis=1) % 2).astype(np.int64) for x in (x_train, x_test))
    return Dataset("parity", "classification", x_train, y_train, x_test, y_test, 2)


def _load_teacher(name: str, *, seed: int, n: int, n_in: int, n_out: int, noise: float,
                  n_hidden: int | None = None, **_location: object) -> Dataset:
    """Implements ``y = x @ T + noise·ε``, or ``tanh(x @ T₁) @ T₂ + noise·ε`` given ``n_hidden``.

    Draws from ``default_rng(seed)``: ``T ~ N(0, 1/n_in)`` (or ``T₁ ~ N(0, 1/n_in)`` then
    ``T₂ ~ N(0, 1/n_hidden)``); then train, then test, each ``x ~ N(0, I)`` then ``ε ~ N(0, I)``.
    """
    _check_sizes(name, n=n, n_in=n_in, n_out=n_out, n_hidden=n_hidden)
    _require(noise >= 0.0, name, f"option 'noise' must be >= 0 (got {noise})")
    rng = np.random.default_rng(seed)
    widths = [n_in, n_out] if n_hidden is None else [n_in, n_hidden, n_out]
    teacher = [rng.normal(0.0, 1.0 / np.sqrt(a), (a, b)) for a, b in zip(widths, widths[1:])]

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((count, n_in))
        y = x @ teacher[0] if n_hidden is None else np.tanh(x @ teacher[0]) @ teacher[1]
        return x, y + noise * rng.standard_normal((count, n_out))

    (x_train, y_train), (x_test, y_test) = draw(n), draw(n // 4)
    return Dataset(name, "regression", x_train, y_train, x_test, y_test, n_out)


def _drawn(n: int) -> int:
    """Examples a synthetic set draws: ``n`` to train, ``n // 4`` to test."""
    return int(n) + int(n) // 4


def register_builtin(registry: DatasetRegistry) -> None:
    """Add the built-in data sets to ``registry``."""
    registry.register(DatasetInfo(
        "digits", "classification", "scikit-learn's 8x8 digits (1797 images), stratified split",
        {"test_fraction": 0.2}, n_features=64, n_outputs=10, pixel_max=16.0,
        sizes=lambda o: (1797, 64, 8)), _load_digits)
    registry.register(DatasetInfo(
        "mnist", "classification", "MNIST handwritten digits, 28x28, official 60k/10k split",
        {}, n_features=784, n_outputs=10, pixel_max=255.0, sizes=lambda o: (70000, 784, 1)),
        functools.partial(_load_idx_set, "mnist"))
    registry.register(DatasetInfo(
        "fashion-mnist", "classification", "Zalando's Fashion-MNIST, 28x28, official 60k/10k split",
        {}, n_features=784, n_outputs=10, pixel_max=255.0, sizes=lambda o: (70000, 784, 1)),
        functools.partial(_load_idx_set, "fashion-mnist"))
    registry.register(DatasetInfo(
        "xor", "classification", "noisy corners (±1, ±1) labelled by the xor of their signs",
        {"n": 1000, "noise": 0.1}, n_features=2, n_outputs=2,
        sizes=lambda o: (_drawn(o["n"]), 2, 8)), _load_xor)
    registry.register(DatasetInfo(
        "parity", "classification", "parity of the number of +1 entries of a random ±1 vector",
        {"n": 1000, "bits": 4}, n_outputs=2,
        sizes=lambda o: (_drawn(o["n"]), int(o["bits"]), 8)), _load_parity)
    registry.register(DatasetInfo(
        "teacher_linear", "regression", "targets of a random linear teacher, x @ T",
        {"n": 1000, "n_in": 10, "n_out": 5, "noise": 0.0},
        sizes=lambda o: (_drawn(o["n"]), int(o["n_in"]) + int(o["n_out"]), 8)),
        functools.partial(_load_teacher, "teacher_linear"))
    registry.register(DatasetInfo(
        "teacher_nonlinear", "regression", "targets of a random tanh teacher, tanh(x @ T1) @ T2",
        {"n": 1000, "n_in": 10, "n_hidden": 20, "n_out": 5, "noise": 0.0},
        sizes=lambda o: (_drawn(o["n"]), int(o["n_in"]) + int(o["n_out"]), 8)),
        functools.partial(_load_teacher, "teacher_nonlinear"))
