"""What a claim is, what measuring one returns, and the helpers every claim shares.

A :class:`Claim` is a named, sourced statement about a rule ("FA with feedback tied to Wᵀ is
backprop") with a precondition on the circuit and a ``measure`` function. Measuring runs on
the user's own circuit, or on a stated *variant* of it when the theory needs one (float64,
linear units, no biases, plain SGD): the variant is part of the claim's statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from circuits.data import Dataset
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.rates import PLAIN
from circuits.spec import CircuitSpec
from circuits.training import load_data

__all__ = ["Claim", "Outcome", "variant", "random_batch", "loglog_slope", "relative_error",
           "capped_data"]

STATUSES = ("pass", "fail", "skip")


@attrs.frozen
class Outcome:
    """The result of measuring one claim on one circuit.

    ``measured`` holds the numbers (errors, slopes, angles); ``expected`` says in words what
    passing means, with the tolerance used; ``status`` is ``pass``, ``fail`` or ``skip`` (then
    ``reason`` says why the precondition was not met).
    """

    claim: str
    status: str = attrs.field(validator=attrs.validators.in_(STATUSES))
    measured: dict[str, float] = attrs.field(factory=dict, hash=False)
    expected: str = ""
    reason: str = ""

    @property
    def passed(self) -> bool:
        """Whether the claim held."""
        return self.status == "pass"

    def describe_measured(self, sep: str = ", ") -> str:
        """The measured numbers as ``name=value`` text, joined by ``sep``."""
        return sep.join(f"{k}={_fmt(v)}" for k, v in self.measured.items())


def _fmt(value: float) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.2e}"
    return f"{value:.6g}"


Measure = Callable[[CircuitSpec, RuleRegistry, np.random.Generator], Outcome]
Precondition = Callable[[CircuitSpec, RuleRegistry], str | None]


@attrs.frozen
class Claim:
    """A named statement about one or more rules, with its source and how to measure it.

    ``precondition`` returns ``None`` when the claim applies to a spec, else the reason it
    does not; ``measure`` returns an :class:`Outcome`.
    """

    name: str
    rules: tuple[str, ...]
    statement: str
    source: str
    precondition: Precondition
    measure: Measure
    concerns: Callable[[CircuitSpec], bool] | None = None
    """For a claim about a feature of the circuit rather than a rule (spiking populations): the
    specs it concerns. Such a claim runs only on them, and ``for_rule`` leaves it out."""

    def applies_to(self, rule: str) -> bool:
        """Whether the claim concerns ``rule``."""
        return rule in self.rules or "*" in self.rules

    def applies_to_spec(self, spec: CircuitSpec) -> bool:
        """Whether the claim concerns ``spec``: its rule, and its feature when the claim has one."""
        return self.applies_to(spec.rule.name) and (self.concerns is None or self.concerns(spec))

    def run(self, spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
        """Check the precondition, then measure."""
        reason = self.precondition(spec, registry)
        if reason is not None:
            return Outcome(self.name, "skip", reason=reason)
        return self.measure(spec, registry, rng)


def dense_only(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    """The precondition of claims derived for dense projections: none of them convolves."""
    conv = [p.name for p in spec.projections if p.conv is not None]
    return f"derived for dense projections; projection '{conv[0]}' convolves" if conv else None


def always(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    """The precondition of claims that hold on every circuit."""
    return None


def variant(spec: CircuitSpec, *, rule: str | None = None, rule_params: Mapping[str, Any] | None = None,
            activation: str | None = None, output_activation: str | None = None,
            bias: bool | None = None, loss: str | None = None, dtype: str = "float64",
            plain_sgd: bool = True, init: Any = None) -> CircuitSpec:
    """A copy of ``spec`` changed as a claim's statement requires (dropout and spikes always off).

    ``activation`` applies to hidden populations and ``output_activation`` to the output;
    ``plain_sgd`` sets momentum 0 and the SGD optimizer; ``init`` replaces the init of every
    forward projection.
    """
    params = dict(spec.rule.params)
    if plain_sgd:
        params.update(optimizer="sgd", momentum=0.0)
    params.update(rule_params or {})
    new = {"hidden": activation, "output": output_activation, "input": None}
    # A rate function the claim names is the plain one (scale, shift and gain dropped), even if the
    # spec already uses that function: the claim's references compute it without parameters.
    pops = tuple(attrs.evolve(p, activation=new[p.role] or p.activation, dropout=0.0, spikes=None,
                              rate_params=p.rate_params if new[p.role] is None else PLAIN)
                 for p in spec.populations)
    projections = tuple(
        attrs.evolve(p, bias=bias if bias is not None else p.bias,
                     init=init if init is not None and p.type == "forward" else p.init)
        for p in spec.projections
    )
    task = attrs.evolve(spec.task, loss=loss or spec.task.loss)
    return attrs.evolve(spec, populations=pops, projections=projections,
                        rule=attrs.evolve(spec.rule, name=rule or spec.rule.name, params=params),
                        task=task, run=attrs.evolve(spec.run, dtype=dtype))


def random_batch(model: Model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs and random labels (or Gaussian targets) that fit ``model``'s circuit."""
    width = sum(model.graph.population(p).size for p in model.graph.inputs)
    out = model.graph.population(model.graph.output).size
    x = rng.standard_normal((n, width))
    if model.spec.task.loss == "cross_entropy":
        return x, rng.integers(0, out, n)
    return x, rng.standard_normal((n, out))


def capped_data(model: Model, n_train: int, n_test: int) -> Dataset:
    """The spec's own data set, cut to at most a few examples so that a claim runs in seconds."""
    data = load_data(model)
    return attrs.evolve(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train],
                        x_test=data.x_test[:n_test], y_test=data.y_test[:n_test])


def mirrored(weight: np.ndarray) -> np.ndarray:
    """What a feedback weight equals when tied to the forward weight ``weight``: its transpose,
    or the kernel itself for a conv kernel ``(O, C, k, k)`` (its feedback has the same shape)."""
    weight = np.asarray(weight)
    return weight if weight.ndim == 4 else weight.T


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a − b‖ / ‖b‖`` (``‖a − b‖`` when ``b`` is zero)."""
    scale = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
    return diff / scale if scale > 0 else diff


def loglog_slope(xs: np.ndarray, ys: np.ndarray) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float)), 1)[0])
