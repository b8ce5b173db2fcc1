"""The data-set registry: :class:`Dataset`, :class:`DatasetInfo`, :class:`DatasetRegistry`, batching.

A data set is loaded by name through a :class:`DatasetRegistry`; the default one,
:data:`circuits.data.DATASETS`, is filled in :mod:`circuits.data` by each source module.
:meth:`DatasetRegistry.load` runs in three stages:

1. the loader draws or reads the full train/test split, seeded by ``default_rng(seed)``;
2. ``n_train`` / ``n_test`` keep the first examples of each split;
3. inputs become float64 and are normalized with statistics of the kept training split only.

MNIST and Fashion-MNIST are read from IDX files by :mod:`circuits.idx`, which also keeps
their download cache.
"""

from __future__ import annotations

import os
import pathlib
import types
from collections.abc import Callable, Iterator, Mapping

import attrs
import numpy as np

from circuits.errors import DataError, did_you_mean

__all__ = ["Dataset", "DatasetInfo", "DatasetRegistry", "iterate_batches",
           "load_dataset"]

TASKS = ("classification", "regression")
NORMALIZATIONS = ("standard", "unit", "none")
# "standard" divides by max(std, _STD_FLOOR * RMS of the feature stds), so a pixel that is
# constant on the training split keeps its test values bounded instead of dividing by ~0.
_STD_FLOOR = 1e-2


@attrs.frozen(eq=False)
class Dataset:
    """A train/test split, ready to feed a circuit.

    After :meth:`DatasetRegistry.load`, inputs are float64, C-contiguous, read-only arrays of
    shape ``(n, n_features)``; classification targets are int64 labels ``(n,)`` in
    ``[0, n_outputs)``, regression targets float64 ``(n, n_outputs)``. A registered loader
    may return inputs in their storage dtype (e.g. uint8 pixels); ``load`` converts them.
    ``x_validation``/``y_validation`` hold the examples ``task.validation`` set aside from
    the training split (empty when none were).
    """

    name: str
    task: str = attrs.field(validator=attrs.validators.in_(TASKS))
    x_train: np.ndarray = attrs.field(repr=False)
    y_train: np.ndarray = attrs.field(repr=False)
    x_test: np.ndarray = attrs.field(repr=False)
    y_test: np.ndarray = attrs.field(repr=False)
    n_outputs: int = attrs.field(validator=attrs.validators.ge(1))
    x_validation: np.ndarray | None = attrs.field(default=None, repr=False)
    y_validation: np.ndarray | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        y_ndim = 1 if self.task == "classification" else 2
        want = "(n,)" if y_ndim == 1 else f"(n, {self.n_outputs})"
        width = self.x_train.shape[-1]
        if self.x_validation is None:
            object.__setattr__(self, "x_validation", self.x_train[:0])
            object.__setattr__(self, "y_validation", self.y_train[:0])
        splits = (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test),
                  ("validation", self.x_validation, self.y_validation))
        for split, x, y in splits:
            bad_y = y.ndim != y_ndim or (y_ndim == 2 and y.shape[1] != self.n_outputs)
            if x.ndim != 2 or x.shape[1] != width or len(x) != len(y) or bad_y:
                raise DataError(f"data set '{self.name}': {split} split has x {x.shape} and "
                                f"y {y.shape}; expected x (n, {width}) and y {want}")
            if y_ndim == 1 and len(y):
                _check_labels(self.name, split, y, self.n_outputs)

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])

    @property
    def n_validation(self) -> int:
        """Number of validation examples (0 when none were held out)."""
        return int(self.x_validation.shape[0])


@attrs.frozen
class DatasetInfo:
    """What the spec layer needs to know about a data set without loading it.

    ``options`` maps each option to its default, whose type a given value must have (an int
    is accepted for a float). ``n_features`` / ``n_outputs`` are ``None`` where they depend on
    options. ``pixel_max`` is what ``normalize="unit"`` divides by; ``None`` (synthetic sets)
    leaves values unchanged.
    """

    name: str
    task: str = attrs.field(validator=attrs.validators.in_(TASKS))
    doc: str
    options: Mapping[str, object] = attrs.field(
        factory=dict, converter=lambda m: types.MappingProxyType(dict(m)))
    n_features: int | None = None
    n_outputs: int | None = None
    pixel_max: float | None = None
    sizes: Callable[[Mapping[str, object]], tuple[int, int, int]] | None = attrs.field(
        default=None, eq=False)
    """``sizes(options)`` → (examples in both splits, values per example as stored: features
    plus regression targets, bytes per stored value), for memory estimates before loading."""
    files: bool = False
    """The set reads the user's files: its loader also gets ``path``, ``test_path`` and
    ``label`` (``task.path``, ``task.test_path``, ``task.label``; paths absolute or ``None``)."""


