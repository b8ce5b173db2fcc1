"""The outer loop of ``circuits meta``: ask, evaluate in parallel, tell, checkpoint, repeat.

Stages of :func:`run_search`:

1. read the meta file, make the optimizer (or load the checkpoint with ``resume``);
2. per generation: ask for candidates, score them (in-process, or in chunks on Dask workers
   through :class:`circuits.experiments.executors.DaskExecutor`), tell the fitness, append a
   row of ``meta.csv`` and write the checkpoint atomically;
3. with ``prune`` in the meta file, prune the search's rule (:mod:`circuits.meta.prune`),
   checkpointing after every round;
4. with ``refit``, search the kept terms' coefficients for ``refit`` more generations
   (:mod:`circuits.meta.refit`), checkpointing after every generation;
5. score the final rule (the search distribution's mean, pruned, refitted) on the inner and
   held-out tasks, beside the baselines and the start point, and write every output.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from circuits.experiments.executors import DaskExecutor
from circuits.meta.es import make_optimizer
from circuits.meta.evaluate import Evaluator, evaluate_chunk
from circuits.meta.file import MetaConfig, MetaError, TaskSet
from circuits.meta.outputs import found_theta, write_outputs
from circuits.meta.prune import PruneTrace, prune, start_pruning, tasks_key
from circuits.meta.refit import RefitState, embed
from circuits.runs.files import write_atomic

__all__ = ["SearchState", "run_search", "search", "CHECKPOINT"]

CHECKPOINT = "state.pkl"


@attrs.define
class SearchState:
    """Everything a resumed search needs: the optimizer, the rows so far, the config identity."""

    identity: str
    optimizer: Any
    rows: list[dict[str, float]] = attrs.field(factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    pruning: PruneTrace | None = None
    refit: RefitState | None = None

    @property
    def generation(self) -> int:
        return len(self.rows)


def _budget_left(config: MetaConfig, state: SearchState) -> bool:
    if config.generations and state.generation >= config.generations:
        return False
    if config.evaluations and state.evaluations + config.population > config.evaluations:
        return False
    return True


def _load_state(path: Path, config: MetaConfig) -> SearchState:
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise MetaError(f"{path}: cannot read the search checkpoint ({exc}); start afresh without --resume") from None
    if state.identity != config.identity():
        raise MetaError(f"{path}: the checkpoint was written by a different search (its meta file changed "
                        "in a key that decides the numbers); use another --out or drop --resume")
    return state


class _Runner:
    """Scores a generation in-process or on Dask workers, in chunks, results in candidate order."""

    def __init__(self, evaluator: Evaluator, executor: Any) -> None:
        self.evaluator = evaluator
        self.executor = executor
        self.remote = None
        if executor is not None:
            self.remote = executor.client.scatter(evaluator, broadcast=True)

    def __call__(self, thetas: np.ndarray, tasks: TaskSet | None = None) -> np.ndarray:
        if self.executor is None:
            return np.array(evaluate_chunk(self.evaluator, thetas, tasks))
        chunks = np.array_split(thetas, min(self.executor.slots, len(thetas)))
        futures = [self.executor.client.submit(evaluate_chunk, self.remote, chunk, tasks, pure=False)
                   for chunk in chunks]
        return np.concatenate([np.asarray(f.result(), dtype=np.float64) for f in futures])


def run_search(config: MetaConfig, out: Path, *, executor: Any = None, resume: bool = False,
               on_generation: Callable[[dict[str, float], int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the search of ``config`` into folder ``out``; return the final summary.

    ``executor`` is an entered :class:`~circuits.experiments.executors.DaskExecutor`, or
    ``None`` to score candidates in this process. ``on_generation(row, total)`` is called
    after every generation (the CLI's progress bar).
    """
    out.mkdir(parents=True, exist_ok=True)
    evaluator = Evaluator(config)
    checkpoint = out / CHECKPOINT
    if resume and checkpoint.exists():
        state = _load_state(checkpoint, config)
    else:
        optimizer = make_optimizer(config.optimizer, np.array(config.start), population=config.population,
                                   sigma=config.sigma, step=config.step, seed=config.seed,
                                   update=config.update)
        state = SearchState(identity=config.identity(), optimizer=optimizer)
    total = _total_generations(config)
    runner = _Runner(evaluator, executor)
    while _budget_left(config, state):
        started = time.perf_counter()
        thetas = state.optimizer.ask()
        objectives = runner(thetas)
        fitness = np.array([evaluator.fitness(t, o) for t, o in zip(thetas, objectives)])
        state.optimizer.tell(fitness)
        state.evaluations += len(thetas)
        state.seconds += time.perf_counter() - started
        best = int(np.argmin(fitness))
        row = {"generation": state.generation + 1, "evaluations": state.evaluations,
               "best_objective": float(objectives[best]), "mean_objective": float(np.mean(objectives)),
               "best_fitness": float(fitness[best]), "seconds": state.seconds,
               **{f"best.{t.name}": float(v) for t, v in zip(config.terms, thetas[best])},
               **{f"center.{t.name}": float(v) for t, v in zip(config.terms, state.optimizer.center)}}
        state.rows.append(row)
        write_atomic(checkpoint, lambda handle: pickle.dump(state, handle))
        if on_generation is not None:
            on_generation(row, total)
    if config.prune is not None:
        _prune(config, state, evaluator, runner, checkpoint)
        if config.refit:
            _refit(config, state, evaluator, runner, checkpoint)
    return write_outputs(config, out, state, evaluator, runner)


