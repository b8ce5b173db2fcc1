"""Learning-rate schedules (rule.lr_schedule): the rate of each epoch by hand, the compiled
rates, training against a reference trained at hand-set rates, exact resume and extension,
the spec keys and their one-line errors (circuits/lr_schedule.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import circuits
from circuits import load_spec
from circuits.cli import main
from circuits.errors import SpecError
from circuits.lr_schedule import describe_schedule, lr_factor
from circuits.ops.basic import SgdStep
from circuits.rules import default_registry
from circuits.runs import execute_run, read_metrics, run_id
from circuits.spec import parse_spec
from circuits.spec_writer import dump_spec
from circuits.data import iterate_batches
from circuits.training import batch_rng, fit, load_data

REPO = Path(__file__).resolve().parent.parent
BP = REPO / "specs" / "bp_digits.toml"
SMALL = ["task.n_train=64", "task.n_test=50", "task.batch_size=16"]
RULES = default_registry().signatures()
STEP = ["rule.lr_schedule=step", "rule.lr_milestones=[1, 2]", "rule.lr_gamma=0.5"]
COSINE = ["rule.lr_schedule=cosine", "rule.lr_floor=0.2"]


def test_step_and_cosine_rates_by_hand():
    step = {"lr_schedule": "step", "lr_milestones": (2, 4), "lr_gamma": 0.5}
    assert [lr_factor(step, e) for e in range(1, 7)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    cosine = {"lr_schedule": "cosine", "lr_epochs": 4, "lr_floor": 0.2}
    # 0.2 + 0.8 (1 + cos(π (e − 1) / 4)) / 2 for e = 1..4, then the floor
    expected = [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2, 0.2]
    np.testing.assert_allclose([lr_factor(cosine, e) for e in range(1, 7)], expected, rtol=1e-15)
    assert lr_factor({"lr_schedule": "constant"}, 7) == 1.0
    assert lr_factor({}, 3) == 1.0


def test_the_train_program_runs_at_the_scaled_rate_and_probe_keeps_the_spec_rate():
    model = circuits.load(BP, [*SMALL, "rule.momentum=0.0", "rule.weight_decay=0.001"])
    model.set_lr_scale(0.5)
    steps = [op for phase in model.compiled("train").phases for op in phase.ops if isinstance(op, SgdStep)]
    assert not steps  # plain SGD fuses the update into its GEMM: W = (1 − lr·wd)·W − lr·a.T @ b
    update = next(p for p in model.compiled("train").phases if p.name == "update")
    alphas = {op.out: (op.alpha, op.beta) for op in update.ops if hasattr(op, "alpha")}
    alpha, beta = alphas["x->h1.weight"]
    assert alpha == pytest.approx(-0.025) and beta == pytest.approx(1 - 0.025 * 0.001)
    assert model.compiled("probe").lrs["x->h1"] == 0.05
    momentum = circuits.load(BP, SMALL)
    momentum.set_lr_scale(0.25)
    lrs = {op.param: op.lr for p in momentum.compiled("train").phases for op in p.ops if isinstance(op, SgdStep)}
    assert lrs["x->h1.weight"] == 0.05 * 0.25


def test_a_step_schedule_trains_like_models_set_to_each_epochs_rate_by_hand():
    """Epochs 1, 2, 3 at lr 0.05, 0.025, 0.0125 (milestones 1, 2, γ 0.5), one batch each: the
    weights equal those of plain-SGD models whose spec lr is set to each epoch's rate."""
    one_batch = ["task.n_train=16", "task.n_test=20", "task.batch_size=16", "rule.momentum=0.0", "task.epochs=3"]
    model = circuits.load(BP, [*one_batch, *STEP])
    data = load_data(model)
    records = list(fit(model, data))
    assert len(records) == 3 and model.lr_scale == 0.25
    order = batch_rng(model.spec)  # the same batch order (a batch's row order sets the GEMM's rounding)
    weights = None
    for rate in (0.05, 0.025, 0.0125):
        reference = circuits.load(BP, [*one_batch, f"rule.lr={rate}"])
        if weights is not None:
            reference.set_params(weights)
        rows = next(iter(iterate_batches(data.n_train, 16, order)))
        reference.step(data.x_train[rows].astype(np.float32), data.y_train[rows])
        weights = {k: np.array(v) for k, v in reference.params.items()}
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)


