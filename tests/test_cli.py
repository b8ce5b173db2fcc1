"""The command line: one clear line and a non-zero exit for bad input, runs that stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from circuits.cli import main

GOOD = """
[circuit]
name = "cli"
[populations]
x = { size = 64, role = "input" }
h1 = { size = 32, activation = "relu" }
y = { size = 10, role = "output" }
[[projections]]
chain = ["x", "h1", "y"]
[rule]
name = "backprop"
[task]
epochs = 2
n_train = 200
n_test = 100
"""


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def write(tmp_path, text, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD = [
    (GOOD.replace('"relu"', '"rleu"'),
     "populations.h1.activation: must be one of linear, relu, tanh, sigmoid, hard_sigmoid, softplus, softmax "
     "(got 'rleu'; did you mean 'relu'?)"),
    (GOOD.replace("size = 32", "size = -3"), "populations.h1.size: must be an integer >= 1 (got -3)"),
    (GOOD.replace("size = 32", "size = nan"), "populations.h1.size: must be an integer >= 1 (got nan; "),
    (GOOD.replace('name = "backprop"', 'name = "backprob"'), "(got 'backprob'; did you mean 'backprop'?)"),
    (GOOD.replace("epochs = 2", "epochs = 2\nepoch = 3"), "task.epoch: unknown key; allowed keys are"),
    (GOOD.replace('chain = ["x", "h1", "y"]', 'chain = ["x", "h2", "y"]'),
     "projections.x->h2.to: must name a population among x, h1, y (got 'h2'; did you mean 'h1'?)"),
    (GOOD.replace("[rule]", "[rule"), "TOML syntax error"),
    (GOOD.replace('role = "output"', 'role = "hidden"'), "has no output population"),
    (GOOD.replace("size = 10", "size = 9"), "set populations.y.size = 10"),
    (GOOD + '[[projections]]\nfrom = "y"\nto = "h1"\n', "forward projections form a cycle h1 -> y -> h1"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m[:30] for _, m in BAD])
def test_check_reports_one_line_and_exit_2(tmp_path, text, message):
    result = invoke("check", write(tmp_path, text))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_check_reports_every_spec(tmp_path, good):
    result = invoke("check", str(good), write(tmp_path, GOOD.replace("relu", "rleu")))
    assert result.exit_code == 2
    assert "ok: " in result.output and "error: " in result.output


def test_invalid_utf8_and_missing_file(tmp_path):
    path = tmp_path / "bytes.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert invoke("check", str(path)).exit_code == 2
    result = invoke("simulate", str(tmp_path / "nothere.toml"))
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'nothere.toml'}: no such file"


def test_overrides_are_validated(good):
    result = invoke("simulate", str(good), "--set", "rule.lr=abc")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {good}: rule.lr: must be a number > 0 (got 'abc')"
    assert invoke("simulate", str(good), "--set", "nokey").exit_code == 2


def test_missing_cupy_is_one_clear_error(good):
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    result = invoke("simulate", str(good), "--backend", "cupy")
    assert result.exit_code == 2
    assert "backend 'cupy' needs CuPy" in result.output


def test_render_every_format(tmp_path, good):
    for suffix in (".svg", ".png", ".pdf", ".dot", ".mmd"):
        out = tmp_path / f"c{suffix}"
        result = invoke("render", str(good), "-o", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 0
    assert invoke("render", str(good), "-o", str(tmp_path / "c.xyz")).exit_code == 2


def test_compile_prints_the_schedule(good):
    result = invoke("compile", str(good), "--batch", "8")
    assert result.exit_code == 0
    assert "phase backward" in result.output and "h1.pre  " in result.output and "8×32" in result.output


def test_rules_and_claims_list_the_catalogues():
    rules = invoke("rules").output
    for name in ("backprop", "feedback_alignment", "direct_feedback_alignment", "kolen_pollack", "weight_mirror"):
        assert f"{name}: " in rules
    assert "auto_feedback = False" in rules
    assert "kp_exact_contraction" in invoke("claims").output


def test_verify_json(repo_root):
    result = invoke("verify", str(repo_root / "specs" / "kp_digits.toml"), "--json")
    assert result.exit_code == 0
    outcomes = json.loads(result.output)
    assert {o["claim"] for o in outcomes} >= {"kp_exact_contraction"}
    assert all(o["status"] == "pass" for o in outcomes)


def test_verify_table_keeps_bracketed_keys(repo_root):
    """Measured keys such as ``relative_error[y->h1]`` are text, not rich markup."""
    result = CliRunner().invoke(main, ["verify", str(repo_root / "specs" / "wm_digits.toml")],
                                env={"COLUMNS": "200"})  # wide enough not to fold the key
    assert result.exit_code == 0
    assert "relative_error[y->h1]" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "circuits" in result.output


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "circuits.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_nan_stops_with_one_line_and_keeps_the_run(tmp_path, good):
    proc = _cli("simulate", str(good), "--quiet", "--out", str(tmp_path / "run"), "--set", "rule.lr=1e6")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().startswith("error: loss became nan at epoch 1, batch ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became nan" in summary["message"]


def test_ctrl_c_stops_cleanly_and_writes_what_is_done(tmp_path, good):
    run = tmp_path / "run"
    proc = _cli("simulate", str(good), "--quiet", "--out", str(run), "--set", "task.epochs=100000",
                "--set", "task.n_train=64")
    deadline = time.time() + 60
    while not (run / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and err.strip() == "error: stopped by the user (Ctrl-C)"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs"] >= 1
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) >= 2 and all(len(line.split(",")) == len(lines[0].split(",")) for line in lines)
    assert (run / "params.npz").exists()


def test_debug_shows_the_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("relu", "rleu"))
    result = CliRunner().invoke(main, ["--debug", "simulate", path])
    assert result.exit_code != 0 and result.exception is not None
