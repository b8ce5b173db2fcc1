"""The user's own data: ``.npz`` archives and CSV tables (data sets ``npz`` and ``csv``).

A spec names the file with ``task.path``, relative to the spec's folder (the spec reader
makes it absolute, so a run's saved ``spec.toml`` still finds it)::

    [task]
    dataset = "npz"
    path = "my_data.npz"          # x_train, y_train, x_test, y_test; optional x_val, y_val

    [task]
    dataset = "csv"
    path = "train.csv"            # a header row; the column task.label holds the labels
    label = "species"             # default "label"
    test_path = "test.csv"        # optional; else options.test_fraction of the rows, drawn by the seed

Everything is checked before training, each problem in one line that names the file, the
array (or row and column) and the fix: missing or unexpected arrays, shapes, dtypes, NaN and
infinite values, label ranges. Labels decide the task: integers are classes ``0..k-1`` (a
CSV column of words is classes too, numbered in sorted order), other numbers are regression
targets (an ``npz`` ``y`` of shape ``(n, k)`` gives ``k`` targets).
"""

from __future__ import annotations

import csv
import math
import pathlib
import zipfile

import numpy as np

from circuits.data.registry import Dataset, DatasetInfo, DatasetRegistry
from circuits.errors import DataError, did_you_mean

__all__ = ["register_files", "load_npz", "load_csv", "dataset_from_arrays", "NPZ_ARRAYS"]

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
"""The arrays an ``npz`` file may hold; the first four are required."""
_SAVE_HINT = "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def _fail(where: object, message: str) -> DataError:
    return DataError(f"{where}: {message}")


def _check_x(where: object, name: str, x: np.ndarray) -> np.ndarray:
    """Inputs as ``(n, features)``: numeric, finite; images ``(n, h, w, …)`` are flattened."""
    if x.dtype.kind not in "biuf":
        raise _fail(where, f"array '{name}' has dtype {x.dtype}; inputs must be numbers "
                           "(convert with x.astype(np.float32))")
    if x.ndim < 2:
        raise _fail(where, f"array '{name}' has shape {x.shape}; inputs must be (examples, features): "
                           "for one feature save x.reshape(-1, 1)")
    x = x.reshape(len(x), int(np.prod(x.shape[1:])))
    _check_finite(where, name, x)
    return x


def _check_finite(where: object, name: str, values: np.ndarray) -> None:
    if values.dtype.kind != "f":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(values[tuple(first)]) else "infinite"
        at = f"row {first[0]}" + (f", column {first[1]}" if len(first) > 1 else "")
        raise _fail(where, f"array '{name}' holds {int(bad.sum())} NaN or infinite values "
                           f"(the first, {kind}, at {at}); drop or fill them before saving")


def _check_y(where: object, name: str, y: np.ndarray, n: int) -> np.ndarray:
    """Labels ``(n,)`` (integers ≥ 0) or regression targets ``(n,)``/``(n, k)`` (floats)."""
    if y.dtype.kind not in "biuf":
        raise _fail(where, f"array '{name}' has dtype {y.dtype}; labels must be integers "
                           "(classes) or floats (regression targets)")
    if y.ndim == 0 or len(y) != n:
        raise _fail(where, f"array '{name}' has {len(y) if y.ndim else 'no'} rows but its inputs have {n}; "
                           "save one label (or target row) per example")
    if y.dtype.kind in "biu":
        if y.ndim != 1:
            raise _fail(where, f"array '{name}' holds integer labels of shape {y.shape}; class "
                               "labels are one per example, shape (n,) (not one-hot)")
        if len(y) and y.min() < 0:
            row = int(np.flatnonzero(y < 0)[0])
            raise _fail(where, f"array '{name}' has label {y[row]} at row {row}; class labels "
                               "must be 0, 1, 2, …")
        return y.astype(np.int64)
    if y.ndim > 2:
        raise _fail(where, f"array '{name}' has shape {y.shape}; regression targets are (n,) or (n, k)")
    _check_finite(where, name, y)
    if y.ndim == 1 and len(y) and bool(np.all(y == np.round(y))):
        raise _fail(where, f"array '{name}' holds whole numbers as {y.dtype}; save class labels "
                           "as integers (y.astype(np.int64)), or regression targets as shape (n, 1)")
    return y.reshape(len(y), -1).astype(np.float64)