def test_rebinding_keeps_the_dropout_stream_and_rebuilds_only_the_updates():
    model = circuits.load(BP, [*SMALL, "populations.h1.dropout=0.5"])
    x = np.zeros((16, 64), dtype=np.float32)
    model.step(x, np.zeros(16, dtype=np.int64))
    exe = model.sim.executable(model.compiled("train"), 16)
    before = {(phase.name, index): step for phase, steps in exe.phases for index, step in enumerate(steps)}
    streams = dict(model.backend.streams)
    model.set_lr_scale(0.1)
    after = model.sim.executable(model.compiled("train"), 16)
    assert after is exe
    kept = {key for phase, steps in exe.phases for key, step in
            (((phase.name, i), s) for i, s in enumerate(steps)) if before[key] is step}
    assert {name for name, _ in kept} >= {"forward"}
    assert all(name == "update" for name, _ in set(before) - kept) and set(before) - kept
    assert model.backend.streams == streams  # no generator handed out again


def _interrupt_after(epoch: int):
    def on_epoch(record):
        if record.epoch == epoch:
            raise KeyboardInterrupt
    return on_epoch


def _same_params(a: Path, b: Path) -> None:
    rows_a, rows_b = read_metrics(a / "metrics.csv"), read_metrics(b / "metrics.csv")
    assert [r["test_loss"] for r in rows_a] == [r["test_loss"] for r in rows_b]
    with np.load(a / "params.npz") as pa, np.load(b / "params.npz") as pb:
        for name in pa.files:
            np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


@pytest.mark.parametrize("schedule", [STEP, COSINE], ids=["step", "cosine"])
def test_a_resumed_scheduled_run_equals_an_uninterrupted_one(schedule, tmp_path):
    """Momentum, dropout and a schedule: stopped after epoch 2 of 4, resumed: bit for bit."""
    overrides = [*SMALL, "populations.h1.dropout=0.2", "task.epochs=4", *schedule]
    reference = execute_run(load_spec(BP, overrides), tmp_path / "ref")
    assert reference.status == "completed"
    stopped = execute_run(load_spec(BP, overrides), tmp_path / "run", on_epoch=_interrupt_after(2))
    assert stopped.status == "interrupted" and stopped.epochs == 2
    resumed = execute_run(load_spec(BP, overrides), tmp_path / "run", resume=True)
    assert resumed.status == "completed" and resumed.epochs == 4
    _same_params(tmp_path / "run", tmp_path / "ref")
    constant = execute_run(load_spec(BP, [*SMALL, "populations.h1.dropout=0.2", "task.epochs=4"]), tmp_path / "c")
    with np.load(tmp_path / "ref" / "params.npz") as a, np.load(tmp_path / "c" / "params.npz") as b:
        assert not np.array_equal(a["x->h1"], b["x->h1"])  # the schedule changed the training
    assert constant.status == "completed"


