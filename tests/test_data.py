"""Tests of circuits.data and circuits.idx: registry, loaders, normalization, batching, IDX files.

None of these tests touches the network: downloads are disabled or served from file:// URLs.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.data import (
    DATASETS,
    Dataset,
    DatasetInfo,
    DatasetRegistry,
    iterate_batches,
    load_dataset,
)
from circuits.errors import DataError
from circuits.idx import _download, data_home, downloads_disabled, locate_split, read_idx, read_idx_split

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_LABELS_MD5 = "d53e105ee54ea40749a09fcbcd1e9432"


def needs_shared_data(name: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no offline copy of {name} in {SHARED_DATA}")
    return folder


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's $CIRCUITS_DATA / $CIRCUITS_CACHE out of every test."""
    monkeypatch.delenv("CIRCUITS_DATA", raising=False)
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits_raw() -> Dataset:
    return load_dataset("digits", seed=0, normalize="none")


@pytest.fixture(scope="module")
def mnist_raw() -> Dataset:
    return load_dataset("mnist", seed=0, data_dir=needs_shared_data("mnist").parent,
                        normalize="none", download=False)


# --- digits and the shared load stages -------------------------------------------------------


def test_digits_shapes_and_classes(digits_raw: Dataset) -> None:
    ds = digits_raw
    assert (ds.name, ds.task, ds.n_features, ds.n_outputs) == ("digits", "classification", 64, 10)
    assert ds.n_train + ds.n_test == 1797
    assert ds.x_train.dtype == np.float64 and ds.x_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (ds.n_train,)
    assert set(np.unique(ds.x_train)) <= set(range(17))
    # stratified: every class keeps about 20% of its examples in the test split
    fraction = np.bincount(ds.y_test, minlength=10) / np.bincount(
        np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    np.testing.assert_allclose(fraction, 0.2, atol=0.01)
    info = DATASETS.info("digits")
    assert (info.n_features, info.n_outputs, dict(info.options)) == (64, 10, {"test_fraction": 0.2})


def test_digits_split_is_a_partition_of_the_sklearn_data(digits_raw: Dataset) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ours = np.column_stack([np.concatenate([digits_raw.x_train, digits_raw.x_test]),
                            np.concatenate([digits_raw.y_train, digits_raw.y_test])])
    theirs = np.column_stack([bunch.data, bunch.target])
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])


def test_digits_is_deterministic_per_seed(digits_raw: Dataset) -> None:
    again = load_dataset("digits", seed=0, normalize="none")
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(digits_raw, field))
    other = load_dataset("digits", seed=1, normalize="none")
    assert not np.array_equal(other.y_train, digits_raw.y_train)
    assert not np.array_equal(other.x_test, digits_raw.x_test)


def test_test_fraction_option() -> None:
    ds = load_dataset("digits", seed=0, options={"test_fraction": 0.5})
    assert abs(ds.n_test - 1797 / 2) < 10
    with pytest.raises(DataError, match=r"option 'test_fraction' must be in \(0, 1\)"):
        load_dataset("digits", seed=0, options={"test_fraction": 1.5})


def test_standard_normalization_uses_training_statistics(digits_raw: Dataset) -> None:
    ds = load_dataset("digits", seed=0)
    mean, std = digits_raw.x_train.mean(axis=0), digits_raw.x_train.std(axis=0)
    varying, constant = std > 0.5, std == 0.0
    assert varying.sum() > 50 and constant.any()
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0)[varying], 1.0, rtol=1e-12)
    assert np.all(ds.x_train[:, constant] == 0.0)
    assert np.all(np.isfinite(ds.x_test)) and np.abs(ds.x_test).max() < 100
    expected = (digits_raw.x_test[:, varying] - mean[varying]) / std[varying]
    np.testing.assert_allclose(ds.x_test[:, varying], expected, rtol=1e-12, atol=1e-12)


