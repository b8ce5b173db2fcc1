"""STDP as the temporal-derivative signature of backprop: the two spike-timing protocols.

**The window emerges** (:func:`window_protocol`; Hinton 2007/2016, Bengio et al. 2015, Xie &
Seung 2000). A drive ``V`` (white noise low-pass filtered twice, τ = 20 ms, unit variance) sets a
postsynaptic Poisson rate ``r_max / (1 + e^−(V − θ))``; a presynaptic Poisson train fires
independently of ``V``. Every presynaptic spike changes the weight by ``dV/dt`` at its time
(pre × rate of change of post, the temporal-derivative rule). Binned by the lag
``Δt = t_post(nearest) − t_pre``, the mean change has the sign of Δt and is antisymmetric: the
STDP window, although no rule looked at spike timing. (A postsynaptic spike soon after the
presynaptic one says ``V`` was rising then.)

**STDP is a derivative filter** (:func:`filter_protocol`). All-to-all pair STDP with
``W(s) = A·e^(−s/τ)`` for ``s > 0`` (post after pre) and ``−A·e^(s/τ)`` for ``s < 0``, on
Poisson trains with rates ``x(t)`` and ``y(t)``, changes the weight on average by
``∫ x(t) ∫ W(s) y(t + s) ds dt``. For ``y = ȳ + a·sin(ωt)`` the inner integral is
``y′(t) · 2Aτ²/(1 + ω²τ²)``: presynaptic rate × the low-pass-filtered derivative of the
postsynaptic rate (:func:`filter_gain`). Pairs in the same time bin are ignored. With a constant
presynaptic rate the net change is only a boundary term, so the protocol modulates ``x`` too:
``x = x̄ + b·cos(ωt + φ)``, and the mean change is
``a·b·ω·cos(φ)·D/2 · 2Aτ²/(1 + ω²τ²)`` over D seconds of whole periods (:func:`filter_theory`).
"""

from __future__ import annotations

import attrs
import numpy as np

from circuits.spikes.trains import earlier_trace, poisson_events, smooth_drive

__all__ = ["WindowProtocol", "WindowResult", "window_protocol", "FilterProtocol", "FilterResult",
           "filter_protocol", "filter_gain", "filter_theory", "pair_stdp", "pair_stdp_events"]


# -- the window emerges from pre × dV/dt -----------------------------------------------------------


@attrs.frozen
class WindowProtocol:
    """Settings of :func:`window_protocol` (seconds, Hz); the defaults are the issue's protocol."""

    duration: float = 4000.0
    dt: float = 1e-3
    tau: float = 0.02
    post_max: float = 50.0
    post_threshold: float = 1.0
    pre_rate: float = 10.0
    bin_ms: int = 10
    max_lag_ms: int = 50


@attrs.frozen
class WindowResult:
    """Mean weight change per lag bin: bin ``k`` holds lags in ``(edges[k], edges[k+1]]`` ms for
    positive bins and ``[edges[k], edges[k+1])`` for negative ones (lag 0 is left out)."""

    edges_ms: np.ndarray = attrs.field(eq=False)
    mean: np.ndarray = attrs.field(eq=False)
    se: np.ndarray = attrs.field(eq=False)
    count: np.ndarray = attrs.field(eq=False)
    post_rate_hz: float = 0.0

    @property
    def centers_ms(self) -> np.ndarray:
        """The middle of each lag bin."""
        return 0.5 * (self.edges_ms[:-1] + self.edges_ms[1:])

    def signs_agree(self) -> bool:
        """Whether every bin's mean change has the sign of its lag."""
        return bool(np.all(np.sign(self.mean) == np.sign(self.centers_ms)))

    def antisymmetry_z(self) -> np.ndarray:
        """``(ΔW(Δt) + ΔW(−Δt)) / SE`` for each positive bin (0 for a perfectly antisymmetric window)."""
        half = len(self.mean) // 2
        neg, pos = self.mean[:half][::-1], self.mean[half:]
        se = np.hypot(self.se[:half][::-1], self.se[half:])
        return (pos + neg) / se


