"""The optional modules of the ``sweep`` extra (dask, distributed, pandas), imported on use.

The core installs and runs without them; a command that needs one says how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any

from circuits.experiments.file import ExperimentError

__all__ = ["INSTALL_HINT", "require_sweep_extra"]

INSTALL_HINT = 'pip install "circuits[sweep]"'


def require_sweep_extra(module: str) -> Any:
    """Import ``module``, or raise :class:`ExperimentError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExperimentError(f"this needs {module.split('.')[0]}, which is not installed; "
                              f"install the sweep extra: {INSTALL_HINT}") from None