def test_unit_and_none_normalization(digits_raw: Dataset) -> None:
    unit = load_dataset("digits", seed=0, normalize="unit")
    np.testing.assert_array_equal(unit.x_train, digits_raw.x_train / 16.0)
    assert unit.x_train.max() == 1.0
    xor_unit = load_dataset("xor", seed=0, normalize="unit")
    np.testing.assert_array_equal(xor_unit.x_test, load_dataset("xor", seed=0, normalize="none").x_test)


def test_unknown_normalization_names_the_allowed_values() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("digits", seed=0, normalize="unti")
    assert str(info.value) == ("data set 'digits': normalize must be one of standard, unit, none "
                               "(got 'unti'; did you mean 'unit'?)")


def test_loaded_arrays_are_read_only(digits_raw: Dataset) -> None:
    with pytest.raises(ValueError, match="read-only"):
        digits_raw.x_train[0, 0] = 1.0


def test_n_train_and_n_test_keep_the_first_examples(digits_raw: Dataset) -> None:
    small = load_dataset("digits", seed=0, n_train=100, n_test=30, normalize="none")
    assert (small.n_train, small.n_test) == (100, 30)
    np.testing.assert_array_equal(small.x_train, digits_raw.x_train[:100])
    np.testing.assert_array_equal(small.y_test, digits_raw.y_test[:30])
    too_many = f"n_train=5000 but the split holds only {digits_raw.n_train} examples"
    with pytest.raises(DataError, match=too_many):
        load_dataset("digits", seed=0, n_train=5000)
    with pytest.raises(DataError, match=r"n_test must be an int >= 1 \(got 0\)"):
        load_dataset("digits", seed=0, n_test=0)


# --- the registry ----------------------------------------------------------------------------


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(DataError) as info:
        DATASETS.info("digts")
    message = str(info.value)
    assert "did you mean 'digits'" in message
    assert message == (f"unknown data set 'digts': must be one of {', '.join(DATASETS.names())}"
                       "; did you mean 'digits'?")
    with pytest.raises(DataError, match="did you mean 'digits'"):
        load_dataset("digts", seed=0)


def test_unknown_option_names_the_allowed_options() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("xor", seed=0, options={"nosie": 0.2})
    assert str(info.value) == ("data set 'xor': unknown option 'nosie': allowed options are "
                               "n, noise; did you mean 'noise'?")


def test_option_values_must_have_the_default_type() -> None:
    with pytest.raises(DataError, match=r"option 'n' must be int \(got 'many'\)"):
        load_dataset("xor", seed=0, options={"n": "many"})
    with pytest.raises(DataError, match=r"option 'n' must be int \(got 10.5\)"):
        load_dataset("xor", seed=0, options={"n": 10.5})
    ds = load_dataset("xor", seed=0, options={"noise": 0, "n": 40})  # an int for a float is fine
    assert ds.n_train == 40 and ds.n_test == 10


def test_registry_rejects_duplicates_and_reports_infos() -> None:
    registry = DatasetRegistry()
    info = DatasetInfo("toy", "classification", "a toy", {"n": 3})
    registry.register(info, lambda **_: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="'toy' is already registered"):
        registry.register(info, lambda **_: None)  # type: ignore[arg-type, return-value]
    assert registry.names() == ("toy",)
    assert set(DATASETS.names()) >= {"digits", "mnist", "fashion-mnist", "xor", "parity",
                                      "teacher_linear", "teacher_nonlinear"}
    assert (DATASETS.info("xor").n_features, DATASETS.info("xor").n_outputs) == (2, 2)
    assert DATASETS.info("teacher_linear").n_features is None
    assert DATASETS.info("mnist").n_features == 784


