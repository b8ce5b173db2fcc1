"""Lanes (:mod:`circuits.backends.lanes`): a conv model's numbers do not depend on them, and a
program with conv ops runs with BLAS held to one thread."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from test_conv import lenet
from threadpoolctl import threadpool_limits

from circuits.backends import conv_kernels, lanes
from circuits.backends.lanes import Lanes, blas_threads
from circuits.model import Model

needs_openblas = pytest.mark.skipif(lanes._thread_calls() is None,
                                    reason="NumPy's OpenBLAS not found: lanes run in order, BLAS is never held")


def model_on(registry, count, monkeypatch, rule="backprop", extra=""):
    monkeypatch.setattr(Lanes, "for_blas", classmethod(lambda cls: cls(count)))
    monkeypatch.setattr(conv_kernels, "LANE_WORK", 0)  # split even the tiny circuit's ops
    return Model(lenet(registry, rule, extra), registry=registry)


@pytest.mark.parametrize("rule, extra", [("backprop", ""), ("feedback_alignment", "auto_feedback = true")])
def test_a_conv_model_gives_the_same_numbers_on_one_two_and_three_lanes(registry, monkeypatch, rule, extra):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 64))
    y = rng.integers(0, 10, 9)
    params = []
    for count in (1, 2, 3):
        model = model_on(registry, count, monkeypatch, rule, extra)
        assert model.backend.lanes.count == count
        losses = [model.step(x, y) for _ in range(3)]
        params.append((losses, {name: np.array(value) for name, value in model.params.items()}))
    for losses, values in params[1:]:
        assert losses == params[0][0]
        for name, value in values.items():
            assert value.tobytes() == params[0][1][name].tobytes(), name


@needs_openblas
def test_conv_programs_run_with_blas_on_one_thread_and_dense_ones_do_not(registry, monkeypatch):
    seen = []
    with threadpool_limits(2):
        if blas_threads() < 2:
            pytest.skip("OpenBLAS here cannot run two threads")
        conv = model_on(registry, 2, monkeypatch)
        exe = conv.sim.executable(conv.program, 4)
        exe.phases[0][1].insert(0, lambda: seen.append(blas_threads()))
        exe.run()
        assert seen == [1]
        assert blas_threads() == 2  # restored after the step
        dense = Model(_dense_spec(registry), registry=registry)
        exe = dense.sim.executable(dense.program, 4)
        exe.phases[0][1].insert(0, lambda: seen.append(blas_threads()))
        exe.run()
        assert seen == [1, 2]


def _dense_spec(registry):
    from circuits.spec import parse_spec
    text = """
[circuit]
name = "dense"
[populations]
x = { size = 64, role = "input" }
h = { size = 5, activation = "tanh" }
y = { size = 10, role = "output" }
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "backprop"
[task]
dataset = "digits"
"""
    return parse_spec(text, source="d.toml", rules=registry.signatures())


@needs_openblas
def test_held_restores_the_thread_count_after_an_error(monkeypatch):
    with threadpool_limits(2):
        if blas_threads() < 2:
            pytest.skip("OpenBLAS here cannot run two threads")
        with pytest.raises(RuntimeError, match="inside"):
            with Lanes(2).held():
                assert blas_threads() == 1
                raise RuntimeError("inside")
        assert blas_threads() == 2
        with Lanes(1).held():  # one lane holds nothing
            assert blas_threads() == 2


def test_lanes_pickle_to_fresh_lanes_and_restart_their_threads_after_a_fork(monkeypatch):
    original = Lanes(2)
    original.run([lambda: None, lambda: None])
    copy = pickle.loads(pickle.dumps(original))
    assert copy.count == 2 and copy._workers == []
    started = list(original._workers)
    monkeypatch.setattr(lanes.os, "getpid", lambda: -1)  # as a forked child sees it
    done = []
    original.run([lambda: done.append(0), lambda: done.append(1)])
    assert sorted(done) == [0, 1]
    if lanes._thread_calls() is not None:
        assert original._workers and original._workers[0] is not started[0]
