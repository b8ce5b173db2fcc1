"""Run folders: identity, refusal and locking, atomic files, checkpoints and bit-for-bit resume,
signals, full disks and BLAS threads (circuits/runs)."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner

from circuits import load_spec
from circuits.backends import get_backend
from circuits.cli import main
from circuits.errors import SpecError
from circuits.model import Model
from circuits.runs import (FolderLock, FolderLockedError, RunFolder, RunFolderError, default_run_dir, execute_run,
                           load_checkpoint, read_metrics, read_summary, run_id, write_text)
from circuits.runs import files as run_files

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"

SMALL = ["task.n_train=200", "task.n_test=100", "task.batch_size=20"]
"""Ten batches an epoch: every test run takes well under a second an epoch."""

KINDS = {
    # momentum SGD, no randomness after initialisation
    "momentum": ("bp_digits.toml", []),
    # Adam moments and step counts, dropout masks drawn mid-training
    "adam_dropout": ("bp_digits.toml", ["rule.optimizer=adam", "rule.lr=0.001",
                                        "populations.h1.dropout=0.2"]),
    # node perturbation: a noise stream used at every step
    "noise": ("np_digits.toml", []),
    # equilibrium propagation with persistent particles and a random sign of β each batch
    "particles": ("eqprop_digits.toml", ["rule.persistent=true", "rule.estimator=random_sign",
                                         "rule.free_steps=10", "rule.nudged_steps=4", "rule.tol=1e-3"]),
}


def spec_of(kind: str, epochs: int, *extra: str):
    name, overrides = KINDS[kind]
    return load_spec(SPECS / name, [*SMALL, *overrides, f"task.epochs={epochs}", *extra])


def overrides_of(kind: str, epochs: int) -> list[str]:
    return [*SMALL, *KINDS[kind][1], f"task.epochs={epochs}"]


def same_run(a: Path, b: Path) -> None:
    """metrics.csv (every column but seconds) and params.npz identical, bit for bit."""
    rows_a, rows_b = read_metrics(a / "metrics.csv"), read_metrics(b / "metrics.csv")
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key != "seconds":
                assert ra[key] == rb[key] or (math.isnan(ra[key]) and math.isnan(rb[key])), key
    with np.load(a / "params.npz") as pa, np.load(b / "params.npz") as pb:
        assert set(pa.files) == set(pb.files)
        for name in pa.files:
            np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# -- identity and folders ------------------------------------------------------------------------


def test_run_id_hashes_the_resolved_spec_but_not_its_folder():
    spec = spec_of("momentum", 2)
    assert len(run_id(spec)) == 16 and int(run_id(spec), 16) >= 0
    assert run_id(spec) == run_id(attrs.evolve(spec, run=attrs.evolve(spec.run, out="elsewhere")))
    assert run_id(spec) != run_id(spec_of("momentum", 2, "rule.lr=0.02"))
    assert run_id(spec) != run_id(spec_of("momentum", 2, "run.seed=1"))


def test_default_folder_names_rule_and_seed_and_numbers_taken_ones(tmp_path):
    spec = spec_of("momentum", 1, "run.seed=3")
    first = default_run_dir(spec, tmp_path)
    assert first == tmp_path / "bp-digits" / "backprop-seed3"
    first.mkdir(parents=True)
    assert default_run_dir(spec, tmp_path) == tmp_path / "bp-digits" / "backprop-seed3-2"
    (tmp_path / "bp-digits" / "backprop-seed3-2").mkdir()
    assert default_run_dir(spec, tmp_path).name == "backprop-seed3-3"


def test_simulate_without_out_uses_numbered_default_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = [f"--set={o}" for o in overrides_of("momentum", 1)]
    args = ["simulate", str(SPECS / "bp_digits.toml"), "--quiet", *sets]
    assert invoke(*args).exit_code == 0
    assert invoke(*args).exit_code == 0
    assert (tmp_path / "runs" / "bp-digits" / "backprop-seed0" / "summary.json").is_file()
    assert (tmp_path / "runs" / "bp-digits" / "backprop-seed0-2" / "summary.json").is_file()


def test_used_folder_is_refused_unless_overwrite_or_resume(tmp_path):
    out = tmp_path / "run"
    args = ["simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(out),
            *(f"--set={o}" for o in overrides_of("momentum", 1))]
    assert invoke(*args).exit_code == 0
    result = invoke(*args)
    assert result.exit_code == 2
    assert one_error_line(result) == (f"error: {out} already holds a run; pass --resume to continue it, "
                                      "--overwrite to replace it, or choose another --out")
    (out / "alignment.csv").write_text("stale\n")  # a file of an older run
    result = invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "alignment.csv").exists()
    assert invoke(*args, "--resume").exit_code == 0


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(tmp_path),
                    "--overwrite")
    assert result.exit_code == 2 and "is not a run folder" in one_error_line(result)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_tilde_is_expanded_in_out_and_run_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = SPECS / "bp_digits.toml"
    sets = [f"--set={o}" for o in overrides_of("momentum", 1)]
    assert invoke("simulate", str(spec), "--quiet", "--out", "~/a", *sets).exit_code == 0
    assert invoke("simulate", str(spec), "--quiet", "--set", "run.out=~/b", *sets).exit_code == 0
    assert (tmp_path / "a" / "summary.json").is_file() and (tmp_path / "b" / "summary.json").is_file()


def test_empty_run_out_is_a_spec_error(registry):
    with pytest.raises(SpecError, match=r"run\.out: must name a folder \(got ''\)"):
        load_spec(SPECS / "bp_digits.toml", ["run.out="])


def test_resume_without_out_finds_the_default_folder_of_this_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(SPECS / "bp_digits.toml")
    sets = [f"--set={o}" for o in overrides_of("momentum", 1)]
    assert invoke("simulate", spec, "--quiet", *sets, "--set", "rule.lr=0.02").exit_code == 0  # takes seed0
    assert invoke("simulate", spec, "--quiet", *sets).exit_code == 0  # seed0-2
    result = invoke("simulate", spec, "--quiet", *sets, "--resume")
    assert result.exit_code == 0 and "backprop-seed0-2" in result.output
    assert not (tmp_path / "runs" / "bp-digits" / "backprop-seed0-3").exists()


def test_resume_of_a_new_folder_starts_afresh_and_resume_needs_a_run_folder(tmp_path):
    assert execute_run(spec_of("momentum", 1), tmp_path / "new", resume=True).status == "completed"
    (tmp_path / "empty").mkdir()
    result = invoke("resume", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert one_error_line(result) == (f"error: {tmp_path / 'empty'} holds no spec.toml, so it is not a run "
                                      "folder to resume")


def test_a_locked_folder_is_refused_with_one_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with FolderLock(out):
        result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(out), "--resume")
        assert result.exit_code == 2
        assert one_error_line(result) == (f"error: {out} is in use by another run (process {os.getpid()}); "
                                          "wait for it to end or choose another --out")
        with pytest.raises(FolderLockedError):
            RunFolder.open(out, resume=True)
    RunFolder.open(out, resume=True).close()  # released


def test_resume_of_a_different_spec_names_the_first_differing_key(tmp_path):
    out = tmp_path / "run"
    execute_run(spec_of("momentum", 1), out)
    changed = r"holds a run of another spec: rule\.lr \(saved 0\.05, given 0\.02\)"
    with pytest.raises(RunFolderError, match=changed):
        execute_run(spec_of("momentum", 1, "rule.lr=0.02"), out, resume=True)
    execute_run(spec_of("momentum", 2), out, resume=True)  # extending is allowed
    with pytest.raises(RunFolderError, match=r"task\.epochs may only grow when resuming \(saved 2, given 1\)"):
        execute_run(spec_of("momentum", 1), out, resume=True)


# -- atomic files --------------------------------------------------------------------------------


def test_writes_replace_a_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "metrics.csv"
    link.symlink_to(victim)
    write_text(link, "epoch\n1\n")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "epoch\n1\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    write_text(target, "old")

    def half(handle):
        handle.write(b"new, half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(run_files.RunWriteError, match=f"cannot write {target}: No space left on device; free"):
        run_files.write_atomic(target, half)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


# -- checkpoint and resume -----------------------------------------------------------------------


def test_backend_remembers_and_restores_its_generators():
    backend = get_backend("numpy", seed=4)
    first = backend.rng("noise:h", owner="train@20")
    first.random(5)
    states = backend.stream_states()
    expected = first.random(3)
    fresh = get_backend("numpy", seed=4)
    fresh.restore_streams(states)  # before the generator exists: applied when it is created
    np.testing.assert_array_equal(fresh.rng("noise:h", owner="train@20").random(3), expected)
    assert set(states) == {"train@20|noise:h"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_resume_after_a_failed_write_is_bit_for_bit(kind, tmp_path, monkeypatch):
    """A run stopped by a full disk in epoch 3 and resumed ends identical to an uninterrupted one."""
    reference = execute_run(spec_of(kind, 4), tmp_path / "ref")
    assert reference.status == "completed"
    real = run_files.write_atomic
    calls = {"n": 0}

    def full_disk(path, write):
        if Path(path).name == "checkpoint.npz":
            calls["n"] += 1
            if calls["n"] == 3:
                raise run_files.write_error(Path(path), OSError(errno.ENOSPC, "No space left on device"))
        return real(path, write)

    monkeypatch.setattr(run_files, "write_atomic", full_disk)
    monkeypatch.setattr("circuits.runs.folder.write_atomic", full_disk)
    out = tmp_path / "run"
    stopped = execute_run(spec_of(kind, 4), out)
    assert stopped.status == "failed" and stopped.message.startswith(f"cannot write {out / 'checkpoint.npz'}")
    assert stopped.summary["params_epoch"] == 2 and stopped.epochs == 2
    assert len(read_metrics(out / "metrics.csv")) == 2
    monkeypatch.undo()
    resumed = execute_run(spec_of(kind, 4), out, resume=True)
    assert resumed.status == "completed" and resumed.epochs == 4
    same_run(out, tmp_path / "ref")


_KILLABLE = textwrap.dedent("""
    import sys, time
    from circuits import load_spec
    from circuits.runs import execute_run
    spec = load_spec(sys.argv[1], sys.argv[3:])
    # slow batches down without changing a number, so a signal finds the run mid-epoch
    execute_run(spec, sys.argv[2], on_batch=lambda *a: time.sleep(0.01))
