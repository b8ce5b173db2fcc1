"""Scoring candidates: train the base circuit under each candidate rule on every task, score it.

An :class:`Evaluator` is built once per worker process (sent to each Dask worker once) and
keeps its parsed specs and loaded data sets between candidates, so a candidate costs one
compile per task and its learning steps. Every number depends only on the candidate, the
task and the seed, never on which worker ran it or in what order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from circuits.data import Dataset
from circuits.meta.file import MetaConfig, MetaError, TaskSet
from circuits.meta.objectives import Objective, default_objectives
from circuits.model import Model
from circuits.rules import default_registry
from circuits.rules.plasticity import Term
from circuits.spec import CircuitSpec, RuleSpec, load_spec, parse_spec
from circuits.spec_writer import dump_spec
from circuits.training import load_data

__all__ = ["Evaluator", "theta_terms", "evaluate_chunk"]


def theta_terms(terms: Sequence[Term], theta: Sequence[float]) -> dict[str, float]:
    """θ as the spec's ``rule.terms`` table (every searched term, zeros included)."""
    return {t.name: float(v) for t, v in zip(terms, theta)}


class Evaluator:
    """Scores rules on a :class:`TaskSet` by one objective (or several, for the held-out table).

    Parameters
    ----------
    config
        The parsed meta file.
    base
        A spec to use in place of the file ``config.spec`` names (claims measure on the
        user's circuit this way).
    """

    def __init__(self, config: MetaConfig, base: CircuitSpec | None = None) -> None:
        self.config = config
        self.base_text = dump_spec(base) if base is not None else None
        self.base_source = base.source if base is not None else str(config.spec)
        self.registry = default_registry()
        self.objectives = default_objectives()
        for name in (config.objective, *config.heldout_objectives):
            try:
                self.objectives.get(name)
            except KeyError as exc:
                raise MetaError(f"{config.source}: objective: {exc.args[0]}") from None
        self._specs: dict[str, CircuitSpec] = {}
        self._data: dict[str, Dataset] = {}

    # -- specs and data, cached per (task, seed) ----------------------------------------------------

    def spec(self, task: Mapping[str, Any], seed: int) -> CircuitSpec:
        """The base spec with the shared and the task's overrides and run seed ``seed``."""
        key = repr((sorted(task.items()), seed))
        if key not in self._specs:
            overrides = {**self.config.shared, **task, "run.seed": seed}
            if self.base_text is None:
                spec = load_spec(self.config.spec, overrides=overrides, rules=self.registry.signatures())
            else:
                spec = parse_spec(self.base_text, source=self.base_source, overrides=overrides,
                                  rules=self.registry.signatures())
            if spec.rule.name != "plasticity":
                raise MetaError(f"{self.config.source}: meta.spec: the base spec's rule must be 'plasticity' "
                                f"(got '{spec.rule.name}'); set [rule] name = \"plasticity\" in {self.base_source}")
            self._specs[key] = spec
        return self._specs[key]

    def data(self, spec: CircuitSpec) -> Dataset:
        key = repr((spec.task, sorted(spec.task.options.items()), spec.run.seed))
        if key not in self._data:
            self._data[key] = load_data(Model(spec, registry=self.registry), download=False)
        return self._data[key]

    # -- one run ----------------------------------------------------------------------------------

    def with_rule(self, spec: CircuitSpec, rule: str = "plasticity",
                  terms: Mapping[str, float] | None = None) -> CircuitSpec:
        """``spec`` under ``rule`` (its parameters kept where the rule declares them) and ``terms``."""
        signature = self.registry.get(rule).signature
        params = {**signature.defaults(), **{k: v for k, v in spec.rule.params.items()
                                             if k in signature.defaults()}}
        if terms is not None:
            params["terms"] = dict(terms)
        return attrs.evolve(spec, rule=RuleSpec(name=rule, params=params))

    def train(self, spec: CircuitSpec, tasks: TaskSet) -> tuple[Model, Dataset]:
        """Train ``spec`` for ``tasks.steps`` steps of ``tasks.batch_size``, batches drawn in a
        fresh permutation of the training split per pass (from the run seed)."""
        data = self.data(spec)
        model = Model(spec, registry=self.registry)
        rng = np.random.default_rng(spec.run.seed)
        n = len(data.x_train)
        size = min(tasks.batch_size, n)
        at = n  # a fresh permutation on the first step
        with np.errstate(all="ignore"):
            for _ in range(tasks.steps):
                if at + size > n:
                    order = rng.permutation(n)  # one gather per pass; batches are then views
                    x, y, at = data.x_train[order], data.y_train[order], 0
                loss = model.step(x[at:at + size], y[at:at + size])
                at += size
                if not math.isfinite(loss):
                    break
        return model, data

    def score(self, objective: Objective, model: Model, data: Dataset) -> float:
        """The objective's value, with a diverged run scored as badly as the objective allows."""
        try:
            with np.errstate(all="ignore"):
                value = float(objective.score(model, data))
        except (FloatingPointError, np.linalg.LinAlgError):
            value = math.nan
        if not math.isfinite(value):
            return 0.0 if objective.maximize else 1e6
        return value

    def values(self, tasks: TaskSet, rule: str, terms: Mapping[str, float] | None,
               objectives: Sequence[str]) -> dict[str, list[float]]:
        """Each objective's value on every (task, seed) run of ``tasks``."""
        found: dict[str, list[float]] = {name: [] for name in objectives}
        for task, seed in tasks.runs():
            model, data = self.train(self.with_rule(self.spec(task, seed), rule, terms), tasks)
            for name in objectives:
                found[name].append(self.score(self.objectives.get(name), model, data))
        return found

    def objective_of(self, theta: Sequence[float], tasks: TaskSet | None = None) -> float:
        """Mean objective of θ over ``tasks`` (default: the inner tasks) and their seeds."""
        terms = theta_terms(self.config.terms, theta)
        return float(np.mean(self.values(tasks or self.config.inner, "plasticity", terms,
                                         [self.config.objective])[self.config.objective]))

    def fitness(self, theta: Sequence[float], objective: float) -> float:
        """What the optimizer minimizes: ``∓objective + l1·Σ|θ|``."""
        sign = -1.0 if self.objectives.get(self.config.objective).maximize else 1.0
        return sign * objective + self.config.l1 * float(np.sum(np.abs(theta)))


def evaluate_chunk(evaluator: Evaluator, thetas: np.ndarray, tasks: TaskSet | None = None) -> list[float]:
    """Objectives of a chunk of candidates on ``tasks`` (default: the inner tasks); the unit of
    work sent to a worker."""
    return [evaluator.objective_of(theta, tasks) for theta in np.atleast_2d(thetas)]
