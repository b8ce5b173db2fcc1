"""Memory estimates (circuits.memory), refusing runs that cannot fit, and weights drawn in the
run's dtype (circuits.initializers)."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import circuits
from circuits.backends import stream_seed
from circuits.cli import main
from circuits.compile import compile_circuit
from circuits.data import DATASETS
from circuits.graph import build_graph
from circuits.initializers import init_weight
from circuits.memory import (
    MemoryLimitError,
    available_memory,
    check_memory,
    dataset_bytes,
    estimate_memory,
    estimate_run,
    format_bytes,
    require_fit,
)
from circuits.rules import default_registry
from circuits.spec import InitSpec, parse_spec

SPEC = """
[circuit]
name = "mem"
[populations]
x = {{ size = 64, role = "input" }}
h1 = {{ size = {hidden}, activation = "relu" }}
y = {{ size = 10, role = "output", activation = "linear" }}
[[projections]]
chain = ["x", "h1", "y"]
[rule]
name = "backprop"
momentum = 0.9
[task]
dataset = "digits"
batch_size = 32
[run]
dtype = "{dtype}"
eval_batch_size = 100
"""


def spec_of(hidden: int = 20, dtype: str = "float32", **overrides: object):
    registry = default_registry()
    spec = parse_spec(SPEC.format(hidden=hidden, dtype=dtype), source="mem.toml",
                      overrides=overrides, rules=registry.signatures())
    rule = registry.get(spec.rule.name)
    return rule.augment(spec), rule


def test_estimate_counts_every_buffer_once_at_its_batch():
    spec, rule = spec_of(hidden=200)
    program = compile_circuit(build_graph(spec), rule)
    estimate = estimate_memory(program, 32)
    # weights, biases and their momentum buffers, float32
    params = 64 * 200 + 200 + 200 * 10 + 10
    assert estimate.persistent == 2 * params * 4
    assert estimate.persistent + estimate.per_batch == program.memory_bytes(32)
    assert estimate_memory(program, 64).per_batch - estimate.per_batch == \
        program.memory_bytes(64) - program.memory_bytes(32)
    assert estimate.total == program.memory_bytes(32) and estimate.data is None
    assert estimate.biggest[:2] == (("x->h1.weight", 64 * 200 * 4),
                                    ("x->h1.weight.velocity", 64 * 200 * 4))
    assert [size for _, size in estimate.biggest] == sorted(
        (size for _, size in estimate.biggest), reverse=True)
    double = compile_circuit(build_graph(spec_of(hidden=200, dtype="float64")[0]), rule)
    assert estimate_memory(double, 32).persistent == 2 * estimate.persistent


def test_run_estimate_adds_evaluation_and_data():
    spec, rule = spec_of(hidden=20)
    estimate = estimate_run(spec, rule)
    graph = build_graph(spec)
    infer = compile_circuit(graph, rule, mode="infer")
    assert estimate.evaluation == infer.memory_bytes(100) - sum(
        b.size() * 4 for b in infer.buffers.values() if b.persistent)
    assert estimate.data == dataset_bytes(spec) == 1797 * 64 * 8 + 1797 * 65 * 8
    assert estimate.describe().startswith(f"≈ {format_bytes(estimate.total)} (parameters and state ")


def test_dataset_bytes_follow_options_and_counts():
    assert DATASETS.estimated_bytes("mnist") == 70000 * 784 + 70000 * 785 * 8
    assert DATASETS.estimated_bytes("mnist", n_train=1000, n_test=500) == \
        70000 * 784 + 1500 * 785 * 8
    n = 10**12
    assert DATASETS.estimated_bytes("xor", options={"n": n}) == (n + n // 4) * 2 * 8 * 2 + \
        (n + n // 4) * 8
    assert DATASETS.estimated_bytes("parity", options={"bits": 100}) == 1250 * 100 * 8 + 1250 * 101 * 8


def test_require_fit_names_the_biggest_buffers():
    spec, rule = spec_of(hidden=200_000)
    estimate = estimate_run(spec, rule)
    with pytest.raises(MemoryLimitError) as info:
        require_fit(estimate, available=2**28, where="mem.toml")
    assert str(info.value) == (
        f"mem.toml: the run needs {estimate.describe()} but this machine has 256.0 MiB "
        "available; the biggest buffers are h1.pre (evaluation) 76.3 MiB, h1.rate (evaluation) "
        "76.3 MiB, x->h1.weight 48.8 MiB: make those populations smaller (or the batch)")
    require_fit(estimate, available=estimate.total)  # exactly enough is enough


def test_data_that_cannot_fit_is_named_as_such():
    spec, rule = spec_of(**{"task.dataset": "xor", "task.options": {"n": 10**12},
                            "populations.x.size": 2, "populations.y.size": 2})
    with pytest.raises(MemoryLimitError, match=r"the data set takes 45\.5 TiB: make it smaller "
                                               r"\(task.options, task.n_train, task.n_test\)$"):
        require_fit(estimate_run(spec, rule), available=2**34)


def test_check_memory_takes_a_program_or_a_model():
    spec, rule = spec_of(hidden=20)
    model = circuits.Model(spec)
    by_model = check_memory(model, 32, available=2**30)
    assert by_model == check_memory(model.program, 32, available=2**30)
    with pytest.raises(MemoryLimitError):
        check_memory(model, 32, data_bytes=2**31, available=2**30)
    with pytest.raises(TypeError, match="takes a Program or a Model"):
        check_memory("model", 32)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/meminfo")
def test_available_memory_is_a_positive_byte_count():
    available = available_memory()
    assert isinstance(available, int) and 0 < available < 2**60


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 64 GiB available, whatever this one has."""
    monkeypatch.setattr("circuits.memory.available_memory", lambda: 64 * 2**30)


