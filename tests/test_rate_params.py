"""Parametrised rate functions φ(u) = scale·f(gain·(u − shift)): the spec key, the op text,
the kernels against hand values, backprop against finite differences, the rules whose NumPy
references compute φ themselves (dendritic_error, segregated_dendrites) and the energy rules'
relaxation (EqProp against a hand relaxation and its implicit-gradient claims)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuits import ops
from circuits.backends import get_backend
from circuits.claims import default_claims
from circuits.claims import dendritic as dendritic_claims
from circuits.errors import CompileError, SpecError
from circuits.model import Model
from circuits.rates import PLAIN, RateParams
from circuits.rules import default_registry
from circuits.spec import parse_spec
from circuits.spec_writer import dump_spec

RULES = default_registry(plugins=False)

PAPER = RateParams(scale=0.1, shift=3.0)   # Sacramento et al.'s 0.1·log(1 + e^(u−3))

CIRCUIT = """
[circuit]
name = "rates"
[populations]
x = {{ size = 4, role = "input" }}
h1 = {{ size = 5, activation = {h1} }}
h2 = {{ size = 3, activation = {h2} }}
y = {{ size = 2, role = "output", activation = {y} }}
[[projections]]
chain = ["x", "h1", "h2", "y"]
[rule]
name = "{rule}"
lr = 0.1
{extra}
[task]
loss = "mse"
[run]
dtype = "float64"
"""

SOFTPLUS = '{ name = "softplus", scale = 0.1, shift = 3 }'
TANH = '{ name = "tanh", scale = 2, shift = -0.5, gain = 1.5 }'
SIGMOID = '{ name = "sigmoid", scale = 0.8, shift = 0.25, gain = 3 }'


def spec_of(h1: str = SOFTPLUS, h2: str = TANH, y: str = SIGMOID, rule: str = "backprop", extra: str = ""):
    text = CIRCUIT.format(h1=h1, h2=h2, y=y, rule=rule, extra=extra)
    return parse_spec(text, source="rates.toml", rules=RULES.signatures())


def model_of(**kwargs) -> Model:
    return Model(spec_of(**kwargs), registry=RULES)


# -- spec ----------------------------------------------------------------------------------------


def test_table_form_is_read_and_written_back():
    spec = spec_of()
    h1, h2, y = spec.populations[1:]
    assert (h1.activation, h1.rate_params) == ("softplus", PAPER)
    assert (h2.activation, h2.rate_params) == ("tanh", RateParams(2.0, -0.5, 1.5))
    assert y.rate_params == RateParams(0.8, 0.25, 3.0)
    text = dump_spec(spec)
    assert 'h1 = { size = 5, role = "hidden", activation = { name = "softplus", scale = 0.1, shift = 3.0, gain = 1.0 }' in text
    assert parse_spec(text, source="again.toml", rules=RULES.signatures()) == spec


def test_plain_table_is_the_string_form_and_writes_as_before():
    table = spec_of(h1='{ name = "relu" }', h2='"tanh"', y='"linear"')
    string = spec_of(h1='"relu"', h2='"tanh"', y='"linear"')
    assert table.populations == string.populations
    assert 'activation = "relu"' in dump_spec(table) and "scale" not in dump_spec(table)


@pytest.mark.parametrize("h1,message", [
    ('{ name = "softplus", scale = 0 }', "populations.h1.activation.scale: must be a number > 0 (got 0)"),
    ('{ name = "softplus", gain = -1 }', "populations.h1.activation.gain: must be a number > 0 (got -1)"),
    ('{ name = "softplus", shfit = 3 }', "populations.h1.activation.shfit: unknown key; allowed keys are name, scale, shift, gain; did you mean 'shift'?"),
    ('{ name = "sofplus" }', "populations.h1.activation.name: must be one of"),
    ('{ name = "linear", scale = 2 }', "populations.h1.activation: 'linear' takes no scale, shift or gain"),
    ('{ name = "softplus", shift = nan }', "populations.h1.activation.shift"),
])
def test_bad_tables_fail_in_one_line(h1, message):
    with pytest.raises(SpecError) as info:
        spec_of(h1=h1)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_softmax_takes_no_parameters():
    with pytest.raises(SpecError, match="'softmax' takes no scale, shift or gain"):
        spec_of(y='{ name = "softmax", gain = 2 }')


def test_override_sets_a_table():
    text = CIRCUIT.format(h1='"relu"', h2='"tanh"', y='"linear"', rule="backprop", extra="")
    spec = parse_spec(text, source="o.toml", rules=RULES.signatures(),
                      overrides=["populations.h1.activation={ name = \"softplus\", scale = 0.1, shift = 3 }"])
    assert spec.populations[1].rate_params == PAPER


def test_compile_shows_the_parameters():
    text = model_of().program.describe()
    assert "h1.rate = 0.1·softplus(h1.pre − 3)" in text
    assert "h2.rate = 2·tanh(1.5·(h2.pre + 0.5))" in text
    assert "h1.delta = h1.grad ⊙ 0.1·softplus'(h1.pre − 3)" in text
    assert "h2.delta = h2.grad ⊙ 3·tanh'(1.5·(h2.pre + 0.5))" in text


# -- kernels against hand values -----------------------------------------------------------------

U = np.array([[-2.0, 0.0, 1.0, 3.0, 4.5]])


def _kernel(backend: str, op: ops.Op, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    engine = get_backend(backend, seed=0)
    device = {k: engine.from_numpy(np.array(v)) for k, v in arrays.items()}
    engine.step(op, device)()
    return {k: np.asarray(engine.to_numpy(v)) for k, v in device.items()}


HAND = {  # φ(u) and φ'(u) written out for each parametrised form, u = U
    ("softplus", PAPER): (lambda u: 0.1 * np.log1p(np.exp(u - 3)), lambda u: 0.1 / (1 + np.exp(3 - u))),
    ("sigmoid", RateParams(2.0, 1.0, 0.5)): (lambda u: 2 / (1 + np.exp(-0.5 * (u - 1))),
                                             lambda u: 2 * 0.5 * np.exp(-0.5 * (u - 1)) / (1 + np.exp(-0.5 * (u - 1))) ** 2),
    ("tanh", RateParams(3.0, -1.0, 2.0)): (lambda u: 3 * np.tanh(2 * (u + 1)),
                                           lambda u: 6 / np.cosh(2 * (u + 1)) ** 2),
    ("relu", RateParams(0.5, 1.0, 4.0)): (lambda u: 0.5 * np.maximum(4 * (u - 1), 0), lambda u: 2.0 * (u > 1)),
    ("hard_sigmoid", RateParams(1.0, 0.5, 0.25)): (lambda u: np.clip(0.25 * (u - 0.5), 0, 1),
                                                   lambda u: 0.25 * ((u > 0.5) & (u < 4.5))),
}


@pytest.mark.parametrize("fn,params", list(HAND))
def test_kernels_match_hand_values(backend, fn, params):
    rate, slope = HAND[(fn, params)]
    out = _kernel(backend, ops.Activate(fn, "pre", "out", params), {"pre": U, "out": np.zeros_like(U)})
    np.testing.assert_allclose(out["out"], rate(U), rtol=1e-12, atol=1e-15)
    grad = np.array([[1.0, -2.0, 0.5, 3.0, 1.0]])
    # ``rate`` holds garbage on purpose: the parametrised derivative recomputes f from pre.
    out = _kernel(backend, ops.ActivationDeriv(fn, "pre", "rate", "grad", "out", params=params),
                  {"pre": U, "rate": np.full_like(U, 7.0), "grad": grad, "out": np.zeros_like(U)})
    np.testing.assert_allclose(out["out"], grad * slope(U), rtol=1e-12, atol=1e-13)  # 1 − tanh² near saturation


def test_paper_softplus_values_by_hand():
    """0.1·log(1 + e^(u−3)) at u = 3: 0.1·log 2; its slope 0.1·σ(0) = 0.05."""
    out = _kernel("numpy", ops.Activate("softplus", "pre", "out", PAPER),
                  {"pre": np.array([[3.0, 3.0 + math.log(math.e - 1)]]), "out": np.zeros((1, 2))})
    np.testing.assert_allclose(out["out"], [[0.1 * math.log(2), 0.1]], rtol=1e-14)
    out = _kernel("numpy", ops.ActivationDeriv("softplus", "pre", "pre", "grad", "out", params=PAPER),
                  {"pre": np.array([[3.0]]), "grad": np.ones((1, 1)), "out": np.zeros((1, 1))})
    assert out["out"][0, 0] == pytest.approx(0.05, rel=1e-14)


def test_plain_parameters_run_the_plain_kernel_bit_for_bit():
    pre = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    for fn in ("relu", "tanh", "sigmoid", "hard_sigmoid", "softplus"):
        plain = _kernel("numpy", ops.Activate(fn, "pre", "out"), {"pre": pre, "out": np.zeros_like(pre)})
        same = _kernel("numpy", ops.Activate(fn, "pre", "out", RateParams(1.0, 0.0, 1.0)),
                       {"pre": pre, "out": np.zeros_like(pre)})
        np.testing.assert_array_equal(plain["out"], same["out"])
    assert ops.Activate("relu", "a", "b") == ops.Activate("relu", "a", "b", PLAIN)


# -- gradients -----------------------------------------------------------------------------------


def _finite_differences(model: Model, x: np.ndarray, y: np.ndarray, name: str, stride: int) -> list[tuple[float, float]]:
    grads = model.gradients(x, y)
    value = model.backend.to_numpy(model.params[name]).copy()
    flat, pairs = value.reshape(-1), []
    for index in range(0, flat.size, stride):
        flat[index] += 1e-6
        model.set_params({name: value})
        up = model.evaluate(x, y)[0]
        flat[index] -= 2e-6
        model.set_params({name: value})
        down = model.evaluate(x, y)[0]
        flat[index] += 1e-6
        model.set_params({name: value})
        pairs.append((float(grads[name].reshape(-1)[index]), (up - down) / 2e-6))
    return pairs


@pytest.mark.parametrize("name", ["x->h1", "h1->h2", "h2->y", "h1.bias", "y.bias"])
def test_backprop_gradients_match_finite_differences(name):
    model = model_of()
    rng = np.random.default_rng(3)
    x, y = 3 * rng.standard_normal((6, 4)) + 2, rng.random((6, 2))
    for analytic, numeric in _finite_differences(model, x, y, name, stride=3):
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-10)


def test_backprop_step_is_minus_lr_times_the_gradient():
    model = model_of()
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 4)), rng.random((5, 2))
    grads, deltas = model.gradients(x, y), model.deltas(x, y)
    for name in grads:
        np.testing.assert_allclose(deltas[name], -0.1 * grads[name], rtol=1e-10, atol=1e-14)


def test_feedback_alignment_with_tied_feedback_equals_backprop():
    """FA's deltas with B = Wᵀ equal backprop's on the parametrised circuit (the op carries φ')."""
    fa = model_of(rule="feedback_alignment", extra="auto_feedback = true")
    bp = model_of()
    bp.set_params({k: bp.backend.to_numpy(v) for k, v in fa.params.items() if k in bp.params})
    fa.set_params({f"{b}->{a}": fa.backend.to_numpy(fa.params[f"{a}->{b}"]).T
                   for a, b in (("h1", "h2"), ("h2", "y")) if f"{b}->{a}" in fa.params})
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 4)), rng.random((5, 2))
    grads, deltas = bp.gradients(x, y), fa.deltas(x, y)
    for name in ("x->h1", "h1->h2", "h2->y"):
        np.testing.assert_allclose(deltas[name], -0.1 * grads[name], rtol=1e-9, atol=1e-13)


