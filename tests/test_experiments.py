"""The experiment layer: validation split, experiment files, sweeps on Dask, reports."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

import circuits
from circuits.cli import main
from circuits.data import load_dataset
from circuits.errors import DataError, SpecError
from circuits.experiments import (ExperimentError, load_experiment, make_report, mean_ci,
                                  parse_experiment, plan_runs, run_experiment, run_sweep,
                                  with_overrides)
from circuits.experiments.plan import RunPlan
from circuits.experiments.tables import result_rows, write_csv, write_manifest
from circuits.runs import execute_run, resolve_run_spec, run_id

# ---------------------------------------------------------------------------------------------
# Validation split (task.validation)


def test_validation_is_the_end_of_the_kept_training_split() -> None:
    whole = load_dataset("digits", seed=0, n_train=100, normalize="none")
    split = load_dataset("digits", seed=0, n_train=100, normalize="none", validation=0.2)
    assert (split.n_train, split.n_validation, split.n_test) == (80, 20, whole.n_test)
    np.testing.assert_array_equal(split.x_validation, whole.x_train[80:])
    np.testing.assert_array_equal(split.y_validation, whole.y_train[80:])
    assert load_dataset("digits", seed=0).n_validation == 0


def test_validation_is_normalized_with_training_statistics_only() -> None:
    raw = load_dataset("digits", seed=0, n_train=100, normalize="none", validation=0.5)
    std = load_dataset("digits", seed=0, n_train=100, validation=0.5)
    mean = raw.x_train.mean(axis=0)
    np.testing.assert_allclose(std.x_train.mean(axis=0), 0.0, atol=1e-12)
    kept = raw.x_train.std(axis=0) > 0.5
    expected = (raw.x_validation - mean)[:, kept] / raw.x_train.std(axis=0)[kept]
    np.testing.assert_allclose(std.x_validation[:, kept], expected, rtol=1e-12)


def test_validation_too_large_for_the_split_is_a_data_error() -> None:
    with pytest.raises(DataError, match="validation=0.2 of 2 training examples leaves 0 for validation"):
        load_dataset("digits", seed=0, n_train=2, validation=0.2)


def test_validation_out_of_range_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"task.validation: must be a number in \[0, 0.5\] \(got 0.7\)"):
        circuits.load_spec("specs/fa_digits.toml", {"task.validation": 0.7})


def test_fit_records_validation_metrics_only_with_a_split() -> None:
    small = {"task.epochs": 1, "task.n_train": 200, "run.align_every": 0}
    for fraction, present in ((0.0, False), (0.25, True)):
        model = circuits.load("specs/bp_digits.toml", {**small, "task.validation": fraction})
        data = circuits.load_data(model)
        (record,) = list(circuits.fit(model, data))
        assert math.isnan(record.validation_loss) != present
        if present:
            x = data.x_validation.astype(np.float32)
            assert (record.validation_loss, record.validation_accuracy) == model.evaluate(x, data.y_validation)


# ---------------------------------------------------------------------------------------------
# Experiment files and their expansion (no Dask needed)

REPO = Path(__file__).resolve().parent.parent
SMALL = {"task.validation": 0.1, "task.epochs": 3, "task.n_train": 300, "task.n_test": 200,
         "run.align_every": 10}


def experiment_text(spec: Path, *, seeds: str = "[0, 1]", grid: str = "", extra: str = "",
                    variants: str | None = None) -> str:
    common = ", ".join(f'"{k}" = {v}' for k, v in SMALL.items())
    if variants is None:
        variants = ('[[variants]]\nname = "backprop"\nset = { "rule.name" = "backprop" }\n'
                    '[[variants]]\nname = "feedback_alignment"\nset = { "rule.name" = "feedback_alignment" }\n')
    return (f'[experiment]\nname = "fa-vs-bp"\nspec = "{spec}"\nseeds = {seeds}\n'
            f"set = {{ {common} }}\n{extra}\n{variants}{grid}")


@pytest.fixture
def small_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "fa_digits.toml"))
    return path


def test_spec_path_is_relative_to_the_experiment_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.toml").write_text((REPO / "specs" / "fa_digits.toml").read_text())
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(Path("sub/base.toml")))
    assert load_experiment(path).spec == (tmp_path / "sub" / "base.toml").resolve()


def test_the_design_expands_to_variants_times_grid_times_seeds(small_experiment: Path) -> None:
    text = small_experiment.read_text() + '[grid]\n"rule.lr" = [0.01, 0.05, 0.1]\n'
    small_experiment.write_text(text)
    plans = plan_runs(load_experiment(small_experiment))
    assert len(plans) == 2 * 3 * 2 == len({p.run_id for p in plans})
    assert [(p.variant, p.point["rule.lr"], p.seed) for p in plans[:3]] == [
        ("backprop", 0.01, 0), ("backprop", 0.01, 1), ("backprop", 0.05, 0)]
    plan = plans[-1]
    assert (plan.spec.rule.name, plan.spec.rule.params["lr"], plan.spec.run.seed) == ("feedback_alignment", 0.1, 1)
    assert plan.spec.task.validation == 0.1 and plan.spec.run.threads == 1


def test_the_run_id_is_that_of_the_same_spec_given_to_simulate(small_experiment: Path) -> None:
    plan = plan_runs(load_experiment(small_experiment))[1]
    registry = circuits.default_registry()
    spec = circuits.load_spec(REPO / "specs" / "fa_digits.toml", plan.set_args())
    assert plan.run_id == run_id(resolve_run_spec(spec, threads=1, registry=registry))


BAD_EXPERIMENTS = [
    (("seeds = [0, 1]", 'seeds = [0, 1]\nselect = "test_accuracy"'),
     "experiment.select: must be one of validation_accuracy, validation_loss (got 'test_accuracy'"),
    (("seeds = [0, 1]", "seedz = [0, 1]"),
     "experiment.seedz: unknown key; allowed keys are name, spec, seeds, select, set, doc; "
     "did you mean 'seeds'?"),
    (('"rule.name" = "backprop"', '"rule.name" = "backprop", "rule.lrr" = 0.1'),
     "variant 'backprop': "),
    (('"rule.name" = "backprop"', '"run.seed" = 3'), "run.seed is set by experiment.seeds"),
    (('"rule.name" = "backprop"', '"rule.name" = "backprob"'), "(got 'backprob'; did you mean 'backprop'?)"),
    (('set = { "rule.name" = "backprop" }', 'set = { "rule.name" = "backprop" }\npublished = 2.4'),
     "variants[0].published: must be a string, the paper's number with its source"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_EXPERIMENTS,
                         ids=["select", "key", "override", "seed", "rule", "published"])
def test_a_bad_experiment_is_one_line_and_exit_2(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(experiment_text(REPO / "specs" / "fa_digits.toml").replace(*edit))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_variant_may_carry_the_published_number() -> None:
    text = experiment_text(REPO / "specs" / "fa_digits.toml").replace(
        'set = { "rule.name" = "backprop" }',
        'set = { "rule.name" = "backprop" }\npublished = "2.4 % test error, mean of 20 runs (Lillicrap et al. 2016)"')
    experiment = parse_experiment(text, source="exp.toml")
    assert [v.published for v in experiment.variants] == [
        "2.4 % test error, mean of 20 runs (Lillicrap et al. 2016)", ""]
    assert plan_runs(experiment) == plan_runs(parse_experiment(experiment_text(REPO / "specs" / "fa_digits.toml")))


def test_an_unknown_override_names_the_variant_and_the_key(tmp_path: Path) -> None:
    text = experiment_text(REPO / "specs" / "fa_digits.toml").replace(
        'set = { "rule.name" = "backprop" }', 'set = { "rule.name" = "backprop", "rule.lrr" = 0.1 }')
    with pytest.raises(ExperimentError, match=r"variant 'backprop': .*rule.lrr.*did you mean 'lr'"):
        plan_runs(parse_experiment(text, source="exp.toml"))


def test_a_grid_needs_a_validation_split_to_choose_on(tmp_path: Path) -> None:
    text = experiment_text(REPO / "specs" / "fa_digits.toml", grid='[grid]\n"rule.lr" = [0.01, 0.05]\n')
    with pytest.raises(ExperimentError, match='task.validation is 0; add "task.validation" = 0.1 to experiment.set'):
        plan_runs(parse_experiment(text.replace('"task.validation" = 0.1', '"task.validation" = 0.0'),
                                   source="exp.toml"))


def test_dry_run_lists_every_run_and_writes_nothing(small_experiment: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(small_experiment), "--dry-run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("4 runs (4 distinct), 0 finished, 4 to run")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda p: p.stem)
def test_every_experiment_file_plans_offline(path: Path) -> None:
    plans = plan_runs(load_experiment(path))
    assert plans and len({p.run_id for p in plans}) == len(plans)


def test_set_adds_to_the_experiment_and_may_not_touch_the_grid() -> None:
    experiment = load_experiment(REPO / "experiments" / "fa_vs_bp_digits.toml")
    short = with_overrides(experiment, ["task.epochs=2"])
    assert {p.spec.task.epochs for p in plan_runs(short)} == {2}
    with pytest.raises(ExperimentError, match="--set rule.lr: the grid varies this key"):
        with_overrides(experiment, {"rule.lr": 0.1})


def test_without_dask_sweep_says_how_to_install(small_experiment: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    result = CliRunner().invoke(main, ["sweep", str(small_experiment), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr == ('error: this needs distributed, which is not installed; install the '
                             'sweep extra: pip install "circuits[sweep]"\n')


def test_mean_ci_uses_students_t() -> None:
    mean, sd, half = mean_ci([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert half == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)  # t(0.975, 2)
    assert mean_ci([5.0])[0] == 5.0 and math.isnan(mean_ci([5.0])[2])


# ---------------------------------------------------------------------------------------------
# Sweeps on a 2-worker LocalCluster (need the sweep extra)


@pytest.fixture(scope="module")
def executor():
    pytest.importorskip("distributed")
    pytest.importorskip("pandas")
    from circuits.experiments.executors import DaskExecutor

    with DaskExecutor(workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def swept(executor, tmp_path_factory):
    """experiments/fa_vs_bp_digits.toml cut to 2 variants × 2 seeds, 3 short epochs, run once."""
    experiment = with_overrides(load_experiment(REPO / "experiments" / "fa_vs_bp_digits.toml"), SMALL)
    experiment = attrs.evolve(experiment, seeds=(0, 1), grid=())
    outcome = run_sweep(experiment, tmp_path_factory.mktemp("sweep") / "out", executor=executor)
    return experiment, outcome


def test_a_sweep_runs_every_run_once_and_writes_the_tables(swept) -> None:
    import pandas

    _, outcome = swept
    assert (outcome.ran, outcome.skipped, outcome.count("completed")) == (4, 0, 4)
    results = pandas.read_csv(outcome.out / "results.csv")
    assert list(results.columns[:3]) == ["variant", "seed", "run_id"]
    assert sorted(zip(results["variant"], results["seed"])) == [
        ("backprop", 0), ("backprop", 1), ("feedback_alignment", 0), ("feedback_alignment", 1)]
    assert set(results["status"]) == {"completed"} and set(results["epochs"]) == {3}
    assert results["final_test_accuracy"].between(0.5, 1.0).all()
    assert results["best_validation_accuracy"].notna().all()
    curves = pandas.read_csv(outcome.out / "curves.csv")
    assert len(curves) == 4 * 3 and set(curves["epoch"]) == {1, 2, 3}
    for _, row in results.iterrows():
        summary = json.loads((outcome.out / row["folder"] / "summary.json").read_text())
        assert summary["final"]["test_accuracy"] == row["final_test_accuracy"]
        assert summary["run_id"] == row["run_id"]


def test_a_second_sweep_runs_nothing(swept, executor) -> None:
    experiment, first = swept
    stamps = {p: p.stat().st_mtime_ns for p in first.out.glob("runs/*/summary.json")}
    again = run_sweep(experiment, first.out, executor=executor)
    assert (again.ran, again.skipped, again.count("completed")) == (0, 4, 4)
    assert {p: p.stat().st_mtime_ns for p in first.out.glob("runs/*/summary.json")} == stamps


def test_each_run_equals_the_same_spec_run_alone_with_simulate(swept, tmp_path: Path) -> None:
    _, outcome = swept
    plan = next(p for p in outcome.plans if p.variant == "feedback_alignment" and p.seed == 1)
    alone = tmp_path / "alone"
    args = ["simulate", str(REPO / "specs" / "fa_digits.toml"), "--out", str(alone), "--quiet", "--threads", "1"]
    for item in plan.set_args():
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    swept_folder = plan.folder(outcome.out)
    assert (alone / "spec.toml").read_text() == (swept_folder / "spec.toml").read_text()
    ours, theirs = (load_csv_numbers(f / "metrics.csv") for f in (swept_folder, alone))
    assert ours == theirs
    with np.load(swept_folder / "params.npz") as a, np.load(alone / "params.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].tobytes() == b[name].tobytes(), name


def load_csv_numbers(path: Path) -> list[dict[str, str]]:
    """metrics.csv rows as exact text, without the timing column."""
    import csv

    with path.open() as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_a_run_that_fails_is_recorded_and_the_sweep_goes_on(executor, tmp_path: Path) -> None:
    import pandas

    variants = ('[[variants]]\nname = "diverges"\nset = { "rule.name" = "backprop", "rule.lr" = 1e30 }\n'
                '[[variants]]\nname = "fine"\nset = { "rule.name" = "backprop" }\n')
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "bp_digits.toml", seeds="[0]", variants=variants))
    outcome = run_sweep(path, tmp_path / "out", executor=executor)
    results = pandas.read_csv(outcome.out / "results.csv").set_index("variant")
    assert results.loc["diverges", "status"] == "failed"
    assert "loss became nan" in results.loc["diverges", "message"]
    assert results.loc["fine", "status"] == "completed"
    again = run_sweep(path, tmp_path / "out", executor=executor)
    assert again.ran == 0


def test_killing_a_worker_mid_sweep_still_gives_every_run_once(executor, tmp_path: Path) -> None:
    import pandas

    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "fa_digits.toml", seeds="[0, 1, 2]")
                    .replace('"task.epochs" = 3', '"task.epochs" = 40')
                    .replace('"task.n_train" = 300', '"task.n_train" = 1000'))
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if any(out.glob("runs/*/checkpoint.npz")):
                pids = executor.worker_pids()
                for address, keys in executor.client.processing().items():
                    if keys and address in pids:
                        os.kill(pids[address], signal.SIGKILL)
                        killed.append(pids[address])
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        outcome = run_sweep(path, out, executor=executor)
    finally:
        killer.join()
    assert killed, "no worker was busy to kill"
    results = pandas.read_csv(out / "results.csv")
    assert len(results) == 6 and results["run_id"].is_unique
    assert set(results["status"]) == {"completed"} and set(results["epochs"]) == {40}
    for folder in results["folder"]:
        epochs = [row["epoch"] for row in load_csv_numbers(out / folder / "metrics.csv")]
        assert epochs == [str(e) for e in range(1, 41)]
    assert outcome.count("completed") == 6


def test_report_selects_on_validation_and_writes_its_files(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    out = tmp_path / "sweep"
    out.mkdir()
    rows = []
    # lr 0.1 wins on validation for "a" although 0.01 has the better test accuracy
    for variant, lr, seed, val, test in [("a", 0.01, 0, 0.80, 0.99), ("a", 0.01, 1, 0.82, 0.99),
                                         ("a", 0.1, 0, 0.90, 0.90), ("a", 0.1, 1, 0.92, 0.94),
                                         ("b", 0.01, 0, 0.70, 0.70), ("b", 0.1, 0, 0.0, 0.0)]:
        status = "failed" if (variant, lr) == ("b", 0.1) else "completed"
        rows.append({"variant": variant, "seed": seed, "rule.lr": lr, "run_id": f"{variant}{lr}{seed}",
                     "status": status, "epochs": 2, "final_test_accuracy": test, "final_test_loss": 1 - test,
                     "final_validation_accuracy": val if status == "completed" else "", "wall_seconds": 1.0})
    write_csv(out / "results.csv", rows)
    write_manifest(out, {"name": "demo", "select": "validation_accuracy", "grid": {"rule.lr": [0.01, 0.1]},
                         "spec": "x.toml", "seeds": [0, 1]})
    report = make_report(out, figures=False)
    chosen = {v.variant: v for v in report.variants}
    assert chosen["a"].point == {"rule.lr": "0.1"} and chosen["a"].seeds == 2
    assert chosen["a"].test_accuracy[0] == pytest.approx(0.92)
    assert chosen["a"].test_accuracy[2] == pytest.approx(12.706204736174705 * np.std([0.90, 0.94], ddof=1) / math.sqrt(2))
    assert chosen["b"].point == {"rule.lr": "0.01"} and chosen["b"].failed == 0
    text = (out / "report.md").read_text()
    assert "| a | rule.lr=0.1 | 2 | 92.00 ± 25.41 |" in text
    assert (out / "report.csv").read_text().splitlines()[0].startswith("variant,rule.lr,selected_validation_accuracy")


def fake_sweep(out: Path, manifest_extra: dict | None = None) -> Path:
    """A sweep folder with results.csv and experiment.json only: variants a and b, 2 seeds each."""
    out.mkdir()
    rows = [{"variant": v, "seed": seed, "run_id": f"{v}{seed}", "status": "completed", "epochs": 2,
             "final_test_accuracy": acc, "final_test_loss": 1 - acc, "final_validation_accuracy": acc,
             "wall_seconds": 1.0}
            for v, seed, acc in [("a", 0, 0.90), ("a", 1, 0.94), ("b", 0, 0.80), ("b", 1, 0.80)]]
    write_csv(out / "results.csv", rows)
    write_manifest(out, {"name": "demo", "select": "validation_accuracy", "grid": {}, "spec": "x.toml",
                         "seeds": [0, 1], **(manifest_extra or {})})
    return out


def test_report_shows_the_published_number_and_mean_sd(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    out = fake_sweep(tmp_path / "sweep", {"published": {"a": "7.5 % error (Someone 2020, Table 1)"}})
    report = make_report(out, figures=False)
    assert [v.published for v in report.variants] == ["7.5 % error (Someone 2020, Table 1)", ""]
    text = (out / "report.md").read_text()
    # mean ± 95 % CI, then mean ± sd (sd of 90 and 94 is 2.83), then the published text
    assert "| a | 2 | 92.00 ± 25.41 | 92.00 ± 2.83 | 7.5 % error (Someone 2020, Table 1) |" in text
    assert "| b | 2 | 80.00 ± 0.00 | 80.00 ± 0.00 | — |" in text
    rows = load_csv_numbers(out / "report.csv")
    assert [r["published"] for r in rows] == ["7.5 % error (Someone 2020, Table 1)", ""]
    assert list(rows[0]).index("published") == list(rows[0]).index("test_accuracy_ci95") + 1


def test_report_of_a_folder_swept_before_published_existed(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    out = fake_sweep(tmp_path / "old")  # experiment.json without "published"
    result = CliRunner().invoke(main, ["report", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert [r["published"] for r in load_csv_numbers(out / "report.csv")] == ["", ""]
    given = make_report(out, figures=False, published={"b": "80 %"})
    assert [v.published for v in given.variants] == ["", "80 %"]


def test_a_sweep_records_the_published_numbers_in_its_folder(tmp_path: Path) -> None:
    from circuits.experiments.sweep import _manifest

    text = experiment_text(REPO / "specs" / "fa_digits.toml").replace(
        'set = { "rule.name" = "feedback_alignment" }',
        'set = { "rule.name" = "feedback_alignment" }\npublished = "x"')
    experiment = parse_experiment(text, source="exp.toml")
    manifest = _manifest(experiment, plan_runs(experiment), tmp_path)
    assert manifest["published"] == {"feedback_alignment": "x"}


def test_report_of_a_sweep_draws_curves_and_alignment(swept) -> None:
    _, outcome = swept
    result = CliRunner().invoke(main, ["report", str(outcome.out)])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.csv", "curves.png", "alignment.png"):
        assert (outcome.out / name).stat().st_size > 0, name
    assert "feedback_alignment" in result.stdout


def test_compare_runs_each_rule_with_n_seeds(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    pytest.importorskip("pandas")
    out = tmp_path / "cmp"
    args = ["compare", str(REPO / "specs" / "fa_digits.toml"), "--rules", "backprop,feedback_alignment",
            "--seeds", "2", "--workers", "1", "--quiet", "--out", str(out),
            "--set", "task.epochs=1", "--set", "task.n_train=100", "--set", "run.align_every=0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    results = load_csv_numbers(out / "results.csv")
    assert sorted((r["variant"], r["seed"]) for r in results) == [
        ("backprop", "0"), ("backprop", "1"), ("feedback_alignment", "0"), ("feedback_alignment", "1")]
    assert (out / "report.md").is_file()


def test_python_api_returns_a_dataframe(swept) -> None:
    pandas = pytest.importorskip("pandas")
    experiment, outcome = swept
    frame = run_experiment(experiment, outcome.out)  # everything is finished: runs nothing
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 4


def test_results_rows_say_what_happened_to_runs_without_a_final_summary(tmp_path: Path) -> None:
    plans = [RunPlan(variant="v", seed=s, point={}, overrides={}, spec=None, run_id=f"r{s}") for s in range(4)]
    for plan, status in zip(plans[:3], ("running", "running", "completed")):
        plan.folder(tmp_path).mkdir(parents=True)
        (plan.folder(tmp_path) / "summary.json").write_text(json.dumps({"status": status, "epochs": 2}))
    reported = {"r0": ("failed", "KilledWorker: worker died 3 times"), "r2": ("completed", "")}
    rows = result_rows(plans, tmp_path, (), reported)
    assert [(r["status"], r["message"]) for r in rows] == [
        ("failed", "KilledWorker: worker died 3 times"), ("interrupted", ""), ("completed", ""), ("pending", "")]


def test_scheduler_sends_the_runs_to_an_existing_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("pandas")
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "fa_digits.toml", seeds="[0]")
                    .replace('"task.epochs" = 3', '"task.epochs" = 1'))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        outcome = run_sweep(path, tmp_path / "out", scheduler=cluster.scheduler_address)
        assert (outcome.ran, outcome.count("completed")) == (2, 2)
        assert "run" in cluster.scheduler.task_prefixes  # the runs went through this scheduler


def test_a_second_sweep_resumes_an_interrupted_run(executor, tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "fa_digits.toml", seeds="[0]"))
    out = tmp_path / "out"
    plan = plan_runs(load_experiment(path))[0]

    def stop_after_one_epoch(record) -> None:
        raise KeyboardInterrupt

    stopped = execute_run(plan.spec, plan.folder(out), threads=1, on_epoch=stop_after_one_epoch)
    assert (stopped.status, stopped.epochs) == ("interrupted", 1)
    first_epoch = (plan.folder(out) / "metrics.csv").read_text().splitlines()[1]
    outcome = run_sweep(path, out, executor=executor)
    assert (outcome.ran, outcome.count("completed")) == (2, 2)
    lines = (plan.folder(out) / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 and lines[1] == first_epoch  # epoch 1 kept (its seconds too): resumed


def test_sweep_command_shows_progress_and_failures(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    pytest.importorskip("pandas")
    variants = ('[[variants]]\nname = "diverges"\nset = { "rule.name" = "backprop", "rule.lr" = 1e30 }\n'
                '[[variants]]\nname = "fine"\nset = { "rule.name" = "backprop" }\n')
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text(REPO / "specs" / "bp_digits.toml", seeds="[0]", variants=variants)
                    .replace('"task.epochs" = 3', '"task.epochs" = 1'))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "2 runs: 0 already finished, 2 to run on 1 worker thread" in result.stderr
    assert ": failed: loss became nan at epoch 1" in result.stderr
    assert "1 completed, 1 failed" in result.stdout
    assert "warning: 1 run(s) failed; their errors are in" in result.stderr


# ---------------------------------------------------------------------------------------------
# tools/make_experiment_results.py: sweep reports into gallery/results.md and gallery/experiments/


def experiment_results_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_experiment_results",
                                                  REPO / "tools" / "make_experiment_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS_PAGE = "# Results\n\nIntro.\n\n| spec | x |\n|---|---|\n| a | 1 |\n"


def test_experiment_results_fill_their_section_and_the_gallery(swept, tmp_path: Path) -> None:
    tool = experiment_results_tool()
    _, outcome = swept
    page, gallery = tmp_path / "results.md", tmp_path / "gallery" / "experiments"
    page.write_text(RESULTS_PAGE + "\n## Paper experiments\n\nold rows\n\n## Later\n\nkept\n")
    assert tool.main([str(outcome.out), "--results", str(page), "--gallery", str(gallery)]) == 0
    text = page.read_text()
    assert text.startswith(RESULTS_PAGE + "\n## Paper experiments\n") and text.endswith("|\n\n## Later\n\nkept\n")
    assert "old rows" not in text
    results = load_csv_numbers(outcome.out / "results.csv")
    for variant in ("backprop", "feedback_alignment"):
        accuracy = [float(r["final_test_accuracy"]) for r in results if r["variant"] == variant]
        mean, sd = 100 * np.mean(accuracy), 100 * np.std(accuracy, ddof=1)
        row = next(line for line in text.splitlines() if f"| {variant} |" in line)
        cells = [c.strip() for c in row.split(" | ")]
        assert cells[2:7] == ["—", "2", "3", f"{mean:.2f} ± {sd:.2f}", f"{100 - mean:.2f} ± {sd:.2f}"], row
    assert (f"`circuits sweep {REPO / 'experiments' / 'fa_vs_bp_digits.toml'} --out {outcome.out} "
            "--set task.epochs=3 --set run.align_every=10 --set task.n_train=300 --set task.n_test=200`<br>"
            f"`circuits report {outcome.out}`") in text
    assert "[fa-vs-bp-digits](gallery/experiments/fa-vs-bp-digits/report.md)" in text
    for name in ("report.md", "report.csv", "results.csv", "curves.png", "alignment.png"):
        assert (gallery / "fa-vs-bp-digits" / name).read_bytes() == (outcome.out / name).read_bytes(), name
    assert tool.main([str(outcome.out), "--results", str(page), "--gallery", str(gallery), "--no-figures"]) == 0
    assert page.read_text() == text  # replaced, not appended again


def test_experiment_results_read_published_from_the_file_of_an_old_sweep(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("pandas")
    tool = experiment_results_tool()
    source = tmp_path / "exp.toml"
    source.write_text(experiment_text(REPO / "specs" / "fa_digits.toml", variants=(
        '[[variants]]\nname = "a"\nset = { "rule.name" = "backprop" }\npublished = "1.0 % error (P. 2001)"\n')))
    out = fake_sweep(tmp_path / "old", {"source": str(source), "out": "sweeps/old",
                                        "set": {**SMALL, "task.epochs": 7}})
    page = tmp_path / "results.md"
    page.write_text(RESULTS_PAGE)
    args = [str(out), "--results", str(page), "--gallery", str(tmp_path / "g"), "--no-figures"]
    assert tool.main(args) == 0
    text = page.read_text()
    assert text.startswith(RESULTS_PAGE + "\n## Paper experiments\n")
    assert ("| [demo](g/demo/report.md) | a | — | 2 | 2 | 92.00 ± 2.83 | 8.00 ± 2.83 | 1.0 % error (P. 2001) |"
            in text)
    assert f"`circuits sweep {source} --out sweeps/old --set task.epochs=7`" in text
    assert tool.main([*args, "--command", "circuits sweep x.toml --out y"]) == 0
    # the report command names the folder the given sweep command writes
    assert "`circuits sweep x.toml --out y`<br>`circuits report y`" in page.read_text()
    assert tool.main([*args, "--command", "a", "--command", "b"]) == 2
    assert capsys.readouterr().err == ("error: --command: given 2 times for 1 sweep folders; give one per "
                                       "folder, in the same order, or none\n")


def test_make_results_keeps_the_paper_experiments_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_results", REPO / "tools" / "make_results.py")
    make_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_results)
    monkeypatch.setattr(make_results, "GALLERY", tmp_path)
    section = "## Paper experiments\n\n| experiment |\n|---|\n| x |\n"
    (tmp_path / "results.md").write_text("# Results\n\nold table\n\n" + section)
    make_results.write_table([])
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("# Results\n\nMeasured by") and text.endswith("|---|\n\n" + section)
    assert "old table" not in text
