"""Trained circuits out to other tools: NIR (:mod:`circuits.export.nir_graph`, the ``export`` extra).

    from circuits.export import write_nir
    write_nir(model, "digits.nir", normalize="rate", x=data.x_train)

:func:`export_run` is what ``circuits export`` calls: a spec or run folder plus a
``params.npz`` in, a file out.
"""

from __future__ import annotations

from circuits.export.nir_graph import NORMALIZATIONS, ExportError, check_exportable, rate_scales, to_nir, write_nir
from circuits.export.run import FORMATS, export_run, load_trained

__all__ = ["FORMATS", "NORMALIZATIONS", "ExportError", "check_exportable", "export_run", "load_trained",
           "rate_scales", "to_nir", "write_nir"]