DENDRITIC = """
[circuit]
name = "dendritic-rates"
[populations]
x = { size = 5, role = "input" }
h = { size = 6, activation = { name = "softplus", scale = 0.1, shift = 3 }, cell = "pyramidal" }
y = { size = 3, role = "output", activation = { name = "softplus", scale = 0.1, shift = 3 }, cell = "pyramidal" }
[[projections]]
chain = ["x", "h", "y"]
bias = false
[rule]
name = "dendritic_error"
microcircuit = "self_predicting"
lr = 0.1
[task]
loss = "mse"
[run]
dtype = "float64"
"""


def test_dendritic_gradients_match_finite_differences_with_the_paper_softplus():
    spec = parse_spec(DENDRITIC, source="d.toml", rules=RULES.signatures())
    model = Model(spec, registry=RULES)
    inter = [p for p in model.spec.populations if p.cell == "interneuron"]
    assert inter and all(p.rate_params == PAPER for p in inter)   # the interneuron copies its layer above
    rng = np.random.default_rng(6)
    x, y = 3 * rng.standard_normal((6, 5)) + 3, 0.1 * rng.random((6, 3))
    for name in ("x->h", "h->y"):
        for analytic, numeric in _finite_differences(model, x, y, name, stride=4):
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-12)


def test_dendritic_claims_hold_with_the_paper_softplus():
    spec = parse_spec(DENDRITIC, source="d.toml", rules=RULES.signatures())
    for claim in (dendritic_claims.BALANCED_NUDGING, dendritic_claims.SELF_PREDICTING_IS_SILENT,
                  dendritic_claims.APICAL_ENCODES_ERROR):
        outcome = claim.run(spec, RULES, np.random.default_rng(0))
        assert outcome.passed, outcome


