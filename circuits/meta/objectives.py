"""What an inner run is scored by: a registry of objectives (``validation_loss``, ``pc1_alignment``, ...).

An objective reads a trained :class:`~circuits.model.Model` and the data it learned from and
returns one number; ``maximize`` says which way is better. The search minimizes
``−value`` (or ``value``) plus its L1 penalty.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

from circuits.data import Dataset
from circuits.errors import did_you_mean
from circuits.model import Model

__all__ = ["Objective", "ObjectiveRegistry", "default_objectives", "pc1_alignment", "pc1_cosine"]


@attrs.frozen
class Objective:
    """A named score of a trained model on its data."""

    name: str
    maximize: bool
    doc: str
    score: Callable[[Model, Dataset], float] = attrs.field(eq=False)


class ObjectiveRegistry:
    """Objective name → objective. Registering a name twice raises ``ValueError``."""

    def __init__(self) -> None:
        self._objectives: dict[str, Objective] = {}

    def register(self, objective: Objective) -> None:
        if objective.name in self._objectives:
            raise ValueError(f"an objective named '{objective.name}' is already registered")
        self._objectives[objective.name] = objective

    def names(self) -> tuple[str, ...]:
        return tuple(self._objectives)

    def get(self, name: str) -> Objective:
        """The objective ``name``; ``KeyError`` with the registered names and a close match."""
        if name not in self._objectives:
            raise KeyError(f"unknown objective '{name}'; registered objectives are "
                           f"{', '.join(self._objectives)}{did_you_mean(name, self._objectives)}")
        return self._objectives[name]


def _held_out(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The validation split when the task keeps one, else the test split."""
    if data.n_validation:
        return data.x_validation, data.y_validation
    return data.x_test, data.y_test


def _validation_loss(model: Model, data: Dataset) -> float:
    x, y = _held_out(data)
    return model.evaluate(x, y)[0]


def _validation_accuracy(model: Model, data: Dataset) -> float:
    x, y = _held_out(data)
    return model.evaluate(x, y)[1]


def _only_weight(model: Model) -> np.ndarray:
    weights = [name for name in model.params if not name.endswith(".bias")
                and name in model.program.loss_params]
    if len(weights) != 1 or model.graph.population(model.graph.output).size != 1:
        raise ValueError("pc1_alignment scores one output unit with one forward projection "
                         f"(this circuit has forward weights {', '.join(weights)})")
    return np.ravel(np.array(model.backend.to_numpy(model.params[weights[0]]), dtype=np.float64))


def _pc1(data: Dataset) -> np.ndarray:
    x = np.asarray(data.x_train, dtype=np.float64)
    return np.linalg.eigh(np.cov(x.T))[1][:, -1]


def pc1_cosine(model: Model, data: Dataset) -> float:
    """``|cos(w, PC1)|`` of the training inputs' covariance (0 for a zero or non-finite w)."""
    w = _only_weight(model)
    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0.0:
        return 0.0
    return float(abs(w @ _pc1(data)) / norm)


def pc1_alignment(model: Model, data: Dataset) -> float:
    """``|cos(w, PC1)| · min(‖w‖, 1/‖w‖)``: 1 only at the unit-norm principal component.

    The factor on the norm makes Hebb's rule (aligned, but its norm grows without bound) a
    poor solution, as Confavreux et al. 2020 score the distance to the unit-norm PC1.
    """
    w = _only_weight(model)
    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0.0:
        return 0.0
    return pc1_cosine(model, data) * min(norm, 1.0 / norm)


def default_objectives() -> ObjectiveRegistry:
    """Every built-in objective, by explicit lines."""
    registry = ObjectiveRegistry()
    registry.register(Objective("validation_loss", False, "mean loss on the held-out split", _validation_loss))
    registry.register(Objective("validation_accuracy", True, "accuracy on the held-out split",
                                _validation_accuracy))
    registry.register(Objective("pc1_alignment", True, "|cos(w, PC1)|·min(‖w‖, 1/‖w‖) of one linear unit",
                                pc1_alignment))
    registry.register(Objective("pc1_cosine", True, "|cos(w, PC1)| of one linear unit", pc1_cosine))
    return registry
