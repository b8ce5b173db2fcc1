"""Meta files: TOML text → frozen :class:`MetaConfig` (what ``circuits meta`` searches, and how).

::

    [meta]
    name = "oja-rediscovery"
    spec = "../specs/plasticity_oja.toml"   # relative to this file; its rule must be plasticity
    terms = "all"                 # the mask: "all" (27 pre/post/w terms), "all_error" (108) or a list
    start = {}                    # term → start value (others start at 0)
    optimizer = "es"              # es (NumPy, antithetic) | cma (the meta extra)
    population = 20
    evaluations = 6000            # budget; stops before a generation that would exceed it
    generations = 1000            # and/or a number of generations
    l1 = 1e-2                     # penalty on Σ|θ|
    sigma = 0.1                   # initial spread of the candidates
    step = 0.05                   # es: step size
    update = "adam"               # es: adam (per-term normalized steps) | sgd (steps ∝ the ES gradient)
    prune = 0.005                 # after the search, drop terms while the penalized fitness on the
                                  # [prune] tasks stays within this of the search's rule (absent: no pruning)
    refit = 20                    # then search the kept terms' coefficients for 20 generations (0: none)
    seed = 0
    objective = "pc1_alignment"   # validation_loss | validation_accuracy | pc1_alignment | pc1_cosine

    [inner]                       # how one candidate is scored
    steps = 300                   # learning steps per task and seed
    batch_size = 100
    seeds = [0]                   # run seeds per task
    tasks = { "task.options.covariance" = [0, 1, 2] }  # one task per value (keys zipped)
    set = { "rule.lr" = 0.3 }     # overrides of the base spec shared by every task

    [prune]                       # the tasks pruning scores on (default: the inner tasks); other
    tasks = { "task.options.covariance" = [8, 9] }  # tasks than the search's expose its overfit

    [heldout]                     # the final evaluation, beside the baselines
    tasks = { "task.options.covariance" = [1000, 1001] }
    seeds = [0]
    objectives = ["pc1_alignment", "pc1_cosine"]

    [baselines]                   # name → { terms = {...} } or { rule = "backprop" }
    oja = { terms = { "pre*post" = 1.0, "post^2*w" = -1.0 } }
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from circuits.errors import CircuitsError, did_you_mean
from circuits.rules.plasticity import Term, all_terms, parse_term
from circuits.schema import Param, TableReader

__all__ = ["MetaError", "MetaConfig", "TaskSet", "load_meta", "parse_meta"]

OPTIMIZERS = ("es", "cma")
UPDATES = ("adam", "sgd")  # how the es optimizer steps


class MetaError(CircuitsError):
    """A meta file or a search folder is wrong (CLI: one line, exit 2)."""


@attrs.frozen
class TaskSet:
    """Tasks (override tables) × run seeds, trained ``steps`` steps of ``batch_size`` each."""

    tasks: tuple[dict[str, Any], ...]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int

    def runs(self) -> list[tuple[dict[str, Any], int]]:
        """Every (task overrides, seed) pair, tasks outer."""
        return [(task, seed) for task in self.tasks for seed in self.seeds]


@attrs.frozen
class MetaConfig:
    """A parsed meta file (see the module docstring for the keys)."""

    name: str
    spec: Path
    terms: tuple[Term, ...]
    start: tuple[float, ...]
    optimizer: str
    population: int
    evaluations: int
    generations: int
    l1: float
    sigma: float
    step: float
    seed: int
    objective: str
    shared: dict[str, Any] = attrs.field(hash=False)
    inner: TaskSet
    heldout: TaskSet
    heldout_objectives: tuple[str, ...]
    baselines: dict[str, dict[str, Any]] = attrs.field(hash=False)
    source: str = ""
    update: str = "adam"
    prune: float | None = None
    prune_tasks: TaskSet | None = None
    refit: int = 0

    def identity(self) -> str:
        """A hash of everything that decides the search's numbers (what ``--resume`` checks)."""
        fields = attrs.asdict(self, recurse=True, value_serializer=lambda _i, _a, v: str(v) if isinstance(v, Path) else v)
        # prune acts after the search, on its checkpointed result; update = "adam" is left out
        # so that checkpoints written before the option existed still resume.
        for key in ("heldout", "heldout_objectives", "baselines", "source", "generations", "evaluations",
                    "prune", "prune_tasks", "refit"):
            fields.pop(key)
        if fields["update"] == "adam":
            fields.pop("update")
        fields["terms"] = [t.name for t in self.terms]
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_meta(path: str | Path) -> MetaConfig:
    """Read a meta file; paths inside it are relative to it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MetaError(f"{path}: cannot read the meta file ({exc.strerror or exc})") from None
    return parse_meta(text, source=str(path), folder=path.parent)


def parse_meta(text: str, *, source: str = "<meta>", folder: Path = Path(".")) -> MetaConfig:
    """Parse meta TOML text; every error is one :class:`MetaError` line naming the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MetaError(f"{source}: not valid TOML: {exc}") from None
    try:
        return _read(raw, source, folder)
    except MetaError:
        raise
    except CircuitsError as exc:  # SpecError from a TableReader
        raise MetaError(str(exc)) from None