def dataset_from_arrays(name: str, where: object, x_train: object, y_train: object,
                        x_test: object, y_test: object, x_val: object = None,
                        y_val: object = None) -> Dataset:
    """A checked, unnormalized :class:`Dataset` from arrays (what the ``npz`` set reads).

    Parameters
    ----------
    name
        The data set's name.
    where
        What errors name first: a file, or ``"data"``.
    x_train, y_train, x_test, y_test, x_val, y_val
        Array-likes; inputs ``(n, features…)``, labels ``(n,)`` integers or targets ``(n, k)``.

    Raises
    ------
    DataError
        One line naming ``where``, the array and the fix.
    """
    if (x_val is None) != (y_val is None):
        given, missing = ("x_val", "y_val") if y_val is None else ("y_val", "x_val")
        raise _fail(where, f"'{given}' is given without '{missing}'; give both or neither")
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if x_val is not None:
        arrays.update(x_val=x_val, y_val=y_val)
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    splits = [("train", "x_train", "y_train"), ("test", "x_test", "y_test")]
    splits += [("val", "x_val", "y_val")] if x_val is not None else []
    checked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, xn, yn in splits:
        x = _check_x(where, xn, arrays[xn])
        if not len(x) and split != "val":
            raise _fail(where, f"array '{xn}' is empty; the {split} split needs examples")
        checked[split] = (x, _check_y(where, yn, arrays[yn], len(x)))
    width = checked["train"][0].shape[1]
    kinds = {split: ("classes" if y.dtype.kind == "i" else "targets") for split, (_, y) in checked.items()}
    for split, (x, y) in checked.items():
        if x.shape[1] != width:
            raise _fail(where, f"array 'x_{split}' has {x.shape[1]} features but 'x_train' has {width}; "
                               "every split needs the same features")
        if kinds[split] != kinds["train"]:
            raise _fail(where, f"array 'y_{split}' holds {kinds[split]} but 'y_train' holds "
                               f"{kinds['train']} ({y.dtype} vs {checked['train'][1].dtype}); use one dtype")
        if y.ndim == 2 and y.shape[1] != checked["train"][1].shape[1]:
            raise _fail(where, f"array 'y_{split}' has {y.shape[1]} targets per row but 'y_train' "
                               f"has {checked['train'][1].shape[1]}")
    y_all = [y for _, y in checked.values()]
    if kinds["train"] == "classes":
        task, n_outputs = "classification", int(max(int(y.max(initial=0)) for y in y_all)) + 1
    else:
        task, n_outputs = "regression", int(y_all[0].shape[1])
    valid = checked.get("val", (None, None))
    return Dataset(name, task, *checked["train"], *checked["test"], max(n_outputs, 1), *valid)


def _file(path: object, key: str, dataset: str) -> pathlib.Path:
    if path is None:
        raise DataError(f"data set '{dataset}': task.{key} is required; give the file, relative "
                        "to the spec's folder")
    file = pathlib.Path(str(path)).expanduser()
    if not file.is_file():
        raise DataError(f"task.{key}: no such file {file}; paths are relative to the spec's folder")
    return file