def test_dendritic_output_is_the_parametrised_feed_forward_network():
    spec = parse_spec(DENDRITIC, source="d.toml", rules=RULES.signatures())
    model = Model(spec, registry=RULES)
    p = {k: model.backend.to_numpy(v) for k, v in model.params.items()}
    x = 3 * np.random.default_rng(7).standard_normal((4, 5)) + 3
    gain_h, gain_y = 1.0 / (0.1 + 1.0 + 0.8), 1.0 / (0.1 + 1.0)
    h = 0.1 * np.logaddexp(gain_h * (x @ p["x->h"]) - 3, 0)
    np.testing.assert_allclose(model.predict(x), 0.1 * np.logaddexp(gain_y * (h @ p["h->y"]) - 3, 0), rtol=1e-12)


def test_segregated_gradients_match_finite_differences():
    text = CIRCUIT.format(h1=SOFTPLUS, h2=TANH, y=SIGMOID, rule="segregated_dendrites", extra="")
    text = text.replace("activation = {", "cell = \"pyramidal\", activation = {")
    spec = parse_spec(text, source="s.toml", rules=RULES.signatures())
    model = Model(spec, registry=RULES)
    rng = np.random.default_rng(8)
    x, y = 3 * rng.standard_normal((6, 4)) + 2, rng.random((6, 2))
    for name in ("x->h1", "h2->y"):
        for analytic, numeric in _finite_differences(model, x, y, name, stride=3):
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-12)