def write(tmp_path, hidden: int, dtype: str = "float32") -> str:
    path = tmp_path / "mem.toml"
    path.write_text(SPEC.format(hidden=hidden, dtype=dtype))
    return str(path)


def test_check_and_compile_print_the_estimate(tmp_path, small_machine):
    path = write(tmp_path, 20)
    estimate = estimate_run(*spec_of(hidden=20))
    result = CliRunner().invoke(main, ["check", path])
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.strip().endswith(f"parameters, ≈ {format_bytes(estimate.total)} memory")
    result = CliRunner().invoke(main, ["compile", path])
    assert result.exit_code == 0
    assert f"run memory: {estimate.describe()}" in result.stdout.splitlines()


@pytest.mark.parametrize("overrides", [
    ["--set", "populations.h1.size=1000000000000"],
    ["--set", "populations.x.size=200000", "--set", "populations.h1.size=200000",
     "--set", 'task.dataset="parity"', "--set", "task.options={bits=200000, n=8}",
     "--set", "populations.y.size=2"],
    ["--set", 'task.dataset="xor"', "--set", "task.options={n=1000000000000}",
     "--set", "populations.x.size=2", "--set", "populations.y.size=2"],
], ids=["huge-population", "two-200k-populations", "huge-synthetic-task"])
def test_simulate_refuses_a_run_that_cannot_fit_before_allocating(tmp_path, small_machine,
                                                                  overrides):
    path = write(tmp_path, 20)
    check = CliRunner().invoke(main, ["check", path, *overrides])
    assert check.exit_code == 0 and check.stdout.startswith(f"ok: {path}: ")
    assert check.stderr.startswith(f"warning: {path}: the run needs ≈ ")
    assert check.stderr.strip().endswith("; simulate will refuse it")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["simulate", path, "--quiet", "--out", str(out), *overrides])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: the run needs ≈ ")
    assert "but this machine has 64.0 GiB available" in lines[0]
    assert not out.exists()  # refused before the run folder, the model or the data


# --- weights in the run's dtype ------------------------------------------------------------------


def test_float32_weights_are_the_float64_draws_rounded():
    # Drawn block by block (a weight taller than one block here), the float32 numbers are the
    # rounding of one float64 call's: earlier releases' float32 runs keep their numbers.
    shape, limit = (3000, 200), np.sqrt(6.0 / 3200)
    weight = init_weight(InitSpec(scheme="xavier"), shape, np.random.default_rng(5), "float32")
    expected = np.random.default_rng(5).uniform(-limit, limit, shape).astype(np.float32)
    assert weight.dtype == np.float32
    np.testing.assert_array_equal(weight, expected)
    for scheme in ("xavier_normal", "he", "he_uniform", "orthogonal", "zeros"):
        assert init_weight(InitSpec(scheme=scheme), shape, np.random.default_rng(5),
                           "float32").dtype == np.float32
    normal = init_weight(InitSpec(scheme="normal", std=0.5), shape, np.random.default_rng(5),
                         "float32")
    np.testing.assert_array_equal(
        normal, np.random.default_rng(5).normal(0.0, 0.5, shape).astype(np.float32))
    ortho = init_weight(InitSpec(scheme="orthogonal"), (30, 20), np.random.default_rng(5), "float32")
    np.testing.assert_array_equal(
        ortho, init_weight(InitSpec(scheme="orthogonal"), (30, 20), np.random.default_rng(5)).astype(np.float32))


def test_float64_weights_are_unchanged():
    rng = np.random.default_rng(5)
    weight = init_weight(InitSpec(scheme="xavier"), (30, 20), np.random.default_rng(5))
    np.testing.assert_array_equal(weight, rng.uniform(-np.sqrt(0.12), np.sqrt(0.12), (30, 20)))


def test_a_float32_weight_never_passes_through_float64():
    shape = (1000, 1000)  # 4 MB in float32, 8 MB in float64
    for scheme in ("xavier", "he"):
        tracemalloc.start()
        try:
            init_weight(InitSpec(scheme=scheme), shape, np.random.default_rng(0), "float32")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1.25 * 4 * 10**6, (scheme, peak)


def test_model_weights_come_from_their_named_stream_in_the_run_dtype():
    spec, _ = spec_of(hidden=20)
    model = circuits.Model(spec)
    weight = model.params["x->h1"]
    assert weight.dtype == np.float32
    rng = np.random.default_rng(stream_seed(spec.run.seed, "init:x->h1.weight"))
    np.testing.assert_array_equal(weight, init_weight(InitSpec(), (64, 20), rng, "float32"))
