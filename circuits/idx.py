"""IDX files (MNIST and Fashion-MNIST): reading, MD5 checks and a download cache.

:func:`read_idx` reads one IDX file, gzip-compressed or plain, reading no more than its header
promises. :func:`locate_split` finds the folder of a data set's four files (the folder given,
``$CIRCUITS_DATA``, or the cache :func:`data_home`); :func:`read_idx_split` reads them, checks
them against their published MD5s and shapes, and downloads missing ones into the cache unless
downloads are disabled (``download=False`` or ``$CIRCUITS_OFFLINE``). :mod:`circuits.data`
registers the data sets built on it.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pathlib
import stat
import urllib.request
import zlib
from typing import BinaryIO

import attrs
import numpy as np

from circuits.errors import DataError

__all__ = ["IDX_FILES", "SplitLocation", "data_home", "downloads_disabled", "locate_split",
           "read_idx", "read_idx_split"]

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_SHAPES = ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
# Published MD5s of the four gzip files, in the order of IDX_FILES.
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
_CHUNK = 1 << 20
OFFLINE_VARIABLE = "CIRCUITS_OFFLINE"


def data_home() -> pathlib.Path:
    """The download cache: ``$CIRCUITS_CACHE`` if set, else ``~/.cache/circuits``."""
    cache = os.environ.get("CIRCUITS_CACHE")
    return pathlib.Path(cache).expanduser() if cache else pathlib.Path.home() / ".cache/circuits"


def downloads_disabled() -> bool:
    """Whether ``$CIRCUITS_OFFLINE`` forbids downloads (set and not ``""`` or ``"0"``).

    The test suite sets it, so that no test can reach the network.
    """
    return os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0")


def read_idx(path: str | os.PathLike[str], *,
             shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain, as an array of shape ``(n, *dims)``.

    Magic 2051 gives uint8 images ``(n, rows, cols)``, 2049 uint8 labels ``(n,)``; the other
    IDX element types come back in native byte order. The header is checked before the
    payload is read, and no more bytes are read than it promises (plus one, to see that the
    file ends there), so a huge or endless file costs no memory.

    Parameters
    ----------
    path
        The file.
    shape
        If given, the shape the header must promise.

    Raises
    ------
    DataError
        If the file cannot be read, is not IDX, promises another shape, or holds fewer or more
        bytes than its header promises; the message names the path.
    """
    path = pathlib.Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
            raise DataError(f"{path}: not a regular file; give the path of an IDX file")
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_stream(stream, path, shape, None)
            return _read_stream(raw, path, shape, os.fstat(raw.fileno()).st_size)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); "
                        "replace or delete the file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None