# --- batching --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(0, 300), batch_size=st.integers(1, 64), shuffle=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_iterate_batches_covers_every_index_once(n: int, batch_size: int, shuffle: bool,
                                                  seed: int) -> None:
    batches = list(iterate_batches(n, batch_size, np.random.default_rng(seed), shuffle=shuffle))
    assert len(batches) == math.ceil(n / batch_size)
    assert all(len(b) == batch_size for b in batches[:-1])
    assert all(1 <= len(b) <= batch_size for b in batches)
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    np.testing.assert_array_equal(np.sort(flat), np.arange(n))
    if not shuffle:
        np.testing.assert_array_equal(flat, np.arange(n))


def test_iterate_batches_is_seeded_and_checks_arguments() -> None:
    first = list(iterate_batches(100, 7, np.random.default_rng(5)))
    again = list(iterate_batches(100, 7, np.random.default_rng(5)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(np.concatenate(first), np.arange(100))
    with pytest.raises(DataError, match="batch_size >= 1"):
        next(iterate_batches(10, 0, np.random.default_rng(0)))


# --- synthetic tasks -------------------------------------------------------------------------


def test_xor_labels_are_the_xor_of_the_signs() -> None:
    ds = load_dataset("xor", seed=3, normalize="none")
    assert (ds.n_train, ds.n_test, ds.n_features, ds.n_outputs) == (1000, 250, 2, 2)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(int))
    assert 400 < ds.y_train.sum() < 600
    np.testing.assert_array_equal(load_dataset("xor", seed=3, normalize="none").x_train, ds.x_train)
    assert not np.array_equal(load_dataset("xor", seed=4, normalize="none").x_train, ds.x_train)


def test_parity_labels_count_the_plus_ones() -> None:
    ds = load_dataset("parity", seed=0, normalize="none", options={"bits": 5, "n": 400})
    assert (ds.n_train, ds.n_test, ds.n_features, ds.n_outputs) == (400, 100, 5, 2)
    assert set(np.unique(ds.x_train)) == {-1.0, 1.0}
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        expected = [sum(1 for v in row if v == 1.0) % 2 for row in x]
        np.testing.assert_array_equal(y, expected)


def test_teacher_linear_targets_are_x_times_the_teacher() -> None:
    n, n_in, n_out = 80, 6, 3
    options = {"n": n, "n_in": n_in, "n_out": n_out}
    ds = load_dataset("teacher_linear", seed=11, normalize="none", options=options)
    assert (ds.task, ds.n_features, ds.n_outputs) == ("regression", n_in, n_out)
    assert ds.y_train.dtype == np.float64 and ds.y_train.shape == (n, n_out)
    # regenerate by the documented draw order: T, then train (x, noise), then test (x, noise)
    rng = np.random.default_rng(11)
    teacher = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out))
    x_train = rng.standard_normal((n, n_in))
    rng.standard_normal((n, n_out))
    x_test = rng.standard_normal((n // 4, n_in))
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_allclose(ds.y_train, x_train @ teacher, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.y_test, x_test @ teacher, rtol=1e-12, atol=1e-12)
    # independent of the draw order: one linear map fits both splits exactly
    fitted = np.linalg.lstsq(ds.x_train, ds.y_train, rcond=None)[0]
    np.testing.assert_allclose(ds.x_test @ fitted, ds.y_test, atol=1e-10)


def test_teacher_nonlinear_and_noise() -> None:
    clean = load_dataset("teacher_nonlinear", seed=2, normalize="none", options={"n": 2000})
    noisy = load_dataset("teacher_nonlinear", seed=2, normalize="none",
                         options={"n": 2000, "noise": 0.5})
    assert (clean.n_features, clean.n_outputs, clean.n_test) == (10, 5, 500)
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    assert abs(np.std(noisy.y_train - clean.y_train) - 0.5) < 0.02
    # the tanh layer makes the targets nonlinear in x: the best linear fit leaves a residual
    fitted = np.linalg.lstsq(clean.x_train, clean.y_train, rcond=None)[0]
    assert np.abs(clean.x_test @ fitted - clean.y_test).max() > 1e-3


# --- IDX files -------------------------------------------------------------------------------


def idx_bytes(type_code: int, array: np.ndarray, big_endian_dtype: str) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(big_endian_dtype).tobytes()


def test_read_idx_reads_images_labels_and_other_types(tmp_path: Path) -> None:
    images = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    floats = np.array([[1.5, -2.0], [3.25, 1e6]], dtype=np.float32)
    (tmp_path / "images.gz").write_bytes(gzip.compress(idx_bytes(0x08, images, "u1")))
    (tmp_path / "labels").write_bytes(idx_bytes(0x08, labels, "u1"))
    (tmp_path / "floats").write_bytes(idx_bytes(0x0D, floats, ">f4"))
    raw = idx_bytes(0x08, images, "u1")
    assert int.from_bytes(raw[:4], "big") == 2051
    assert int.from_bytes(idx_bytes(0x08, labels, "u1")[:4], "big") == 2049
    np.testing.assert_array_equal(read_idx(tmp_path / "images.gz"), images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "labels")), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "floats"), floats)
    assert read_idx(tmp_path / "images.gz").dtype == np.uint8
    assert read_idx(tmp_path / "floats").dtype == np.dtype("=f4")