class DatasetRegistry:
    """Data sets by name: each a :class:`DatasetInfo` plus a loader.

    A loader is called as ``loader(seed=int, data_dir=Path | None, download=bool, **options)``
    with every option of its info filled in, and returns the full, unnormalized
    :class:`Dataset`; loaders that read no files ignore ``data_dir`` and ``download``. A set
    whose info has ``files`` is also given ``path=``, ``test_path=`` and ``label=``. A loader may
    return its own validation split (``x_validation``/``y_validation``), used when
    ``validation`` is 0.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[DatasetInfo, Callable[..., Dataset]]] = {}

    def register(self, info: DatasetInfo, loader: Callable[..., Dataset]) -> None:
        """Add a data set; raises ``ValueError`` if ``info.name`` is already registered."""
        if info.name in self._entries:
            raise ValueError(f"data set '{info.name}' is already registered")
        self._entries[info.name] = (info, loader)

    def merge(self, other: DatasetRegistry) -> None:
        """Add every data set of ``other``; raises ``ValueError`` on a name taken here."""
        for name in other.names():
            self.register(*other._entries[name])

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def info(self, name: str) -> DatasetInfo:
        """The info of ``name``; raises :class:`DataError` naming the allowed names if unknown."""
        if name not in self._entries:
            raise DataError(f"unknown data set '{name}': must be one of "
                            f"{', '.join(self.names())}{did_you_mean(name, self.names())}")
        return self._entries[name][0]

    def estimated_bytes(self, name: str, *, n_train: int | None = None, n_test: int | None = None,
                        options: Mapping[str, object] | None = None) -> int | None:
        """Bytes that loading ``name`` takes at its peak, or ``None`` when the info cannot say.

        The loader's arrays in their stored type plus the float64 copies :meth:`load` keeps
        (all examples, or ``n_train + n_test`` when both are given). Options are taken as given
        where they are well-typed integers; bad ones are left to :meth:`load` to report.
        """
        info = self.info(name)
        if info.sizes is None:
            return None
        resolved = {**info.options, **{k: v for k, v in (options or {}).items()
                                       if k in info.options and _is_int(v)}}
        examples, width, itemsize = info.sizes(resolved)
        kept = examples if n_train is None or n_test is None else min(examples, n_train + n_test)
        return examples * width * itemsize + kept * (width + 1) * 8

    def load(self, name: str, *, seed: int, data_dir: str | os.PathLike[str] | None = None,
             n_train: int | None = None, n_test: int | None = None, normalize: str = "standard",
             options: Mapping[str, object] | None = None, download: bool = True,
             validation: float = 0.0, path: str | os.PathLike[str] | None = None,
             test_path: str | os.PathLike[str] | None = None, label: str | None = None) -> Dataset:
        """Load, subset, split off validation and normalize the data set ``name``.

        Parameters
        ----------
        name, seed
            A registered name; the seed of ``np.random.default_rng`` for draws and splits.
        data_dir, download
            Folder of the data files (file-backed sets, see
            :func:`circuits.idx.read_idx_split`); whether missing files may be fetched into
            :func:`circuits.idx.data_home`.
        n_train, n_test
            Keep only the first examples of each split; ``None`` keeps all.
        normalize
            ``"standard"`` (training mean and std per feature), ``"unit"`` (divide by
            ``info.pixel_max``) or ``"none"``.
        options
            Options of the data set; ``info(name).options`` lists them with their defaults.
        validation
            Fraction of the kept training split set aside, from its end, as the validation
            set (``round(validation * n)`` examples); normalization uses the rest only.
            A loader's own validation split is kept when this is 0.
        path, test_path, label
            The user's files and label column, for sets whose info has ``files``.

        Returns
        -------
        Dataset
            Inputs float64 and C-contiguous; all arrays read-only.

        Raises
        ------
        DataError
            Unknown name, option or normalization; a bad option value, size or seed; more
            examples asked for than exist; files missing, corrupt or not downloadable.
        """
        info = self.info(name)
        if normalize not in NORMALIZATIONS:
            raise DataError(f"data set '{name}': normalize must be one of "
                            f"{', '.join(NORMALIZATIONS)} (got '{normalize}'"
                            f"{did_you_mean(normalize, NORMALIZATIONS)})")
        _require(_is_int(seed) and seed >= 0, name, f"seed must be an int >= 0 (got {seed!r})")
        resolved = _resolve_options(info, options or {})
        folder = None if data_dir is None else pathlib.Path(data_dir).expanduser()
        if info.files:
            resolved.update(path=path, test_path=test_path, label=label)
        raw = self._entries[name][1](seed=seed, data_dir=folder, download=download, **resolved)
        x_train, y_train = _keep_first(name, "n_train", n_train, raw.x_train, raw.y_train)
        x_test, y_test = _keep_first(name, "n_test", n_test, raw.x_test, raw.y_test)
        held = round(validation * len(x_train)) if validation > 0 else 0
        _require(0 <= validation < 1 and held < len(x_train) and (validation == 0 or held >= 1), name,
                 f"validation={validation} of {len(x_train)} training examples leaves "
                 f"{held} for validation and {len(x_train) - held} for training; both need >= 1")
        if held == 0 and raw.n_validation:
            x_valid, y_valid = raw.x_validation, raw.y_validation  # the loader's own split
        else:
            _require(held == 0 or not raw.n_validation, name,
                     f"the data already holds {raw.n_validation} validation examples and "
                     f"task.validation = {validation} asks for more; set task.validation = 0")
            x_train, x_valid = x_train[:len(x_train) - held], x_train[len(x_train) - held:]
            y_train, y_valid = y_train[:len(y_train) - held], y_train[len(y_train) - held:]
        x_train, x_test, x_valid = _normalize(x_train, x_test, normalize, info.pixel_max, x_valid)
        y_dtype = np.int64 if raw.task == "classification" else np.float64
        y_train, y_test, y_valid = (np.array(y, dtype=y_dtype, order="C")
                                    for y in (y_train, y_test, y_valid))
        for array in (x_train, y_train, x_test, y_test, x_valid, y_valid):
            array.flags.writeable = False
        return Dataset(raw.name, raw.task, x_train, y_train, x_test, y_test, raw.n_outputs,
                       x_valid, y_valid)


def _check_labels(name: str, split: str, y: np.ndarray, n_classes: int) -> None:
    """Class labels must be integers in ``[0, n_classes)``; name the first one that is not."""
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(f"data set '{name}': {split} labels must be integers (got {y.dtype})")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(f"data set '{name}': {split} label {y[bad[0]]} of example {bad[0]} is "
                        f"outside 0..{n_classes - 1} ({n_classes} classes; {bad.size} such "
                        "labels); fix or replace the labels file")


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise DataError(f"data set '{name}': {message}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _resolve_options(info: DatasetInfo, given: Mapping[str, object]) -> dict[str, object]:
    """The defaults of ``info.options`` overridden by ``given``, each of its default's type."""
    resolved = dict(info.options)
    for key, value in given.items():
        if key not in info.options:
            raise DataError(f"data set '{info.name}': unknown option '{key}': allowed options "
                            f"are {', '.join(info.options) or 'none'}"
                            f"{did_you_mean(key, info.options)}")
        default = info.options[key]
        if isinstance(default, bool):
            ok = isinstance(value, (bool, np.bool_))
        elif isinstance(default, int):
            ok = _is_int(value)
        elif isinstance(default, float):
            ok = _is_int(value) or isinstance(value, (float, np.floating))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise DataError(f"data set '{info.name}': option '{key}' must be "
                            f"{type(default).__name__} (got {value!r})")
        resolved[key] = type(default)(value)
    return resolved


