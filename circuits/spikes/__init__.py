"""Spike trains and STDP: Poisson neurons with exponential traces, pair STDP, the dV/dt protocol.

:mod:`circuits.spikes.trains` makes seeded, time-stepped trains and traces (vectorized over
synapses and time); :mod:`circuits.spikes.stdp` runs the two protocols that tie STDP to the
temporal-derivative rule; :mod:`circuits.spikes.temporal` measures that rule's update on a
circuit with an STDP trace filter over spike trains. Spiking *populations* of a circuit
(``populations.<p>.spikes``) are compiled like dropout (:class:`circuits.ops.PoissonSample`).
"""

from __future__ import annotations

from circuits.spikes.stdp import (FilterProtocol, FilterResult, WindowProtocol, WindowResult, filter_gain,
                                  filter_protocol, filter_theory, pair_stdp, pair_stdp_events,
                                  window_protocol)
from circuits.spikes.trains import earlier_trace, lowpass, poisson_events, poisson_train, smooth_drive, trace

__all__ = ["FilterProtocol", "FilterResult", "WindowProtocol", "WindowResult", "filter_gain",
           "filter_protocol", "filter_theory", "pair_stdp", "pair_stdp_events", "window_protocol", "earlier_trace", "lowpass",
           "poisson_events", "poisson_train", "smooth_drive", "trace"]
