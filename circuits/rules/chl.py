"""Contrastive Hebbian learning (Movellan 1991), with Xie & Seung's (2003) feedback gain γ.

The circuit relaxes freely to ``u⁰``, then again with its output *clamped* (its rate held at the
target, its state not integrated) to ``u^∞``; every coupling learns the difference of its two
ends' co-activity between the phases,

    ΔW_{A→B} = lr · γ^{−d(B)} · (ρ_A^∞ ᵀ ρ_B^∞ − ρ_A⁰ ᵀ ρ_B⁰) / batch,   Δb_B = lr · γ^{−d(B)} · Σ (ρ_B^∞ − ρ_B⁰) / batch,

which is the EqProp estimator evaluated at clamped outputs with its 1/β dropped (β → ∞).

Feedback gain (Xie & Seung). Every *top-down* term of a drive (``ρ_C @ W_{B→C}ᵀ``, or a
feedback projection's ``ρ_C @ F``) is scaled by ``γ`` in both phases, so population B hears
the output through ``γ^{d(B)}``, with ``d(B)`` the shortest forward distance from B to the
output (``L − k`` for layer k of a chain of L layers). Clamping then moves B's rate by
``−γ^{d(B)} ∂L/∂a_B (1 + O(γ))``, so the rule rescales the estimate of every weight *into*
B (and B's bias) by ``γ^{−d(B)}``. This is Xie & Seung's ``η_j ∝ γ_j = γ^{k}`` for layer k,
divided by the constant ``γ^{L}``: the output layer keeps the rule's ``lr`` for every γ,
so changing γ does not change the size of the update of the weights into the output. With
γ = 1 the dynamics descend the Hopfield energy of :mod:`circuits.rules.energy`; with γ < 1
they are a vector field (not the gradient of that energy), and :func:`gain_gradients` gives
the exact loss gradient of the circuit that actually runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from circuits import ops
from circuits.compile import Builder
from circuits.graph import CircuitGraph
from circuits.rules import energy
from circuits.rules.energy import (RELAXATION_PARAMS, EnergyRule, couplings, dynamic_populations, lower_init,
                                   lower_settle)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["ContrastiveHebbian", "distance_to_output", "lower_gain_relaxation", "gain_force",
           "gain_fixed_point", "gain_gradients", "phase_span"]



def phase_span(model: Model, first: str | None, last: str, mode: str = "probe") -> tuple[str, ...]:
    """Names of ``mode``'s phases after ``first`` (from the start when ``None``) up to and including ``last``.

    ``phase_span(model, None, "free")`` takes a batch to its free fixed point ``u⁰`` and
    ``phase_span(model, "keep_free", "settle_clamped")`` on to the clamped one ``u^∞``.
    """
    names = [phase.name for phase in model.compiled(mode).phases]
    start = names.index(first) + 1 if first is not None else 0
    return tuple(names[start:names.index(last) + 1])


def distance_to_output(graph: CircuitGraph) -> dict[str, int]:
    """``d(B)``: the fewest forward projections from each dynamic population to the output."""
    reach = nx.single_source_shortest_path_length(graph.forward_graph().reverse(copy=False), graph.output)
    return {pop: int(reach.get(pop, 0)) for pop in dynamic_populations(graph)}


def _terms(graph: CircuitGraph, pop: str) -> list[tuple[str, str, bool, bool]]:
    """``(source, projection, transpose, top_down)`` of every term of ``pop``'s drive."""
    bottom_up = {p.name for p in graph.incoming(pop)}
    return [(source, name, transpose, transpose or name not in bottom_up)
            for source, name, transpose in couplings(graph, pop)]


def lower_gain_relaxation(b: Builder, phase: str, *, steps: int, tol: float, gamma: float = 1.0,
                          clamp: bool = False, doc: str = "") -> None:
    """A relaxation phase whose top-down drive terms are scaled by ``gamma``.

    Every sender of a top-down term first writes ``<pop>.feedback = γ·<pop>.rate`` (skipped
    when γ = 1). With ``clamp`` the output is left out of the dynamics: its rate (set by the
    ``clamp`` phase) is read but never recomputed, and its state is not integrated.
    """
    graph = b.graph
    free = [p for p in dynamic_populations(graph) if not (clamp and p == graph.output)]
    if not free:
        return
    b.add_buffer(energy.SQUARED, ("batch",), "temp")
    b.add_buffer(energy.RESIDUAL, (), "temp")
    b.phase(phase, repeat=steps, until=energy.RESIDUAL, tol=tol,
            doc=doc or f"{'clamped' if clamp else 'free'} relaxation" + (f", feedback gain γ = {gamma:g}"
                                                                         if gamma != 1.0 else ""))
    for pop in free:
        b.emit(phase, ops.Activate(graph.population(pop).activation, b.pre(pop), b.rate(pop)))
    senders = {s for pop in free for s, _, _, top in _terms(graph, pop) if top}
    if gamma != 1.0:
        for pop in dynamic_populations(graph):
            if pop in senders:
                b.emit(phase, ops.LinearCombination((b.rate(pop),), (gamma,), b.activity(f"{pop}.feedback", pop)))
    for pop in free:
        drive = f"{pop}.drive"
        for index, (source, name, transpose, top) in enumerate(_terms(graph, pop)):
            rate = f"{source}.feedback" if top and gamma != 1.0 else b.rate(source)
            b.emit(phase, ops.MatMul(rate, b.weight(name), drive, transpose_b=transpose, accumulate=index > 0))
        if graph.has_bias(pop):
            b.emit(phase, ops.AddBias(b.bias(pop), drive))
    for index, pop in enumerate(free):
        spec = graph.population(pop)
        noise = spec.noise if b.mode != "infer" else 0.0
        b.emit(phase, ops.LeakyIntegrate(spec.activation, b.pre(pop), b.rate(pop), f"{pop}.drive", energy.SQUARED,
                                         spec.step, noise, stream=f"{pop}.langevin" if noise else "",
                                         accumulate=index > 0))
    b.emit(phase, ops.ResidualNorm(energy.SQUARED, energy.RESIDUAL))