def window_protocol(protocol: WindowProtocol, rng: np.random.Generator) -> WindowResult:
    """Run the pre × dV/dt protocol and bin the weight changes by lag to the nearest post spike.

    Stages: 1. the drive ``V`` and its central-difference derivative; 2. the postsynaptic and
    presynaptic trains; 3. each presynaptic spike's change ``dV/dt`` and its lag to the nearest
    postsynaptic spike; 4. mean and standard error per 10 ms bin.
    """
    p = protocol
    bins = int(round(p.duration / p.dt))
    drive = smooth_drive(bins + 2, p.tau, p.dt, rng)
    slope = (drive[2:] - drive[:-2]) / (2 * p.dt)
    drive = drive[1:-1]
    post_rate = p.post_max / (1.0 + np.exp(-(drive - p.post_threshold)))
    _, post_bins = poisson_events(post_rate, p.dt, rng)
    _, pre_bins = poisson_events(np.full(bins, p.pre_rate), p.dt, rng)
    change = slope[pre_bins]
    after = np.searchsorted(post_bins, pre_bins, side="left").clip(0, len(post_bins) - 1)
    before = (after - 1).clip(0, len(post_bins) - 1)
    lag_after, lag_before = post_bins[after] - pre_bins, post_bins[before] - pre_bins
    lag = np.where(np.abs(lag_before) < np.abs(lag_after), lag_before, lag_after) * p.dt * 1e3
    edges = np.arange(-p.max_lag_ms, p.max_lag_ms + p.bin_ms, p.bin_ms, dtype=float)
    mean, se, count = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (lag > lo) & (lag <= hi) if lo >= 0 else (lag >= lo) & (lag < hi)
        values = change[inside]
        count.append(values.size)
        mean.append(values.mean() if values.size else np.nan)
        se.append(values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else np.nan)
    return WindowResult(edges_ms=edges, mean=np.array(mean), se=np.array(se), count=np.array(count),
                        post_rate_hz=float(post_bins.size / p.duration))


# -- pair STDP is a derivative filter ------------------------------------------------------------


@attrs.frozen
class FilterProtocol:
    """Settings of :func:`filter_protocol` (seconds, Hz, radians); the defaults are the issue's."""

    synapses: int = 1000
    duration: float = 100.0
    dt: float = 1e-3
    tau: float = 0.02
    amplitude: float = 1.0
    frequency: float = 1.0
    phase: float = 0.0
    pre_mean: float = 20.0
    pre_depth: float = 15.0
    post_mean: float = 20.0
    post_depth: float = 15.0


@attrs.frozen
class FilterResult:
    """Mean pair-STDP weight change over the synapses, its standard error, and the theory."""

    mean: float
    se: float
    theory: float

    @property
    def z(self) -> float:
        """``(mean − theory) / SE``."""
        return (self.mean - self.theory) / self.se

    @property
    def relative_error(self) -> float:
        """``|mean − theory| / |theory|``."""
        return abs(self.mean - self.theory) / abs(self.theory)


def pair_stdp(pre: np.ndarray, post: np.ndarray, *, tau: float, dt: float, amplitude: float) -> np.ndarray:
    """All-to-all pair STDP over dense trains ``(synapses, bins)``: ``ΔW = Σ_pairs W(t_post − t_pre)``.

    ``W(s) = A·e^(−s/τ)`` for ``s > 0``, ``−A·e^(s/τ)`` for ``s < 0``; same-bin pairs are ignored.
    Computed with traces, as a synapse would: potentiation ``Σ_t post[t] · pretrace[t]``,
    depression ``Σ_t pre[t] · posttrace[t]`` (traces of strictly earlier bins).
    """
    potentiation = np.einsum("st,st->s", post, earlier_trace(pre, tau, dt))
    depression = np.einsum("st,st->s", pre, earlier_trace(post, tau, dt))
    return amplitude * (potentiation - depression)


