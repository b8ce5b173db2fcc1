"""Energy-based circuits: the Hopfield energy, its relaxation dynamics, and exact gradients.

Every population but the inputs carries a state ``s`` (buffer ``<pop>.pre``) and a rate
``ρ(s)`` (buffer ``<pop>.rate``). Forward projections are *symmetric couplings*: a projection
A→B with weight ``W`` (shape ``n_A × n_B``) enters the energy

    E(s) = ½ Σ_B ‖s_B‖² − Σ_{A→B} ρ(s_A)ᵀ W ρ(s_B) − Σ_B b_Bᵀ ρ(s_B)

(Scellier & Bengio 2017), so B is driven by ``ρ(s_A) @ W`` and A by ``ρ(s_B) @ W.T``. A
feedback projection B→A in the spec replaces that transpose by its own weight (untied
couplings: the dynamics are then a vector field, not the gradient of an energy). Inputs are
clamped to the data. The dynamics are leaky integrators,

    ds_B/dt = ρ'(s_B) ⊙ drive_B − s_B,   drive_B = −∂E/∂ρ(s_B) (+ β(target − ρ(s_y)) at the output)

integrated by Euler steps of each population's ``step`` ε (plus Langevin noise of std
``noise``·√ε per step when a population declares it); hard-sigmoid states live in [0, 1].
A *relaxation* phase repeats one synchronous step of every population until the largest
per-example force norm falls to the rule's tolerance or its step budget is spent.

:func:`exact_gradients` differentiates the loss at the free fixed point implicitly, which is
what every energy rule's update is compared against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError, FixedPointError
from circuits.graph import CircuitGraph
from circuits.rules.base import Rule, find_feedback, refuse_conv
from circuits.schema import Param

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["EnergyRule", "RELAXATION_PARAMS", "with_default", "dynamic_populations", "couplings", "drive_terms",
           "lower_init", "lower_relaxation", "emit_drives", "emit_integrate", "lower_settle", "contrast",
           "rates_of", "force", "energy", "free_states", "polish", "fixed_point", "exact_gradients",
           "loss_at", "relaxation_trace", "rate_triple", "REFERENCE_TOL", "REFERENCE_STEPS"]

RESIDUAL = "relax.residual"
SQUARED = "relax.squared"

RELAXATION_PARAMS: tuple[Param, ...] = (
    Param("free_steps", 2000, "step budget of the free relaxation: it stops once converged (tol), so a large "
          "budget costs nothing on circuits that settle; a 64-100-50-10 hard-sigmoid digits circuit at ε = 0.5 "
          "takes 200–500 steps", minimum=1),
    Param("tol", 1e-3, "largest per-example force norm at which a relaxation has converged (an estimate "
          "computed there is off by O(tol/β))", minimum=0.0),
)
"""Defaults chosen so that a user's layered circuit (e.g. digits 64-100-50-10, hard-sigmoid or
sigmoid units, the default step ε = 0.5 and xavier init) converges on every relaxation and
trains: stop on the tolerance, with a budget far above what such a circuit needs."""


def with_default(params: Sequence[Param], name: str, default: object, doc: str | None = None) -> tuple[Param, ...]:
    """``params`` with the default (and doc) of the one named ``name`` replaced."""
    return tuple(attrs.evolve(p, default=default, doc=doc or p.doc) if p.name == name else p for p in params)


def dynamic_populations(graph: CircuitGraph) -> list[str]:
    """Every population with a state (all but the inputs), in forward order."""
    return [p for p in graph.forward_order() if graph.population(p).role != "input"]


def couplings(graph: CircuitGraph, pop: str) -> list[tuple[str, str, bool]]:
    """``(source population, projection name, transpose)`` of every term of ``pop``'s drive.

    Bottom-up: ``A.rate @ W_{A→pop}``. Top-down from each C that ``pop`` projects to: the
    feedback projection C→pop when the spec has one, else ``C.rate @ W_{pop→C}.T``.
    """
    terms = [(p.source, p.name, False) for p in graph.incoming(pop)]
    for p in graph.outgoing(pop):
        if graph.population(p.target).role == "input":
            continue
        back = find_feedback(graph, p.target, pop)
        terms.append((p.target, back.name, False) if back else (p.target, p.name, True))
    return terms


class EnergyRule(Rule):
    """Base of the rules whose circuits relax to a fixed point of their dynamics."""

    def check(self, graph: CircuitGraph) -> None:
        refuse_conv(self, graph)
        if graph.projections("lateral"):
            proj = graph.projections("lateral")[0]
            raise CompileError(f"{graph.spec.source}: projection '{proj.name}': rule '{self.name}' "
                               "does not support lateral projections yet; couple populations with "
                               "forward projections (they are symmetric in an energy model)")
        if graph.spec.task.loss != "mse":
            raise CompileError(f"{graph.spec.source}: rule '{self.name}' nudges the output with the "
                               "squared error; set task.loss = \"mse\"")
        for pop in dynamic_populations(graph):
            if graph.population(pop).activation == "softmax":
                raise CompileError(f"{graph.spec.source}: populations.{pop}.activation: softmax units "
                                   f"have no leaky-integrator dynamics under rule '{self.name}'; use "
                                   "sigmoid or hard_sigmoid")
            if not graph.population(pop).rate_params.plain and graph.population(pop).activation == "hard_sigmoid":
                raise CompileError(f"{graph.spec.source}: populations.{pop}.activation: rule '{self.name}' "
                                   "keeps hard-sigmoid states in the box [0, 1], so they take no scale, shift or "
                                   "gain; write activation = \"hard_sigmoid\" or use sigmoid")
            if graph.population(pop).dropout > 0:
                raise CompileError(f"{graph.spec.source}: populations.{pop}.dropout: rule '{self.name}' "
                                   "does not support dropout; set it to 0")
        for proj in graph.projections("feedback"):
            forward = [p for p in graph.projections("forward")
                       if p.source == proj.target and p.target == proj.source]
            if not forward:
                raise CompileError(f"{graph.spec.source}: feedback projection '{proj.name}' has no forward "
                                   f"projection {proj.target}→{proj.source} to untie; remove it or add one")

    def exact_gradients(self, model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The gradient of the batch loss at the free fixed point of the circuit as it runs,
        with the rule's feedback gain ``gamma`` where it has one (see :func:`exact_gradients`)."""
        return exact_gradients(model, x, y, gamma=float(model.spec.rule.params.get("gamma", 1.0)))


