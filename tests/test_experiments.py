"""The experiment layer: validation split, experiment files, sweeps on Dask, reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

import circuits
from circuits.data import load_dataset
from circuits.errors import DataError, SpecError

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
