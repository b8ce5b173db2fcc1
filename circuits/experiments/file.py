"""Experiment files: TOML text → frozen :class:`Experiment`.

An experiment names a base spec, the seeds every variant runs, how a grid point is selected,
the variants (a name plus ``--set`` style overrides of the base spec) and an optional grid
(the cartesian product of override values, applied to every variant)::

    [experiment]
    name = "fa-vs-bp-digits"
    spec = "../specs/fa_digits.toml"     # relative to this file
    seeds = [0, 1, 2, 3, 4]
    select = "validation_accuracy"       # or validation_loss
    set = { "task.validation" = 0.1 }    # optional: overrides shared by every variant

    [[variants]]
    name = "backprop"
    set = { "rule.name" = "backprop" }
    published = "2.4 % test error, mean of 20 runs (Lillicrap et al. 2016, Fig. 2)"  # optional

    [grid]
    "rule.lr" = [0.01, 0.05]

Reading the file checks its own keys only; :func:`circuits.experiments.plan.plan_runs` checks
every override against the spec, before anything runs.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from circuits.errors import CircuitsError, did_you_mean
from circuits.overrides import parse_overrides
from circuits.schema import describe_value

__all__ = ["ExperimentError", "Variant", "Experiment", "SELECT_METRICS", "load_experiment",
           "parse_experiment", "with_overrides"]

SELECT_METRICS = ("validation_accuracy", "validation_loss")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_EXPERIMENT_KEYS = ("name", "spec", "seeds", "select", "set", "doc")
_VARIANT_KEYS = ("name", "set", "published")


class ExperimentError(CircuitsError):
    """An experiment file, its overrides, or a sweep folder is wrong (CLI: one line, exit 2)."""


@attrs.frozen
class Variant:
    """One arm of an experiment: a name, overrides of the base spec, and the published number.

    ``published`` is free text: the paper's number for this arm with its source (shown
    beside ours in the report), ``""`` when the file gives none.
    """

    name: str
    overrides: dict[str, Any] = attrs.field(factory=dict, hash=False)
    published: str = ""


@attrs.frozen
class Experiment:
    """A resolved experiment file.

    ``spec`` is an absolute path; ``overrides`` apply to every variant before the variant's
    own; ``grid`` is a tuple of ``(key, values)`` in file order.
    """

    name: str
    spec: Path
    seeds: tuple[int, ...]
    select: str = "validation_accuracy"
    variants: tuple[Variant, ...] = ()
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    overrides: dict[str, Any] = attrs.field(factory=dict, hash=False)
    doc: str = ""
    source: str = attrs.field(default="<experiment>", eq=False)

    @property
    def grid_keys(self) -> tuple[str, ...]:
        """The grid's override keys, in file order."""
        return tuple(key for key, _ in self.grid)

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of grid values (one empty point without a grid)."""
        points: list[dict[str, Any]] = [{}]
        for key, values in self.grid:
            points = [{**point, key: value} for point in points for value in values]
        return points


def with_overrides(experiment: Experiment, overrides: Mapping[str, Any] | Sequence[str]) -> Experiment:
    """``experiment`` with ``overrides`` (``--set``) merged into its ``set`` (replacing keys).

    Like ``experiment.set`` they apply to every variant, and a variant's own ``set`` still
    wins; ``--set task.epochs=10`` makes a short version of an experiment, whose runs are
    other runs (other run ids) than the full ones.
    """
    try:
        parsed = parse_overrides(overrides, source=experiment.source)
    except CircuitsError as exc:
        raise ExperimentError(str(exc)) from None
    flat = _overrides(parsed, f"{experiment.source}: --set")
    clash = set(flat) & set(experiment.grid_keys)
    if clash:
        raise ExperimentError(f"{experiment.source}: --set {sorted(clash)[0]}: the grid varies this key; "
                              "edit the grid instead")
    return attrs.evolve(experiment, overrides={**experiment.overrides, **flat})


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read an experiment file; see :func:`parse_experiment`.

    Raises
    ------
    ExperimentError
        Naming the file, the key and the fix.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{source}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_experiment(text, base=Path(path).resolve().parent, source=source)


def parse_experiment(text: str, *, base: str | os.PathLike[str] = ".",
                     source: str = "<experiment>") -> Experiment:
    """Parse experiment TOML; ``spec`` is resolved against the folder ``base``.

    Without ``[[variants]]`` the base spec is the one variant (named after its rule's
    ``rule.name`` override, else ``"base"``). ``run.seed`` may not be overridden: seeds come
    from ``seeds``.

    Raises
    ------
    ExperimentError
        Naming the file, the key, what is allowed and what was given.
    """
    try:
        raw = tomllib.loads(text)
    except ValueError as exc:
        raise ExperimentError(f"{source}: TOML syntax error: {exc}") from None
    _unknown(raw, ("experiment", "variants", "grid"), source, "")
    head = raw.get("experiment")
    if not isinstance(head, dict):
        raise ExperimentError(f"{source}: experiment: is required; add an [experiment] table with "
                              "name and spec")
    _unknown(head, _EXPERIMENT_KEYS, source, "experiment.")
    name = _name(head.get("name"), f"{source}: experiment.name")
    spec = head.get("spec")
    if not isinstance(spec, str) or not spec:
        raise ExperimentError(f"{source}: experiment.spec: must be the path of a spec file, "
                              f"relative to this file (got {describe_value(spec)})")
    spec_path = (Path(base) / spec).resolve()
    if not spec_path.is_file():
        raise ExperimentError(f"{source}: experiment.spec: {spec_path} is not a file "
                              f"(the path is relative to the experiment file)")
    seeds = _seeds(head.get("seeds", [0]), source)
    select = head.get("select", "validation_accuracy")
    if select not in SELECT_METRICS:
        raise ExperimentError(f"{source}: experiment.select: must be one of {', '.join(SELECT_METRICS)} "
                              f"(got {describe_value(select)}{did_you_mean(select, SELECT_METRICS)})")
    doc = head.get("doc", "")
    if not isinstance(doc, str):
        raise ExperimentError(f"{source}: experiment.doc: must be a string (got {describe_value(doc)})")
    overrides = _overrides(head.get("set", {}), f"{source}: experiment.set")
    variants = _variants(raw.get("variants", []), source)
    grid = _grid(raw.get("grid", {}), source)
    clash = set(overrides) & set(dict(grid))
    if clash:
        raise ExperimentError(f"{source}: grid.{sorted(clash)[0]}: also set in experiment.set; "
                              "keep it in one place")
    return Experiment(name=name, spec=spec_path, seeds=seeds, select=select, variants=variants,
                      grid=grid, overrides=overrides, doc=doc, source=source)


def _unknown(table: Mapping[str, Any], allowed: Sequence[str], source: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ExperimentError(f"{source}: {where}{key}: unknown key; allowed keys are "
                                  f"{', '.join(allowed)}{did_you_mean(key, allowed)}")


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or not set(value) <= _NAME_CHARS:
        raise ExperimentError(f"{where}: must be letters, digits, '_', '-' and '.' "
                              f"(got {describe_value(value)})")
    return value


def _seeds(value: object, source: str) -> tuple[int, ...]:
    where = f"{source}: experiment.seeds"
    ok = isinstance(value, list) and value and all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in value)
    if not ok:
        raise ExperimentError(f"{where}: must be a non-empty array of integers >= 0, e.g. [0, 1, 2] "
                              f"(got {describe_value(value)})")
    if len(set(value)) != len(value):
        raise ExperimentError(f"{where}: lists a seed twice (got {value})")
    return tuple(value)


def _overrides(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExperimentError(f'{where}: must be a table of overrides, e.g. {{ "rule.lr" = 0.01 }} '
                              f"(got {describe_value(value)})")
    flat = _flatten(value)
    for key in flat:
        if key == "run.seed":
            raise ExperimentError(f"{where}: run.seed is set by experiment.seeds; list the seeds there")
    return flat


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"rule": {"lr": 1}}`` (TOML dotted keys written bare) → ``{"rule.lr": 1}``.

    Only down to a whole override key (``table.key``, or ``populations.<name>.key``), so a
    table value such as ``"projections.x->h1.init" = { scheme = "normal" }`` stays a value.
    """
    flat: dict[str, Any] = {}
    for key, value in table.items():
        full = prefix + key
        parts = full.split(".")
        depth = 3 if parts[0] in ("populations", "projections") else 2
        if isinstance(value, dict) and len(parts) < depth:
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def _variants(entries: object, source: str) -> tuple[Variant, ...]:
    if not isinstance(entries, list):
        raise ExperimentError(f"{source}: variants: must be an array of tables ([[variants]]) "
                              f"(got {describe_value(entries)})")
    variants: list[Variant] = []
    for index, entry in enumerate(entries):
        where = f"{source}: variants[{index}]"
        if not isinstance(entry, dict):
            raise ExperimentError(f"{where}: must be a table with name and set (got {describe_value(entry)})")
        _unknown(entry, _VARIANT_KEYS, source, f"variants[{index}].")
        name = _name(entry.get("name"), f"{where}.name")
        if name in [v.name for v in variants]:
            raise ExperimentError(f"{where}.name: '{name}' is already the name of another variant")
        published = entry.get("published", "")
        if not isinstance(published, str):
            raise ExperimentError(f'{where}.published: must be a string, the paper\'s number with its source, '
                                  f'e.g. "2.4 % test error (Lillicrap et al. 2016, Fig. 2)" '
                                  f"(got {describe_value(published)})")
        variants.append(Variant(name, _overrides(entry.get("set", {}), f"{where}.set"), published.strip()))
    return tuple(variants)


def _grid(table: object, source: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(table, dict):
        raise ExperimentError(f"{source}: grid: must be a table of key = [values] "
                              f"(got {describe_value(table)})")
    grid = []
    for key, values in _flatten(table).items():
        where = f"{source}: grid.{key}"
        if key == "run.seed":
            raise ExperimentError(f"{where}: seeds are set by experiment.seeds; list them there")
        if not isinstance(values, list) or not values:
            raise ExperimentError(f"{where}: must be a non-empty array of values, e.g. [0.01, 0.05] "
                                  f"(got {describe_value(values)})")
        if len({repr(v) for v in values}) != len(values):
            raise ExperimentError(f"{where}: lists a value twice (got {values})")
        grid.append((key, tuple(values)))
    return tuple(grid)
