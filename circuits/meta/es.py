"""Outer optimizers behind one ask/tell interface: an antithetic evolution strategy in NumPy
(Salimans et al. 2017) and CMA-ES from the ``cma`` package (the ``meta`` extra).

Both minimize a fitness. Their whole state pickles, so a search checkpoints each generation
and ``--resume`` continues to the same numbers.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from circuits.meta.file import UPDATES, MetaError

__all__ = ["EvolutionStrategy", "CmaSearch", "make_optimizer", "centered_ranks", "UPDATES"]


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` mapped linearly onto ``[−0.5, 0.5]`` (ties broken by position)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(len(values) - 1, 1) - 0.5


class EvolutionStrategy:
    """Antithetic ES: candidates ``θ ± σ·ε``; steps along ``−Σ rank_i ε_i / (n σ)``.

    Implements ``g = Σ_i r_i ε_i / (n σ)`` with centred ranks ``r`` of the fitness (lower is
    better), then one step: ``update = "adam"`` (the default),
    ``θ ← θ − step · m̂ / (√v̂ + 1e-8)``; ``update = "sgd"``, ``θ ← θ − step · g``.

    Adam divides each coordinate by its own gradient scale, so a term whose gradient is small
    but consistent moves as fast as Oja's pair; plain SGD moves each term in proportion to how
    much it changes the fitness ranks.
    """

    def __init__(self, start: np.ndarray, *, population: int, sigma: float, step: float, seed: int,
                 update: str = "adam") -> None:
        if update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)} (got '{update}')")
        self.update = update
        self.mean = np.array(start, dtype=np.float64)
        self.population = population
        self.sigma = sigma
        self.step = step
        self.rng = np.random.default_rng(seed)
        self.m = np.zeros_like(self.mean)
        self.v = np.zeros_like(self.mean)
        self.t = 0
        self._noise: np.ndarray | None = None

    def ask(self) -> np.ndarray:
        """This generation's candidates, one row each."""
        half = self.rng.standard_normal((self.population // 2, self.mean.size))
        self._noise = np.concatenate([half, -half])
        return self.mean + self.sigma * self._noise

    def tell(self, fitness: np.ndarray) -> None:
        """Move the mean from the candidates' fitness (as returned by the last :meth:`ask`)."""
        if self._noise is None:
            raise RuntimeError("tell() without ask()")
        ranks = centered_ranks(np.asarray(fitness, dtype=np.float64))
        grad = ranks @ self._noise / (len(ranks) * self.sigma)
        self._noise = None
        if getattr(self, "update", "adam") == "sgd":  # checkpoints of before the option are Adam's
            self.mean = self.mean - self.step * grad
            return
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        m_hat, v_hat = self.m / (1 - 0.9 ** self.t), self.v / (1 - 0.999 ** self.t)
        self.mean = self.mean - self.step * m_hat / (np.sqrt(v_hat) + 1e-8)

    @property
    def center(self) -> np.ndarray:
        """The search distribution's mean: the rule the search currently proposes."""
        return self.mean.copy()


class CmaSearch:
    """CMA-ES (Hansen) through ``cma.CMAEvolutionStrategy``.

    ``cma`` samples through its ``randn`` option, here a ``RandomState`` of the search's own
    that pickles with it; whatever else it draws from NumPy's global state is drawn from a
    state kept here (seeded from the search seed) and swapped in around each :meth:`ask` and
    :meth:`tell`. So a resumed search draws the same candidates, and the caller's global state
    is left as it was.
    """

    def __init__(self, start: np.ndarray, *, population: int, sigma: float, seed: int) -> None:
        import cma  # the meta extra; checked by make_optimizer

        saved = np.random.get_state()
        np.random.seed(seed % 2**32)
        self.np_state = np.random.get_state()
        # cma samples through opts["randn"]; a generator of its own pickles with the search
        # (NumPy's global randn would pickle as a detached copy and break --resume).
        self.random = np.random.RandomState(seed % 2**32)
        try:
            self.es: Any = cma.CMAEvolutionStrategy(np.array(start, dtype=np.float64), sigma,
                                                    {"popsize": population, "seed": seed + 1, "verbose": -9,
                                                     "randn": self.random.randn,
                                                     "verb_log": 0, "verb_disp": 0, "maxiter": 10**9,
                                                     "tolfun": 0, "tolx": 0, "tolstagnation": 10**9,
                                                     "tolflatfitness": 10**9})
        finally:
            self.np_state = np.random.get_state()
            np.random.set_state(saved)
        self._asked: list[np.ndarray] | None = None

    def ask(self) -> np.ndarray:
        saved = np.random.get_state()
        np.random.set_state(self.np_state)
        try:
            self._asked = self.es.ask()
        finally:
            self.np_state = np.random.get_state()
            np.random.set_state(saved)
        return np.array(self._asked)

    def tell(self, fitness: np.ndarray) -> None:
        if self._asked is None:
            raise RuntimeError("tell() without ask()")
        saved = np.random.get_state()
        np.random.set_state(self.np_state)
        try:
            self.es.tell(self._asked, [float(f) for f in fitness])
        finally:
            self.np_state = np.random.get_state()
            np.random.set_state(saved)
        self._asked = None

    @property
    def center(self) -> np.ndarray:
        return np.array(self.es.mean, dtype=np.float64)


def make_optimizer(name: str, start: np.ndarray, *, population: int, sigma: float, step: float,
                   seed: int, update: str = "adam") -> EvolutionStrategy | CmaSearch:
    """The optimizer ``es`` (with its ``update``) or ``cma`` (needs ``pip install 'circuits[meta]'``)."""
    if name == "es":
        return EvolutionStrategy(start, population=population, sigma=sigma, step=step, seed=seed,
                                 update=update)
    if importlib.util.find_spec("cma") is None:
        raise MetaError("optimizer 'cma' needs the cma package: pip install 'circuits[meta]' "
                        "(or choose optimizer = \"es\", which needs nothing extra)")
    return CmaSearch(start, population=population, sigma=sigma, seed=seed)
