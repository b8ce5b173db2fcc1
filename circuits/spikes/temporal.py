"""The temporal-derivative rule with spiking hidden populations, against the rate rule.

Hinton's rule (:mod:`circuits.rules.temporal`) learns ``pre × Δpost``: ``h_Aᵀ · Δh_l`` with
``Δh_l = h_l' − h_l`` the change of a hidden population's rate after the output is nudged (the
estimate of ∂loss/∂W is ``−h_Aᵀ Δh_l/(λ·n)``). With spiking neurons a synapse cannot read rates;
this module measures two ways it could read ``pre × Δpost`` from spikes, and how close each comes
to the rate rule's update as the number T of time bins grows (cosine per weight matrix into a
hidden population, at the same weights and batch):

1. **Spike counts** (:func:`count_estimates`): the compiled rule with ``spikes = { window = T }``
   on every hidden population. Rates before and after are Poisson counts over T bins divided by
   T, so ``Δh`` is a difference of counts, a boxcar derivative filter; presynaptic hidden
   populations send their counts too.
2. **STDP trace filter** (:func:`stdp_estimates`): every hidden unit fires a Poisson train over
   2T bins, T at its rate ``h`` then T at ``h'`` (per bin, so a rate r gives r spikes per bin on
   average, as a count over T bins does); each presynaptic unit fires at its rate over all 2T
   bins (an input population, whose values may be negative, sends its value as a continuous
   signal). All-to-all pair STDP with ``W(s) = ±e^(−|s|/τ)``, τ = T/4 bins, changes each synapse
   by ``ΔW`` with ``E[ΔW] = x · Δh · K_T`` exactly (:func:`step_gain`): pairs inside one half
   cancel by antisymmetry, and across the step the window's first moment remains. So
   ``ΔW / K_T`` estimates ``pre × Δpost`` from spike timing alone.

Both estimates are unbiased for the rate rule's ``h_Aᵀ Δh_l`` given the rates (the count estimate
exactly; the STDP one exactly, including finite-window terms), and their noise falls as T grows.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from circuits.model import Model
from circuits.spec import CircuitSpec, SpikesSpec
from circuits.spikes.trains import earlier_trace

__all__ = ["step_gain", "rate_signals", "count_estimates", "stdp_estimates", "cosine", "spiking_variant",
           "TAU_FRACTION"]

TAU_FRACTION = 0.25
"""τ of the STDP window as a fraction of T (so the filter spans the window as T grows)."""


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (0 when either is zero)."""
    a, b = np.ravel(a), np.ravel(b)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def step_gain(window: int, tau_bins: float) -> float:
    """``K_T = Σ_{t < T ≤ t'} W(t' − t)`` over 2T bins with ``W(d) = e^(−d/τ)``: the expected pair-STDP
    change per unit presynaptic rate and unit step of the postsynaptic rate at bin T.

    A lag d is spanned by ``min(d, 2T − d)`` pairs across the step.
    """
    d = np.arange(1, 2 * window)
    return float(np.sum(np.minimum(d, 2 * window - d) * np.exp(-d / tau_bins)))


def spiking_variant(spec: CircuitSpec, window: int | None) -> CircuitSpec:
    """``spec`` with every hidden relu/sigmoid/hard_sigmoid population spiking over ``window`` bins
    (``None``: no spikes anywhere), in float64."""
    pops = []
    for p in spec.populations:
        spikes = None
        if window is not None and p.role == "hidden":
            spikes = SpikesSpec(window=window)
        pops.append(attrs.evolve(p, spikes=spikes))
    return attrs.evolve(spec, populations=tuple(pops), run=attrs.evolve(spec.run, dtype="float64"))


def _hidden_weights(model: Model) -> list[tuple[str, str, str]]:
    """``(projection, source, target)`` of every plastic forward projection into a hidden population."""
    return [(p.name, p.source, p.target) for p in model.graph.projections("forward")
            if p.plastic and model.graph.population(p.target).role == "hidden"]


