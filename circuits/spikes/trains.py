"""Time-stepped spike trains: Poisson neurons, exponential traces and smooth random drives.

Time is a grid of bins of width ``dt`` seconds; a train is an array ``(..., bins)`` of spike
counts per bin. Everything is vectorized over the leading axes (synapses, neurons) and over
time: a trace is one first-order IIR filter along the time axis (:func:`scipy.signal.lfilter`,
SciPy comes with scikit-learn), not a Python loop over steps. Random numbers come from a
``numpy.random.Generator`` the caller passes in (seed it from the run seed and a name, see
:func:`circuits.backends.stream_seed`).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["poisson_train", "poisson_events", "trace", "earlier_trace", "lowpass", "smooth_drive"]


def poisson_train(rate_hz: np.ndarray, dt: float, rng: np.random.Generator) -> np.ndarray:
    """Spike counts per bin of Poisson neurons firing at ``rate_hz`` (Hz, ≥ 0) in bins of ``dt`` s.

    Each bin's count is ``Poisson(rate·dt)``, so counts are unbiased for any rate (two spikes
    may share a bin when ``rate·dt`` is not small).

    Raises
    ------
    ValueError
        When a rate is negative or not finite.
    """
    rate_hz = np.asarray(rate_hz, dtype=float)
    if not np.all(np.isfinite(rate_hz)) or np.any(rate_hz < 0):
        raise ValueError("spike rates must be finite and >= 0 Hz")
    return rng.poisson(rate_hz * dt).astype(float)


def poisson_events(rate_hz: np.ndarray, dt: float, rng: np.random.Generator, trains: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of ``trains`` independent Poisson neurons sharing the rate ``rate_hz[t]`` per bin, as events.

    Returns ``(train, bin)`` integer arrays sorted by train, then bin (a bin appears once per
    spike in it). Same law as :func:`poisson_train` (independent ``Poisson(rate·dt)`` counts per
    bin), drawn sparsely by thinning: a homogeneous process at the peak rate, each of its events
    kept with probability ``rate[t]/peak``. The cost grows with the number of spikes, not of bins.
    """
    rate_hz = np.asarray(rate_hz, dtype=float)
    if rate_hz.ndim != 1 or not np.all(np.isfinite(rate_hz)) or np.any(rate_hz < 0):
        raise ValueError("rate_hz must be one finite rate >= 0 Hz per bin")
    peak = float(rate_hz.max(initial=0.0))
    bins = rate_hz.size
    if peak == 0.0 or trains == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # Event times of a homogeneous process (in bins) are running sums of exponential gaps, so
    # each row comes out sorted; draw a few standard deviations more than the mean count and
    # extend the rare row that still ends early.
    mean = peak * dt * bins
    width = int(mean + 8 * np.sqrt(mean) + 16)
    times = np.cumsum(rng.exponential(1.0 / (peak * dt), size=(trains, width)), axis=1)
    while np.any(times[:, -1] < bins):
        more = np.cumsum(rng.exponential(1.0 / (peak * dt), size=(trains, width)), axis=1)
        times = np.concatenate([times, times[:, -1:] + more], axis=1)
    train, slot = np.nonzero(times < bins)
    where = times[train, slot].astype(np.int64)
    keep = rng.random(train.size) * peak < rate_hz[where]
    return train[keep].astype(np.int64), where[keep]


def trace(spikes: np.ndarray, tau: float, dt: float) -> np.ndarray:
    """``z[t] = Σ_{t' ≤ t} s[t'] · exp(−(t − t')·dt/τ)``: the exponential trace, this bin included."""
    decay = np.exp(-dt / tau)
    return lfilter([1.0], [1.0, -decay], spikes, axis=-1)


def earlier_trace(spikes: np.ndarray, tau: float, dt: float) -> np.ndarray:
    """``Σ_{t' < t} s[t'] · exp(−(t − t')·dt/τ)``: the trace of strictly earlier bins.

    Pairing a spike with the other side's earlier trace counts every pair at least one bin
    apart once, and ignores pairs in the same bin (whose order is unknown).
    """
    decay = np.exp(-dt / tau)
    whole = trace(spikes, tau, dt)
    out = np.zeros_like(whole)
    out[..., 1:] = decay * whole[..., :-1]
    return out


def lowpass(signal: np.ndarray, tau: float, dt: float) -> np.ndarray:
    """One-pole low-pass filter with time constant ``τ``: ``v[t] = a·v[t−1] + (1 − a)·u[t]``, ``a = e^(−dt/τ)``."""
    decay = np.exp(-dt / tau)
    return lfilter([1.0 - decay], [1.0, -decay], signal, axis=-1)


def smooth_drive(bins: int, tau: float, dt: float, rng: np.random.Generator) -> np.ndarray:
    """White noise low-pass filtered twice with time constant ``τ``, scaled to zero mean and unit variance.

    The first ``10·τ`` of filtering are run before the returned window, so the drive starts
    stationary.
    """
    warm = int(np.ceil(10 * tau / dt))
    noise = rng.standard_normal(bins + warm)
    drive = lowpass(lowpass(noise, tau, dt), tau, dt)[warm:]
    drive -= drive.mean()
    return drive / drive.std()