# -- lowering ----------------------------------------------------------------------------------


def lower_init(b: Builder, phase: str = "init", *, persist: str = "") -> None:
    """Declare state, rate and drive buffers; start every state at zero.

    With ``persist`` (a suffix such as ``".free"``) the states start instead from each
    example's *particle* (an input buffer ``<pop>.particle``), and ``<pop>.pre<persist>`` is
    saved back into it after the run (see :attr:`circuits.ir.Program.particles`).
    """
    doc = ("states start from each example's last free fixed point (persistent particles; zero for an "
           "example not seen before)") if persist else "states start at rest"
    b.phase(phase, doc=doc)
    for pop in dynamic_populations(b.graph):
        b.activity(b.pre(pop), pop)
        b.activity(b.rate(pop), pop)
        b.activity(f"{pop}.drive", pop)
        if not persist:
            b.emit(phase, ops.Fill(b.pre(pop), 0.0))
            continue
        particle = b.add_buffer(f"{pop}.particle", ("batch", b.size(pop)), "input",
                                doc="the example's last free state")
        b.emit(phase, ops.Copy(particle, b.pre(pop)))
        b.particles[particle] = b.pre(pop) + persist


def drive_terms(graph: CircuitGraph, pop: str) -> list[tuple[str, str, bool, bool]]:
    """:func:`couplings` with a fourth field: whether the term is top-down (from a population
    ``pop`` projects to, through a transpose or a feedback projection)."""
    bottom_up = {p.name for p in graph.incoming(pop)}
    return [(source, name, transpose, transpose or name not in bottom_up)
            for source, name, transpose in couplings(graph, pop)]


