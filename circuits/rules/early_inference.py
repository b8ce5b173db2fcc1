"""Early inference (Bengio & Fischer 2015): the first steps of nudged dynamics carry the error.

The circuit relaxes freely to its fixed point ``s*``; then its output is nudged toward the
target with strength β (the force ``−β ∂C/∂s_y`` of ``C = ½‖ρ(s_y) − target‖²``) and it runs
only ``steps = K`` synchronous leaky-integrator steps, each population with its own ε (plus
Langevin noise when a population declares ``noise``). In a layered circuit a signal travels one
population per step, so the change of a population ``k`` projections below the output
appears at step ``k + 1`` and is ``−ε^{k+1} β ∂C/∂h_k`` there (see :func:`wave`).

Learning is the STDP-like rule ``ΔW_ij ∝ ṡ_i ρ(s_j)``, integrated over the K steps: with
``s^t`` the states before step ``t`` (``s⁰ = s*``) and ``Δs^t = s^{t+1} − s^t``, every term
``ρ_A @ W`` of B's drive (bottom-up, or top-down through ``W.T``) makes W learn

    ΔW_{A→B} += lr/β · Σ_{t<K} ρ(s_A^t)ᵀ Δs_B^t / batch      (bottom-up use by B)
    ΔW_{B→C} += lr/β · Σ_{t<K} Δs_B^tᵀ ρ(s_C^t) / batch      (top-down use by B, from C)
    Δb_B     += lr/β · Σ_{t<K} Σ_batch Δs_B^t / batch,

so a symmetric coupling learns ``ρ_Aᵀ ṡ_B + ṡ_Aᵀ ρ_B`` and an untied one only the side it drives;
inputs are clamped (``Δs = 0``). The estimate of ∂J/∂W is minus this, divided by lr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from circuits import ops
from circuits.compile import Builder
from circuits.rules.energy import (RELAXATION_PARAMS, SQUARED, EnergyRule, couplings, dynamic_populations,
                                   emit_drives, emit_integrate, lower_init, lower_relaxation, lower_settle,
                                   with_default)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["EarlyInference", "wave", "wave_phase"]


def wave_phase(t: int) -> str:
    """Name of the phase of nudged step ``t`` (1-based)."""
    return f"wave_{t}"


class EarlyInference(EnergyRule):
    """Free phase, K nudged steps from the free fixed point, STDP-like update summed over them."""

    signature = RuleSignature(
        name="early_inference",
        doc="Early inference: K nudged steps from the free fixed point, learning ṡ_i ρ(s_j) over them.",
        params=(*with_default(COMMON_PARAMS, "lr", 0.1), *RELAXATION_PARAMS,
                Param("beta", 1.0, "nudging strength β (0: no nudge, nothing learned)", minimum=0.0),
                Param("steps", 8, "number K of nudged steps (the early inference); a population d projections "
                      "below the output first moves at step d + 1, so K must exceed the depth", minimum=1)),
        needs="forward projections (symmetric couplings); a feedback projection unties a coupling",
        energy_based=True,
    )

    def emit(self, b: Builder) -> None:
        p = b.params
        lower_init(b)
        lower_relaxation(b, "free", steps=p["free_steps"], tol=p["tol"])
        lower_settle(b, "settle")
        b.lower_loss()
        if b.mode == "infer":
            return
        for t in range(p["steps"]):
            self._step(b, t)
        b.lower_updates()

    def _step(self, b: Builder, t: int) -> None:
        """Step ``t + 1``: rates and states before it are kept as ``*.rate.t<t>``, ``*.pre.t<t>``,
        the scaled state change as ``*.move.t<t> = −(s^{t+1} − s^t)/(β·batch)``."""
        graph, beta = b.graph, b.params["beta"]
        phase = wave_phase(t + 1)
        b.phase(phase, doc=f"nudged step {t + 1} from the free fixed point, STDP traces ṡ_i ρ(s_j)")
        b.add_buffer(SQUARED, ("batch",), "temp")
        pops = dynamic_populations(graph)

        def rate(pop: str) -> str:
            return b.rate(pop) if graph.population(pop).role == "input" else f"{b.rate(pop)}.t{t}"

        for pop in pops:
            fn, params = b.rate_function(pop)
            b.emit(phase, ops.Activate(fn, b.pre(pop), b.activity(rate(pop), pop), params))
            b.emit(phase, ops.Copy(b.pre(pop), b.activity(f"{b.pre(pop)}.t{t}", pop)))
        emit_drives(b, phase, pops, rate, beta=beta)
        emit_integrate(b, phase, pops, rate)
        coeff = -1.0 / beta if beta else 0.0
        for pop in pops:
            move = b.activity(f"{pop}.move.t{t}", pop)
            b.emit(phase, ops.LinearCombination((b.pre(pop), f"{b.pre(pop)}.t{t}"), (coeff, -coeff), move,
                                                powers=(-1, -1)))
        for pop in pops:
            move = f"{pop}.move.t{t}"
            for source, name, transpose in couplings(graph, pop):
                if graph.projection(name).plastic:
                    if transpose:
                        b.learn(name, move, rate(source))
                    else:
                        b.learn(name, rate(source), move)
            b.learn_bias(pop, move)


def _twin(model: Model, **params: Any) -> Model:
    """The same circuit and parameters, with some rule parameters changed."""
    from circuits.model import Model

    spec = model.spec
    twin = Model(attrs.evolve(spec, rule=attrs.evolve(spec.rule, params={**spec.rule.params, **params})),
                 registry=model.registry)
    twin.set_params({k: np.asarray(model.backend.to_numpy(v)) for k, v in model.params.items()})
    return twin


def _trajectory(model: Model, x: np.ndarray, y: np.ndarray, steps: int) -> list[dict[str, np.ndarray]]:
    host = model.backend.to_numpy
    pops = dynamic_populations(model.graph)
    names = [phase.name for phase in model.compiled("probe").phases]
    exe = model.run("probe", x, y, phases=names[:names.index(wave_phase(1))])
    states = [{p: np.array(host(exe.arrays[f"{p}.pre"]), dtype=np.float64) for p in pops}]
    for t in range(steps):
        exe = model.run("probe", x, y, phases=(wave_phase(t + 1),))
        states.append({p: np.array(host(exe.arrays[f"{p}.pre"]), dtype=np.float64) for p in pops})
    return states


def wave(model: Model, x: np.ndarray, y: np.ndarray, steps: int | None = None) -> list[dict[str, np.ndarray]]:
    """The early-inference wave: per step, per population, the change of state caused by the nudge.

    Runs the rule's own probe program (every phase before ``wave_1``, then one ``wave_t``
    phase at a time) twice on copies of ``model`` with ``steps`` nudged steps (default: the
    rule's): once with the model's β and once with β = 0, which continues the free dynamics
    from the same fixed point. Entry ``t − 1`` of the returned list maps each population to
    ``s^β_t − s⁰_t`` (batch × size) after step ``t``, for ``t = 1 … steps``. At an exact fixed
    point ``s⁰_t = s*``, so this is the change from the free fixed point; taking the difference
    with the continued free run removes the residual drift of an inexact one, and makes a
    population the wave has not reached read exactly zero (both runs do the same arithmetic).
    """
    count = int(steps if steps is not None else model.spec.rule.params.get("steps", 8))
    nudged = _twin(model, steps=count)
    still = _twin(model, steps=count, beta=0.0)
    moving, resting = _trajectory(nudged, x, y, count), _trajectory(still, x, y, count)
    return [{p: moving[t][p] - resting[t][p] for p in moving[t]} for t in range(1, count + 1)]