def _read_stream(stream: BinaryIO, path: pathlib.Path, shape: tuple[int, ...] | None,
                 file_size: int | None) -> np.ndarray:
    """Check the IDX header of ``stream``, then read exactly the payload it promises.

    ``file_size`` (plain files) lets a size mismatch be caught before reading the payload.
    """
    magic = _read_exactly(stream, 4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic number {int.from_bytes(magic, 'big')}"
                        "; expected e.g. 2051 for images, 2049 for labels)")
    ndim, header = magic[3], 4 + 4 * magic[3]
    raw_dims = _read_exactly(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(raw_dims)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, ">u4"))
    if shape is not None and dims != tuple(shape):
        raise DataError(f"{path}: its IDX header promises shape {dims}, expected {tuple(shape)}; "
                        "replace the file")
    dtype = np.dtype(_IDX_DTYPES[magic[2]])
    size = header + math.prod(dims) * dtype.itemsize
    if file_size is not None and file_size != size:
        raise DataError(f"{path}: IDX file truncated or padded: its header promises shape "
                        f"{dims} ({size} bytes) but it holds {file_size} bytes; replace it")
    payload = _read_exactly(stream, size - header)
    extra = stream.read(1)
    if len(payload) != size - header or extra:
        held = "more than that" if extra else f"only {header + len(payload)} bytes"
        raise DataError(f"{path}: IDX file truncated or padded: its header promises shape "
                        f"{dims} ({size} bytes uncompressed) but it holds {held}; replace it")
    array = np.frombuffer(payload, dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes, read in chunks so memory follows what the file really holds."""
    parts, left = [], count
    while left > 0:
        part = stream.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


@attrs.frozen
class SplitLocation:
    """Where the four IDX files of a data set are looked for.

    ``folder`` is the first candidate holding any of them (``None`` if none does);
    ``candidates`` are the folders looked in, in order; ``source`` says where they came from
    (``task.data_dir``, ``$CIRCUITS_DATA`` or the cache) and ``downloadable`` whether missing
    files may be fetched into the first candidate.
    """

    name: str
    candidates: tuple[pathlib.Path, ...]
    source: str
    folder: pathlib.Path | None
    downloadable: bool

    def describe(self) -> str:
        """The folders looked in, e.g. ``/d/mnist or /d (the four files directly) ($CIRCUITS_DATA)``."""
        if len(self.candidates) == 1:
            return f"{self.candidates[0]} ({self.source})"
        inner, outer = self.candidates
        return f"{inner} or {outer} (the four files directly) ({self.source})"


def locate_split(name: str, data_dir: pathlib.Path | None = None) -> SplitLocation:
    """Find the folder of ``name``'s four IDX files without reading them.

    1. ``data_dir/<name>/`` or ``data_dir`` itself, when ``data_dir`` is given;
    2. else ``$CIRCUITS_DATA/<name>/`` or ``$CIRCUITS_DATA`` itself, when the variable is set;
    3. else the cache ``data_home()/<name>/``, the only folder missing files are downloaded into.

    Of two candidates, the first holding any of the four files (``.gz`` or uncompressed) wins.
    """
    env = os.environ.get("CIRCUITS_DATA")
    if data_dir is not None:
        base, source = pathlib.Path(data_dir).expanduser(), "task.data_dir"
    elif env:
        base, source = pathlib.Path(env).expanduser(), "$CIRCUITS_DATA"
    else:
        folder = data_home() / name
        found = folder if any(_find_file(folder, f) for f in IDX_FILES) else None
        return SplitLocation(name, (folder,), "the download cache", found, True)
    candidates = (base / name, base)
    found = next((c for c in candidates if any(_find_file(c, f) for f in IDX_FILES)), None)
    return SplitLocation(name, candidates, source, found, False)


def _find_file(folder: pathlib.Path, filename: str) -> pathlib.Path | None:
    """``folder/filename`` (gzip) or its uncompressed twin, if either is a regular file."""
    return next((p for p in (folder / filename, folder / filename[:-3]) if p.is_file()), None)


def read_idx_split(name: str, *, data_dir: pathlib.Path | None,
                   download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the official 60k/10k split of ``name`` (``"mnist"`` or ``"fashion-mnist"``).

    1. Folder: see :func:`locate_split`.
    2. Each file is ``<file>.gz`` (MD5-checked) or the uncompressed ``<file>`` (unchecked);
       missing files are downloaded into the cache if ``download`` and not
       :func:`downloads_disabled`.
    3. Headers must promise the official shapes; nothing else is read.

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
    where = locate_split(name, data_dir)
    folder = where.folder or where.candidates[0]
    fix = f"set task.data_dir or $CIRCUITS_DATA to a folder holding the four {name} IDX files"
    offline = downloads_disabled()
    arrays = []
    for filename, shape, md5 in zip(IDX_FILES, _IDX_SHAPES, _IDX_MD5[name]):
        path = _find_file(folder, filename)
        if path is None and not where.downloadable:
            looked = where.describe() if where.folder is None else f"{folder} ({where.source})"
            raise DataError(f"{name}: {filename} not found in {looked}; {fix}")
        if path is None and (offline or not download):
            why = f" (${OFFLINE_VARIABLE} is set)" if offline else ""
            raise DataError(f"{name}: {filename} not found in {folder} and downloads are "
                            f"disabled{why}; {fix}")
        path = path or _download(name, filename, md5, folder)
        array = read_idx(path, shape=shape)  # first: it reads no more than the header promises
        digest = _md5_file(path) if path.suffix == ".gz" else md5  # plain files: no published sums
        if digest != md5:
            other = [n for n, sums in _IDX_MD5.items() if digest in sums]
            raise DataError(f"{path}: MD5 {digest} does not match the published {md5} of "
                            f"{name}" + (f" (it is a {other[0]} file)" if other else "")
                            + "; replace it with the official file or delete it")
        if array.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 {shape} for {name}, "
                            f"got {array.dtype} {array.shape}")
        arrays.append(array)
    x_train, y_train, x_test, y_test = arrays
    return x_train, y_train, x_test, y_test


def _md5(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def _md5_file(path: pathlib.Path) -> str:
    """MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    return digest.hexdigest()
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