def lower_relaxation(b: Builder, phase: str, *, steps: int, tol: float, beta: float = 0.0, sign: str = "",
                     gamma: float = 1.0, clamp: bool = False, doc: str = "") -> None:
    """One relaxation phase: every population takes synchronous leaky-integrator steps.

    Each step computes every rate from the current states, then every drive, then moves
    every state, so no population sees another's new state within a step. With ``beta``
    the output's drive is pulled toward the target (the nudged phase), times the scalar
    buffer ``sign`` when one is named (a sign drawn per batch); with ``clamp`` the
    output is left out of the dynamics (its rate, set before the phase, is read but never
    recomputed); ``gamma`` scales every top-down drive term (Xie & Seung's feedback gain).

    The inputs are clamped and the weights change only after the last phase, so the part of
    a drive that comes from the inputs (and the bias) is the same in every relaxation of a
    run: the first relaxation computes it once, in a phase ``<phase>_drive_in``, and every
    step of every relaxation starts its drive from a copy of it.
    """
    graph = b.graph
    b.add_buffer(SQUARED, ("batch",), "temp")
    b.add_buffer(RESIDUAL, (), "temp")
    moving = [p for p in dynamic_populations(graph) if not (clamp and p == graph.output)]
    _lower_drive_in(b, f"{phase}_drive_in")
    b.phase(phase, repeat=steps, until=RESIDUAL, tol=tol, doc=doc or _relaxation_doc(beta, sign, gamma, clamp))
    for pop in moving:
        fn, params = b.rate_function(pop)
        b.emit(phase, ops.Activate(fn, b.pre(pop), b.rate(pop), params))
    emit_drives(b, phase, moving, b.rate, beta=beta, sign=sign, gamma=gamma)
    emit_integrate(b, phase, moving, b.rate)
    b.emit(phase, ops.ResidualNorm(SQUARED, RESIDUAL))


def _relaxation_doc(beta: float, sign: str, gamma: float, clamp: bool) -> str:
    size = f"β = {beta:g}·{sign} (= ±{abs(beta):g})" if sign else f"β = {beta:g}"
    kind = "clamped relaxation" if clamp else ("free relaxation" if not beta else
                                               f"relaxation nudged toward the target with {size}")
    return kind + (f", feedback gain γ = {gamma:g}" if gamma != 1.0 else "")


def _clamped_terms(graph: CircuitGraph, pop: str) -> list[tuple[str, str, bool, bool]]:
    return [t for t in drive_terms(graph, pop) if graph.population(t[0]).role == "input"]


def _lower_drive_in(b: Builder, phase: str) -> None:
    """``<pop>.drive_in = Σ input.rate @ W (+ bias)``, once per program (the first call emits it)."""
    graph = b.graph
    pops = [p for p in dynamic_populations(graph) if _clamped_terms(graph, p)]
    if not pops or f"{pops[0]}.drive_in" in b.buffers:
        return
    b.phase(phase, doc="drive from the clamped inputs (and bias), constant over every relaxation of the run")
    for pop in pops:
        for index, (source, name, transpose, _) in enumerate(_clamped_terms(graph, pop)):
            b.emit(phase, ops.MatMul(b.rate(source), b.weight(name), b.activity(f"{pop}.drive_in", pop),
                                     transpose_b=transpose, accumulate=index > 0))
        if graph.has_bias(pop):
            b.emit(phase, ops.AddBias(b.bias(pop), f"{pop}.drive_in"))


