"""Claims of the parametrized plasticity family: known rules are points of it.

* ``plasticity_fa_point``: θ = {pre*err: −1} gives the deltas of ``feedback_alignment``
  exactly (same feedback weights, same circuit);
* ``plasticity_hebb_oja_points``: θ = {pre*post: 1} gives ``lr·mean(pre ⊗ post)`` and
  θ = {pre*post: 1, post^2*w: −1} Oja's ``lr·(mean(pre ⊗ post) − mean(post²) ⊙ w)``, both
  against the same formulas written in NumPy from the circuit's own rates.

and, on a circuit of one linear unit learning from the ``covariances`` task, the search claims:

* ``plasticity_oja_beats_zero``: Oja's rule scores a higher ``pc1_alignment`` than the zero
  rule (the objective can tell a rule that learns from one that does not);
* ``plasticity_search_reaches_oja``: an ES search from θ = 0 over the Hebb, Oja, decay and
  post terms (L1 = 1e-2, 240 evaluations) ends within 1.2× of Oja's objective.
"""

from __future__ import annotations

import numpy as np

from circuits.claims.base import Claim, Outcome, dense_only, random_batch, relative_error, variant
from circuits.meta.es import EvolutionStrategy
from circuits.meta.evaluate import Evaluator
from circuits.meta.file import parse_meta
from circuits.model import Model
from circuits.rules import RuleRegistry
from circuits.spec import CircuitSpec

__all__ = ["PLASTICITY_FA_POINT", "PLASTICITY_HEBB_OJA_POINTS", "PLASTICITY_OJA_BEATS_ZERO",
           "PLASTICITY_SEARCH_REACHES_OJA", "family_deltas", "oja_task_evaluator"]

_TOL = 1e-12
_CONFAVREUX = ('Confavreux et al. 2020, "A meta-learning approach to (re)discover plasticity rules that carve a '
               'desired function into a neural network"')
_OJA_PAPER = 'Oja 1982, "Simplified neuron model as a principal component analyzer"'


def family_deltas(spec: CircuitSpec, registry: RuleRegistry, terms: dict[str, float],
                  x: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], ...]:
    """The plasticity rule's deltas at ``terms`` on a batch, every population's rate in that
    probe, and the parameters (not changed by a probe)."""
    spec = variant(spec, rule="plasticity", rule_params={"terms": terms})
    model = Model(spec, registry=registry)
    deltas = model.deltas(x, y)
    exe = model.sim.executable(model.compiled("probe"), len(x))
    rates = {pop: np.array(model.backend.to_numpy(exe.arrays[_rate(model, pop)])) for pop in model.graph.populations}
    params = {name: np.array(model.backend.to_numpy(value)) for name, value in model.params.items()}
    return deltas, rates, params


def _rate(model: Model, pop: str) -> str:
    if model.graph.population(pop).role == "input":
        return f"{pop}.rate"
    return f"{pop}.pre" if model.graph.population(pop).activation == "linear" else f"{pop}.rate"


