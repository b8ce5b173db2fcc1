"""Spiking populations (``populations.<p>.spikes``) and the STDP module.

Statistical tests draw from seeded streams and use tolerances of a few standard errors of the
Poisson statistic they check (mean: √(Σμ); sum of squares: √Σ(μ + 2μ²)), so they are
deterministic and would fail on a biased or mis-scaled sampler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuits import ops
from circuits.backends import get_backend
from circuits.claims import default_claims, verify
from circuits.claims.spikes import measure_filter, measure_window, rate_function
from circuits.compile import compile_circuit
from circuits.errors import CompileError, SpecError
from circuits.graph import build_graph
from circuits.model import Model
from circuits.spec import load_spec, parse_spec
from circuits.spec_writer import dump_spec
from circuits.spikes import (FilterProtocol, WindowProtocol, earlier_trace, filter_gain, filter_protocol,
                             filter_theory, pair_stdp, pair_stdp_events, poisson_events, poisson_train, trace)
from circuits.spikes.temporal import step_gain

SPEC = Path(__file__).resolve().parent.parent / "specs" / "spiking_digits.toml"

TINY = """\
[circuit]
name = "tiny-spikes"

[populations]
x = {{ size = 5, role = "input" }}
h = {{ size = 7, activation = "{activation}", spikes = {spikes} }}
y = {{ size = 3, role = "output" }}

[[projections]]
chain = ["x", "h", "y"]

[rule]
name = "{rule}"

[task]
loss = "cross_entropy"