def _temporal(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    exe = model.run("train", x, y, phases=("forward", "loss", "temporal"))
    return {name: np.array(model.backend.to_numpy(array)) for name, array in exe.arrays.items()}


def rate_signals(model: Model, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The rate rule on a non-spiking model: ``(rates before and after per population, estimates)``.

    ``rates[pop]`` and ``rates[pop + "'"]`` are ``h`` and ``h'``; estimates are ``−h_Aᵀ Δh/(λ n)``
    per projection into a hidden population.
    """
    arrays = _temporal(model, x, y)
    rates = {}
    for pop in model.graph.populations:
        role = model.graph.population(pop).role
        if role in ("input", "hidden"):
            rates[pop] = arrays[f"{pop}.rate"]
        if role == "hidden":
            rates[pop + "'"] = arrays[f"{pop}.rate_after"]
    estimates = {name: arrays[f"{src}.rate"].T @ arrays[f"{dst}.td"] for name, src, dst in _hidden_weights(model)}
    return rates, estimates


def count_estimates(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The compiled rule's estimates on a model whose hidden populations spike (one draw)."""
    arrays = _temporal(model, x, y)
    return {name: arrays[f"{src}.rate"].T @ arrays[f"{dst}.td"] for name, src, dst in _hidden_weights(model)}


def stdp_estimates(model: Model, rates: dict[str, np.ndarray], window: int, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """Pair-STDP estimates ``−ΔW/(K_T λ n)`` from spike trains drawn at the rate rule's rates.

    Stages: 1. presynaptic signals over 2T bins (Poisson at a hidden population's rate ``h``,
    the value itself for an input population); 2. postsynaptic trains, T bins at ``h`` then T
    at ``h'``; 3. all-to-all pair STDP with traces of strictly earlier bins, summed over the batch.
    """
    tau = TAU_FRACTION * window
    gain = step_gain(window, tau)
    blend = model.spec.rule.params["blend"]
    out = {}
    for name, src, dst in _hidden_weights(model):
        rate = rates[src]
        n = rate.shape[0]
        if model.graph.population(src).role == "input":
            pre = np.repeat(rate[:, None, :], 2 * window, axis=1)
        else:
            pre = rng.poisson(np.repeat(rate[:, None, :], 2 * window, axis=1)).astype(float)
        post_rate = np.concatenate([np.repeat(rates[dst][:, None, :], window, axis=1),
                                    np.repeat(rates[dst + "'"][:, None, :], window, axis=1)], axis=1)
        post = rng.poisson(np.maximum(post_rate, 0.0)).astype(float)
        # Traces run along time; batch and time then fold into one GEMM dimension.
        pre_trace = np.swapaxes(earlier_trace(np.swapaxes(pre, 1, 2), tau, 1.0), 1, 2)
        post_trace = np.swapaxes(earlier_trace(np.swapaxes(post, 1, 2), tau, 1.0), 1, 2)
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        change = flat(pre_trace).T @ flat(post) - flat(pre).T @ flat(post_trace)
        out[name] = -change / (gain * blend * n)
    return out


def measure(spec: CircuitSpec, x: np.ndarray, y: np.ndarray, windows: Sequence[int], rng: np.random.Generator,
            *, draws: int = 1) -> dict[str, list[float]]:
    """Cosine with the rate rule's update of the count and STDP estimates, per window T.

    Returns ``{"T": [...], "counts:<proj>": [...], "stdp:<proj>": [...]}`` (mean over ``draws``).
    """
    rates_model = Model(spiking_variant(spec, None))
    rates, reference = rate_signals(rates_model, x, y)
    params = {k: np.array(v) for k, v in rates_model.params.items()}
    result: dict[str, list[float]] = {"T": [float(w) for w in windows]}
    for window in windows:
        spiking = Model(spiking_variant(spec, window))
        spiking.set_params(params)
        counts = [count_estimates(spiking, x, y) for _ in range(draws)]
        stdp = [stdp_estimates(rates_model, rates, window, rng) for _ in range(draws)]
        for name in reference:
            result.setdefault(f"counts:{name}", []).append(
                float(np.mean([cosine(c[name], reference[name]) for c in counts])))
            result.setdefault(f"stdp:{name}", []).append(
                float(np.mean([cosine(s[name], reference[name]) for s in stdp])))
    return result
