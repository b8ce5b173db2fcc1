"""Data-set plug-ins: the ``circuits.datasets`` entry-point group.

A package adds data sets by naming a ``register(registry)`` function in its metadata, the
same call every source module of :mod:`circuits.data` has::

    # pyproject.toml of the plug-in
    [project.entry-points."circuits.datasets"]
    my_sets = "my_package.data:register"

    # my_package/data.py
    from circuits.data import Dataset, DatasetInfo

    def register(registry):
        registry.register(DatasetInfo("spirals", "classification", "two spirals", {"n": 500},
                                      n_features=2, n_outputs=2), load_spirals)

A plug-in that fails to load, or registers a name that is taken, costs one
:class:`DatasetPluginWarning` naming it; the other data sets keep working.
"""

from __future__ import annotations

import warnings
from importlib import metadata

from circuits.data.registry import DatasetRegistry

__all__ = ["PLUGIN_GROUP", "DatasetPluginWarning", "register_plugins"]

PLUGIN_GROUP = "circuits.datasets"


class DatasetPluginWarning(UserWarning):
    """A data-set plug-in could not be loaded; it is skipped and every other data set still works."""


def register_plugins(registry: DatasetRegistry) -> None:
    """Call the ``register(registry)`` function of each ``circuits.datasets`` entry point.

    A plug-in's data sets are added only when its whole ``register`` call succeeds.
    """
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        where = f"data-set plug-in '{entry.name}' ({entry.value}, entry point group {PLUGIN_GROUP})"
        trial = DatasetRegistry()
        try:
            entry.load()(trial)
            clash = [name for name in trial.names() if name in registry.names()]
            if clash:
                raise ValueError(f"reuses the name '{clash[0]}' of a data set already registered")
        except Exception as exc:  # third-party code: import, attribute and call errors alike
            problem = str(exc) if str(exc).startswith("reuses") else f"failed to load: {type(exc).__name__}: {exc}"
            warnings.warn(f"{where} {problem}; it is skipped", DatasetPluginWarning, stacklevel=2)
            continue
        registry.merge(trial)