def load_npz(*, path: object, test_path: object = None, label: object = None,
             **_unused: object) -> Dataset:
    """Read ``x_train, y_train, x_test, y_test`` (and optionally ``x_val, y_val``) from ``path``.

    Raises
    ------
    DataError
        The file is missing or not an ``.npz`` archive, an array is missing, unexpected or
        holds Python objects, or :func:`dataset_from_arrays` refuses the arrays.
    """
    file = _file(path, "path", "npz")
    for key, value in (("test_path", test_path), ("label", label)):
        if value is not None:
            raise DataError(f"task.{key} is for csv files; an npz file holds its own test split "
                            "(x_test, y_test): remove task." + key)
    if not zipfile.is_zipfile(file):
        raise _fail(file, f"cannot read as .npz (not a zip archive of .npy arrays); {_SAVE_HINT}")
    try:
        with np.load(file, allow_pickle=False) as archive:
            names = list(archive.files)
            for name in names:
                if name not in NPZ_ARRAYS:
                    raise _fail(file, f"unexpected array '{name}'{did_you_mean(name.lower(), NPZ_ARRAYS)}; an npz "
                                      f"data set holds {', '.join(NPZ_ARRAYS[:4])} (optional x_val, y_val)")
            for name in NPZ_ARRAYS[:4]:
                if name not in names:
                    raise _fail(file, f"no array '{name}' (it holds {', '.join(names) or 'none'}); "
                                      + _SAVE_HINT)
            arrays = {name: archive[name] for name in names}
    except DataError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise _fail(file, "an array holds Python objects; save numeric arrays only") from None
        raise _fail(file, f"cannot read as .npz ({exc}); {_SAVE_HINT}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(file, f"cannot read as .npz ({exc}); {_SAVE_HINT}") from None
    return dataset_from_arrays("npz", file, **arrays)


def _read_table(file: pathlib.Path, label: str) -> tuple[np.ndarray, list[str], list[tuple[int, str]]]:
    """Features (float64), their column names and (line, text) of each label, checked cell by cell."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise _fail(file, "not UTF-8 text; save the table as UTF-8 CSV") from None
    except csv.Error as exc:
        raise _fail(file, f"not a CSV table ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise _fail(file, "no header row; the first line must name the columns")
    header = [cell.strip() for cell in rows[0]]
    if label not in header:
        raise _fail(file, f"no column '{label}' for the labels (columns: {', '.join(header)})"
                          f"{did_you_mean(label, header)}; set task.label to the label column")
    if len(header) < 2:
        raise _fail(file, f"only the label column '{label}'; the other columns are the features")
    at = header.index(label)
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        raise _fail(file, "no data rows below the header")
    features = np.empty((len(body), len(header) - 1))
    labels = []
    for i, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise _fail(file, f"line {line} has {len(row)} cells but the header has {len(header)}")
        labels.append((line, row[at].strip()))
        for j, cell in enumerate(row[:at] + row[at + 1:]):
            column = header[j if j < at else j + 1]
            try:
                value = float(cell)
            except ValueError:
                raise _fail(file, f"line {line}, column '{column}': {cell.strip()!r} is not a number; "
                                  "features must be numbers (encode categories as numbers)") from None
            if not math.isfinite(value):
                raise _fail(file, f"line {line}, column '{column}': {cell.strip() or 'empty'} "
                                  "is missing or not finite; drop or fill it") from None
            features[i, j] = value
    return features, [h for h in header if h != label], labels


def _labels(file: pathlib.Path, label: str, cells: list[tuple[int, str]],
            classes: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Integer classes, sorted class names, or float targets, from the label column's text."""
    lines, texts = [line for line, _ in cells], [text for _, text in cells]
    for line, text in cells:
        if not text:
            raise _fail(file, f"line {line}, column '{label}': the label is empty; every row needs one")
    try:
        numbers = [float(t) for t in texts]
    except ValueError:
        numbers = None
    if numbers is None or classes is not None:
        names = classes if classes is not None else sorted(set(texts))
        unknown = [t for t in texts if t not in names]
        if unknown:
            raise _fail(file, f"column '{label}': class '{unknown[0]}' is not among the training "
                              f"file's classes ({', '.join(names)})")
        return np.array([names.index(t) for t in texts], dtype=np.int64), names
    if any(not math.isfinite(v) for v in numbers):
        row = next(i for i, v in enumerate(numbers) if not math.isfinite(v))
        raise _fail(file, f"line {lines[row]}, column '{label}': {texts[row]!r} is not finite")
    if all(v == round(v) and "." not in t and "e" not in t.lower() for v, t in zip(numbers, texts)):
        values = np.array([int(t) for t in texts], dtype=np.int64)
        if values.min() < 0:
            row = int(np.flatnonzero(values < 0)[0])
            raise _fail(file, f"line {lines[row]}, column '{label}': class label {values[row]} is "
                              "negative; class labels are 0, 1, 2, …")
        return values, None
    return np.array(numbers, dtype=np.float64).reshape(-1, 1), None


def load_csv(*, seed: int, test_fraction: float, path: object, test_path: object = None,
             label: object = None, **_unused: object) -> Dataset:
    """Read a CSV table with a header; ``label`` names the label column, the rest are features.

    The test split is ``test_path`` (same columns) when given, else ``round(test_fraction · n)``
    rows drawn by ``default_rng(seed)`` (at least one, leaving at least one to train).

    Raises
    ------
    DataError
        A missing file or column, a row of the wrong length, a cell that is not a number, a
        missing value, test labels or columns that differ from the training file's.
    """
    file = _file(path, "path", "csv")
    column = "label" if label is None else str(label)
    x, names, texts = _read_table(file, column)
    y, classes = _labels(file, column, texts, None)
    if test_path is not None:
        test_file = _file(test_path, "test_path", "csv")
        x_test, test_names, test_texts = _read_table(test_file, column)
        if test_names != names:
            raise _fail(test_file, f"columns {', '.join(test_names)} differ from the training file's "
                                   f"{', '.join(names)}; use the same columns in the same order")
        y_test, _ = _labels(test_file, column, test_texts, classes)
        if (y_test.dtype.kind == "i") != (y.dtype.kind == "i"):
            raise _fail(test_file, f"column '{column}' holds {'classes' if y_test.dtype.kind == 'i' else 'numbers'} "
                                   f"but the training file's holds {'classes' if y.dtype.kind == 'i' else 'numbers'}")
    else:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"data set 'csv': option 'test_fraction' must be in (0, 1) (got {test_fraction})")
        if len(x) < 2:
            raise _fail(file, f"{len(x)} row; a test split needs at least 2 rows, or give task.test_path")
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = min(max(round(test_fraction * len(x)), 1), len(x) - 1)
        test, train = order[:n_test], order[n_test:]
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    return dataset_from_arrays("csv", file, x, y, x_test, y_test)


def register_files(registry: DatasetRegistry) -> None:
    """Add the ``npz`` and ``csv`` data sets to ``registry``."""
    registry.register(DatasetInfo(
        "npz", "classification", "your arrays: x_train, y_train, x_test, y_test (task.path)",
        {}, files=True), load_npz)
    registry.register(DatasetInfo(
        "csv", "classification", "your CSV table: task.label names the label column (task.path)",
        {"test_fraction": 0.2}, files=True), load_csv)
