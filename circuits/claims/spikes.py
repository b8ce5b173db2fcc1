"""Claims about spiking populations (``populations.<p>.spikes``) and STDP.

Spiking populations (measured on the user's circuit, as compiled for training):

* ``spikes_are_unbiased``: given its pre-activation, a spiking population's rate is a Poisson
  count over T bins divided by T whose mean is the rate ``f(pre)``. For the first spiking
  population (deterministic input) this is the rate forward pass itself; deeper ones are
  unbiased given the spikes below them (their mean is *not* the rate forward pass: the rate
  function is nonlinear).
* ``spike_variance_is_rate_over_T``: its variance is ``f(pre)/T``.
* ``spiking_accuracy_approaches_rates``: evaluated with spikes (``at_test``) over windows
  T = 1, 4, 16, 64, a briefly trained circuit's test predictions agree more and more with
  its rate predictions, and its accuracy approaches theirs.

Spike timing (:mod:`circuits.spikes.stdp`, independent of the circuit; run on every spiking
spec): ``stdp_window_emerges`` (pre × dV/dt gives the STDP window) and
``stdp_is_derivative_filter`` (pair STDP = pre × low-pass-filtered d(post)/dt).

Tolerances come from the standard errors of Poisson counts: a count ``c`` with mean ``μ`` has
``E[c − μ] = 0``, ``Var[c − μ] = μ``, ``E[(c − μ)²] = μ`` and ``Var[(c − μ)²] = μ + 2μ²``.
"""

from __future__ import annotations

import attrs
import numpy as np

from circuits.claims.base import Claim, Outcome, capped_data
from circuits.claims.papers import BENGIO_FISCHER_2015, HINTON_2007
from circuits.data import iterate_batches
from circuits.model import Model
from circuits.rates import PLAIN, RateParams
from circuits.rules import RuleRegistry
from circuits.schema import COMMON_PARAMS
from circuits.spec import CircuitSpec, RuleSpec, SpikesSpec
from circuits.spikes import FilterProtocol, WindowProtocol, filter_protocol, window_protocol
from circuits.spikes.temporal import measure as measure_spiking_td

__all__ = ["SPIKES_UNBIASED", "SPIKE_VARIANCE", "SPIKING_APPROACHES_RATES", "STDP_WINDOW_EMERGES",
           "STDP_DERIVATIVE_FILTER", "TD_SPIKING_APPROACHES_RATES", "FILTER_SETTINGS", "measure_window", "measure_filter", "rate_function",
           "spiking_populations"]

XIE_SEUNG_2000 = ("Xie & Seung 2000, \"Spike-based learning rules and stabilization of persistent neural "
                  "activity\", NIPS 12")
BENGIO_STDP_2015 = ("Bengio, Mesnard, Fischer, Zhang & Wu 2015, \"STDP as presynaptic activity times rate of "
                    "change of postsynaptic activity\", arXiv:1509.05936")
HINTON_SPIKES = ("Hinton 2016, \"Can the brain do back-propagation?\", Stanford seminar (and 2014-16 "
                 "talks): Poisson spikes as a regularizer like dropout")
Z_LIMIT = 4.0
"""Standard errors a sampling statistic may stray before a claim fails (≈ 6e-5 two-sided)."""
PASSES = 20
WINDOWS = (1, 4, 16, 64)


def spiking_populations(spec: CircuitSpec) -> tuple[str, ...]:
    """Names of the populations with ``spikes`` set."""
    return tuple(p.name for p in spec.populations if p.spikes is not None)


def has_spikes(spec: CircuitSpec) -> bool:
    """Whether some population of ``spec`` spikes (the spike claims concern only such specs)."""
    return bool(spiking_populations(spec))


def _needs_spikes(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    if not spiking_populations(spec):
        return "no population has spikes = { window = T }"
    if not getattr(registry.get(spec.rule.name), "spikes", False):
        return f"rule '{spec.rule.name}' does not run spiking populations"
    return None


def rate_function(name: str, pre: np.ndarray, params: RateParams = PLAIN) -> np.ndarray:
    """The NumPy rate ``φ(pre)`` of a spiking population's activation (relu, sigmoid, hard_sigmoid),
    ``scale·f(gain·(pre − shift))`` with ``params``."""
    if not params.plain:
        return params.scale * rate_function(name, params.gain * (pre - params.shift))
    if name == "relu":
        return np.maximum(pre, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * pre))
    if name == "hard_sigmoid":
        return np.clip(pre, 0.0, 1.0)
    raise ValueError(f"activation '{name}' has no nonnegative rate")