def test_read_idx_rejects_bad_files_naming_the_path(tmp_path: Path) -> None:
    good = idx_bytes(0x08, np.zeros((4, 28, 28), np.uint8), "u1")
    cases = {
        "truncated": (good[:-10], "truncated or padded"),
        "short-header": (good[:9], "truncated IDX header"),
        "bad-magic.gz": (gzip.compress(b"\x12\x34" + good[2:]), "not an IDX file"),
        "cut.gz": (gzip.compress(good)[:-12], "corrupt or truncated gzip"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=message) as info:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "absent")


def test_read_idx_checks_magic_and_size_of_plain_and_gzip_files(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    good = idx_bytes(0x08, labels, "u1")
    cases = {
        "wrong-magic": (b"\x00\x00\x07\x01" + good[4:], "not an IDX file (magic number 1793"),
        "wrong-magic.gz": (gzip.compress(b"\x08\x08" + good[2:]), "not an IDX file"),
        "short.gz": (gzip.compress(good[:-3]), "promises shape (10,) (18 bytes uncompressed) "
                                               "but it holds only 15 bytes"),
        "padded.gz": (gzip.compress(good + b"\0" * 100_000), "but it holds more than that"),
        "padded": (good + b"\0", "promises shape (10,) (18 bytes) but it holds 19 bytes"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=re.escape(message)):
            read_idx(tmp_path / name)
    (tmp_path / "good.gz").write_bytes(gzip.compress(good))
    np.testing.assert_array_equal(read_idx(tmp_path / "good.gz", shape=(10,)), labels)
    with pytest.raises(DataError, match=re.escape("promises shape (10,), expected (60000,)")):
        read_idx(tmp_path / "good.gz", shape=(60000,))


@pytest.mark.skipif(sys.platform != "linux", reason="caps the child's memory with RLIMIT_AS")
def test_read_idx_reads_no_more_than_the_header_promises(tmp_path: Path) -> None:
    """A file far larger than its header says fails at once, without reading it into memory."""
    huge = tmp_path / "huge"
    huge.write_bytes(idx_bytes(0x08, np.zeros(10, np.uint8), "u1"))
    os.truncate(huge, 1 << 36)  # 64 GiB, sparse
    # In a child process whose address space is capped at 4 GiB, so that reading the file
    # whole fails with MemoryError there instead of exhausting this machine's memory.
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 32, 1 << 32))\n"
            "from circuits.idx import read_idx\nfrom circuits.errors import DataError\n"
            "try:\n    read_idx(sys.argv[1])\nexcept DataError as exc:\n    print(exc)")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", code, str(huge)], capture_output=True,
                           text=True, env=env, check=False)
    assert child.returncode == 0 and child.stderr == "", child.stderr
    assert child.stdout.strip() == (f"{huge}: IDX file truncated or padded: its header promises "
                                    "shape (10,) (18 bytes) but it holds 68719476736 bytes; "
                                    "replace it")
    # a header promising far more than a small gzip file holds: no allocation of the promise
    promise = bytes([0, 0, 0x08, 2]) + np.array([1 << 31, 1 << 31], ">u4").tobytes()
    (tmp_path / "promise.gz").write_bytes(gzip.compress(promise + b"\0" * 64))
    with pytest.raises(DataError, match="but it holds only 76 bytes"):
        read_idx(tmp_path / "promise.gz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_read_idx_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block forever
    for path in (tmp_path / "fifo", tmp_path):
        with pytest.raises(DataError, match="not a regular file"):
            read_idx(path)


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Uncompressed IDX files of the official shapes (plain files carry no MD5 check)."""
    folder = tmp_path_factory.mktemp("fake") / "mnist"
    folder.mkdir()
    for name, n in (("train", 60000), ("t10k", 10000)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n) % 251
        (folder / f"{name}-images-idx3-ubyte").write_bytes(idx_bytes(0x08, images, "u1"))
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{name}-labels-idx1-ubyte").write_bytes(idx_bytes(0x08, labels, "u1"))
    return folder


def test_split_layouts_of_data_dir_and_circuits_data(fake_mnist: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both point at the folder holding the four files, or at a parent with mnist/ inside."""
    def check(ds: Dataset) -> None:
        assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)
        assert ds.x_train[:, 0].tolist() == [0, 1, 2, 3, 4] and ds.y_test.tolist() == [0, 1, 2]

    for folder in (fake_mnist, fake_mnist.parent):
        check(load_dataset("mnist", seed=0, data_dir=folder, n_train=5, n_test=3,
                           normalize="none"))
        monkeypatch.setenv("CIRCUITS_DATA", str(folder))
        check(load_dataset("mnist", seed=0, n_train=5, n_test=3, normalize="none"))
        assert locate_split("mnist").folder == fake_mnist
        monkeypatch.delenv("CIRCUITS_DATA")


