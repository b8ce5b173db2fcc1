"""Node and weight perturbation: their ops, updates pinned by hand, schedules, claims and mutants."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.backends import get_backend
from circuits.claims import default_claims
from circuits.cli import main
from circuits.compile import Builder
from circuits.errors import SpecError
from circuits.model import Model
from circuits.rules import RuleRegistry, default_registry
from circuits.rules.perturbation import NodePerturbation, WeightPerturbation, perturbed
from circuits.spec import parse_spec

CLAIMS = default_claims()
RNG = np.random.default_rng(5)
X = RNG.standard_normal((5, 3))
T = RNG.standard_normal((5, 2))
LABELS = np.array([0, 1, 1, 0, 1])

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h = {{ size = 4, activation = "tanh" }}
y = {{ size = 2, role = "output", activation = "{out}" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
lr = 0.1
sigma = 0.3
{extra}
[task]
dataset = "teacher_linear"
loss = "{loss}"
[run]
dtype = "float64"
seed = 3
"""


def tiny(rule="node_perturbation", loss="mse", out="sigmoid", extra="", registry=None) -> Model:
    registry = registry or default_registry()
    spec = parse_spec(TINY.format(rule=rule, loss=loss, out=out, extra=extra), source="tiny.toml",
                      rules=registry.signatures())
    return Model(spec, registry=registry)


def host(model, exe, name):
    return np.array(model.backend.to_numpy(exe.arrays[name]))


# -- ops -------------------------------------------------------------------------------------------


def run_op(backend_name, op, arrays, times=1):
    backend = get_backend(backend_name, seed=1)
    device = {k: backend.from_numpy(np.array(v)) for k, v in arrays.items()}
    step = backend.step(op, device)
    for _ in range(times):
        step()
    return {k: np.asarray(backend.to_numpy(v)) for k, v in device.items()}


def test_example_loss_matches_the_batch_losses(backend):
    logits = RNG.standard_normal((5, 4)) * 30  # large logits: the shifted log-sum-exp must not overflow
    labels = np.array([0, 3, 1, 1, 2])
    got = run_op(backend, ops.ExampleLoss("cross_entropy", "o", "t", "l", "m"),
                 {"o": logits, "t": labels, "l": np.zeros(5), "m": np.zeros(())})
    shifted = logits - logits.max(1, keepdims=True)
    want = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(5), labels]
    np.testing.assert_allclose(got["l"], want, rtol=1e-12, atol=1e-12)
    batch = run_op(backend, ops.SoftmaxCrossEntropy("o", "t", "d", "m"),
                   {"o": logits, "t": labels, "d": np.zeros((5, 4)), "m": np.zeros(())})
    np.testing.assert_allclose(got["m"], batch["m"], rtol=1e-12)
    target = RNG.standard_normal((5, 4))
    got = run_op(backend, ops.ExampleLoss("mse", "o", "t", "l", "m"),
                 {"o": logits, "t": target, "l": np.zeros(5), "m": np.zeros(())})
    np.testing.assert_allclose(got["l"], 0.5 * ((logits - target) ** 2).sum(1), rtol=1e-12)
    batch = run_op(backend, ops.MeanSquaredError("o", "t", "g", "m"),
                   {"o": logits, "t": target, "g": np.zeros((5, 4)), "m": np.zeros(())})
    np.testing.assert_allclose(got["m"], batch["m"], rtol=1e-12)


@pytest.mark.parametrize("alpha,beta,per_batch", [(1.0, 0.0, False), (2.0, 0.0, True), (-0.5, 0.9, False),
                                                  (0.3, 1.0, True)])
def test_modulate_broadcasts_the_signal(backend, alpha, beta, per_batch):
    trace, out = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    signal = RNG.standard_normal(5)
    got = run_op(backend, ops.Modulate("s", "a", "o", alpha=alpha, beta=beta, per_batch=per_batch),
                 {"s": signal, "a": trace, "o": out})
    scale = alpha / 5 if per_batch else alpha
    np.testing.assert_allclose(got["o"], beta * out + scale * signal[:, None] * trace, rtol=1e-12)
    got = run_op(backend, ops.Modulate("s", "a", "o", alpha=alpha, beta=beta),
                 {"s": np.array(1.7), "a": trace, "o": out})
    np.testing.assert_allclose(got["o"], beta * out + alpha * 1.7 * trace, rtol=1e-12)


def test_offset_and_running_mean(backend):
    value = RNG.standard_normal(6)
    got = run_op(backend, ops.Offset("v", "c", "o"), {"v": value, "c": np.array(0.25), "o": np.zeros(6)})
    np.testing.assert_allclose(got["o"], value - 0.25, rtol=1e-12)
    got = run_op(backend, ops.RunningMean("v", "a", 0.9), {"v": value, "a": np.array(2.0)}, times=2)
    np.testing.assert_allclose(got["a"], 0.81 * 2.0 + (0.09 + 0.1) * value.mean(), rtol=1e-12)