""")


def _start(spec: Path, out: Path, overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _KILLABLE, str(spec), str(out), *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_epoch(out: Path, epoch: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if load_checkpoint(out / "checkpoint.npz").epoch >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no checkpoint")


@pytest.mark.parametrize("kind", ["adam_dropout", "particles"])
def test_resume_after_sigkill_is_bit_for_bit(kind, tmp_path):
    out = tmp_path / "run"
    proc = _start(SPECS / KINDS[kind][0], out, overrides_of(kind, 6))
    _wait_for_epoch(out, 2, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert read_summary(out)["status"] == "running"
    result = invoke("simulate", str(SPECS / KINDS[kind][0]), "--quiet", "--out", str(out), "--resume",
                    *(f"--set={o}" for o in overrides_of(kind, 6)))
    assert result.exit_code == 0, result.output
    assert read_summary(out)["status"] == "completed" and read_summary(out)["params_epoch"] == 6
    execute_run(spec_of(kind, 6), tmp_path / "ref")
    same_run(out, tmp_path / "ref")


def test_ctrl_c_keeps_the_last_finished_epoch_and_resumes_bit_for_bit(tmp_path):
    out = tmp_path / "run"
    proc = _start(SPECS / "np_digits.toml", out, overrides_of("noise", 6))
    _wait_for_epoch(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    summary = read_summary(out)
    assert summary["status"] == "interrupted" and summary["message"] == "stopped by the user (Ctrl-C)"
    done = summary["params_epoch"]
    assert done == summary["epochs"] == len(read_metrics(out / "metrics.csv")) >= 2
    execute_run(spec_of("noise", done), tmp_path / "partial")
    same_run(out, tmp_path / "partial")  # params.npz holds epoch `done`, not a mid-epoch state
    result = invoke("resume", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    execute_run(spec_of("noise", 6), tmp_path / "ref")
    same_run(out, tmp_path / "ref")


def test_ctrl_c_while_an_epoch_is_written_finishes_writing_it(tmp_path, monkeypatch):
    """Ctrl-C after epoch 2's checkpoint but before its metrics: the epoch's files are completed
    from its snapshot, so every file says 2 epochs; resuming then matches an uninterrupted run."""
    real = RunFolder.write_metrics
    calls = {"n": 0}

    def interrupted(folder, rows, records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(folder, rows, records)

    monkeypatch.setattr(RunFolder, "write_metrics", interrupted)
    out = tmp_path / "run"
    outcome = execute_run(spec_of("noise", 4), out)
    assert outcome.status == "interrupted" and outcome.epochs == 2
    summary = read_summary(out)
    assert summary["epochs"] == summary["params_epoch"] == len(read_metrics(out / "metrics.csv")) == 2
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2
    monkeypatch.undo()
    execute_run(spec_of("noise", 4), out, resume=True)
    execute_run(spec_of("noise", 4), tmp_path / "ref")
    same_run(out, tmp_path / "ref")


def test_resume_extends_a_completed_run_and_returns_a_finished_one_at_once(tmp_path):
    out = tmp_path / "run"
    execute_run(spec_of("noise", 2), out)
    again = execute_run(spec_of("noise", 2), out, resume=True, on_batch=lambda *a: pytest.fail("trained"))
    assert again.status == "completed" and again.epochs == 2 and len(again.records) == 2
    extended = execute_run(spec_of("noise", 4), out, resume=True)
    assert extended.epochs == 4 and read_summary(out)["epochs_planned"] == 4
    execute_run(spec_of("noise", 4), tmp_path / "ref")
    same_run(out, tmp_path / "ref")


def test_nan_keeps_the_weights_of_the_last_finished_epoch(tmp_path, monkeypatch):
    """A batch of epoch 2 diverges (weights and loss turn NaN): params.npz keeps epoch 1's weights."""
    step = Model.step
    calls = {"n": 0}

    def diverging(model, x, y, index=None):
        calls["n"] += 1
        if calls["n"] == 13:  # epoch 2, batch 3
            for array in model.params.values():
                array[...] = np.nan
            return float("nan")
        return step(model, x, y, index=index)

    monkeypatch.setattr(Model, "step", diverging)
    outcome = execute_run(spec_of("momentum", 3), tmp_path / "run")
    assert outcome.status == "failed" and outcome.message.startswith("loss became nan at epoch 2, batch 3")
    assert outcome.summary["params_epoch"] == outcome.epochs == 1
    monkeypatch.undo()
    execute_run(spec_of("momentum", 1), tmp_path / "ref")
    same_run(tmp_path / "run", tmp_path / "ref")