def emit_drives(b: Builder, phase: str, pops: Sequence[str], rate: Callable[[str], str], *,
                beta: float = 0.0, sign: str = "", gamma: float = 1.0) -> None:
    """``<pop>.drive`` of every population in ``pops`` from the rates ``rate(source)``.

    The drive starts from ``<pop>.drive_in`` when the population hears an input (see
    :func:`lower_relaxation`); top-down terms read ``<source>.feedback = γ·rate`` when
    ``gamma ≠ 1``; with ``beta`` the output's drive is nudged toward its target (times the
    scalar buffer ``sign``, if named).
    """
    graph = b.graph
    if gamma != 1.0:
        senders = {t[0] for pop in pops for t in drive_terms(graph, pop) if t[3]}
        for pop in dynamic_populations(graph):
            if pop in senders:
                b.emit(phase, ops.LinearCombination((rate(pop),), (gamma,), b.activity(f"{pop}.feedback", pop)))
    for pop in pops:
        drive, clamped = f"{pop}.drive", bool(_clamped_terms(graph, pop))
        if clamped:
            b.emit(phase, ops.Copy(f"{pop}.drive_in", drive))
        terms = [t for t in drive_terms(graph, pop) if graph.population(t[0]).role != "input"]
        for index, (source, name, transpose, top) in enumerate(terms):
            sent = f"{source}.feedback" if top and gamma != 1.0 else rate(source)
            b.emit(phase, ops.MatMul(sent, b.weight(name), drive, transpose_b=transpose,
                                     accumulate=clamped or index > 0))
        if graph.has_bias(pop) and not clamped:
            b.emit(phase, ops.AddBias(b.bias(pop), drive))
        if beta and pop == graph.output:
            b.emit(phase, ops.Nudge(rate(pop), f"{pop}.target", drive, beta, sign))


def emit_integrate(b: Builder, phase: str, pops: Sequence[str], rate: Callable[[str], str]) -> None:
    """One leaky-integrator step of every population in ``pops``, their squared forces into the residual."""
    for index, pop in enumerate(pops):
        spec = b.graph.population(pop)
        noise = spec.noise if b.mode != "infer" else 0.0
        b.emit(phase, ops.LeakyIntegrate(spec.activation, b.pre(pop), rate(pop), f"{pop}.drive", SQUARED,
                                         spec.step, noise, stream=f"{pop}.langevin" if noise else "",
                                         accumulate=index > 0, params=spec.rate_params))


def lower_settle(b: Builder, phase: str, suffix: str = "") -> None:
    """Rates from the final states (into ``<pop>.rate<suffix>`` when a suffix is given)."""
    b.phase(phase, doc="rates of the relaxed states" + (f", kept as *.rate{suffix}" if suffix else ""))
    for pop in dynamic_populations(b.graph):
        out = b.activity(b.rate(pop) + suffix, pop)
        fn, params = b.rate_function(pop)
        b.emit(phase, ops.Activate(fn, b.pre(pop), out, params))


def contrast(b: Builder, rates: Sequence[tuple[str, float]], scale: Mapping[str, float] | None = None,
             doc: str = "co-activity of each coupling's two ends, contrasted between phases", sign: str = "") -> None:
    """Learn ``Σ_k c_k · ρ_Aᵏ.T @ ρ_Bᵏ / batch`` for every coupling, as an estimate of ∂J/∂W.

    ``rates`` pairs a rate-buffer suffix with its coefficient ``c_k`` (e.g. the EqProp
    estimator ``(".nudged", −1/β), (".free", 1/β)``). Each projection A→B (forward or
    feedback) and each bias learns the same contrast of its two ends' co-activity; inputs
    contribute their (clamped) data rate. ``scale`` multiplies the coefficient of the
    couplings into each population (Xie & Seung's per-layer learning rates); ``sign`` names
    a scalar buffer that multiplies every coefficient at run time.
    """
    graph = b.graph

    def rate(pop: str, suffix: str) -> str:
        return b.rate(pop) if graph.population(pop).role == "input" else b.rate(pop) + suffix

    b.phase("contrast", doc=doc)
    for suffix, coeff in rates:
        for pop in dynamic_populations(graph):
            scaled = b.activity(f"{pop}.scaled{suffix}", pop)
            factor = coeff * (scale[pop] if scale else 1.0)
            b.emit("contrast", ops.Modulate(sign, rate(pop, suffix), scaled, alpha=factor, per_batch=True) if sign
                   else ops.LinearCombination((rate(pop, suffix),), (factor,), scaled, powers=(-1,)))
        for proj in graph.projections():
            if proj.plastic and proj.type != "lateral":
                b.learn(proj.name, rate(proj.source, suffix), f"{proj.target}.scaled{suffix}")
        for pop in dynamic_populations(graph):
            b.learn_bias(pop, f"{pop}.scaled{suffix}")