def test_op_shape_checks_name_the_op():
    shapes = {"s": (3,), "a": ("batch", 3), "o": ("batch", 3), "c": (3,), "l": ("batch",), "m": ()}
    with pytest.raises(Exception, match="does not broadcast"):
        ops.Modulate("s", "a", "o").check(shapes)
    with pytest.raises(Exception, match="offset must be a scalar"):
        ops.Offset("a", "c", "o").check(shapes)
    with pytest.raises(Exception, match="target"):
        ops.ExampleLoss("cross_entropy", "a", "o", "l", "m").check(shapes)


# -- updates pinned by hand ------------------------------------------------------------------------


def forward(p, x, out, noise_h=0.0, noise_y=0.0):
    h = np.tanh(x @ p["x->h"] + p["h.bias"] + noise_h)
    pre = h @ p["h->y"] + p["y.bias"] + noise_y
    return h, pre, (1 / (1 + np.exp(-pre)) if out == "sigmoid" else pre)


def example_losses(pre, rate, loss):
    if loss == "mse":
        return 0.5 * ((rate - T) ** 2).sum(1)
    shifted = pre - pre.max(1, keepdims=True)
    return np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(pre)), LABELS]


@pytest.mark.parametrize("loss,out", [("mse", "sigmoid"), ("cross_entropy", "linear")])
def test_node_perturbation_hand_computation(loss, out):
    model = tiny(loss=loss, out=out)
    p = {k: np.array(v) for k, v in model.params.items()}
    y = T if loss == "mse" else LABELS
    exe = model.run("probe", X, y)
    xi_h, xi_y = host(model, exe, "h.noise"), host(model, exe, "y.noise")
    h, pre, rate = forward(p, X, out)
    _, pre_t, rate_t = forward(p, X, out, xi_h, xi_y)
    change = example_losses(pre_t, rate_t, loss) - example_losses(pre, rate, loss)
    d_h, d_y = (change[:, None] * xi / (0.3 ** 2 * len(X)) for xi in (xi_h, xi_y))
    want = {"x->h": X.T @ d_h, "h.bias": d_h.sum(0), "h->y": h.T @ d_y, "y.bias": d_y.sum(0)}
    grads = model.compiled("probe").grads
    for name, value in want.items():
        np.testing.assert_allclose(host(model, exe, grads[name]), value, rtol=1e-10, atol=1e-13, err_msg=name)
    assert np.std(xi_h) == pytest.approx(0.3, rel=0.5)


def test_node_perturbation_train_step_applies_minus_lr_times_the_estimate():
    model = tiny()
    before = {k: np.array(v) for k, v in model.params.items()}
    model.step(X, T)
    exe = model.sim.executable(model.program, len(X))
    h = np.tanh(X @ before["x->h"] + before["h.bias"])
    d_h, d_y = host(model, exe, "h.delta"), host(model, exe, "y.delta")
    want = {"x->h": X.T @ d_h, "h.bias": d_h.sum(0), "h->y": h.T @ d_y, "y.bias": d_y.sum(0)}
    for name, grad in want.items():
        np.testing.assert_allclose(np.array(model.params[name]), before[name] - 0.1 * grad, rtol=1e-10,
                                   atol=1e-13, err_msg=name)


@pytest.mark.parametrize("extra", ["", "momentum = 0.5", 'optimizer = "adam"'])
def test_weight_perturbation_hand_computation(extra):
    model = tiny("weight_perturbation", extra=extra)
    p = {k: np.array(v) for k, v in model.params.items()}
    exe = model.run("probe", X, T)
    noise = {n: host(model, exe, f"{model.program.params[n]}.noise") for n in p}
    _, pre, rate = forward(p, X, "sigmoid")
    _, pre_t, rate_t = forward({n: p[n] + noise[n] for n in p}, X, "sigmoid")
    change = example_losses(pre_t, rate_t, "mse").mean() - example_losses(pre, rate, "mse").mean()
    grads = model.compiled("probe").grads
    assert set(grads) == set(p)
    for name in p:
        np.testing.assert_allclose(host(model, exe, grads[name]), change * noise[name] / 0.09, rtol=1e-10)
    # One train step from fresh optimizer state: SGD (with or without momentum) moves by
    # −lr·ĝ; Adam's first step by −lr·ĝ/(|ĝ| + ε), i.e. lr·sign(ĝ).
    model.step(X, T)
    train = model.sim.executable(model.program, len(X))
    for name in p:
        noise = host(model, train, f"{model.program.params[name]}.noise")
        change = float(host(model, train, "loss.change"))
        estimate = change * noise / 0.09
        step = 0.1 * (np.sign(estimate) if "adam" in extra else estimate)
        np.testing.assert_allclose(np.array(model.params[name]), p[name] - step, rtol=1e-6, err_msg=name)


