"""CIFAR-10 from its standard binary batches (``cifar-10-binary.tar.gz``, "CIFAR-10 binary version").

Users download the archive from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it;
circuits ships no CIFAR data and never downloads it. The folder holding the six files
``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin`` is looked for at

1. ``task.data_dir/cifar-10-batches-bin``, then ``task.data_dir`` itself, when given;
2. else ``$CIRCUITS_DATA/cifar-10-batches-bin``, then ``$CIRCUITS_DATA`` itself.

Each record is one label byte (0–9) and 3,072 pixel bytes: the red, green and blue 32×32
planes, row by row. That is channel-major order, so an input population with
``shape = [3, 32, 32]`` sees each image as its three maps. The 50,000 training images are the
five batches in order, the 10,000 test images the test batch; pixels are 0–255
(``normalize = "unit"`` divides by 255).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from circuits.data.registry import Dataset, DatasetInfo, DatasetRegistry, _require

__all__ = ["register_cifar", "CIFAR_FILES", "RECORD_BYTES", "read_cifar_batch"]

CIFAR_FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{k}.bin" for k in range(1, 6))
TEST_FILE = "test_batch.bin"
CIFAR_FILES = (*TRAIN_FILES, TEST_FILE)
RECORD_BYTES = 1 + 3 * 32 * 32


def _folder(data_dir: pathlib.Path | None) -> pathlib.Path:
    """The first candidate folder holding ``test_batch.bin``, or a :class:`DataError` naming them all."""
    env = os.environ.get("CIRCUITS_DATA")
    base = data_dir if data_dir is not None else (pathlib.Path(env).expanduser() if env else None)
    source = "task.data_dir" if data_dir is not None else "$CIRCUITS_DATA"
    _require(base is not None, "cifar10",
             "set task.data_dir (or $CIRCUITS_DATA) to the folder of the CIFAR-10 binary batches "
             "(cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked); "
             "circuits does not download it")
    candidates = (pathlib.Path(base) / CIFAR_FOLDER, pathlib.Path(base))
    for folder in candidates:
        if (folder / TEST_FILE).is_file():
            return folder
    _require(False, "cifar10", f"{TEST_FILE} is in neither {candidates[0]} nor {candidates[1]} ({source}); "
             "unpack cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html there")
    raise AssertionError("unreachable")  # _require raised


def read_cifar_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3072)`` as uint8 (channel-major) and labels ``(n,)`` as int64 of one batch file.

    Raises
    ------
    DataError
        When the file is missing, its size is not a whole number of records, or a label is not 0–9.
    """
    _require(path.is_file(), "cifar10", f"{path.name} is missing from {path.parent}")
    raw = np.fromfile(path, dtype=np.uint8)
    _require(raw.size > 0 and raw.size % RECORD_BYTES == 0, "cifar10",
             f"{path} holds {raw.size} bytes, not a whole number of {RECORD_BYTES}-byte records "
             "(is it a CIFAR-10 binary batch?)")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    _require(int(labels.max()) <= 9, "cifar10", f"{path} has label {int(labels.max())}; CIFAR-10 labels are 0-9 "
             "(is it a CIFAR-100 file?)")
    return records[:, 1:], labels


def _load_cifar10(*, seed: int, data_dir: pathlib.Path | None, download: bool) -> Dataset:
    """The official 50k/10k split in file order (``seed`` and ``download`` are unused)."""
    folder = _folder(data_dir)
    train = [read_cifar_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_cifar_batch(folder / TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Dataset("cifar10", "classification", x_train, y_train, x_test, y_test, 10)


def register_cifar(registry: DatasetRegistry) -> None:
    """Add ``cifar10`` to ``registry``."""
    registry.register(DatasetInfo(
        "cifar10", "classification", "CIFAR-10, 32x32 colour images (3 maps), official 50k/10k split, "
        "from the binary batches in task.data_dir", {}, n_features=3072, n_outputs=10, pixel_max=255.0,
        sizes=lambda o: (60000, 3072, 1)), _load_cifar10)