# -- NumPy reference: energy, force and implicit gradients ---------------------------------------


_RATES = {
    "linear": (lambda s: s, lambda s: np.ones_like(s), lambda s: np.zeros_like(s)),
    "hard_sigmoid": (lambda s: np.clip(s, 0.0, 1.0), lambda s: np.ones_like(s), lambda s: np.zeros_like(s)),
    "tanh": (np.tanh, lambda s: 1 - np.tanh(s) ** 2, lambda s: -2 * np.tanh(s) * (1 - np.tanh(s) ** 2)),
    "sigmoid": (lambda s: 1 / (1 + np.exp(-s)),
                lambda s: (1 / (1 + np.exp(-s))) * (1 - 1 / (1 + np.exp(-s))),
                lambda s: (lambda g: g * (1 - g) * (1 - 2 * g))(1 / (1 + np.exp(-s)))),
    "relu": (lambda s: np.maximum(s, 0.0), lambda s: (s > 0).astype(float), lambda s: np.zeros_like(s)),
    "softplus": (lambda s: np.logaddexp(s, 0.0), lambda s: 0.5 * (1 + np.tanh(0.5 * s)),
                 lambda s: (lambda g: g * (1 - g))(0.5 * (1 + np.tanh(0.5 * s)))),
}


def rate_triple(graph: CircuitGraph, pop: str) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
    """NumPy ``(ρ, ρ', ρ'')`` of population ``pop``, its scale, shift and gain included."""
    spec = graph.population(pop)
    return spec.rate_params.wrap(*_RATES[spec.activation])


def _host_params(model: Model) -> dict[str, np.ndarray]:
    return {name: np.asarray(model.backend.to_numpy(value), dtype=np.float64) for name, value in model.params.items()}