def test_running_baseline_is_read_before_it_learns_and_only_in_training():
    model = tiny(extra='baseline = "running"\nbaseline_decay = 0.5')
    store = model.sim.store["loss.baseline"]
    store[...] = 0.2
    model.run("probe", X, T)
    assert float(store) == 0.2  # a probe changes nothing
    model.step(X, T)
    exe = model.sim.executable(model.program, len(X))
    change = host(model, exe, "y.loss_change")
    np.testing.assert_allclose(host(model, exe, "loss.signal"), change - 0.2, rtol=1e-12)
    assert float(store) == pytest.approx(0.5 * 0.2 + 0.5 * change.mean(), rel=1e-12)


def test_dropout_mask_of_the_clean_pass_is_reused():
    model = tiny(extra="")
    spec = attrs.evolve(model.spec, populations=tuple(
        attrs.evolve(p, dropout=0.5) if p.name == "h" else p for p in model.spec.populations))
    model = Model(spec)
    model.step(X, T)
    exe = model.sim.executable(model.program, len(X))
    mask = host(model, exe, "h.mask")
    assert (mask == 0).any()
    assert np.all(host(model, exe, "h.rate~")[mask == 0] == 0)


# -- schedules and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("spec,rule", [("np_digits", "node_perturbation"), ("wp_digits", "weight_perturbation")])
def test_compile_shows_the_two_passes(repo_root, spec, rule):
    result = CliRunner().invoke(main, ["compile", str(repo_root / "specs" / f"{spec}.toml")])
    assert result.exit_code == 0, result.output
    phases = [line.split()[1] for line in result.output.splitlines() if line.startswith("phase ")]
    assert phases == ["forward", "loss", "perturbed", "estimate", "update"]
    assert f"rule {rule}" in result.output
    assert "softmax(" in result.output and "− onehot" not in result.output  # no exact gradient anywhere
    assert "h1.pre~ = x.rate @ x->h1.weight" + ("~" if rule == "weight_perturbation" else "") in result.output


def test_infer_program_is_the_clean_pass_only():
    model = tiny()
    assert [p.name for p in model.compiled("infer").phases] == ["forward", "loss"]
    loss, _ = model.evaluate(X, T)
    _, _, rate = forward({k: np.array(v) for k, v in model.params.items()}, X, "sigmoid")
    assert loss == pytest.approx(example_losses(None, rate, "mse").mean(), rel=1e-12)


def test_sigma_must_be_positive(registry):
    text = TINY.format(rule="node_perturbation", loss="mse", out="linear", extra="").replace("sigma = 0.3", "sigma = 0")
    with pytest.raises(SpecError, match=r"rule\.sigma: must be a number >= 1e-12 \(got 0\)"):
        parse_spec(text, source="tiny.toml", rules=registry.signatures())


LATERAL = """
[circuit]
name = "lateral"
[populations]
x = { size = 3, role = "input" }
h = { size = 4, activation = "tanh" }
y = { size = 2, role = "output", activation = "linear" }
[[projections]]
chain = ["x", "h", "y"]
[[projections]]
from = "h"
to = "h"
type = "lateral"
[rule]
name = "RULE"
[task]
dataset = "teacher_linear"
loss = "mse"
[run]
dtype = "float64"
"""


@pytest.mark.parametrize("rule", ["node_perturbation", "weight_perturbation"])
def test_lateral_step_is_perturbed_and_learned_without_bias(rule, registry):
    spec = parse_spec(LATERAL.replace("RULE", rule), source="lateral.toml", rules=registry.signatures())
    outcome = CLAIMS.get("perturbation_unbiased").run(spec, registry, np.random.default_rng(0))
    assert outcome.passed, outcome
    model = Model(spec, registry=registry)
    assert "h->h" in model.compiled("probe").grads
    if rule == "node_perturbation":
        assert "h.noise2" in model.compiled("probe").buffers


# -- claims on drawn circuits --------------------------------------------------------------------


def drawn(circuit, rule, registry=None):
    registry = registry or default_registry()
    return parse_spec(dag_spec_text(circuit, rule=rule), source="drawn.toml", rules=registry.signatures())


@settings(max_examples=8)
@given(circuit=dag_circuits(max_depth=3, max_size=8), rule=st.sampled_from(["node_perturbation",
                                                                          "weight_perturbation"]))
def test_estimates_are_unbiased(registry, circuit, rule):
    outcome = CLAIMS.get("perturbation_unbiased").run(drawn(circuit, rule), registry, np.random.default_rng(0))
    assert outcome.passed, outcome