# -- signals and disks ---------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "circuits.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_sigterm_stops_like_ctrl_c_with_exit_143(tmp_path):
    out = tmp_path / "run"
    proc = _cli("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(out),
                "--set", "task.epochs=100000", "--set", "task.n_train=64")
    deadline = time.time() + 60
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip() == "error: stopped by SIGTERM"
    summary = read_summary(out)
    assert summary["status"] == "interrupted" and summary["params_epoch"] == summary["epochs"] >= 1


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports start")
def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path):
    """SIGINT once NumPy is being loaded (the command's imports have begun): one line, exit 130."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "circuits", "simulate", str(SPECS / "bp_digits.toml"), "--quiet",
               "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None and "numpy" not in maps.read_text():
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_ctrl_c_while_loading_data_is_one_line(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("circuits.runs.execute.load_data", interrupted)
    result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 130 and one_error_line(result) == "error: interrupted"


def test_full_disk_is_exit_1_naming_the_file_and_keeps_what_was_written(tmp_path, monkeypatch):
    """The disk fills while epoch 2's parameters are written: exit 1, one line naming params.npz,
    epoch 1's files intact; the run then resumes to the numbers of an uninterrupted run."""
    real = run_files.write_atomic

    def full(path, write):
        if Path(path).name == "params.npz" and len(read_metrics(Path(path).parent / "metrics.csv")
                                                   if (Path(path).parent / "metrics.csv").exists() else []) == 1:
            raise run_files.write_error(Path(path), OSError(errno.ENOSPC, "No space left on device"))
        return real(path, write)

    monkeypatch.setattr("circuits.runs.folder.write_atomic", full)
    out = tmp_path / "run"
    args = ["simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(out),
            *(f"--set={o}" for o in overrides_of("momentum", 3))]
    result = invoke(*args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot write {out / 'params.npz'}: No space left on device; free some space, "
                      "then continue with `circuits resume` on the run folder"]
    assert "Traceback" not in result.output
    summary = read_summary(out)
    assert summary["status"] == "failed" and summary["params_epoch"] == summary["epochs"] == 1
    execute_run(spec_of("momentum", 1), tmp_path / "one")
    same_run(out, tmp_path / "one")
    monkeypatch.undo()
    assert invoke("resume", str(out), "--quiet").exit_code == 0
    execute_run(spec_of("momentum", 3), tmp_path / "ref")
    same_run(out, tmp_path / "ref")