def _needs_feedback(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    if dense_only(spec, registry):  # the plasticity family runs dense projections only
        return dense_only(spec, registry)
    rule = registry.get("feedback_alignment")
    spec = variant(spec, rule="feedback_alignment", rule_params={"auto_feedback": True})
    try:
        Model(rule.augment(spec), registry=registry)
    except Exception as exc:  # a circuit FA cannot run on (lateral or cyclic projections)
        return f"feedback alignment does not run on this circuit: {exc}"
    return None


def _fa_point(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    fa_spec = registry.get("feedback_alignment").augment(
        variant(spec, rule="feedback_alignment", rule_params={"auto_feedback": True}))
    fa = Model(fa_spec, registry=registry)
    x, y = random_batch(fa, 7, rng)
    expected = fa.deltas(x, y)
    family_spec = variant(fa_spec, rule="plasticity", rule_params={"terms": {"pre*err": -1.0}})
    got = Model(family_spec, registry=registry).deltas(x, y)
    worst = max(relative_error(got[name], expected[name]) for name in expected)
    missing = sorted(set(expected) ^ set(got))
    ok = worst < _TOL and not missing
    return Outcome("plasticity_fa_point", "pass" if ok else "fail",
                   {"max_relative_error": worst, "parameters": float(len(expected))},
                   f"every parameter's delta equals feedback_alignment's (relative error < {_TOL:g})"
                   + (f"; parameters differ: {', '.join(missing)}" if missing else ""))


def _hebb_oja(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    base = variant(spec, rule="plasticity", rule_params={"terms": {"pre*post": 1.0}})
    model = Model(base, registry=registry)
    x, y = random_batch(model, 6, rng)
    worst = 0.0
    for terms in ({"pre*post": 1.0}, {"pre*post": 1.0, "post^2*w": -1.0}):
        deltas, rates, params = family_deltas(spec, registry, terms, x, y)
        lr = base.rule.params["lr"]
        for proj in model.graph.projections("forward"):
            if not proj.plastic:
                continue
            pre, post = rates[proj.source], rates[proj.target]
            hand = pre.T @ post / len(x)
            if "post^2*w" in terms:
                hand = hand - np.mean(post * post, axis=0) * params[proj.name]
            worst = max(worst, relative_error(deltas[proj.name], lr * hand))
    ok = worst < _TOL
    return Outcome("plasticity_hebb_oja_points", "pass" if ok else "fail", {"max_relative_error": worst},
                   f"Hebb's and Oja's points equal lr·mean(pre⊗post) and lr·(mean(pre⊗post) − "
                   f"mean(post²)⊙w) from the circuit's rates (relative error < {_TOL:g})")


def _always(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    return None


PLASTICITY_FA_POINT = Claim(
    name="plasticity_fa_point",
    rules=("plasticity",),
    statement="The plasticity family at θ = {pre*err: −1} is feedback alignment: same deltas, "
              "same feedback weights (float64, plain SGD).",
    source='Lillicrap et al. 2016, "Random synaptic feedback weights support error backpropagation for '
           'deep learning", as a point of the family of ' + _CONFAVREUX,
    precondition=_needs_feedback,
    measure=_fa_point,
)

PLASTICITY_HEBB_OJA_POINTS = Claim(
    name="plasticity_hebb_oja_points",
    rules=("plasticity",),
    statement="θ = {pre*post: 1} is Hebb's rule lr·mean(pre⊗post); adding post^2*w = −1 gives "
              "Oja's rule lr·(mean(pre⊗post) − mean(post²)⊙w) (float64, plain SGD).",
    source=_OJA_PAPER,
    precondition=_always,
    measure=_hebb_oja,
)


_OJA_META = """
[meta]
name = "claim"
spec = "unused.toml"
terms = ["pre*post", "post^2*w", "w", "post"]
population = 12
generations = 20
l1 = 1e-2
sigma = 0.1
step = 0.08
seed = {seed}
objective = "pc1_alignment"
[inner]
steps = 150
batch_size = 100
tasks = {{ "task.options.covariance" = [{tasks}] }}
set = {{ "task.options.n" = 15000, "task.n_train" = 15000 }}
"""
_OJA = (1.0, -1.0, 0.0, 0.0)


def oja_task_evaluator(spec: CircuitSpec, seed: int) -> Evaluator:
    """An evaluator of rules on ``spec`` (one linear unit) over two covariances drawn from ``seed``."""
    tasks = ", ".join(str(1 + 2 * seed + k) for k in range(2))
    config = parse_meta(_OJA_META.format(seed=seed, tasks=tasks), source="claim")
    return Evaluator(config, base=spec)


def _one_linear_unit(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    forward = [p for p in spec.projections if p.type == "forward"]
    out = [p for p in spec.populations if p.role == "output"]
    if spec.task.dataset != "covariances":
        return f"the search claims run on the covariances task (this spec learns from '{spec.task.dataset}')"
    if len(forward) != 1 or len(out) != 1 or out[0].size != 1 or out[0].activation != "linear":
        return "the search claims need one linear output unit fed by one forward projection"
    return None


def _oja_beats_zero(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    evaluator = oja_task_evaluator(variant(spec, rule="plasticity"), int(rng.integers(0, 1000)))
    oja, zero = evaluator.objective_of(_OJA), evaluator.objective_of((0.0,) * 4)
    return Outcome("plasticity_oja_beats_zero", "pass" if oja > zero else "fail",
                   {"oja": oja, "zero": zero}, "pc1_alignment of Oja's rule > that of the zero rule")


def _search_reaches_oja(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    seed = int(rng.integers(0, 1000))
    evaluator = oja_task_evaluator(variant(spec, rule="plasticity"), seed)
    config = evaluator.config
    es = EvolutionStrategy(np.zeros(len(config.terms)), population=config.population, sigma=config.sigma,
                           step=config.step, seed=seed)
    for _ in range(config.generations):
        thetas = es.ask()
        es.tell(np.array([evaluator.fitness(t, evaluator.objective_of(t)) for t in thetas]))
    found, oja = evaluator.objective_of(es.center), evaluator.objective_of(_OJA)
    ok = found >= oja / 1.2
    return Outcome("plasticity_search_reaches_oja", "pass" if ok else "fail",
                   {"found": found, "oja": oja, "ratio": oja / found if found > 0 else float("inf"),
                    "evaluations": float(config.population * config.generations)},
                   "the searched rule's pc1_alignment is at least Oja's / 1.2")


PLASTICITY_OJA_BEATS_ZERO = Claim(
    name="plasticity_oja_beats_zero",
    rules=("plasticity",),
    statement="On the covariances task, Oja's rule scores a higher pc1_alignment than the zero rule.",
    source=_OJA_PAPER + "; the objective of " + _CONFAVREUX,
    precondition=_one_linear_unit,
    measure=_oja_beats_zero,
)

PLASTICITY_SEARCH_REACHES_OJA = Claim(
    name="plasticity_search_reaches_oja",
    rules=("plasticity",),
    statement="An ES search from θ = 0 over pre*post, post^2*w, w and post (L1 = 1e-2, 240 "
              "evaluations) ends within 1.2× of Oja's pc1_alignment.",
    source=_CONFAVREUX + ", at a small budget",
    precondition=_one_linear_unit,
    measure=_search_reaches_oja,
)
