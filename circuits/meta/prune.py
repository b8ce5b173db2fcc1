"""Pruning the found rule: drop terms, one per round, while its penalized fitness stays near the search's.

A derivative-free search never sets a term to exactly zero: its rule is the mean of samples, so
every searched term survives with some small weight, and together the small weights can tune
the rule to the inner tasks. ``prune = TOL`` in a meta file runs this pass after the search:

1. score the search's rule θ₀ on the prune tasks (the meta file's ``[prune]`` table, by default
   the inner tasks): fitness ``F₀ = ∓objective + l1·Σ|θ₀|``;
2. each round, zero each remaining non-zero term in turn (one candidate per term, scored
   together like a generation), and keep the candidate with the lowest fitness if that fitness
   is at most ``F₀ + TOL``; stop when no candidate is, or no term is left.

The tolerance is measured from the search's rule, not from the previous round, so the pruned
rule is never worse than ``F₀ + TOL`` however many terms go. Ties go to the term listed first.
Scored on the search's own tasks, pruning cannot see a rule fitted to them; scored on other
tasks of the same kind, a term that only helps on the search's tasks costs fitness there, and
removing it is accepted. The other side of the bound: when the search's rule scores poorly on
the prune tasks, F₀ + TOL is a low bar, and the pass may go on zeroing terms well past its best
round (``prune.csv`` shows the fitness of every round).

Each round is a pure function of the previous one; the search checkpoints the trace after
every round, so ``--resume`` continues it to the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import numpy as np

from circuits.meta.file import MetaConfig
from circuits.rules.plasticity import Term

__all__ = ["PruneRound", "PruneTrace", "start_pruning", "prune_round", "prune", "tasks_key"]


def tasks_key(config: MetaConfig) -> str:
    """What identifies the tasks pruning scores on (a trace of other tasks is started afresh)."""
    tasks = config.prune_tasks
    return "" if tasks is None else repr((tasks.tasks, tasks.seeds, tasks.steps, tasks.batch_size))


@attrs.frozen
class PruneRound:
    """One accepted round: the term zeroed (``""`` for the search's rule itself) and the result."""

    removed: str
    objective: float
    fitness: float
    theta: tuple[float, ...]

    @property
    def kept(self) -> int:
        """How many terms are non-zero after this round."""
        return int(np.count_nonzero(self.theta))


@attrs.frozen
class PruneTrace:
    """The pass so far: tolerance, the search generation it prunes, its rounds, whether it ended."""

    tolerance: float
    generation: int
    rounds: tuple[PruneRound, ...]
    done: bool = False
    tasks: str = ""

    def matches(self, config: MetaConfig, generation: int) -> bool:
        """Whether this pass is the one ``config`` asks for after ``generation`` generations."""
        return (self.tolerance == config.prune and self.generation == generation
                and getattr(self, "tasks", "") == tasks_key(config))  # traces of before [prune] lack it

    @property
    def theta(self) -> np.ndarray:
        """The rule after the last accepted round."""
        return np.array(self.rounds[-1].theta, dtype=np.float64)

    @property
    def limit(self) -> float:
        """The worst fitness a round may reach: the search rule's plus the tolerance."""
        return self.rounds[0].fitness + self.tolerance

    def removed(self) -> list[str]:
        """Names of the terms zeroed, in the order they went."""
        return [r.removed for r in self.rounds[1:]]


def start_pruning(theta: Sequence[float], objective: float, fitness: float, *, tolerance: float,
                  generation: int, tasks: str = "") -> PruneTrace:
    """The trace before any round: the search's rule with its objective and fitness."""
    return PruneTrace(tolerance=tolerance, generation=generation, tasks=tasks,
                      rounds=(PruneRound("", objective, fitness, tuple(float(v) for v in theta)),))


def prune_round(trace: PruneTrace, terms: Sequence[Term],
                score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> PruneTrace:
    """One round: the trace with one more term zeroed, or marked done.

    Parameters
    ----------
    trace
        The pass so far (not done).
    terms
        The searched terms, in θ's order.
    score
        Candidates (one per row) → (objectives, fitness), in order.

    Returns
    -------
    PruneTrace
        ``trace`` with the accepted round appended, or marked done when no candidate's fitness
        is within the tolerance (or no term is left).
    """
    theta = trace.theta
    left = np.flatnonzero(theta)
    if trace.done or left.size == 0:
        return attrs.evolve(trace, done=True)
    candidates = np.repeat(theta[None, :], left.size, axis=0)
    candidates[np.arange(left.size), left] = 0.0
    objectives, fitness = score(candidates)
    best = int(np.argmin(fitness))  # first of equals: deterministic
    if not fitness[best] <= trace.limit:
        return attrs.evolve(trace, done=True)
    accepted = PruneRound(terms[int(left[best])].name, float(objectives[best]), float(fitness[best]),
                          tuple(float(v) for v in candidates[best]))
    return attrs.evolve(trace, rounds=(*trace.rounds, accepted), done=left.size == 1)


def prune(trace: PruneTrace, terms: Sequence[Term],
          score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
          on_round: Callable[[PruneTrace], None] | None = None) -> PruneTrace:
    """Run :func:`prune_round` until the trace is done; ``on_round(trace)`` after each round."""
    while not trace.done:
        trace = prune_round(trace, terms, score)
        if on_round is not None:
            on_round(trace)
    return trace