def test_read_only_folder_is_one_line(tmp_path, monkeypatch):
    """As root chmod does not stop writes, so read-only is simulated: EROFS from the file system,
    and a folder below a regular file."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(blocker / "run"))
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: cannot write {blocker / 'run'}: Not a directory"

    def read_only(path, write):
        raise run_files.write_error(Path(path), OSError(errno.EROFS, "Read-only file system"))

    monkeypatch.setattr("circuits.runs.folder.write_text", read_only)
    result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(tmp_path / "ro"))
    assert result.exit_code == 1
    assert one_error_line(result) == (f"error: cannot write {tmp_path / 'ro' / 'spec.toml'}: Read-only file "
                                      "system; choose a writable folder with --out")


# -- threads -------------------------------------------------------------------------------------


def test_threads_are_limited_for_the_run_and_saved_in_the_spec(tmp_path):
    """In a process whose BLAS would use 2 threads, a run uses run.threads (default 1) or --threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("threadpoolctl sees no BLAS library")
    seen: dict[str, set[int]] = {}
    def by_library() -> dict[str, int]:
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}

    with threadpoolctl.threadpool_limits(limits=2):  # as an unpinned process on 2 cores
        outside = by_library()
        for name, threads in (("default", None), ("two", 2)):
            execute_run(spec_of("momentum", 1), tmp_path / name, threads=threads,
                        on_batch=lambda *a, name=name: seen.setdefault(name, set()).update(blas_threads()))
        assert {k: v for k, v in by_library().items() if k in outside} == outside  # restored after the run
    assert seen == {"default": {1}, "two": {2}}
    assert load_spec(tmp_path / "default" / "spec.toml").run.threads == 1
    assert load_spec(tmp_path / "two" / "spec.toml").run.threads == 2
    assert read_summary(tmp_path / "two")["threads"] == 2
    result = invoke("simulate", str(SPECS / "bp_digits.toml"), "--quiet", "--out", str(tmp_path / "cli"),
                    "--threads", "0", *(f"--set={o}" for o in overrides_of("momentum", 1)))
    assert result.exit_code == 0 and load_spec(tmp_path / "cli" / "spec.toml").run.threads == 0
    with pytest.raises(SpecError, match="run.threads: must be an integer >= 0"):
        load_spec(SPECS / "bp_digits.toml", ["run.threads=-1"])
