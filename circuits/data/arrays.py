"""Data handed over from Python: :class:`Arrays` and :func:`as_dataset`.

``circuits.fit(model, data)`` takes a loaded :class:`~circuits.data.Dataset`, the name of a
registered data set, or arrays: an :class:`Arrays`, any object with attributes (a dataclass,
a named tuple) or a mapping with keys ``x_train, y_train, x_test, y_test`` (optionally
``x_val, y_val``), or a tuple ``(x_train, y_train, x_test, y_test)``. Arrays are checked like
an ``npz`` file (:func:`circuits.data.files.dataset_from_arrays`) and used as given: they are
not normalized.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from circuits.data.files import NPZ_ARRAYS, dataset_from_arrays
from circuits.data.registry import Dataset, DatasetRegistry
from circuits.errors import DataError

__all__ = ["Arrays", "as_dataset"]


@attrs.frozen(eq=False)
class Arrays:
    """A train/test split as arrays: inputs ``(n, features)``, labels ``(n,)`` or targets ``(n, k)``."""

    x_train: Any = attrs.field(repr=False)
    y_train: Any = attrs.field(repr=False)
    x_test: Any = attrs.field(repr=False)
    y_test: Any = attrs.field(repr=False)
    x_val: Any = attrs.field(default=None, repr=False)
    y_val: Any = attrs.field(default=None, repr=False)


def as_dataset(data: object, registry: DatasetRegistry, *, seed: int = 0,
               normalize: str = "standard") -> Dataset:
    """``data`` as a :class:`Dataset` (see the module docstring for what is accepted).

    Parameters
    ----------
    data
        A dataset, a registered name, or arrays.
    registry, seed, normalize
        Where a name is looked up, and how it is loaded (default options).

    Raises
    ------
    DataError
        For anything else, or arrays that fail the checks, in one line naming the array.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return registry.load(str(data), seed=seed, normalize=normalize)
    if isinstance(data, Mapping):
        fields = dict(data)
    elif isinstance(data, (tuple, list)) and not hasattr(data, "_fields"):
        if len(data) not in (4, 6):
            raise DataError(f"data: a tuple of arrays is (x_train, y_train, x_test, y_test) or with "
                            f"(x_val, y_val) after them; got {len(data)} items")
        fields = dict(zip(NPZ_ARRAYS, data))
    elif all(hasattr(data, key) for key in NPZ_ARRAYS[:4]):
        fields = {key: getattr(data, key) for key in NPZ_ARRAYS if hasattr(data, key)}
    else:
        raise DataError(f"data: expected a Dataset, a data set name, or arrays x_train, y_train, "
                        f"x_test, y_test (circuits.data.Arrays, a mapping or a tuple); got "
                        f"{type(data).__name__}")
    unknown = [key for key in fields if key not in NPZ_ARRAYS]
    missing = [key for key in NPZ_ARRAYS[:4] if key not in fields]
    if unknown or missing:
        raise DataError(f"data: {'unknown arrays ' + ', '.join(map(str, unknown)) if unknown else ''}"
                        f"{'; ' if unknown and missing else ''}"
                        f"{'missing ' + ', '.join(missing) if missing else ''}; give x_train, y_train, "
                        "x_test, y_test (optional x_val, y_val)")
    return dataset_from_arrays("arrays", "data", **{k: np.asarray(v) if v is not None else None
                                                     for k, v in fields.items()})