# -- energy-based rules ----------------------------------------------------------------------------

ENERGY = """
[circuit]
name = "energy-rates"
[populations]
x = { size = 3, role = "input" }
h = { size = 4, activation = { name = "sigmoid", scale = 0.8, shift = 0.5, gain = 2 }, step = 0.5 }
y = { size = 2, role = "output", activation = { name = "tanh", scale = 0.5, shift = -0.2, gain = 1.5 }, step = 0.5 }
[[projections]]
chain = ["x", "h", "y"]
init = { scheme = "xavier", gain = 2.0 }
[rule]
name = "equilibrium_propagation"
lr = 0.1
beta = 0.2
tol = 1e-14
free_steps = 5000
nudged_steps = 5000
[task]
loss = "mse"
[run]
dtype = "float64"
seed = 3
"""


def _energy_model(**overrides) -> Model:
    return Model(parse_spec(ENERGY, source="e.toml", rules=RULES.signatures(), overrides=overrides), registry=RULES)


def _rho_h(s):
    return 0.8 / (1 + np.exp(-2 * (s - 0.5)))


def _drho_h(s):
    g = 1 / (1 + np.exp(-2 * (s - 0.5)))
    return 0.8 * 2 * g * (1 - g)


def _rho_y(s):
    return 0.5 * np.tanh(1.5 * (s + 0.2))