def _keep_first(name: str, label: str, count: int | None, x: np.ndarray,
                y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if count is None:
        return x, y
    _require(_is_int(count) and count >= 1, name, f"{label} must be an int >= 1 (got {count!r})")
    _require(count <= len(x), name, f"{label}={count} but the split holds only {len(x)} examples")
    return x[:count], y[:count]


def _normalize(x_train: np.ndarray, x_test: np.ndarray, method: str,
               pixel_max: float | None, *more: np.ndarray) -> tuple[np.ndarray, ...]:
    """Float64 copies of the splits, normalized by ``method`` with training statistics."""
    train = np.array(x_train, dtype=np.float64, order="C")
    others = [np.array(x, dtype=np.float64, order="C") for x in (x_test, *more)]
    if method == "standard":
        mean, std = train.mean(axis=0), train.std(axis=0)
        rms = float(np.sqrt(np.mean(std**2)))
        np.maximum(std, _STD_FLOOR * rms if rms > 0.0 else 1.0, out=std)
        for x in (train, *others):
            x -= mean
            x /= std
    elif method == "unit" and pixel_max is not None:
        for x in (train, *others):
            x /= pixel_max
    return (train, *others)


def load_dataset(name: str, *, seed: int, data_dir: str | os.PathLike[str] | None = None,
                 n_train: int | None = None, n_test: int | None = None,
                 normalize: str = "standard", options: Mapping[str, object] | None = None,
                 download: bool = True, validation: float = 0.0,
                 path: str | os.PathLike[str] | None = None,
                 test_path: str | os.PathLike[str] | None = None, label: str | None = None) -> Dataset:
    """Shorthand for ``DATASETS.load(...)``; see :meth:`DatasetRegistry.load`."""
    from circuits.data import DATASETS

    return DATASETS.load(name, seed=seed, data_dir=data_dir, n_train=n_train, n_test=n_test,
                         normalize=normalize, options=options, download=download,
                         validation=validation, path=path, test_path=test_path, label=label)


def iterate_batches(n: int, batch_size: int, rng: np.random.Generator, *,
                    shuffle: bool = True) -> Iterator[np.ndarray]:
    """Yield int64 index arrays that cover ``range(n)`` once, ``batch_size`` at a time.

    The last batch may be smaller. With ``shuffle`` the order is ``rng.permutation(n)``;
    without it, ``rng`` is left untouched.

    Raises
    ------
    DataError
        If ``n < 0`` or ``batch_size < 1``.
    """
    if n < 0 or batch_size < 1:
        raise DataError("iterate_batches: need n >= 0 and batch_size >= 1 "
                        f"(got n={n}, batch_size={batch_size})")
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