def _inputs(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    rates, start = {}, 0
    for pop in model.graph.inputs:
        width = model.graph.population(pop).size
        rates[pop] = np.asarray(x, dtype=np.float64)[:, start:start + width]
        start += width
    return rates


def rates_of(model: Model, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every population's rate: the data for inputs, ``ρ(s)`` for the rest (float64)."""
    graph = model.graph
    return {**_inputs(model, x), **{p: rate_triple(graph, p)[0](s) for p, s in states.items()}}


def _drives(model: Model, params: dict[str, np.ndarray], rates: dict[str, np.ndarray],
            gamma: float = 1.0) -> dict[str, np.ndarray]:
    graph = model.graph
    drives = {}
    for pop in dynamic_populations(graph):
        total = sum((gamma if top else 1.0) * (rates[src] @ (params[name].T if t else params[name]))
                    for src, name, t, top in drive_terms(graph, pop))
        drives[pop] = total + params[f"{pop}.bias"] if graph.has_bias(pop) else total
    return drives


def force(model: Model, x: np.ndarray, states: dict[str, np.ndarray], *, target: np.ndarray | None = None,
          beta: float = 0.0, gamma: float = 1.0) -> dict[str, np.ndarray]:
    """``ρ'(s) ⊙ drive − s`` per population (float64, NumPy), nudged by ``beta`` toward ``target``,
    top-down drive terms scaled by ``gamma``."""
    graph = model.graph
    rates = rates_of(model, x, states)
    drives = _drives(model, _host_params(model), rates, gamma)
    if beta:
        drives[graph.output] = drives[graph.output] + beta * (target - rates[graph.output])
    return {p: rate_triple(graph, p)[1](states[p]) * drives[p] - states[p] for p in states}


def energy(model: Model, x: np.ndarray, states: dict[str, np.ndarray]) -> np.ndarray:
    """The Hopfield energy ``E(s)`` of each example (tied couplings; feedback weights ignored)."""
    graph, params = model.graph, _host_params(model)
    rates = rates_of(model, x, states)
    total = sum(0.5 * np.sum(s * s, axis=1) for s in states.values())
    for proj in graph.projections("forward"):
        total = total - np.sum((rates[proj.source] @ params[proj.name]) * rates[proj.target], axis=1)
    for pop in states:
        if graph.has_bias(pop):
            total = total - rates[pop] @ params[f"{pop}.bias"]
    return total


def free_states(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """The states at the end of the model's own free relaxation (host float64 copies)."""
    program = model.compiled("infer")
    exe = model.run("infer", x, phases=program.predict_phases)
    return {p: np.array(model.backend.to_numpy(exe.arrays[f"{p}.pre"]), dtype=np.float64)
            for p in dynamic_populations(model.graph)}


def _layout(model: Model) -> tuple[list[str], dict[str, slice], int]:
    pops = dynamic_populations(model.graph)
    offsets, start = {}, 0
    for pop in pops:
        size = model.graph.population(pop).size
        offsets[pop] = slice(start, start + size)
        start += size
    return pops, offsets, start


def _jacobian(model: Model, params: dict[str, np.ndarray], states: dict[str, np.ndarray],
              drives: dict[str, np.ndarray], gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-example Jacobian of the force (batch × n × n) and the gains ``ρ'`` (zero where a
    hard-sigmoid unit sits at a bound its force presses against, which it cannot leave)."""
    graph = model.graph
    pops, at, n = _layout(model)
    batch = next(iter(states.values())).shape[0]
    gain = np.zeros((batch, n))
    curve = np.zeros((batch, n))
    for pop in pops:
        fn = graph.population(pop).activation
        s = states[pop]
        g = rate_triple(graph, pop)[1](s)
        if fn == "hard_sigmoid":
            push = g * drives[pop] - s
            g = np.where(((s <= 0.0) & (push <= 0.0)) | ((s >= 1.0) & (push >= 0.0)), 0.0, g)
        gain[:, at[pop]] = g
        curve[:, at[pop]] = rate_triple(graph, pop)[2](s) * drives[pop]
    coupling = np.zeros((n, n))  # ∂drive_i / ∂ρ_j
    for pop in pops:
        for source, name, transpose, top in drive_terms(graph, pop):
            if source in at:
                matrix = params[name] if transpose else params[name].T
                coupling[at[pop], at[source]] += (gamma if top else 1.0) * matrix
    jac = gain[:, :, None] * coupling[None] * gain[:, None, :]
    jac += np.einsum("bi,ij->bij", curve - 1.0, np.eye(n))
    return jac, gain


def polish(model: Model, x: np.ndarray, states: dict[str, np.ndarray], *, gamma: float = 1.0,
           iterations: int = 30, tol: float = 1e-13) -> dict[str, np.ndarray]:
    """Newton iterations on ``force = 0`` from ``states`` (float64), keeping hard-sigmoid states in [0, 1]."""
    graph, params = model.graph, _host_params(model)
    pops, at, _ = _layout(model)
    states = {p: s.copy() for p, s in states.items()}
    for _ in range(iterations):
        push = force(model, x, states, gamma=gamma)
        flat = np.concatenate([push[p] for p in pops], axis=1)
        jac, gain = _jacobian(model, params, states, _drives(model, params, rates_of(model, x, states), gamma), gamma)
        for pop in pops:  # a unit pinned at its bound has no residual to remove
            if graph.population(pop).activation == "hard_sigmoid":
                flat[:, at[pop]] = np.where(gain[:, at[pop]] == 0.0, 0.0, flat[:, at[pop]])
        if np.max(np.abs(flat)) <= tol:
            break
        step = np.linalg.solve(jac, -flat[..., None])[..., 0]
        for pop in pops:
            new = states[pop] + step[:, at[pop]]
            states[pop] = np.clip(new, 0.0, 1.0) if graph.population(pop).activation == "hard_sigmoid" else new
    return states


REFERENCE_TOL = 1e-10
"""Largest per-example force norm at which the reference's free fixed point counts as reached."""
REFERENCE_STEPS = 200_000
"""Step budget of the reference's own free relaxation (it stops as soon as it has converged)."""
_HANDOFF = 1e-6  # force norm at which Euler steps hand over to Newton's method


def _residuals(model: Model, states: dict[str, np.ndarray], push: dict[str, np.ndarray]) -> np.ndarray:
    """Per-example norm of the state change per unit time of one Euler step (what the
    simulator's ``relax.residual`` measures): a hard-sigmoid unit pressed against its bound counts zero."""
    squared = np.zeros(next(iter(states.values())).shape[0])
    for pop, s in states.items():
        spec = model.graph.population(pop)
        move = push[pop]
        if spec.activation == "hard_sigmoid":
            move = (np.clip(s + spec.step * move, 0.0, 1.0) - s) / spec.step
        squared += np.sum(move * move, axis=1)
    return np.sqrt(squared)


def fixed_point(model: Model, x: np.ndarray, states: dict[str, np.ndarray] | None = None, *,
                gamma: float = 1.0, tol: float = REFERENCE_TOL, steps: int = REFERENCE_STEPS) -> dict[str, np.ndarray]:
    """The free fixed point that the circuit's dynamics reach, found in float64 on the host.

    Stages:

    1. from rest (or from ``states``), the model's own noise-free Euler steps (each
       population's ε, hard-sigmoid states clipped to [0, 1]) until every example's force
       norm is at most ``1e-6`` or ``steps`` are spent; this follows the trajectory of the
       model's free phase, so it continues it past whatever budget the rule has;
    2. Newton iterations on ``force = 0`` (:func:`polish`) to a force norm of ``tol``.

    Raises
    ------
    FixedPointError
        When some example's force norm is still above ``tol`` (the dynamics oscillate,
        diverge or creep), naming the count, the residual and what to change.
    """
    graph, params = model.graph, _host_params(model)
    pops = dynamic_populations(graph)
    x = np.asarray(x, dtype=np.float64)
    if states is None:
        states = {p: np.zeros((len(x), graph.population(p).size)) for p in pops}
    states = {p: np.array(states[p], dtype=np.float64) for p in pops}
    inputs = _inputs(model, x)
    fixed = {p: sum((inputs[src] @ (params[name].T if t else params[name])
                     for src, name, t, _ in drive_terms(graph, p) if src in inputs), np.zeros((len(x), 1)))
             + (params[f"{p}.bias"] if graph.has_bias(p) else 0.0) for p in pops}
    moving = {p: [(src, params[name].T if t else params[name], gamma if top else 1.0)
                  for src, name, t, top in drive_terms(graph, p) if src not in inputs] for p in pops}
    fns = {p: rate_triple(graph, p) for p in pops}
    eps = {p: graph.population(p).step for p in pops}
    count, residual = 0, np.full(len(x), np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        while count < steps:
            rates = {p: fns[p][0](states[p]) for p in pops}
            push = {p: fns[p][1](states[p]) * (fixed[p] + sum((g * (rates[src] @ w) for src, w, g in moving[p]),
                                                              np.zeros_like(states[p]))) - states[p]
                    for p in pops}
            residual = _residuals(model, states, push)
            if not np.all(np.isfinite(residual)) or np.max(residual) <= _HANDOFF:
                break
            for p in pops:
                new = states[p] + eps[p] * push[p]
                states[p] = np.clip(new, 0.0, 1.0) if graph.population(p).activation == "hard_sigmoid" else new
            count += 1
    if np.all(np.isfinite(residual)) and np.max(residual) <= _HANDOFF:
        states = polish(model, x, states, gamma=gamma)
        residual = _residuals(model, states, force(model, x, states, gamma=gamma))
    worst = float(np.max(residual)) if np.all(np.isfinite(residual)) else float("inf")
    if not worst <= tol:
        stuck = int(np.sum(~(residual <= tol)))
        small = min(pops, key=lambda p: eps[p])
        raise FixedPointError(
            f"{graph.spec.source}: the exact gradient needs the free fixed point, but the reference "
            f"relaxation ({count} Euler steps from rest, then Newton) left {stuck} of {len(x)} examples "
            f"with a force norm above {tol:g} (largest {worst:.3g}); the dynamics do not settle: lower "
            f"populations.{small}.step (now {eps[small]:g}) or weaken the couplings (init scale, rule.lr)")
    return states


def exact_gradients(model: Model, x: np.ndarray, y: np.ndarray, states: dict[str, np.ndarray] | None = None,
                    *, gamma: float = 1.0) -> dict[str, np.ndarray]:
    """∂J/∂θ of the batch loss ``J = mean ½‖ρ(s*_y) − target‖²`` at the free fixed point ``s*``.

    The fixed point is found by :func:`fixed_point` (the model's free dynamics from rest, run
    in float64 with their own tolerance and budget, whatever the rule's ``free_steps``, then
    Newton iterations), so the reference does not depend on the rule's step budget; then
    implicit differentiation of ``force(s*, θ) = 0``: with the force's Jacobian ``K`` at
    ``s*``, solve ``Kᵀλ = −∂J/∂s`` per example and read ``∂J/∂θ = λᵀ ∂force/∂θ``. Every
    term ``ρ_A @ M`` of B's drive gives M ``ρ_Aᵀ(ρ'_B ⊙ λ_B)`` (transposed for a term through
    ``W.T``, times ``gamma`` for a top-down term), so a tied weight collects both its uses;
    a bias gets ``Σ_batch ρ'_B ⊙ λ_B``. ``states`` gives a start other than rest.

    Raises
    ------
    FixedPointError
        When the fixed point is not reached (see :func:`fixed_point`).
    """
    graph, params = model.graph, _host_params(model)
    pops, at, _ = _layout(model)
    out = graph.output
    target = np.eye(graph.population(out).size)[y] if np.ndim(y) == 1 else np.asarray(y, dtype=np.float64)
    states = fixed_point(model, x, states, gamma=gamma)
    rates = rates_of(model, x, states)
    jac, gain = _jacobian(model, params, states, _drives(model, params, rates, gamma), gamma)
    cost = np.zeros_like(gain)
    cost[:, at[out]] = gain[:, at[out]] * (rates[out] - target) / len(x)
    lam = np.linalg.solve(np.transpose(jac, (0, 2, 1)), -cost[..., None])[..., 0]
    signal = {p: gain[:, at[p]] * lam[:, at[p]] for p in pops}  # ρ' ⊙ λ
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    for pop in pops:
        for source, name, transpose, top in drive_terms(graph, pop):
            term = (gamma if top else 1.0) * rates[source].T @ signal[pop]
            grads[name] += term.T if transpose else term
        if graph.has_bias(pop):
            grads[f"{pop}.bias"] += signal[pop].sum(axis=0)
    return {name: grads[name] for name in model.compiled("train").loss_params if name in grads}


def loss_at(model: Model, x: np.ndarray, y: np.ndarray, states: dict[str, np.ndarray]) -> float:
    """``mean ½‖ρ(s_y) − target‖²`` at the given states."""
    out = model.graph.output
    target = np.eye(model.graph.population(out).size)[y] if np.ndim(y) == 1 else np.asarray(y, dtype=np.float64)
    rate = rate_triple(model.graph, out)[0](states[out])
    return float(0.5 * np.sum((rate - target) ** 2) / len(x))


def relaxation_trace(model: Model, x: np.ndarray, steps: int) -> dict[str, Any]:
    """Energy and residual of the free relaxation at every step (for pictures and claims)."""
    graph = model.graph
    states = {p: np.zeros((len(x), graph.population(p).size)) for p in dynamic_populations(graph)}
    energies, residuals = [], []
    for _ in range(steps):
        push = force(model, x, states)
        squared = np.zeros(len(x))
        for pop in states:
            eps = graph.population(pop).step
            new = states[pop] + eps * push[pop]
            if graph.population(pop).activation == "hard_sigmoid":
                new = np.clip(new, 0.0, 1.0)
            squared += np.sum(((new - states[pop]) / eps) ** 2, axis=1)
            states[pop] = new
        energies.append(float(np.mean(energy(model, x, states))))
        residuals.append(float(np.sqrt(np.max(squared))))
    return {"energy": energies, "residual": residuals, "states": states}