def _read(raw: dict[str, Any], source: str, folder: Path) -> MetaConfig:
    top = TableReader(raw, "", source)
    meta = TableReader(top.raw("meta", None), "meta", source)
    name = meta.get(Param("name", "meta", "name of the search"))
    spec_text = meta.get(Param("spec", "", "base spec, relative to this file"), required=True)
    terms = _mask(meta, meta.raw("terms", "all"))
    start_table = meta.get(Param("start", {}, "term → start value", kind=dict))
    start = _start(meta, terms, start_table)
    optimizer = meta.get(Param("optimizer", "es", "outer optimizer", choices=OPTIMIZERS))
    population = meta.get(Param("population", 20, "candidates per generation", minimum=2))
    if optimizer == "es" and population % 2:
        raise meta.error(f"the es optimizer draws antithetic pairs, so it needs an even population "
                         f"(got {population}; use {population + 1})", key="population")
    evaluations = meta.get(Param("evaluations", 0, "evaluation budget (0: none)", minimum=0))
    generations = meta.get(Param("generations", 0, "generation budget (0: none)", minimum=0))
    if not evaluations and not generations:
        raise meta.error("give a budget: evaluations = N or generations = N", key=None)
    values = {p.name: meta.get(p) for p in (
        Param("l1", 0.0, "L1 penalty on θ", minimum=0.0),
        Param("sigma", 0.1, "initial spread of the candidates", minimum=0.0, open_minimum=True),
        Param("step", 0.05, "es: step size", minimum=0.0, open_minimum=True),
        Param("update", "adam", "es: how the mean steps", choices=UPDATES),
        Param("seed", 0, "seed of the search", minimum=0),
        Param("objective", "validation_loss", "what a candidate is scored by"),
        Param("doc", "", "what the search is for"),
    )}
    if values["update"] != "adam" and optimizer != "es":
        raise meta.error(f"update = \"{values['update']}\" steps the es optimizer; cma adapts its own steps "
                         "(drop the key or set optimizer = \"es\")", key="update")
    prune = None
    if meta.raw("prune", None) is not None:
        prune = meta.get(Param("prune", 0.0, "pruning tolerance on the penalized fitness", kind=float,
                               minimum=0.0))
    refit = meta.get(Param("refit", 0, "generations of refitting the pruned rule's kept terms", minimum=0))
    if refit and prune is None:
        raise meta.error(f"refit = {refit} refits the terms pruning keeps; add prune = TOLERANCE "
                         "(e.g. 0.005) or drop refit", key="refit")
    meta.finish(["name", "spec", "terms", "start", "optimizer", "population", "evaluations",
                 "generations", "l1", "sigma", "step", "update", "prune", "refit", "seed", "objective", "doc"])
    inner_reader = TableReader(top.raw("inner", None), "inner", source)
    shared = inner_reader.raw("set", {})
    if not isinstance(shared, dict):
        raise inner_reader.error("must be a table of overrides, e.g. { \"rule.lr\" = 0.3 }", key="set")
    inner = _task_set(inner_reader, None, extra=["set"])
    held_reader = TableReader(top.raw("heldout", {}), "heldout", source)
    objectives = held_reader.raw("objectives", [values["objective"]])
    if not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives):
        raise held_reader.error("must be a list of objective names", key="objectives")
    heldout = _task_set(held_reader, inner, extra=["objectives"])
    prune_tasks = None
    if "prune" in top.table:
        if prune is None:
            raise top.error("a [prune] table needs meta.prune = TOLERANCE (e.g. 0.005) to prune with",
                            key="prune")
        prune_tasks = _task_set(TableReader(top.raw("prune"), "prune", source), inner, extra=[])
    elif prune is not None:
        prune_tasks = inner
    baselines_raw = top.raw("baselines", {})
    baselines = _baselines(TableReader(baselines_raw, "baselines", source))
    top.finish(["meta", "inner", "heldout", "prune", "baselines"])
    return MetaConfig(name=name, spec=(folder / spec_text).resolve(), terms=terms, start=start,
                      optimizer=optimizer, population=population, evaluations=evaluations,
                      generations=generations, shared=dict(shared), inner=inner, heldout=heldout,
                      heldout_objectives=tuple(objectives), baselines=baselines, source=source,
                      l1=values["l1"], sigma=values["sigma"], step=values["step"], seed=values["seed"],
                      objective=values["objective"], update=values["update"], prune=prune,
                      prune_tasks=prune_tasks, refit=refit)