@settings(max_examples=8)
@given(circuit=dag_circuits(max_depth=3, max_size=8))
def test_np_is_exact_for_quadratic_losses(registry, circuit):
    outcome = CLAIMS.get("np_exact_for_quadratic_loss").run(drawn(circuit, "node_perturbation"), registry,
                                                             np.random.default_rng(0))
    assert outcome.passed, outcome


@settings(max_examples=6)
@given(circuit=dag_circuits(max_depth=3, max_size=8), rule=st.sampled_from(["node_perturbation",
                                                                          "weight_perturbation"]))
def test_error_variance_is_n_plus_one_gradients(registry, circuit, rule):
    outcome = CLAIMS.get("perturbation_variance").run(drawn(circuit, rule), registry, np.random.default_rng(0))
    assert outcome.passed, outcome


@settings(max_examples=6)
@given(circuit=dag_circuits(max_depth=3, max_size=8))
def test_baseline_leaves_the_mean_unchanged(registry, circuit):
    outcome = CLAIMS.get("baseline_leaves_mean_unchanged").run(drawn(circuit, "node_perturbation"), registry,
                                                                np.random.default_rng(0))
    assert outcome.passed, outcome


# -- mutants: each claim must catch a rule wrong in the way it guards against ----------------------


def _edit(b: Builder, phase: str, change) -> None:
    b.phase_ops[phase] = [op for op in (change(op) for op in b.phase_ops.get(phase, [])) if op is not None]


class ForgetsSigmaNP(NodePerturbation):
    """Correlates the loss change with the noise but never divides by σ²."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        _edit(b, "estimate", lambda op: attrs.evolve(op, alpha=1.0) if isinstance(op, ops.Modulate) else op)


class SignFlipWP(WeightPerturbation):
    """Weight perturbation that climbs the loss: the estimate's sign is flipped."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        _edit(b, "update", lambda op: attrs.evolve(op, alpha=-op.alpha) if isinstance(op, ops.Modulate) else op)


class PerturbedPresynapticNP(NodePerturbation):
    """Learns from the presynaptic rates of the perturbed pass: unbiased only to O(σ²)."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        inputs = {b.rate(p) for p in b.graph.inputs}
        _edit(b, "update", lambda op: attrs.evolve(op, a=perturbed(op.a))
              if isinstance(op, ops.OuterUpdate) and op.a not in inputs else op)


class HiddenUnperturbedNP(NodePerturbation):
    """Draws noise for every unit but adds it to the output's pre-activation only (N is overstated)."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        hidden = {f"{p}.noise" for p in b.graph.hidden}
        _edit(b, "perturbed", lambda op: None if isinstance(op, ops.Accumulate) and op.a in hidden else op)


class UnperturbedBiasWP(WeightPerturbation):
    """Draws noise for the biases but leaves them unperturbed in the perturbed pass."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        _edit(b, "perturbed", lambda op: attrs.evolve(op, coeffs=(1.0, 0.0))
              if isinstance(op, ops.LinearCombination) and op.terms[0].endswith(".bias") else op)


class SelfBaselineNP(NodePerturbation):
    """Its baseline is the batch mean of the current loss change: it depends on the unit's own noise."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        if "loss.baseline" in b.buffers and b.mode != "infer":
            out = b.graph.output
            b.phase_ops["estimate"].insert(0, ops.RunningMean(f"{out}.loss_change", "loss.baseline", 0.0))


LAYERED = """
[circuit]
name = "layered"
[populations]
x = { size = 8, role = "input" }
h = { size = 12, activation = "tanh" }
y = { size = 4, role = "output" }
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "RULE"
[task]
dataset = "xor"
loss = "cross_entropy"
"""

MUTANTS = [
    ("perturbation_unbiased", ForgetsSigmaNP()),
    ("perturbation_unbiased", SignFlipWP()),
    ("np_exact_for_quadratic_loss", PerturbedPresynapticNP()),
    ("perturbation_variance", HiddenUnperturbedNP()),
    ("perturbation_variance", UnperturbedBiasWP()),
    ("baseline_leaves_mean_unchanged", SelfBaselineNP()),
]


def test_every_perturbation_claim_has_a_mutant():
    ours = {c.name for c in CLAIMS.all() if set(c.rules) <= {"node_perturbation", "weight_perturbation"}}
    assert ours == {name for name, _ in MUTANTS}


@pytest.mark.parametrize("claim,mutant", MUTANTS, ids=[f"{c}-{type(m).__name__}" for c, m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant):
    registry = RuleRegistry()
    registry.register(mutant)
    registry.register(default_registry().get("backprop"))
    spec = parse_spec(LAYERED.replace("RULE", mutant.name), source="layered.toml", rules=registry.signatures())
    assert CLAIMS.get(claim).run(spec, default_registry(), np.random.default_rng(0)).passed
    outcome = CLAIMS.get(claim).run(spec, registry, np.random.default_rng(0))
    assert outcome.status == "fail", outcome