def test_split_names_what_is_wrong_with_each_file(fake_mnist: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    shutil.copytree(fake_mnist, folder)
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.unlink()
    with pytest.raises(DataError) as info:
        read_idx_split("mnist", data_dir=tmp_path, download=True)
    assert str(info.value).startswith(
        f"mnist: t10k-labels-idx1-ubyte.gz not found in {folder} (task.data_dir); ")
    labels.write_bytes(idx_bytes(0x08, np.zeros(9999, np.uint8), "u1"))
    with pytest.raises(DataError, match=re.escape("promises shape (9999,), expected (10000,)")):
        read_idx_split("mnist", data_dir=tmp_path, download=False)
    labels.unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(0x08, np.zeros(10000, np.uint8), "u1")))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: MD5 \w+ does not match "
                                        r"the published ec29112dd5afa0611ce80d1b7f02629c of mnist"):
        read_idx_split("mnist", data_dir=folder, download=False)


# --- MNIST and Fashion-MNIST -----------------------------------------------------------------


def test_mnist_from_the_shared_folder(mnist_raw: Dataset) -> None:
    ds = mnist_raw
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float64 and ds.x_train.min() == 0 and ds.x_train.max() == 255
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(ds.y_test).tolist() == MNIST_TEST_COUNTS


def test_mnist_n_train_and_folder_forms(mnist_raw: Dataset) -> None:
    folder = needs_shared_data("mnist")
    small = load_dataset("mnist", seed=0, data_dir=folder, n_train=1000, n_test=200,
                         normalize="unit", download=False)
    assert small.x_train.shape == (1000, 784) and small.x_test.shape == (200, 784)
    np.testing.assert_array_equal(small.x_train, mnist_raw.x_train[:1000] / 255.0)
    np.testing.assert_array_equal(small.y_test, mnist_raw.y_test[:200])
    standard = load_dataset("mnist", seed=0, data_dir=folder, n_train=1000, n_test=200)
    assert np.all(np.isfinite(standard.x_test))