def _mask(reader: TableReader, value: object) -> tuple[Term, ...]:
    if value == "all":
        return all_terms()
    if value == "all_error":
        return all_terms(error=True)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise reader.error("must be \"all\", \"all_error\" or a list of term names, e.g. "
                           "[\"pre*post\", \"post^2*w\"]", key="terms")
    terms: list[Term] = []
    for text in value:
        try:
            term = parse_term(text)
        except ValueError as exc:
            raise reader.error(str(exc), key="terms") from None
        if term in terms:
            raise reader.error(f"term '{text}' is listed twice (as {term.name})", key="terms")
        terms.append(term)
    return tuple(terms)


def _start(reader: TableReader, terms: tuple[Term, ...], table: Mapping[str, float]) -> tuple[float, ...]:
    values = dict.fromkeys(terms, 0.0)
    for text, value in table.items():
        try:
            term = parse_term(text)
        except ValueError as exc:
            raise reader.error(str(exc), key="start") from None
        if term not in values:
            names = [t.name for t in terms]
            raise reader.error(f"term '{text}' is not searched; add it to meta.terms"
                               f"{did_you_mean(term.name, names)}", key="start")
        values[term] = float(value)
    return tuple(values.values())


def _task_set(reader: TableReader, default: TaskSet | None, extra: list[str]) -> TaskSet:
    steps = reader.get(Param("steps", default.steps if default else 100, "learning steps per task", minimum=1))
    batch = reader.get(Param("batch_size", default.batch_size if default else 1, "examples per step", minimum=1))
    seeds = reader.raw("seeds", list(default.seeds) if default else [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise reader.error("must be a non-empty list of integers >= 0", key="seeds")
    tasks_raw = reader.raw("tasks", None)
    if tasks_raw is None:
        tasks: tuple[dict[str, Any], ...] = default.tasks if default else ({},)
    else:
        if not isinstance(tasks_raw, dict) or not all(isinstance(v, list) for v in tasks_raw.values()):
            raise reader.error("must be a table of override key → list of values, one task per value",
                               key="tasks")
        lengths = {len(v) for v in tasks_raw.values()}
        if len(lengths) > 1 or 0 in lengths:
            raise reader.error("every key's list must hold the same, non-zero number of values",
                               key="tasks")
        count = lengths.pop() if lengths else 1
        tasks = tuple({k: v[i] for k, v in tasks_raw.items()} for i in range(count))
    reader.finish(["steps", "batch_size", "seeds", "tasks", *extra])
    return TaskSet(tasks=tasks, seeds=tuple(seeds), steps=steps, batch_size=batch)


def _baselines(reader: TableReader) -> dict[str, dict[str, Any]]:
    out = {}
    for name in list(reader.table):
        entry = TableReader(reader.raw(name), reader.where(name), reader.source)
        rule = entry.raw("rule", "plasticity")
        terms = entry.raw("terms", None)
        if not isinstance(rule, str):
            raise entry.error("must be a rule name", key="rule")
        if rule == "plasticity" and terms is None:
            raise entry.error("give terms = { ... } or another rule = \"...\"", key=None)
        if terms is not None:
            terms = TableReader({"terms": terms}, entry.path, entry.source).get(
                Param("terms", {}, "term → θ", kind=dict, check=_check_terms))
        entry.finish(["rule", "terms"])
        out[name] = {"rule": rule, "terms": terms}
    return out


def _check_terms(table: dict[str, float]) -> None:
    from_rule = [parse_term(t) for t in table]  # raises ValueError naming a bad factor
    if len(set(from_rule)) != len(from_rule):
        raise ValueError("a term is listed twice under two names")