def _float64(spec: CircuitSpec) -> CircuitSpec:
    return attrs.evolve(spec, run=attrs.evolve(spec.run, dtype="float64"))


def _sample(spec: CircuitSpec, registry: RuleRegistry) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per spiking population, ``(expected count μ = T·f(pre), count c)`` of each of :data:`PASSES`
    training forward passes over one batch of the spec's data (no learning step is taken)."""
    model = Model(_float64(spec), registry=registry)
    data = capped_data(model, 256, 1)
    x, y = data.x_train, data.y_train
    pops = spiking_populations(model.spec)
    samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in pops}
    for _ in range(PASSES):
        exe = model.run("train", x, y, phases=("forward",))
        for pop in pops:
            spec_p = model.graph.population(pop)
            settled = f"{pop}.pre2" if f"{pop}.pre2" in exe.arrays else f"{pop}.pre"
            window = spec_p.spikes.window
            pre = np.array(model.backend.to_numpy(exe.arrays[settled]))
            rate = np.array(model.backend.to_numpy(exe.arrays[f"{pop}.rate"]))
            samples[pop].append((window * rate_function(spec_p.activation, pre, spec_p.rate_params), np.rint(window * rate)))
    return samples


def _unbiased(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    measured: dict[str, float] = {}
    ok = True
    for pop, runs in _sample(spec, registry).items():
        mu = np.concatenate([m.ravel() for m, _ in runs])
        count = np.concatenate([c.ravel() for _, c in runs])
        z = float((count - mu).sum() / np.sqrt(max(mu.sum(), 1e-300)))
        measured[f"{pop}.relative_bias"] = float((count - mu).sum() / max(mu.sum(), 1e-300))
        measured[f"{pop}.z"] = z
        ok = ok and abs(z) <= Z_LIMIT
    return Outcome(SPIKES_UNBIASED.name, "pass" if ok else "fail", measured,
                   expected=f"Σ(count − T·f(pre)) within {Z_LIMIT:g} standard errors √Σ T·f(pre) of 0 "
                            f"({PASSES} training forward passes over 256 examples, float64)")


def _variance(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    measured: dict[str, float] = {}
    ok = True
    for pop, runs in _sample(spec, registry).items():
        mu = np.concatenate([m.ravel() for m, _ in runs])
        count = np.concatenate([c.ravel() for _, c in runs])
        squares = ((count - mu) ** 2).sum()
        se = np.sqrt(max((mu + 2 * mu ** 2).sum(), 1e-300))
        measured[f"{pop}.variance_ratio"] = float(squares / max(mu.sum(), 1e-300))
        measured[f"{pop}.z"] = float((squares - mu.sum()) / se)
        ok = ok and abs(measured[f"{pop}.z"]) <= Z_LIMIT
    return Outcome(SPIKE_VARIANCE.name, "pass" if ok else "fail", measured,
                   expected=f"Σ(count − μ)² within {Z_LIMIT:g} standard errors √Σ(μ + 2μ²) of Σμ, μ = T·f(pre) "
                            "(so the rate's variance is f(pre)/T)")


def _with_window(spec: CircuitSpec, window: int | None) -> CircuitSpec:
    """``spec`` with every spiking population sampled over ``window`` bins at test (None: rates)."""
    pops = tuple(p if p.spikes is None else
                 attrs.evolve(p, spikes=SpikesSpec(window=window or 1, at_test=window is not None))
                 for p in spec.populations)
    return attrs.evolve(spec, populations=pops)


def _approaches(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    """Train 2 epochs on ≤ 1,024 examples, then evaluate with and without spikes.

    The claim is about the forward pass, so the circuit is trained with backprop (its spiking
    forward pass and the spec's common optimizer settings) whatever the spec's rule: a rule that
    learns slowly would leave predictions too close to chance to compare.
    """
    common = {param.name: spec.rule.params.get(param.name, param.default) for param in COMMON_PARAMS}
    trained = Model(attrs.evolve(spec, rule=RuleSpec(name="backprop", params=common)), registry=registry)
    data = capped_data(trained, 1024, 500)
    order = np.random.default_rng(int(rng.integers(1 << 31)))
    for _ in range(2):
        for index in iterate_batches(data.n_train, spec.task.batch_size, order):
            trained.step(data.x_train[index], data.y_train[index])
    params = {k: np.array(trained.backend.to_numpy(v)) for k, v in trained.params.items()}
    x, y = data.x_test, np.asarray(data.y_test)
    if y.ndim != 1:
        y = np.argmax(y, axis=1)
    rates = Model(_with_window(spec, None), registry=registry)
    rates.set_params(params)
    reference = np.argmax(rates.predict(x), axis=1)
    measured = {"accuracy@rates": float(np.mean(reference == y))}
    agreement = []
    for window in WINDOWS:
        model = Model(_with_window(spec, window), registry=registry)
        model.set_params(params)
        predictions = [np.argmax(model.predict(x), axis=1) for _ in range(3)]
        agreement.append(float(np.mean([np.mean(p == reference) for p in predictions])))
        measured[f"accuracy@T={window}"] = float(np.mean([np.mean(p == y) for p in predictions]))
        measured[f"agreement@T={window}"] = agreement[-1]
    gaps = [abs(measured[f"accuracy@T={w}"] - measured["accuracy@rates"]) for w in WINDOWS]
    n = 3 * len(x)
    se = [np.sqrt(max(a * (1 - a), 1.0 / n) / n) for a in agreement]
    rising = all(later >= earlier - Z_LIMIT * s for earlier, later, s in zip(agreement, agreement[1:], se))
    ok = rising and agreement[-1] > agreement[0] and gaps[-1] <= min(gaps[0], 0.03)
    return Outcome(SPIKING_APPROACHES_RATES.name, "pass" if ok else "fail", measured,
                   expected=f"agreement with the rate predictions rises with T (no step down by more than "
                            f"{Z_LIMIT:g} SE) and is higher at T={WINDOWS[-1]} than at T=1; the accuracy gap at "
                            f"T={WINDOWS[-1]} is at most T=1's and at most 3 points "
                            "(2 epochs of backprop on ≤ 1,024 training examples, ≤ 500 test examples, 3 evaluations each)")


def measure_window(protocol: WindowProtocol, rng: np.random.Generator) -> tuple[bool, dict[str, float]]:
    """Run the pre × dV/dt protocol; pass when every 10 ms bin up to ±50 ms has the sign of its lag
    and each mirror pair cancels within 3 standard errors."""
    result = window_protocol(protocol, rng)
    z = result.antisymmetry_z()
    measured = {f"dW@{c:+g}ms": m for c, m in zip(result.centers_ms, result.mean)}
    measured |= {f"se@{c:+g}ms": e for c, e in zip(result.centers_ms, result.se)}
    measured["max_antisymmetry_z"] = float(np.max(np.abs(z)))
    measured["post_rate_hz"] = result.post_rate_hz
    return bool(result.signs_agree() and np.all(np.abs(z) <= 3.0)), measured


def _window(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    ok, measured = measure_window(WindowProtocol(), rng)
    return Outcome(STDP_WINDOW_EMERGES.name, "pass" if ok else "fail", measured,
                   expected="mean dW per 10 ms lag bin has the sign of Δt for |Δt| ≤ 50 ms, and "
                            "|dW(Δt) + dW(−Δt)| ≤ 3 SE (4,000 s at dt = 1 ms)")


FILTER_SETTINGS = ((1.0, 0.0), (1.0, np.pi), (1.0, np.pi / 2), (8.0, 0.0))
"""(frequency in Hz, phase φ) of the derivative-filter protocol."""


def measure_filter(synapses: int, rng: np.random.Generator) -> tuple[bool, dict[str, float]]:
    """Pair STDP against ``x̄·y′·2Aτ²/(1 + ω²τ²)`` at each of :data:`FILTER_SETTINGS`.

    Passes when each mean is within 4 SE of the theory (3 SE where the theory is 0, φ = π/2),
    and, with the issue's 1,000 synapses, within 5 % of it where it is not 0.
    """
    ok = True
    measured: dict[str, float] = {}
    for frequency, phase in FILTER_SETTINGS:
        result = filter_protocol(FilterProtocol(synapses=synapses, frequency=frequency, phase=phase), rng)
        tag = f"f={frequency:g}Hz,phi={phase / np.pi:g}pi"
        measured |= {f"dW@{tag}": result.mean, f"theory@{tag}": result.theory, f"se@{tag}": result.se}
        if abs(np.cos(phase)) < 1e-9:
            ok = ok and abs(result.mean) <= 3 * result.se
        else:
            ok = ok and abs(result.z) <= Z_LIMIT and (synapses < 1000 or result.relative_error <= 0.05)
    return ok, measured


VERIFY_SYNAPSES = 400
"""Synapses of the derivative-filter protocol in ``circuits verify`` (the figure script runs 1,000)."""


def _filter(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    ok, measured = measure_filter(VERIFY_SYNAPSES, rng)
    return Outcome(STDP_DERIVATIVE_FILTER.name, "pass" if ok else "fail", measured,
                   expected="mean pair-STDP dW within 4 SE of ∫x·y′·2Aτ²/(1+ω²τ²) at f = 1 Hz (φ = 0, π) and "
                            f"8 Hz, within 3 SE of 0 at φ = π/2 ({VERIFY_SYNAPSES} synapses, 100 s, τ = 20 ms; "
                            "tools/make_spike_figures.py runs 1,000 and the 5 % criterion)")


TD_WINDOWS = (4, 256)


def _needs_spiking_td(spec: CircuitSpec, registry: RuleRegistry) -> str | None:
    if spec.rule.name != "temporal_derivative":
        return "the rule is not temporal_derivative"
    return _needs_spikes(spec, registry)


def _td_spiking(spec: CircuitSpec, registry: RuleRegistry, rng: np.random.Generator) -> Outcome:
    model = Model(spec, registry=registry)
    data = capped_data(model, 32, 1)
    result = measure_spiking_td(spec, data.x_train, data.y_train, TD_WINDOWS, rng, draws=2)
    measured = {f"cos_{k}@T={int(t)}": v for k, values in result.items() if k != "T"
                for t, v in zip(result["T"], values)}
    series = [values for k, values in result.items() if k != "T"]
    ok = all(v[-1] > v[0] and v[-1] >= 0.5 for v in series)
    return Outcome(TD_SPIKING_APPROACHES_RATES.name, "pass" if ok else "fail", measured,
                   expected=f"cosine with the rate rule's update rises from T={TD_WINDOWS[0]} to T={TD_WINDOWS[-1]} "
                            "and reaches ≥ 0.5, for spike counts and for the STDP trace filter, for every weight "
                            "into a hidden population (one batch of 32, 2 draws, the spec's initial weights)")


SPIKES_UNBIASED = Claim(
    name="spikes_are_unbiased",
    rules=("*",),
    statement="A spiking population's count/T has mean f(pre) given its input: the first spiking layer's "
              "mean is the rate forward pass",
    source=HINTON_SPIKES,
    precondition=_needs_spikes,
    measure=_unbiased,
    concerns=has_spikes,
)

SPIKE_VARIANCE = Claim(
    name="spike_variance_is_rate_over_T",
    rules=("*",),
    statement="A spiking population's count/T has variance f(pre)/T given its input",
    source=HINTON_SPIKES,
    precondition=_needs_spikes,
    measure=_variance,
    concerns=has_spikes,
)

SPIKING_APPROACHES_RATES = Claim(
    name="spiking_accuracy_approaches_rates",
    rules=("*",),
    statement="Evaluated with spikes over T bins, a circuit's predictions approach its rate predictions "
              "as T grows",
    source=f"{HINTON_SPIKES}; {BENGIO_FISCHER_2015}; {HINTON_2007}",
    precondition=_needs_spikes,
    measure=_approaches,
    concerns=has_spikes,
)

STDP_WINDOW_EMERGES = Claim(
    name="stdp_window_emerges",
    rules=("*",),
    statement="Presynaptic spikes × the rate of change of the postsynaptic drive, binned by the lag to the "
              "nearest postsynaptic spike, give an antisymmetric STDP window with the sign of the lag",
    source=f"{HINTON_2007}; {BENGIO_STDP_2015}; {XIE_SEUNG_2000}",
    precondition=_needs_spikes,
    measure=_window,
    concerns=has_spikes,
)

STDP_DERIVATIVE_FILTER = Claim(
    name="stdp_is_derivative_filter",
    rules=("*",),
    statement="All-to-all pair STDP with an exponential window changes a weight by presynaptic rate × the "
              "low-pass-filtered derivative of postsynaptic rate, gain 2Aτ²/(1 + ω²τ²)",
    source=f"{XIE_SEUNG_2000}; {BENGIO_STDP_2015}",
    precondition=_needs_spikes,
    measure=_filter,
    concerns=has_spikes,
)

TD_SPIKING_APPROACHES_RATES = Claim(
    name="td_spiking_approaches_rates",
    rules=("temporal_derivative",),
    statement="The temporal-derivative update read from spikes (count differences, or pair STDP with τ = T/4) "
              "approaches the rate rule's update as the number of time bins T grows",
    source=f"{HINTON_2007}; {BENGIO_STDP_2015} (beyond both: measured here)",
    precondition=_needs_spiking_td,
    measure=_td_spiking,
    concerns=has_spikes,
)