[run]
dtype = "float64"
"""


def tiny(rules, *, activation: str = "relu", spikes: str = "{ window = 4 }", rule: str = "backprop"):
    return parse_spec(TINY.format(activation=activation, spikes=spikes, rule=rule), rules=rules,
                      source="t.toml")


def message(rules, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        tiny(rules, **kwargs)
    return str(info.value)


# -- the sampling op ----------------------------------------------------------------------------


def sample(backend_name: str, rate: np.ndarray, window: int, seed: int = 3, times: int = 1) -> list[np.ndarray]:
    backend = get_backend(backend_name, seed=seed)
    out = backend.from_numpy(np.array(rate))
    step = backend.step(ops.PoissonSample(window, "r", stream="h.spikes"), {"r": out})
    draws = []
    for _ in range(times):
        out[...] = backend.from_numpy(np.array(rate))
        step()
        draws.append(np.asarray(backend.to_numpy(out)).copy())
    return draws


@pytest.mark.parametrize("window", [1, 4, 25])
def test_poisson_sample_is_unbiased_with_variance_rate_over_window(backend, window):
    rate = np.tile(np.linspace(0.0, 3.0, 61), (400, 1))
    (drawn,) = sample(backend, rate, window)
    counts = drawn * window
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-9)  # whole spike counts
    mu = rate * window
    z_mean = (counts - mu).sum() / np.sqrt(mu.sum())
    z_var = (((counts - mu) ** 2).sum() - mu.sum()) / np.sqrt((mu + 2 * mu ** 2).sum())
    assert abs(z_mean) < 4 and abs(z_var) < 4
    assert np.all(drawn[:, 0] == 0)  # a silent unit never spikes


@given(rate=st.floats(0.05, 5.0), window=st.integers(1, 50))
def test_poisson_mean_and_variance_for_any_rate_and_window(rate, window):
    drawn = sample("numpy", np.full((200, 50), rate), window)[0]
    mu, n = rate * window, drawn.size
    assert abs((drawn * window - mu).mean()) < 4 * np.sqrt(mu / n)
    assert abs(drawn.var() * window ** 2 - mu) < 4 * np.sqrt((mu + 2 * mu ** 2) / n) + 4 * mu / n


def test_poisson_stream_is_named_and_seeded():
    rate = np.full((20, 30), 1.5)
    first, again = sample("numpy", rate, 2), sample("numpy", rate, 2)
    other_seed = sample("numpy", rate, 2, seed=4)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other_seed[0])


# -- the spec key -------------------------------------------------------------------------------


def test_spikes_key_is_read_and_written_back(rules):
    spec = tiny(rules, spikes="{ window = 8, at_test = true }")
    spikes = {p.name: p for p in spec.populations}["h"].spikes
    assert (spikes.window, spikes.at_test) == (8, True)
    again = parse_spec(dump_spec(spec), rules=rules, source="t.toml")
    assert again == spec
    plain = tiny(rules, spikes="false")
    assert {p.name: p for p in plain.populations}["h"].spikes is None
    assert "spikes =" not in dump_spec(plain)


def test_signed_activation_is_a_clear_error(rules):
    assert message(rules, activation="tanh") == (
        "t.toml: populations.h.spikes: spikes need a rate >= 0: activation must be one of relu, sigmoid, "
        "hard_sigmoid (got 'tanh'); change the activation or remove spikes")


def test_bad_window_and_bad_value(rules):
    assert message(rules, spikes="{ window = 0 }") == (
        "t.toml: populations.h.spikes.window: must be an integer >= 1 (got 0)")
    assert "must be a table { window = T, at_test = false }, or false" in message(rules, spikes="4")
    assert "unknown key" in message(rules, spikes="{ windw = 4 }")


def test_spikes_on_input_or_with_dropout_are_errors(rules):
    text = TINY.format(activation="relu", spikes="{ window = 2 }", rule="backprop")
    with pytest.raises(SpecError, match="spikes apply to hidden populations only"):
        parse_spec(text.replace('role = "input" }', 'role = "input", spikes = { window = 2 } }'),
                   rules=rules, source="t.toml")
    with pytest.raises(SpecError, match="dropout or spikes, not both"):
        parse_spec(text.replace('spikes = { window = 2 }', 'dropout = 0.5, spikes = { window = 2 }'),
                   rules=rules, source="t.toml")


def test_rules_without_spikes_refuse_them(rules, registry):
    spec = tiny(rules, rule="node_perturbation")
    with pytest.raises(CompileError, match="populations.h.spikes: rule 'node_perturbation' does not run "
                                           "spiking populations"):
        compile_circuit(build_graph(spec), registry.get("node_perturbation"))


# -- compilation and the straight-through derivative ----------------------------------------------


def _ops(spec, registry, mode):
    program = compile_circuit(build_graph(spec), registry.get(spec.rule.name), mode=mode)
    return [op for phase in program.phases for op in phase.ops]


def test_sampling_op_in_training_only_unless_at_test(rules, registry):
    spec = tiny(rules)
    samples = {mode: [op for op in _ops(spec, registry, mode) if isinstance(op, ops.PoissonSample)]
               for mode in ("train", "probe", "infer")}
    assert [(op.window, op.out, op.stream) for op in samples["train"]] == [(4, "h.rate", "h.spikes")]
    assert samples["probe"] == [] and samples["infer"] == []
    at_test = tiny(rules, spikes="{ window = 4, at_test = true }")
    assert len([op for op in _ops(at_test, registry, "infer") if isinstance(op, ops.PoissonSample)]) == 1


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "hard_sigmoid"])
def test_error_signal_is_straight_through(rules, registry, activation):
    """``h.delta = h.grad ⊙ f'(h.pre)`` with f' at the pre-activation, not at the spike count."""
    model = Model(tiny(rules, activation=activation, spikes="{ window = 2 }"), registry=registry)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.integers(0, 3, 16)
    exe = model.run("train", x, y, phases=("forward", "loss", "backward"))
    get = {name: np.array(exe.arrays[name]) for name in ("h.pre", "h.rate", "h.grad", "h.delta")}
    assert not np.allclose(get["h.rate"], rate_function(activation, get["h.pre"]))  # it spiked
    pre = get["h.pre"]
    if activation == "relu":
        deriv = (pre > 0).astype(float)
    elif activation == "sigmoid":
        s = rate_function("sigmoid", pre)
        deriv = s * (1 - s)
    else:
        deriv = ((pre > 0) & (pre < 1)).astype(float)
    np.testing.assert_allclose(get["h.delta"], get["h.grad"] * deriv, rtol=1e-12, atol=1e-15)
    # The output's weights learn from the spike counts the output saw.
    w = model.params["h->y"]
    np.testing.assert_allclose(get["h.grad"], np.array(exe.arrays["y.grad"]) @ np.array(w).T, rtol=1e-12)


def test_training_is_seeded_and_differs_from_rates(rules, registry):
    spec = tiny(rules)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((32, 5)), rng.integers(0, 3, 32)
    losses = []
    for _ in range(2):
        model = Model(spec, registry=registry)
        losses.append([model.step(x, y) for _ in range(5)])
    assert losses[0] == losses[1]
    rates = Model(tiny(rules, spikes="false"), registry=registry)
    assert [rates.step(x, y) for _ in range(5)] != losses[0]


# -- the claims on the shipped spec -------------------------------------------------------------


def test_spike_claims_pass_on_the_shipped_spec(rules, registry):
    spec = load_spec(SPEC, rules=rules)
    outcomes = {o.claim: o for o in verify(spec, registry)}
    for name in ("spikes_are_unbiased", "spike_variance_is_rate_over_T", "spiking_accuracy_approaches_rates"):
        assert outcomes[name].passed, outcomes[name]
    approach = outcomes["spiking_accuracy_approaches_rates"].measured
    assert approach["agreement@T=64"] > approach["agreement@T=4"] > approach["agreement@T=1"]


def test_spike_claims_skip_without_spikes(rules, registry):
    spec = tiny(rules, spikes="false")
    claims = default_claims()
    rng = np.random.default_rng(0)
    outcome = claims.get("spikes_are_unbiased").run(spec, registry, rng)
    assert outcome.status == "skip" and "no population has spikes" in outcome.reason


def test_unbiased_claim_fails_on_a_biased_sampler(rules, registry, monkeypatch):
    """The claim can fail: a sampler that adds 5 % to every rate is caught."""
    from circuits.backends import spike_kernels

    real = spike_kernels.poisson_sample

    def biased(op, arrays, ctx):
        inner = real(op, arrays, ctx)
        out = arrays[op.out]

        def step() -> None:
            np.multiply(out, 1.05, out=out)
            inner()
        return step

    from circuits.backends import catalogue
    monkeypatch.setattr(catalogue, "poisson_sample", biased)
    spec = load_spec(SPEC, rules=rules)
    outcome = default_claims().get("spikes_are_unbiased").run(spec, registry, np.random.default_rng(0))
    assert outcome.status == "fail"


# -- spike trains and STDP ----------------------------------------------------------------------

def test_traces_against_hand_computation():
    spikes = np.array([[1.0, 0.0, 2.0, 0.0]])
    a = np.exp(-1e-3 / 0.02)
    np.testing.assert_allclose(trace(spikes, 0.02, 1e-3), [[1, a, a * a + 2, a ** 3 + 2 * a]], rtol=1e-12)
    np.testing.assert_allclose(earlier_trace(spikes, 0.02, 1e-3), [[0, a, a * a, a ** 3 + 2 * a]], rtol=1e-12)


def test_pair_stdp_hand_pairs_and_events_equal_dense():
    """pre at bins 0 and 5, post at 0, 2 and 4; the same-bin pair (0, 0) is ignored."""
    pre = np.zeros((1, 8))
    post = np.zeros((1, 8))
    pre[0, [0, 5]] = 1
    post[0, [0, 2, 4]] = 1
    w = lambda k: np.exp(-k * 1e-3 / 0.02)  # noqa: E731
    hand = 0.5 * (w(2) + w(4) - w(5) - w(3) - w(1))  # 0→2, 0→4 potentiate; post 0, 2, 4 before pre 5 depress
    np.testing.assert_allclose(pair_stdp(pre, post, tau=0.02, dt=1e-3, amplitude=0.5), [hand], rtol=1e-12)
    rng = np.random.default_rng(5)
    dense_pre = poisson_train(np.full((6, 4000), 40.0), 1e-3, rng)
    dense_post = poisson_train(np.full((6, 4000), 40.0), 1e-3, rng)

    def events(d):
        train, where = np.nonzero(d)
        reps = d[train, where].astype(int)
        return np.repeat(train, reps), np.repeat(where, reps)
    np.testing.assert_allclose(pair_stdp_events(events(dense_pre), events(dense_post), 6, tau=0.02, dt=1e-3,
                                                amplitude=1.0),
                               pair_stdp(dense_pre, dense_post, tau=0.02, dt=1e-3, amplitude=1.0), rtol=1e-9)


def test_poisson_events_have_the_rate_of_each_bin():
    bins, trains, dt = 2000, 400, 1e-3
    rate = 20 + 15 * np.sin(np.linspace(0, 4 * np.pi, bins))
    train, where = poisson_events(rate, dt, np.random.default_rng(0), trains=trains)
    key = train * bins + where
    assert np.all(np.diff(key) >= 0)  # sorted by train, then bin
    halves = [rate[:bins // 2], rate[bins // 2:]]
    for half, lo in zip(halves, (0, bins // 2)):
        mu = half.sum() * dt * trains
        got = np.sum((where >= lo) & (where < lo + bins // 2))
        assert abs(got - mu) < 4 * np.sqrt(mu)
    counts = np.bincount(where, minlength=bins) / trains
    assert np.corrcoef(counts, rate)[0, 1] > 0.5


def test_filter_theory_is_the_integral():
    for freq, phase in [(1.0, 0.0), (1.0, np.pi), (8.0, 0.3), (2.5, 1.0)]:
        p = FilterProtocol(frequency=freq, phase=phase, duration=3.3)
        t = np.linspace(0, p.duration, 400001)
        omega = 2 * np.pi * freq
        x = p.pre_mean + p.pre_depth * np.cos(omega * t + phase)
        dy = p.post_depth * omega * np.cos(omega * t)
        numeric = np.trapezoid(x * dy, t) * filter_gain(p)
        assert filter_theory(p) == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert filter_theory(FilterProtocol()) == pytest.approx(55.67, abs=0.01)
    assert filter_theory(FilterProtocol(frequency=8.0)) == pytest.approx(225.0, abs=0.05)


def test_stdp_window_emerges_full_protocol():
    ok, measured = measure_window(WindowProtocol(), np.random.default_rng(0))
    assert ok, measured
    assert 13 < measured["post_rate_hz"] < 17


def test_stdp_is_a_derivative_filter_shortened_protocol():
    """200 of the issue's 1,000 synapses; the tolerance is 4 SE (3 SE around 0); the figure script
    (tools/make_spike_figures.py) runs the full protocol and the 5 % criterion."""
    ok, measured = measure_filter(200, np.random.default_rng(1))
    assert ok, measured


def test_derivative_filter_check_can_fail():
    """Swapping pre and post flips the sign of the change; the check catches it."""
    p = FilterProtocol(synapses=200)
    rng = np.random.default_rng(2)
    bins = int(round(p.duration / p.dt))
    t = np.arange(bins) * p.dt
    pre = poisson_events(p.pre_mean + p.pre_depth * np.cos(2 * np.pi * t), p.dt, rng, trains=200)
    post = poisson_events(p.post_mean + p.post_depth * np.sin(2 * np.pi * t), p.dt, rng, trains=200)
    swapped = pair_stdp_events(post, pre, 200, tau=p.tau, dt=p.dt, amplitude=1.0)
    right = filter_protocol(p, np.random.default_rng(3))
    assert abs(swapped.mean() - right.theory) > 10 * right.se


# -- the temporal-derivative rule read from spikes (beyond both papers) -------------------------

TD_SPEC = Path(__file__).resolve().parent.parent / "specs" / "spiking_td_digits.toml"


def test_stdp_of_a_rate_step_is_pre_times_step_times_gain():
    """Rates as continuous signals (no sampling): pair STDP of a constant pre x and a post rate
    stepping from h to h + Δ at bin T is exactly x·Δ·K_T, whatever h."""
    window, tau = 12, 3.0
    for h in (0.0, 0.7):
        pre = np.full((1, 2 * window), 1.5)
        post = np.concatenate([np.full(window, h), np.full(window, h + 0.4)])[None, :]
        change = pair_stdp(pre, post, tau=tau, dt=1.0, amplitude=1.0)
        assert change[0] == pytest.approx(1.5 * 0.4 * step_gain(window, tau), rel=1e-12)


def test_spiking_temporal_derivative_claim_on_its_spec(rules, registry):
    spec = load_spec(TD_SPEC, rules=rules)
    outcome = default_claims().get("td_spiking_approaches_rates").run(spec, registry, np.random.default_rng(0))
    assert outcome.passed, outcome
    measured = outcome.measured
    for key in ("counts:x->h1", "stdp:x->h1", "counts:h1->h2", "stdp:h1->h2"):
        assert measured[f"cos_{key}@T=256"] > measured[f"cos_{key}@T=4"] + 0.2


def test_spiking_temporal_derivative_is_sampled_before_and_after(rules, registry):
    spec = load_spec(TD_SPEC, rules=rules)
    program = compile_circuit(build_graph(registry.get(spec.rule.name).augment(spec)),
                              registry.get(spec.rule.name), mode="train")
    streams = [op.stream for phase in program.phases for op in phase.ops if isinstance(op, ops.PoissonSample)]
    assert streams == ["h1.spikes", "h2.spikes", "h2.spikes_after", "h1.spikes_after"]
