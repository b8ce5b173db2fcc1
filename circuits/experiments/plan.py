"""Expansion of an experiment into runs: variants × grid points × seeds, each a resolved spec.

:func:`plan_runs` works in three stages, all before anything runs:

1. for every variant and grid point, read the base spec with the overrides (experiment
   ``set``, then the variant's ``set``, then the grid point) exactly as ``--set`` would, and
   check that the circuit builds, compiles under its rule and fits its data set;
2. for every seed, resolve the spec with ``run.seed`` set and ``run.threads`` pinned to 1 (a
   sweep runs one BLAS thread per worker; the resolved spec says so, so the run folder can be
   repeated exactly with ``circuits simulate``);
3. name each run by :func:`circuits.runs.run_id` of its resolved spec; its folder is
   ``DIR/runs/<run id>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from circuits.errors import CircuitsError
from circuits.graph import build_graph
from circuits.compile import compile_circuit
from circuits.rules import RuleRegistry, default_registry
from circuits.runs import run_id
from circuits.spec import CircuitSpec, load_spec
from circuits.training import check_data_fit
from circuits.experiments.file import Experiment, ExperimentError, Variant

__all__ = ["RunPlan", "plan_runs", "variants_of", "SWEEP_THREADS"]

SWEEP_THREADS = 1


@attrs.frozen
class RunPlan:
    """One run of an experiment: where it sits in the design and what it computes."""

    variant: str
    seed: int
    point: dict[str, Any] = attrs.field(hash=False)
    overrides: dict[str, Any] = attrs.field(hash=False)
    spec: CircuitSpec = attrs.field(hash=False, repr=False)
    run_id: str = ""

    def folder(self, out: str | Path) -> Path:
        """The run folder under the sweep folder ``out``."""
        return Path(out) / "runs" / self.run_id

    def set_args(self) -> list[str]:
        """The ``--set key=value`` arguments that make this run with ``circuits simulate``."""
        return [f"{key}={_toml(value)}" for key, value in self.overrides.items()]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def variants_of(experiment: Experiment, registry: RuleRegistry | None = None) -> tuple[Variant, ...]:
    """The experiment's variants; without any, the base spec is one variant named after its rule."""
    if experiment.variants:
        return experiment.variants
    spec = _resolve(experiment, Variant("base"), {}, None, registry or default_registry())
    return (Variant(spec.rule.name),)


def plan_runs(experiment: Experiment, registry: RuleRegistry | None = None) -> list[RunPlan]:
    """Every run of ``experiment``, in variant, grid point, seed order.

    Raises
    ------
    ExperimentError
        One line naming the experiment file, the variant and grid point, and the spec's own
        error (bad key, bad value, a rule that cannot run on the circuit, data that does not
        fit).
    """
    registry = registry or default_registry()
    points = experiment.grid_points()
    plans = []
    for variant in variants_of(experiment, registry):
        for point in points:
            first = _resolve(experiment, variant, point, None, registry)
            _check_runs(experiment, variant, point, first, registry)
            if len(points) > 1 and first.task.validation <= 0:
                raise ExperimentError(
                    f"{_where(experiment, variant, point)}: the grid has {len(points)} points, "
                    f"chosen by {experiment.select} on a validation split, but task.validation "
                    "is 0; add \"task.validation\" = 0.1 to experiment.set")
            for seed in experiment.seeds:
                spec = _resolve(experiment, variant, point, seed, registry)
                overrides = {**experiment.overrides, **variant.overrides, **point, "run.seed": seed}
                plans.append(RunPlan(variant=variant.name, seed=seed, point=dict(point),
                                     overrides=overrides, spec=spec, run_id=run_id(spec)))
    return plans


def _where(experiment: Experiment, variant: Variant, point: dict[str, Any]) -> str:
    text = f"{experiment.source}: variant '{variant.name}'"
    if point:
        text += " at " + ", ".join(f"{k}={v!r}" for k, v in point.items())
    return text


def _resolve(experiment: Experiment, variant: Variant, point: dict[str, Any], seed: int | None,
             registry: RuleRegistry) -> CircuitSpec:
    overrides = {**experiment.overrides, **variant.overrides, **point}
    if seed is not None:
        overrides["run.seed"] = seed
    try:
        spec = load_spec(experiment.spec, overrides, rules=registry.signatures())
        spec = registry.get(spec.rule.name).augment(spec)
    except CircuitsError as exc:
        raise ExperimentError(f"{_where(experiment, variant, point)}: {exc}") from None
    if hasattr(spec.run, "threads"):
        spec = attrs.evolve(spec, run=attrs.evolve(spec.run, threads=SWEEP_THREADS))
    return spec


def _check_runs(experiment: Experiment, variant: Variant, point: dict[str, Any], spec: CircuitSpec,
                registry: RuleRegistry) -> None:
    """What ``circuits check`` checks: the graph, the compiled program, the data's sizes."""
    try:
        rule = registry.get(spec.rule.name)
        graph = build_graph(spec, require_dag=not rule.signature.energy_based)
        compile_circuit(graph, rule)
        check_data_fit(spec, graph)
    except CircuitsError as exc:
        raise ExperimentError(f"{_where(experiment, variant, point)}: {exc}") from None

