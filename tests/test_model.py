"""The Python API: params, predict, deltas, gradients, step, determinism, input errors."""

from __future__ import annotations

import numpy as np
import pytest

import circuits
from circuits.errors import DataError


@pytest.fixture
def fa_spec(repo_root):
    return repo_root / "specs" / "fa_digits.toml"


def test_params_are_named_by_projection_and_shaped_source_by_target(fa_spec):
    model = circuits.load(fa_spec)
    shapes = {name: tuple(p.shape) for name, p in model.params.items()}
    assert shapes == {"x->h1": (64, 128), "h1->y": (128, 10), "y->h1": (10, 128), "h1.bias": (128,),
                      "y.bias": (10,)}


def test_predict_is_pre_activation_sum_plus_bias(fa_spec):
    model = circuits.load(fa_spec, {"run.dtype": "float64"})
    x = np.random.default_rng(0).standard_normal((7, 64))
    p = model.params
    h = np.tanh(x @ p["x->h1"] + p["h1.bias"])
    np.testing.assert_allclose(model.predict(x), h @ p["h1->y"] + p["y.bias"], rtol=1e-12)


def test_predict_in_chunks_matches_one_batch(fa_spec):
    model = circuits.load(fa_spec, {"run.dtype": "float64", "run.eval_batch_size": 3})
    x = np.random.default_rng(1).standard_normal((10, 64))
    whole = circuits.load(fa_spec, {"run.dtype": "float64"}).predict(x)
    np.testing.assert_allclose(model.predict(x), whole, rtol=1e-12)


def test_deltas_do_not_change_parameters(fa_spec):
    model = circuits.load(fa_spec)
    before = {k: np.array(v) for k, v in model.params.items()}
    x = np.random.default_rng(2).standard_normal((5, 64))
    model.deltas(x, np.arange(5))
    model.gradients(x, np.arange(5))
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_same_seed_same_numbers_other_seed_other_numbers(fa_spec):
    def run(seed):
        model = circuits.load(fa_spec, {"run.seed": seed, "task.epochs": 1, "task.n_train": 200})
        records = list(circuits.fit(model, circuits.load_data(model)))
        return records[-1].train_loss, np.array(model.params["x->h1"])
    (loss_a, w_a), (loss_b, w_b), (loss_c, _) = run(0), run(0), run(1)
    assert loss_a == loss_b
    np.testing.assert_array_equal(w_a, w_b)
    assert loss_a != loss_c


def test_seeds_do_not_depend_on_table_order(fa_spec, tmp_path):
    text = fa_spec.read_text()
    head, _, rest = text.partition("[populations]")
    pops, _, tail = rest.partition("[[projections]]")
    lines = [line for line in pops.strip().splitlines()]
    reordered = head + "[populations]\n" + "\n".join(reversed(lines)) + "\n\n[[projections]]" + tail
    path = tmp_path / "reordered.toml"
    path.write_text(reordered)
    a, b = circuits.load(fa_spec), circuits.load(path)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_bad_inputs_are_data_errors(fa_spec):
    model = circuits.load(fa_spec)
    with pytest.raises(DataError, match=r"inputs must have shape \(batch, 64\)"):
        model.predict(np.zeros((3, 63)))
    with pytest.raises(DataError, match=r"label 10 \(row 2 of the batch\) is outside 0\.\.9"):
        model.step(np.zeros((3, 64)), np.array([0, 1, 10]))


def test_alignment_is_zero_for_backprop_and_between_0_and_180_for_fa(repo_root, fa_spec):
    x = np.random.default_rng(3).standard_normal((16, 64))
    y = np.arange(16) % 10
    bp = circuits.load(repo_root / "specs" / "bp_digits.toml", {"run.dtype": "float64"})
    assert max(bp.alignment(x, y).values()) < 1e-5
    fa = circuits.load(fa_spec, {"run.dtype": "float64"}).alignment(x, y)
    assert fa["h1->y"] < 1e-5 and 0 < fa["x->h1"] < 180


def test_adam_and_momentum_train(fa_spec):
    for overrides in ({"rule.optimizer": "adam", "rule.lr": 0.003}, {"rule.momentum": 0.9}):
        model = circuits.load(fa_spec, {"task.epochs": 3, "task.n_train": 400, **overrides})
        records = list(circuits.fit(model, circuits.load_data(model)))
        assert records[-1].train_loss < records[0].train_loss
        assert records[-1].test_accuracy > 0.8


def test_dropout_trains_and_is_off_for_predict(fa_spec):
    model = circuits.load(fa_spec, {"populations.h1.dropout": 0.5, "run.dtype": "float64"})
    x = np.random.default_rng(4).standard_normal((6, 64))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    assert "h1.mask" in model.program.buffers
    assert "h1.mask" not in model.compiled("infer").buffers


def test_dropout_step_is_the_gradient_of_the_masked_network(repo_root):
    """With dropout on tanh units, f' comes from the pre-activation, not the masked rate."""
    model = circuits.load(repo_root / "specs" / "bp_digits.toml",
                          {"populations.h1.dropout": 0.5, "populations.h1.activation": "tanh",
                           "rule.momentum": 0.0, "task.loss": "mse", "run.dtype": "float64"})
    rng = np.random.default_rng(5)
    x, target = rng.standard_normal((6, 64)), rng.standard_normal((6, 10))
    before = {k: np.array(v) for k, v in model.params.items()}
    model.step(x, target)
    mask = model.sim.executable(model.program, 6).arrays["h1.mask"]
    h = np.tanh(x @ before["x->h1"] + before["h1.bias"]) * mask
    y = h @ before["h1->y"] + before["y.bias"]
    dy = (y - target) / 6
    dpre = (dy @ before["h1->y"].T) * mask * (1 - np.tanh(x @ before["x->h1"] + before["h1.bias"]) ** 2)
    lr = model.program.lrs["x->h1"]
    np.testing.assert_allclose(model.params["x->h1"], before["x->h1"] - lr * x.T @ dpre, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.params["h1->y"], before["h1->y"] - lr * h.T @ dy, rtol=1e-10, atol=1e-12)