def _drho_y(s):
    return 0.5 * 1.5 / np.cosh(1.5 * (s + 0.2)) ** 2


def test_eqprop_update_with_parametrised_rates_matches_a_hand_relaxation():
    """ds/dt = ρ'(s) ⊙ drive − s with ρ = scale·f(gain·(s − shift)), written out in NumPy."""
    model = _energy_model()
    assert "h.pre = (h.pre + 0.5·(1.6·sigmoid'(2·(h.pre − 0.5)) ⊙ h.drive − h.pre))" in model.program.describe()
    p = {k: np.array(model.backend.to_numpy(v)) for k, v in model.params.items()}
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 3)), rng.uniform(-0.3, 0.3, (5, 2))

    def relax(beta, h, y):
        for _ in range(5000):
            dh = x @ p["x->h"] + _rho_y(y) @ p["h->y"].T + p["h.bias"]
            dy = _rho_h(h) @ p["h->y"] + p["y.bias"] + beta * (t - _rho_y(y))
            fh, fy = _drho_h(h) * dh - h, _drho_y(y) * dy - y
            h, y = h + 0.5 * fh, y + 0.5 * fy
            if np.sqrt(np.max(np.sum(fh ** 2, 1) + np.sum(fy ** 2, 1))) <= 1e-14:
                break
        return h, y

    free = relax(0.0, np.zeros((5, 4)), np.zeros((5, 2)))
    nudged = relax(0.2, *free)

    def coactivity(h, y):
        return {"x->h": x.T @ _rho_h(h), "h->y": _rho_h(h).T @ _rho_y(y)}

    a, b = coactivity(*nudged), coactivity(*free)
    deltas = model.deltas(x, t)
    for name in a:
        np.testing.assert_allclose(deltas[name], 0.1 / (0.2 * 5) * (a[name] - b[name]), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("claim", ["implicit_gradient_is_exact", "eqprop_one_sided_bias_is_first_order",
                                   "eqprop_symmetric_bias_is_second_order", "eqprop_free_dynamics_descend_energy"])
def test_eqprop_claims_hold_with_parametrised_rates(claim):
    outcome = default_claims().get(claim).run(_energy_model().spec, RULES, np.random.default_rng(0))
    assert outcome.passed, outcome


def test_hard_sigmoid_energy_units_refuse_parameters():
    with pytest.raises(CompileError, match="keeps hard-sigmoid states in the box"):
        _energy_model(**{"populations.h.activation": '{ name = "hard_sigmoid", gain = 2 }'})


def test_eqprop_relaxes_softplus_units_with_the_paper_parameters():
    """Softplus had no leaky-integrator kernel before; it relaxes through the ActivationDeriv kernel."""
    model = _energy_model(**{"populations.h.activation": '{ name = "softplus", scale = 0.1, shift = 3 }'})
    assert "0.1·softplus'(h.pre − 3) ⊙ h.drive" in model.program.describe()
    outcome = default_claims().get("implicit_gradient_is_exact").run(model.spec, RULES, np.random.default_rng(0))
    assert outcome.passed, outcome


def test_a_claim_that_names_a_rate_function_gets_the_plain_one():
    """``variant(activation=...)`` drops scale, shift and gain: the claim's reference computes plain f."""
    from circuits.claims.base import variant
    spec = _energy_model().spec
    named = variant(spec, activation="sigmoid", output_activation="linear")
    assert all(p.rate_params == PLAIN for p in named.populations)
    kept = variant(spec)
    assert [p.rate_params for p in kept.populations] == [p.rate_params for p in spec.populations]
    chl = ENERGY.split("[rule]")[0] + '[rule]\nname = "contrastive_hebbian"\n[task]\nloss = "mse"\n[run]\ndtype = "float64"\n'
    chl_spec = parse_spec(chl, source="chl.toml", rules=RULES.signatures())
    assert chl_spec.populations[1].rate_params != PLAIN
    outcome = default_claims().get("chl_is_eqprop_at_infinite_beta").run(chl_spec, RULES, np.random.default_rng(0))
    assert outcome.passed, outcome   # failed while the named sigmoid kept the spec's parameters
