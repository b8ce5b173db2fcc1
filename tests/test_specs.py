"""Every spec in specs/ is valid, simulates (briefly) through the CLI, and passes its claims."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from circuits.cli import main
from circuits.claims import verify
from circuits.model import load
from circuits.results import read_metrics

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.toml"))
IDX_DATASETS = ("mnist", "fashion-mnist")


def _spec_param(path: Path) -> object:
    """``path`` as a test parameter with the id ``<spec>-<rule>`` (so ``pytest -k <rule>`` selects
    it), marked ``needs_data`` when its data set is read from files."""
    raw = tomllib.loads(path.read_text())
    dataset = raw.get("task", {}).get("dataset", "digits")
    marks = [pytest.mark.needs_data(dataset)] if dataset in IDX_DATASETS else []
    return pytest.param(path, id=f"{path.stem}-{raw['rule']['name']}", marks=marks)


SPEC_PARAMS = [_spec_param(path) for path in SPECS]


def test_there_are_specs():
    assert len(SPECS) >= 8


def test_every_rule_is_selectable_by_name(registry):
    """``pytest -k <rule>`` selects the spec tests of every registered rule: each rule name is
    in the id of some spec parameter (and so every rule ships a spec)."""
    ids = [param.id for param in SPEC_PARAMS]
    missing = [name for name in registry.signatures() if not any(i.endswith(f"-{name}") for i in ids)]
    assert not missing, f"no spec test id names these rules: {missing}"


def test_check_passes_on_every_spec():
    result = CliRunner().invoke(main, ["check", *map(str, SPECS)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok: ") == len(SPECS)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_simulate_briefly(spec, tmp_path):
    out = tmp_path / "run"
    args = ["simulate", str(spec), "--quiet", "--out", str(out), "--set", "task.epochs=2",
            "--set", "task.n_train=256", "--set", "task.n_test=128"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"spec.toml", "schedule.txt", "metrics.csv", "summary.json",
                                             "params.npz", "curves.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    for key in ("rule", "final", "wall_seconds", "examples_per_second"):
        assert key in summary
    rows = read_metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    with np.load(out / "params.npz") as params:
        assert set(params.files) == set(load(out / "spec.toml").params)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_resolved_spec_repeats_the_run_exactly(spec, tmp_path):
    """The saved spec.toml of a run reproduces it bit for bit."""
    first, second = tmp_path / "a", tmp_path / "b"
    common = ["--quiet", "--set", "task.epochs=1", "--set", "task.n_train=128", "--set", "task.n_test=64"]
    assert CliRunner().invoke(main, ["simulate", str(spec), "--out", str(first), *common]).exit_code == 0
    assert CliRunner().invoke(main, ["simulate", str(first / "spec.toml"), "--out", str(second),
                                     "--quiet"]).exit_code == 0
    with np.load(first / "params.npz") as a, np.load(second / "params.npz") as b:
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_verify_passes_on_every_spec(spec, registry):
    model = load(spec, registry=registry)
    outcomes = verify(model.spec, registry)
    assert outcomes, "every rule has at least one claim"
    failed = [o for o in outcomes if o.status == "fail"]
    assert not failed, failed