def pair_stdp_events(pre: tuple[np.ndarray, np.ndarray], post: tuple[np.ndarray, np.ndarray], synapses: int,
                     *, tau: float, dt: float, amplitude: float) -> np.ndarray:
    """:func:`pair_stdp` on ``(synapse, bin)`` event arrays sorted by synapse then bin (:func:`poisson_events`).

    The same traces, evaluated only at spikes: the potentiation of a postsynaptic spike at
    ``t`` is ``Σ_{pre t_i < t} e^(−(t − t_i)/τ) = exp(L(t) − t/τ)`` with ``L`` the running
    log-sum-exp of ``t_i/τ`` over earlier presynaptic spikes (``np.logaddexp.accumulate``), so
    no trace overflows and the cost grows with the number of spikes, not of bins. Synapses are
    laid end to end with gaps of ``200·τ``, so their spikes never pair.
    """
    gap = int(np.ceil(200 * tau / dt))
    span = int(max(pre[1].max(initial=0), post[1].max(initial=0))) + gap
    pre_time = (pre[0] * span + pre[1]) * (dt / tau)
    post_time = (post[0] * span + post[1]) * (dt / tau)

    def earlier(spikes: np.ndarray, at: np.ndarray) -> np.ndarray:
        """``Σ_{s < a} e^−(a − s)`` for every ``a`` in ``at`` (``spikes`` sorted, times in units of τ)."""
        if spikes.size == 0:
            return np.zeros(at.size)
        running = np.logaddexp.accumulate(spikes)
        last = np.searchsorted(spikes, at, side="left") - 1
        return np.where(last >= 0, np.exp(running[last.clip(0)] - at), 0.0)

    potentiation = np.bincount(post[0], weights=earlier(pre_time, post_time), minlength=synapses)
    depression = np.bincount(pre[0], weights=earlier(post_time, pre_time), minlength=synapses)
    return amplitude * (potentiation - depression)


def filter_gain(protocol: FilterProtocol) -> float:
    """``2Aτ²/(1 + ω²τ²)``: ``∫ W(s) y(t + s) ds = gain · y′(t)`` for sinusoidal ``y``."""
    omega = 2 * np.pi * protocol.frequency
    return 2 * protocol.amplitude * protocol.tau ** 2 / (1 + (omega * protocol.tau) ** 2)


def filter_theory(protocol: FilterProtocol) -> float:
    """``∫₀ᴰ x(t) · y′(t) · gain dt`` for ``x = x̄ + b·cos(ωt + φ)``, ``y = ȳ + a·sin(ωt)`` (exact integral)."""
    p = protocol
    omega = 2 * np.pi * p.frequency
    d = p.duration
    cos_cos = d / 2 * np.cos(p.phase) + (np.sin(2 * omega * d + p.phase) - np.sin(p.phase)) / (4 * omega)
    const_cos = np.sin(omega * d) / omega
    return float(filter_gain(p) * p.post_depth * omega * (p.pre_depth * cos_cos + p.pre_mean * const_cos))


def filter_protocol(protocol: FilterProtocol, rng: np.random.Generator) -> FilterResult:
    """Pair STDP on modulated Poisson trains of ``protocol.synapses`` independent synapses; returns
    the mean change, its standard error over synapses and the theory."""
    p = protocol
    bins = int(round(p.duration / p.dt))
    t = np.arange(bins) * p.dt
    omega = 2 * np.pi * p.frequency
    x = p.pre_mean + p.pre_depth * np.cos(omega * t + p.phase)
    y = p.post_mean + p.post_depth * np.sin(omega * t)
    pre = poisson_events(x, p.dt, rng, trains=p.synapses)
    post = poisson_events(y, p.dt, rng, trains=p.synapses)
    change = pair_stdp_events(pre, post, p.synapses, tau=p.tau, dt=p.dt, amplitude=p.amplitude)
    return FilterResult(mean=float(change.mean()), se=float(change.std(ddof=1) / np.sqrt(change.size)),
                        theory=filter_theory(p))