class ContrastiveHebbian(EnergyRule):
    """Free phase, clamped phase, contrastive Hebbian update of every coupling and bias."""

    signature = RuleSignature(
        name="contrastive_hebbian",
        doc="Contrastive Hebbian learning: contrast co-activity between a free and an output-clamped "
            "relaxation (Xie & Seung's feedback gain γ optional).",
        params=(*COMMON_PARAMS, *RELAXATION_PARAMS,
                Param("clamped_steps", 20, "step budget of the clamped relaxation", minimum=1),
                Param("gamma", 1.0, "feedback gain γ: top-down drive scaled by γ, the estimate of the "
                      "weights into a population d projections below the output by γ^−d",
                      minimum=0.0, maximum=1.0, open_minimum=True)),
        needs="forward projections (symmetric couplings); a feedback projection unties a coupling",
        energy_based=True,
    )

    def emit(self, b: Builder) -> None:
        p = b.params
        gamma, out = p["gamma"], b.graph.output
        lower_init(b)
        lower_gain_relaxation(b, "free", steps=p["free_steps"], tol=p["tol"], gamma=gamma)
        lower_settle(b, "settle")
        b.lower_loss()
        if b.mode == "infer":
            return
        lower_settle(b, "keep_free", ".free")
        b.phase("clamp", doc="the output's rate held at the target")
        b.emit("clamp", ops.Copy(f"{out}.target", b.rate(out)))
        lower_gain_relaxation(b, "clamped", steps=p["clamped_steps"], tol=p["tol"], gamma=gamma, clamp=True)
        b.phase("settle_clamped", doc="rates of the clamped states, kept as *.rate.clamped")
        for pop in dynamic_populations(b.graph):
            kept = b.activity(b.rate(pop) + ".clamped", pop)
            b.emit("settle_clamped", ops.Copy(b.rate(pop), kept) if pop == out else
                   ops.Activate(b.graph.population(pop).activation, b.pre(pop), kept))
        self._contrast(b, {pop: gamma ** -d for pop, d in distance_to_output(b.graph).items()})
        b.lower_updates()

    @staticmethod
    def _contrast(b: Builder, scale: dict[str, float]) -> None:
        """Learn ``Σ_phase c_B·ρ_Aᵀρ_B / batch`` for each coupling A→B, ``c_B = ∓γ^{−d(B)}`` (clamped, free)."""
        graph = b.graph

        def rate(pop: str, suffix: str) -> str:
            return b.rate(pop) if graph.population(pop).role == "input" else b.rate(pop) + suffix

        b.phase("contrast", doc="co-activity of each coupling's two ends, clamped minus free")
        for suffix, sign in ((".clamped", -1.0), (".free", 1.0)):
            for pop in dynamic_populations(graph):
                scaled = b.activity(f"{pop}.scaled{suffix}", pop)
                b.emit("contrast", ops.LinearCombination((rate(pop, suffix),), (sign * scale[pop],), scaled,
                                                         powers=(-1,)))
            for proj in graph.projections():
                if proj.plastic and proj.type != "lateral":
                    b.learn(proj.name, rate(proj.source, suffix), f"{proj.target}.scaled{suffix}")
            for pop in dynamic_populations(graph):
                b.learn_bias(pop, f"{pop}.scaled{suffix}")

    def exact_gradients(self, model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The loss gradient at the free fixed point of the circuit as it runs (with its γ)."""
        return gain_gradients(model, x, y, float(model.spec.rule.params.get("gamma", 1.0)))


# -- NumPy reference with a feedback gain ---------------------------------------------------------


def _rates(model: Model, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    graph = model.graph
    return {**energy._inputs(model, x),
            **{p: energy._RATES[graph.population(p).activation][0](s) for p, s in states.items()}}


def _gain_drives(model: Model, params: dict[str, np.ndarray], rates: dict[str, np.ndarray],
                 gamma: float) -> dict[str, np.ndarray]:
    graph, drives = model.graph, {}
    for pop in dynamic_populations(graph):
        total = sum((gamma if top else 1.0) * (rates[src] @ (params[name].T if t else params[name]))
                    for src, name, t, top in _terms(graph, pop))
        drives[pop] = total + params[f"{pop}.bias"] if graph.has_bias(pop) else total
    return drives


def gain_force(model: Model, x: np.ndarray, states: dict[str, np.ndarray], gamma: float) -> dict[str, np.ndarray]:
    """``ρ'(s) ⊙ drive_γ − s`` per population (float64), top-down terms of the drive scaled by ``gamma``."""
    graph = model.graph
    drives = _gain_drives(model, energy._host_params(model), _rates(model, x, states), gamma)
    return {p: energy._RATES[graph.population(p).activation][1](states[p]) * drives[p] - states[p] for p in states}


def _gain_jacobian(model: Model, params: dict[str, np.ndarray], states: dict[str, np.ndarray],
                   drives: dict[str, np.ndarray], gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-example Jacobian of :func:`gain_force` and the gains ``ρ'`` (0 for a pinned hard-sigmoid unit)."""
    graph = model.graph
    pops, at, n = energy._layout(model)
    batch = next(iter(states.values())).shape[0]
    gain, curve = np.zeros((batch, n)), np.zeros((batch, n))
    for pop in pops:
        fn, s = graph.population(pop).activation, states[pop]
        g = energy._RATES[fn][1](s)
        if fn == "hard_sigmoid":
            push = g * drives[pop] - s
            g = np.where(((s <= 0.0) & (push <= 0.0)) | ((s >= 1.0) & (push >= 0.0)), 0.0, g)
        gain[:, at[pop]] = g
        curve[:, at[pop]] = energy._RATES[fn][2](s) * drives[pop]
    coupling = np.zeros((n, n))  # ∂drive_i / ∂ρ_j
    for pop in pops:
        for source, name, transpose, top in _terms(graph, pop):
            if source in at:
                matrix = params[name] if transpose else params[name].T
                coupling[at[pop], at[source]] += (gamma if top else 1.0) * matrix
    jac = gain[:, :, None] * coupling[None] * gain[:, None, :]
    jac += np.einsum("bi,ij->bij", curve - 1.0, np.eye(n))
    return jac, gain


def gain_fixed_point(model: Model, x: np.ndarray, gamma: float, *, iterations: int = 30,
                     tol: float = 1e-13) -> dict[str, np.ndarray]:
    """The model's own free relaxation, refined by Newton iterations on ``gain_force = 0``."""
    graph, params = model.graph, energy._host_params(model)
    pops, at, _ = energy._layout(model)
    states = energy.free_states(model, x)
    for _ in range(iterations):
        push = gain_force(model, x, states, gamma)
        flat = np.concatenate([push[p] for p in pops], axis=1)
        jac, gain = _gain_jacobian(model, params, states, _gain_drives(model, params, _rates(model, x, states), gamma),
                                   gamma)
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


def gain_gradients(model: Model, x: np.ndarray, y: np.ndarray, gamma: float) -> dict[str, np.ndarray]:
    """∂J/∂θ of ``J = mean ½‖ρ(s*_y) − target‖²`` at the free fixed point of the γ-scaled dynamics.

    Implicit differentiation of ``gain_force(s*, θ) = 0``: solve ``Kᵀλ = −∂J/∂s`` with the
    force's Jacobian ``K``; a weight used bottom-up by B gets ``ρ_Aᵀ(ρ'_B ⊙ λ_B)``, used
    top-down by A also ``γ·(ρ'_A ⊙ λ_A)ᵀρ_B``; a feedback projection C→A gets
    ``γ·ρ_Cᵀ(ρ'_A ⊙ λ_A)``. With γ = 1 this is :func:`circuits.rules.energy.exact_gradients`.
    """
    graph, params = model.graph, energy._host_params(model)
    pops, at, _ = energy._layout(model)
    out = graph.output
    target = np.eye(graph.population(out).size)[y] if np.ndim(y) == 1 else np.asarray(y, dtype=np.float64)
    states = gain_fixed_point(model, x, gamma)
    rates = _rates(model, x, states)
    jac, gain = _gain_jacobian(model, params, states, _gain_drives(model, params, rates, gamma), gamma)
    cost = np.zeros_like(gain)
    cost[:, at[out]] = gain[:, at[out]] * (rates[out] - target) / len(x)
    lam = np.linalg.solve(np.transpose(jac, (0, 2, 1)), -cost[..., None])[..., 0]
    signal = {p: gain[:, at[p]] * lam[:, at[p]] for p in pops}
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    for pop in pops:
        for source, name, transpose, top in _terms(graph, pop):
            term = (gamma if top else 1.0) * rates[source].T @ signal[pop]
            grads[name] += term.T if transpose else term
        if graph.has_bias(pop):
            grads[f"{pop}.bias"] += signal[pop].sum(axis=0)
    return {name: grads[name] for name in model.compiled("train").loss_params if name in grads}
