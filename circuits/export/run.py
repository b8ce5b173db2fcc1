"""A spec or run folder plus its trained parameters, out to a file: what ``circuits export`` calls."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from circuits.export.nir_graph import ExportError, write_nir
from circuits.model import Model
from circuits.rules import default_registry
from circuits.spec import load_spec
from circuits.training import load_data

__all__ = ["FORMATS", "export_run", "load_trained"]

FORMATS = ("nir",)
RATE_EXAMPLES = 10_000
"""At most this many training examples (the first) measure the rate scales."""


def load_trained(source: str | os.PathLike[str], params: str | os.PathLike[str] | None = None,
                 overrides: Sequence[str] = ()) -> Model:
    """The model of ``source`` with the parameters of ``params``.

    Parameters
    ----------
    source
        A run folder (its ``spec.toml``; ``params`` defaults to its ``params.npz``) or a spec file.
    params
        A ``params.npz`` as ``circuits simulate`` writes it; ``None`` with a spec file keeps the
        initial parameters drawn from the run seed.
    overrides
        ``--set`` values applied to the spec.

    Raises
    ------
    ExportError
        A missing or unreadable parameter file, or one whose names or shapes do not match.
    """
    source = Path(source).expanduser()
    spec_path = source / "spec.toml" if source.is_dir() else source
    if source.is_dir() and not spec_path.is_file():
        raise ExportError(f"{source}: no spec.toml; give a run folder of circuits simulate or a spec file")
    if params is None and source.is_dir():
        params = source / "params.npz"
    registry = default_registry()
    model = Model(load_spec(spec_path, list(overrides), rules=registry.signatures()), registry=registry)
    if params is None:
        return model
    path = Path(params).expanduser()
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise ExportError(f"{path}: no params.npz there (or not an .npz file); give the params.npz of a "
                          "finished run with --params")
    with np.load(path, allow_pickle=False) as archive:
        values = {name: archive[name] for name in archive.files}
    expected = model.params
    missing = [name for name in expected if name not in values]
    extra = [name for name in values if name not in expected]
    if missing or extra:
        raise ExportError(f"{path}: parameters do not match {spec_path}'s circuit (missing: "
                          f"{', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'}); "
                          "give the params.npz of a run of this spec")
    for name, value in values.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ExportError(f"{path}: parameter '{name}' has shape {tuple(value.shape)} but the circuit's "
                              f"is {tuple(expected[name].shape)}; give the params.npz of a run of this spec")
    model.set_params(values)
    return model


def export_run(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
               params: str | os.PathLike[str] | None = None, fmt: str = "nir", normalize: str = "none",
               percentile: float = 99.9, overrides: Sequence[str] = ()) -> Path:
    """Write the trained circuit of ``source`` (see :func:`load_trained`) to ``output`` in ``fmt``.

    With ``normalize="rate"`` the spec's data set is loaded and its first
    :data:`RATE_EXAMPLES` training inputs measure the rate scales.

    Raises
    ------
    ExportError, DataError, SpecError
        Each as one line naming what to fix.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)} (got '{fmt}')")
    model = load_trained(source, params, overrides)
    x = None
    if normalize == "rate":
        x = load_data(model).x_train[:RATE_EXAMPLES].astype(model.spec.run.dtype)
    return write_nir(model, output, normalize=normalize, x=x, percentile=percentile)