def _prune(config: MetaConfig, state: SearchState, evaluator: Evaluator, runner: _Runner,
           checkpoint: Path) -> None:
    """Prune the search's rule into ``state.pruning`` on the prune tasks, continuing a
    checkpointed pass of the same tolerance, tasks and generation (anything else starts afresh)."""

    def score(thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        objectives = runner(thetas, config.prune_tasks)
        return objectives, np.array([evaluator.fitness(t, o) for t, o in zip(thetas, objectives)])

    def save(trace: PruneTrace) -> None:
        state.pruning = trace
        write_atomic(checkpoint, lambda handle: pickle.dump(state, handle))

    trace = getattr(state, "pruning", None)  # checkpoints of before pruning have no such field
    if trace is None or not trace.matches(config, state.generation):
        theta = found_theta(state)
        objectives, fitness = score(theta[None, :])
        trace = start_pruning(theta, float(objectives[0]), float(fitness[0]), tolerance=config.prune,
                              generation=state.generation, tasks=tasks_key(config))
        save(trace)
    prune(trace, config.terms, score, on_round=save)


def _refit(config: MetaConfig, state: SearchState, evaluator: Evaluator, runner: _Runner,
           checkpoint: Path) -> None:
    """Refit the pruned rule's kept terms into ``state.refit`` up to ``config.refit``
    generations, continuing a checkpointed refit of the same pruned rule."""
    pruned = state.pruning.theta
    refit = getattr(state, "refit", None)
    if refit is None or refit.start != tuple(pruned) or len(refit.rows) > config.refit:
        support = tuple(int(i) for i in np.flatnonzero(pruned))
        optimizer = make_optimizer(config.optimizer, pruned[list(support)], population=config.population,
                                   sigma=config.sigma, step=config.step, seed=config.seed, update=config.update)
        refit = RefitState(start=tuple(float(v) for v in pruned), support=support, optimizer=optimizer)
    while len(refit.rows) < config.refit:
        thetas = embed(refit.optimizer.ask(), refit.support, len(config.terms))
        objectives = runner(thetas)
        fitness = np.array([evaluator.fitness(t, o) for t, o in zip(thetas, objectives)])
        refit.optimizer.tell(fitness)
        best = int(np.argmin(fitness))
        center = refit.theta()
        refit.rows.append({"generation": len(refit.rows) + 1, "best_objective": float(objectives[best]),
                           "mean_objective": float(np.mean(objectives)), "best_fitness": float(fitness[best]),
                           **{f"center.{config.terms[i].name}": float(center[i]) for i in refit.support}})
        state.refit = refit
        write_atomic(checkpoint, lambda handle: pickle.dump(state, handle))
    state.refit = refit


def _total_generations(config: MetaConfig) -> int:
    by_evals = config.evaluations // config.population if config.evaluations else 10**9
    by_gens = config.generations or 10**9
    return min(by_evals, by_gens)



def search(config: MetaConfig, out: Path, *, workers: int | None = None, scheduler: str | None = None,
           resume: bool = False,
           on_generation: Callable[[dict[str, float], int], None] | None = None) -> dict[str, Any]:
    """:func:`run_search` in this process (``workers == 1`` and no scheduler) or on Dask.

    Dask is the experiments engine's :class:`~circuits.experiments.executors.DaskExecutor`: a
    ``LocalCluster`` of ``workers`` processes (default one per core) or the cluster at
    ``scheduler``.
    """
    if workers == 1 and not scheduler:
        return run_search(config, out, resume=resume, on_generation=on_generation)
    with DaskExecutor(workers=workers, scheduler=scheduler) as executor:
        return run_search(config, out, executor=executor, resume=resume, on_generation=on_generation)
