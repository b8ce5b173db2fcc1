"""What a search leaves in its folder.

``meta.csv`` (one row per generation: evaluations, best and mean objective, θ of the best
candidate and of the search's mean), ``best_rule.toml`` (the base spec under the found terms:
``circuits simulate best_rule.toml`` runs it), ``rule.txt`` (the formula), ``heldout.csv``
(the found rule, the start point and the baselines on the held-out tasks: mean ± 95 % CI per
objective), ``heldout_runs.csv`` (every held-out run: arm, task, seed, objectives; same seeds
across arms, for paired comparisons), ``summary.json``, ``objective.png`` and ``coefficients.png``.

With ``prune`` in the meta file the found rule is the pruned one (``best_rule.toml``,
``rule.txt``, the ``found`` arm); ``prune.csv`` lists the rounds (term zeroed, objective and
fitness on the prune tasks, terms kept), the held-out tables add the unpruned rule as the arm
``search``, and ``summary.json`` keeps both formulas. With ``refit`` as well the found rule is
the refitted one; ``refit.csv`` lists its generations and the held-out tables add the pruned
rule before refitting as the arm ``pruned``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from circuits.experiments.stats import mean_ci
from circuits.meta.evaluate import Evaluator, theta_terms
from circuits.meta.file import MetaConfig
from circuits.meta.prune import PruneTrace
from circuits.rules.plasticity import format_rule, parse_terms
from circuits.runs.files import write_text
from circuits.spec_writer import dump_spec

__all__ = ["write_outputs", "found_theta", "pruning_of", "refit_of", "read_rows"]


def found_theta(state: Any) -> np.ndarray:
    """The search's rule: the search distribution's mean after the last generation."""
    return np.asarray(state.optimizer.center, dtype=np.float64)


def refit_of(config: MetaConfig, state: Any, trace: PruneTrace | None) -> Any:
    """The finished refit of ``state`` that ``config`` asks for (of ``trace``'s rule), or ``None``."""
    refit = getattr(state, "refit", None)
    if (not config.refit or trace is None or refit is None or refit.start != tuple(trace.theta)
            or len(refit.rows) != config.refit):
        return None
    return refit


def pruning_of(config: MetaConfig, state: Any) -> PruneTrace | None:
    """The finished pruning pass of ``state`` that ``config`` asks for, or ``None``."""
    trace = getattr(state, "pruning", None)
    if config.prune is None or trace is None or not trace.done or not trace.matches(config, state.generation):
        return None
    return trace


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_rows(path: Path) -> list[dict[str, float]]:
    """``meta.csv`` back as rows of floats."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _heldout(config: MetaConfig, evaluator: Evaluator, terms: dict[str, float],
             searched: dict[str, float] | None = None,
             pruned: dict[str, float] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per arm: the summary rows (all tasks, and each task) and one row per held-out run.

    ``pruned`` (the pruned rule, when the found one was refitted) is the arm ``pruned``,
    ``searched`` (the unpruned rule, when the found one was pruned) the arm ``search``.
    """
    arms: list[tuple[str, str, dict[str, float] | None]] = [("found", "plasticity", terms)]
    if pruned is not None:
        arms.append(("pruned", "plasticity", pruned))
    if searched is not None:
        arms.append(("search", "plasticity", searched))
    arms.append(("start", "plasticity", theta_terms(config.terms, config.start)))
    arms += [(name, entry["rule"], entry["terms"]) for name, entry in config.baselines.items()]
    groups = _task_groups(config)
    rows, runs = [], []
    for name, rule, arm_terms in arms:
        values = evaluator.values(config.heldout, rule, arm_terms, config.heldout_objectives)
        for index, (task, seed) in enumerate(config.heldout.runs()):
            runs.append({"arm": name, "task": ", ".join(f"{k}={v}" for k, v in task.items()) or "base",
                         "seed": seed, **{objective: found[index] for objective, found in values.items()}})
        formula = format_rule(parse_terms(arm_terms)) if arm_terms is not None else rule
        for task, (start, stop) in groups.items():
            row: dict[str, Any] = {"arm": name, "rule": rule, "task": task, "formula": formula,
                                   "runs": stop - start}
            for objective, found in values.items():
                mean, _sd, half = mean_ci(found[start:stop])
                row[f"{objective}.mean"] = mean
                row[f"{objective}.ci95"] = half
                row[f"{objective}.min"] = float(np.min(found[start:stop]))
            rows.append(row)
    return rows, runs


def _task_groups(config: MetaConfig) -> dict[str, tuple[int, int]]:
    """Rows of the held-out runs per group: all runs, and each task apart when there are few."""
    per_task = len(config.heldout.seeds)
    groups = {"all": (0, per_task * len(config.heldout.tasks))}
    if 1 < len(config.heldout.tasks) <= 4:
        for index, task in enumerate(config.heldout.tasks):
            label = ", ".join(f"{k}={v}" for k, v in task.items())
            groups[label] = (index * per_task, (index + 1) * per_task)
    return groups


def _plot(rows: list[dict[str, float]], config: MetaConfig, folder: Path) -> list[Path]:
    gens = [r["generation"] for r in rows]
    fig = Figure(figsize=(6, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(gens, [r["best_objective"] for r in rows], lw=1.4, label="best candidate")
    ax.plot(gens, [r["mean_objective"] for r in rows], lw=1.4, label="mean of candidates")
    ax.set_xlabel("generation")
    ax.set_ylabel(config.objective)
    ax.set_title(f"{config.name}: {config.objective} ({config.optimizer})")
    ax.legend(loc="best", frameon=False)
    fig.tight_layout()
    objective_png = folder / "objective.png"
    fig.savefig(objective_png, dpi=110, metadata={"Software": None})
    fig = Figure(figsize=(6, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    final = {t.name: rows[-1][f"center.{t.name}"] for t in config.terms}
    top = sorted(final, key=lambda n: -abs(final[n]))[:6]
    for term in config.terms:
        values = [r[f"center.{term.name}"] for r in rows]
        if term.name in top:
            ax.plot(gens, values, lw=1.6, label=term.formula())
        else:
            ax.plot(gens, values, lw=0.6, color="#bbbbbb")
    ax.axhline(0.0, color="#999999", lw=0.8, linestyle="--")
    ax.set_xlabel("generation")
    ax.set_ylabel("θ (search mean)")
    ax.set_title(f"{config.name}: coefficients (grey: the other terms)")
    ax.legend(loc="best", frameon=False, fontsize=8)
    fig.tight_layout()
    coeff_png = folder / "coefficients.png"
    fig.savefig(coeff_png, dpi=110, metadata={"Software": None})
    return [objective_png, coeff_png]


def write_outputs(config: MetaConfig, folder: Path, state: Any, evaluator: Evaluator,
                  score: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Write every output of a finished search into ``folder``; return the summary."""
    trace = pruning_of(config, state)
    searched = theta_terms(config.terms, found_theta(state))
    refit = refit_of(config, state, trace)
    theta = trace.theta if trace is not None else found_theta(state)
    pruned_terms = theta_terms(config.terms, theta) if refit is not None else None
    if refit is not None:
        theta = refit.theta()
    terms = theta_terms(config.terms, theta)
    formula = format_rule(parse_terms(terms))
    write_text(folder / "meta.csv", _csv(state.rows))
    base = evaluator.spec({}, config.inner.seeds[0])
    write_text(folder / "best_rule.toml", dump_spec(evaluator.with_rule(base, "plasticity", terms)) + "\n")
    write_text(folder / "rule.txt", formula + "\n")
    inner = float(score(theta[None, :])[0])
    heldout, runs = _heldout(config, evaluator, terms, searched if trace is not None else None, pruned_terms)
    pruned: dict[str, Any] | None = None
    if trace is not None:
        write_text(folder / "prune.csv", _csv([
            {"round": i, "removed": r.removed, "objective": r.objective, "fitness": r.fitness, "kept": r.kept}
            for i, r in enumerate(trace.rounds)]))
        pruned = {"tolerance": trace.tolerance, "search_objective": trace.rounds[0].objective,
                  "search_fitness": trace.rounds[0].fitness, "fitness": trace.rounds[-1].fitness,
                  "removed": trace.removed(), "kept": trace.rounds[-1].kept,
                  "search_formula": format_rule(parse_terms(searched)), "search_terms": searched}
    elif (folder / "prune.csv").exists():
        (folder / "prune.csv").unlink()  # left by an earlier pass that this meta file no longer asks for
    refitted: dict[str, Any] | None = None
    if refit is not None and pruned_terms is not None:
        write_text(folder / "refit.csv", _csv(refit.rows))
        refitted = {"generations": len(refit.rows), "terms": [config.terms[i].name for i in refit.support],
                    "pruned_formula": format_rule(parse_terms(pruned_terms)), "pruned_terms": pruned_terms}
    elif (folder / "refit.csv").exists():
        (folder / "refit.csv").unlink()
    write_text(folder / "heldout.csv", _csv(heldout))
    write_text(folder / "heldout_runs.csv", _csv(runs))
    plots = _plot(state.rows, config, folder) if state.rows else []
    summary = {"name": config.name, "optimizer": config.optimizer, "generations": state.generation,
               "evaluations": state.evaluations, "seconds": round(state.seconds, 3),
               "evaluations_per_second": state.evaluations / state.seconds if state.seconds else None,
               "objective": config.objective, "inner_objective": inner, "formula": formula,
               "terms": terms, "pruning": pruned, "refit": refitted, "heldout": heldout, "plots": [p.name for p in plots]}
    write_text(folder / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
    return summary