def test_circuits_data_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_shared_data("fashion-mnist")
    monkeypatch.setenv("CIRCUITS_DATA", str(SHARED_DATA))
    ds = load_dataset("fashion-mnist", seed=0, n_train=1000, normalize="none", download=False)
    assert ds.x_train.shape == (1000, 784) and ds.n_test == 10000
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_a_file_of_the_wrong_data_set_fails_its_md5() -> None:
    folder = needs_shared_data("mnist")
    with pytest.raises(DataError, match=r"does not match .* of fashion-mnist \(it is a mnist file\)"):
        load_dataset("fashion-mnist", seed=0, data_dir=folder, download=False)


def test_missing_files_say_where_and_how_to_fix(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist", seed=0, data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value) and "task.data_dir" in str(info.value)
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CIRCUITS_OFFLINE")
    assert data_home() == tmp_path / "cache"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", seed=0, download=False)
    assert str(info.value) == (
        f"mnist: train-images-idx3-ubyte.gz not found in {tmp_path / 'cache' / 'mnist'} and "
        "downloads are disabled; set task.data_dir or $CIRCUITS_DATA to a folder holding "
        "the four mnist IDX files")
    monkeypatch.setenv("CIRCUITS_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", seed=0)
    assert str(info.value) == (
        f"mnist: train-images-idx3-ubyte.gz not found in {tmp_path / 'data' / 'mnist'} or "
        f"{tmp_path / 'data'} (the four files directly) ($CIRCUITS_DATA); set task.data_dir "
        "or $CIRCUITS_DATA to a folder holding the four mnist IDX files")


def test_offline_variable_disables_downloads(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """$CIRCUITS_OFFLINE (set by conftest for every test) wins over download=True."""
    assert downloads_disabled()
    monkeypatch.setattr("circuits.idx._download", _no_download)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", seed=0, download=True)
    assert str(info.value).startswith(
        f"mnist: train-images-idx3-ubyte.gz not found in {tmp_path / 'cache' / 'mnist'} and "
        "downloads are disabled ($CIRCUITS_OFFLINE is set); ")
    for value, disabled in (("0", False), ("", False), ("yes", True)):
        monkeypatch.setenv("CIRCUITS_OFFLINE", value)
        assert downloads_disabled() is disabled


def test_tests_cannot_reach_the_network() -> None:
    """conftest's guard: only file: URLs open, whatever circuits or a library tries."""
    with pytest.raises(AssertionError, match="tests must not use the network"):
        urllib.request.urlopen("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert os.environ["CIRCUITS_OFFLINE"] == "1"


def _no_download(*args: object) -> None:
    raise AssertionError("a download was attempted")


def test_download_checks_md5_and_reports_every_mirror(tmp_path: Path) -> None:
    source = needs_shared_data("mnist")
    mirror = source.as_uri() + "/"
    name = "train-labels-idx1-ubyte.gz"
    target = _download("mnist", name, MNIST_LABELS_MD5, tmp_path / "dl", (mirror,))
    assert target == tmp_path / "dl" / name
    assert target.read_bytes() == (source / name).read_bytes()
    assert [p.name for p in target.parent.iterdir()] == [name]  # no partial file left behind
    with pytest.raises(DataError) as info:
        _download("mnist", name, "0" * 32, tmp_path / "bad",
                  ((tmp_path / "void").as_uri() + "/", mirror))
    assert "could not be downloaded" in str(info.value) and f"MD5 {MNIST_LABELS_MD5}" in str(info.value)
    assert not (tmp_path / "bad").exists()


def test_cached_files_are_used_without_download(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = needs_shared_data("mnist")
    shutil.copytree(source, tmp_path / "cache" / "mnist")
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("mnist", seed=0, n_train=10, n_test=10, download=False)
    assert ds.x_train.shape == (10, 784)
