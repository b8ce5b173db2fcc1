"""Gaussian inputs with a random covariance per task: the Oja-rediscovery task (Confavreux et al. 2020)."""

from __future__ import annotations

import numpy as np

from circuits.data.registry import Dataset, DatasetInfo, DatasetRegistry, _require

__all__ = ["register_covariances", "random_covariance"]


def random_covariance(n_in: int, covariance: int) -> np.ndarray:
    """Implements ``C = A Aᵀ / λ_max(A Aᵀ)``, ``A ~ N(0, 1)^(n_in × n_in)`` from ``default_rng(covariance)``.

    Scaled so that the largest eigenvalue is 1: every task's principal component is learned
    on the same time scale, and only the eigenvalue gaps differ between tasks.
    """
    a = np.random.default_rng(covariance).standard_normal((n_in, n_in))
    c = a @ a.T
    return c / np.linalg.eigvalsh(c)[-1]


def _load_covariances(*, seed: int, n: int, n_in: int, covariance: int, **_location: object) -> Dataset:
    """Implements ``x ~ N(0, C)`` with ``C = random_covariance(n_in, covariance)``; targets are zeros.

    The task is unsupervised: the targets (one zero per example) only let an ``mse`` loss be
    computed; the search scores the weights (``pc1_alignment``). ``seed`` draws the samples,
    ``covariance`` the task, so one covariance can be sampled with many seeds.
    """
    _require(n >= 4, "covariances", f"option 'n' must be >= 4 (got {n})")
    _require(n_in >= 2, "covariances", f"option 'n_in' must be >= 2 (got {n_in})")
    root = np.linalg.cholesky(random_covariance(n_in, covariance) + 1e-12 * np.eye(n_in))
    rng = np.random.default_rng(seed)
    x_train = rng.standard_normal((n, n_in)) @ root.T
    x_test = rng.standard_normal((n // 4, n_in)) @ root.T
    return Dataset("covariances", "regression", x_train, np.zeros((n, 1)), x_test, np.zeros((n // 4, 1)), 1)


def register_covariances(registry: DatasetRegistry) -> None:
    """Add the ``covariances`` task to ``registry``."""
    registry.register(DatasetInfo(
        "covariances", "regression",
        "x ~ N(0, C) with a random covariance C per task (option covariance); zero targets",
        {"n": 1000, "n_in": 5, "covariance": 0}, n_outputs=1,
        sizes=lambda o: (int(o["n"]) + int(o["n"]) // 4, int(o["n_in"]) + 1, 8)), _load_covariances)
