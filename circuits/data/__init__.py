"""Data sets: an explicit registry of loaders, and batching.

:data:`DATASETS` is the default registry. Each source module adds its data sets here:
:mod:`circuits.data.builtin` (digits, MNIST, Fashion-MNIST, synthetic tasks), :mod:`circuits.data.cifar`
(CIFAR-10 binary batches) and
:mod:`circuits.data.files` (the user's ``npz`` and ``csv`` files). A new source is a module of
this package with a ``register_*(registry)`` function, called below; installed packages add
theirs through the ``circuits.datasets`` entry-point group (:mod:`circuits.data.plugins`).

:meth:`DatasetRegistry.load` runs in three stages:

1. the loader draws or reads the full train/test split, seeded by ``default_rng(seed)``;
2. ``n_train`` / ``n_test`` keep the first examples of each split;
3. inputs become float64 and are normalized with statistics of the kept training split only.

MNIST and Fashion-MNIST are read from IDX files by :mod:`circuits.idx`, which also keeps
their download cache.
"""

from __future__ import annotations

from circuits.data.arrays import Arrays, as_dataset
from circuits.data.builtin import register_builtin
from circuits.data.cifar import register_cifar
from circuits.data.covariances import register_covariances
from circuits.data.files import register_files
from circuits.data.plugins import DatasetPluginWarning, register_plugins
from circuits.data.registry import (
    NORMALIZATIONS,
    TASKS,
    Dataset,
    DatasetInfo,
    DatasetRegistry,
    iterate_batches,
    load_dataset,
)

__all__ = ["Arrays", "as_dataset", "DATASETS", "DatasetPluginWarning", "NORMALIZATIONS", "TASKS", "Dataset", "DatasetInfo", "DatasetRegistry",
           "iterate_batches", "load_dataset"]

DATASETS = DatasetRegistry()
register_builtin(DATASETS)
register_cifar(DATASETS)
register_covariances(DATASETS)
register_files(DATASETS)
register_plugins(DATASETS)