def test_extending_a_cosine_run_keeps_its_horizon(tmp_path):
    """A cosine run planned for 2 epochs, extended to 4 by resume: lr_epochs stays 2 (saved in
    spec.toml), so epochs 3 and 4 train at the floor, as a 4-epoch run with lr_epochs = 2 does;
    a run planned for 4 epochs from the start follows a 4-epoch cosine instead."""
    out = tmp_path / "run"
    execute_run(load_spec(BP, [*SMALL, "task.epochs=2", *COSINE]), out)
    assert "lr_epochs = 2" in (out / "spec.toml").read_text()
    result = CliRunner().invoke(main, ["resume", str(out), "--epochs", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    execute_run(load_spec(BP, [*SMALL, "task.epochs=4", *COSINE, "rule.lr_epochs=2"]), tmp_path / "ref")
    _same_params(out, tmp_path / "ref")
    planned = load_spec(BP, [*SMALL, "task.epochs=4", *COSINE])
    assert planned.rule.params["lr_epochs"] == 4


def test_spec_keys_round_trip_and_stay_out_of_a_plain_spec():
    spec = load_spec(BP, [*SMALL, *STEP])
    assert spec.rule.params["lr_milestones"] == (1, 2)
    text = dump_spec(spec)
    assert "lr_milestones = [1, 2]" in text and "lr_epochs" not in text
    assert parse_spec(text, source="again.toml", rules=RULES) == spec
    plain = load_spec(BP)
    assert "lr_" not in dump_spec(plain)  # a run without a schedule keeps its identity
    assert run_id(plain) == run_id(parse_spec(dump_spec(plain), rules=RULES))
    assert load_spec(BP, ["task.epochs=7", "rule.lr_schedule=cosine"]).rule.params["lr_epochs"] == 7


@pytest.mark.parametrize("overrides, message", [
    (["rule.lr_milestones=[8, 11]"],
     "toml: rule.lr_milestones: is a key of lr_schedule = \"step\" but the schedule is \"constant\"; "
     "set rule.lr_schedule = \"step\" or remove rule.lr_milestones"),
    (["rule.lr_schedule=step"],
     "toml: rule.lr_milestones: a step schedule needs at least one epoch after which the rates fall, "
     "e.g. lr_milestones = [8, 11]"),
    (["rule.lr_schedule=step", "rule.lr_milestones=[8, 3]"],
     "toml: rule.lr_milestones: must list epochs in increasing order, each once (got [8, 3])"),
    (["rule.lr_schedule=step", "rule.lr_milestones=[0]"],
     "toml: rule.lr_milestones: must be an array of integers >= 1, e.g. [8, 11] (got 0 in the array)"),
    (["rule.lr_schedule=step", "rule.lr_milestones=8"],
     "toml: rule.lr_milestones: must be an array of integers >= 1, e.g. [8, 11] (got 8)"),
    (["rule.lr_schedule=cosine", "rule.lr_gamma=0.5"],
     "toml: rule.lr_gamma: is a key of lr_schedule = \"step\" but the schedule is \"cosine\"; "
     "set rule.lr_schedule = \"step\" or remove rule.lr_gamma"),
    (["rule.lr_schedule=cosine", "rule.lr_floor=1.5"],
     "toml: rule.lr_floor: must be a number in [0, 1] (got 1.5)"),
    (["rule.lr_schedule=\"cosin\""],
     "toml: rule.lr_schedule: must be one of constant, step, cosine (got 'cosin'; did you mean 'cosine'?)"),
])
def test_bad_schedule_keys_are_one_line_errors(overrides, message):
    with pytest.raises(SpecError) as error:
        load_spec(BP, overrides)
    text = str(error.value)
    assert "\n" not in text and text.endswith(message), text


def test_compile_shows_each_epochs_rate():
    result = CliRunner().invoke(main, ["compile", str(BP), "--set", "task.epochs=12", "--set",
                                       "rule.lr_schedule=step", "--set", "rule.lr_milestones=[8, 11]"])
    assert result.exit_code == 0, result.output
    assert ("learning-rate schedule: step, × 0.1 after epochs 8, 11 (every rate × the factor of its epoch); "
            "rule.lr by epoch: 1–8: 0.05, 9–11: 0.005, 12: 0.0005") in result.output
    plain = CliRunner().invoke(main, ["compile", str(BP)])
    assert "learning-rate schedule" not in plain.output
    assert describe_schedule({"lr_schedule": "constant"}, 5) is None
