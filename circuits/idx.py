"""IDX files (MNIST and Fashion-MNIST): reading, MD5 checks and a download cache.

:func:`read_idx` reads one IDX file, gzip-compressed or plain. :func:`read_idx_split` finds the
four files of a data set's official split (the folder given, ``$CIRCUITS_DATA``, or the cache
:func:`data_home`), checks them against their published MD5s and shapes, and downloads
missing ones into the cache. :mod:`circuits.data` registers the data sets built on it.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pathlib
import urllib.request
import zlib

import numpy as np

from circuits.errors import DataError

__all__ = ["data_home", "read_idx", "read_idx_split"]

_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_SHAPES = ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
# Published MD5s of the four gzip files, in the order of _IDX_FILES.
_IDX_MD5 = {
    "mnist": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
              "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
    "fashion-mnist": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                      "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
}
_IDX_MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
}
# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def data_home() -> pathlib.Path:
    """The download cache: ``$CIRCUITS_CACHE`` if set, else ``~/.cache/circuits``."""
    cache = os.environ.get("CIRCUITS_CACHE")
    return pathlib.Path(cache).expanduser() if cache else pathlib.Path.home() / ".cache/circuits"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain, as an array of shape ``(n, *dims)``.

    Magic 2051 gives uint8 images ``(n, rows, cols)``, 2049 uint8 labels ``(n,)``; the other
    IDX element types come back in native byte order.

    Raises
    ------
    DataError
        If the file cannot be read, is not IDX, or is truncated; the message names the path.
    """
    path = pathlib.Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    return _parse_idx(blob, path)


def _parse_idx(blob: bytes, path: pathlib.Path) -> np.ndarray:
    """Decompress ``blob`` if it is gzip, then check the IDX header and view the payload."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); "
                            "replace or delete the file") from None
    if len(blob) < 4 or blob[:2] != b"\0\0" or blob[2] not in _IDX_DTYPES or blob[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic number {int.from_bytes(blob[:4], 'big')}"
                        "; expected e.g. 2051 for images, 2049 for labels)")
    ndim, header = blob[3], 4 + 4 * blob[3]
    if len(blob) < header:
        raise DataError(f"{path}: truncated IDX header ({len(blob)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(blob, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[blob[2]])
    size = header + math.prod(dims) * dtype.itemsize
    if len(blob) != size:
        raise DataError(f"{path}: IDX file truncated or padded: its header promises shape "
                        f"{dims} ({size} bytes) but it holds {len(blob)} bytes; replace it")
    array = np.frombuffer(blob, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx_split(name: str, *, data_dir: pathlib.Path | None,
                   download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the official 60k/10k split of ``name`` (``"mnist"`` or ``"fashion-mnist"``).

    1. Folder: ``data_dir/<name>/`` or ``data_dir`` itself; else ``$CIRCUITS_DATA/<name>/``;
       else ``data_home()/<name>/``, the only folder that missing files are downloaded into.
    2. Each file is ``<file>.gz`` (MD5-checked) or the uncompressed ``<file>`` (unchecked).
    3. Shapes must be the official ones.

    Returns
    -------
    tuple of ndarray
        ``(x_train, y_train, x_test, y_test)`` in file order: uint8 images ``(n, 28, 28)``
        and uint8 labels ``(n,)``.

    Raises
    ------
    DataError
        Files missing (and not downloadable), corrupt, of another data set or of the wrong
        shape; the message says where it looked and how to fix it.
    """
    if data_dir is not None:
        folder = data_dir / name if (data_dir / name).is_dir() else data_dir
        where = f"{data_dir} or {data_dir / name} (task.data_dir)"
    elif os.environ.get("CIRCUITS_DATA"):
        folder = pathlib.Path(os.environ["CIRCUITS_DATA"]).expanduser() / name
        where = f"{folder} ($CIRCUITS_DATA/{name})"
    else:
        folder, where = data_home() / name, ""
    fix = f"set task.data_dir or $CIRCUITS_DATA to a folder holding the four {name} IDX files"
    arrays = []
    for filename, shape, md5 in zip(_IDX_FILES, _IDX_SHAPES, _IDX_MD5[name]):
        path = next((p for p in (folder / filename, folder / filename[:-3]) if p.is_file()), None)
        if path is None and where:
            raise DataError(f"{name}: {filename} not found in {where}; {fix}")
        if path is None and not download:
            raise DataError(f"{name}: {filename} not found in {folder} and downloads are "
                            f"disabled; {fix}")
        path = path or _download(name, filename, md5, folder)
        blob = path.read_bytes()
        digest = _md5(blob) if path.suffix == ".gz" else md5  # plain files: no published sums
        if digest != md5:
            other = [n for n, sums in _IDX_MD5.items() if digest in sums]
            raise DataError(f"{path}: MD5 {digest} does not match the published {md5} of "
                            f"{name}" + (f" (it is a {other[0]} file)" if other else "")
                            + "; replace it with the official file or delete it")
        array = _parse_idx(blob, path)
        if array.shape != shape or array.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 {shape} for {name}, "
                            f"got {array.dtype} {array.shape}")
        arrays.append(array)
    x_train, y_train, x_test, y_test = arrays
    return x_train, y_train, x_test, y_test


def _md5(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def _download(name: str, filename: str, md5: str, folder: pathlib.Path,
              mirrors: tuple[str, ...] | None = None) -> pathlib.Path:
    """Fetch ``filename`` into ``folder`` from the first mirror that serves the published MD5."""
    failures = []
    for base in mirrors or _IDX_MIRRORS[name]:
        url = base + filename
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                blob = response.read()
        except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
            failures.append(f"{url}: {exc}")
            continue
        digest = _md5(blob)
        if digest != md5:
            failures.append(f"{url}: MD5 {digest}, expected {md5}")
            continue
        target, part = folder / filename, folder / f".{filename}.{os.getpid()}.part"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            part.write_bytes(blob)
            os.replace(part, target)  # atomic: a concurrent reader never sees half a file
        except OSError as exc:
            raise DataError(f"{name}: cannot write {target} ({exc}); "
                            "set $CIRCUITS_CACHE to a writable folder") from None
        return target
    raise DataError(f"{name}: {filename} is missing from {folder} and could not be downloaded "
                    f"({'; '.join(failures)}); download the four {name} IDX files yourself "
                    "and set task.data_dir or $CIRCUITS_DATA to their folder")
