"""Compartmental cells as spec vocabulary: pyramidal neurons and interneurons.

A population is a point unit unless it says ``cell = "pyramidal"`` (a soma with a basal and
an apical dendrite) or ``cell = "interneuron"`` (a soma with one dendrite). Compartmental
cells carry conductances (Sacramento, Costa, Bengio & Senn 2018, "Dendritic cortical
microcircuits approximate the backpropagation algorithm"):

    g_lk        leak of the soma                                   default 0.1
    g_basal     basal dendrite → soma (pyramidal)                  default 1.0
    g_apical    apical dendrite → soma (pyramidal)                 default 0.8
    g_dendrite  dendrite → soma (interneuron)                      default 1.0
    g_som       somatic nudging (output toward its target,         default 0.8
                interneuron toward the pyramidal layer above)

These defaults are the values used in this package's specs and are documented here; they
are the ones we read as the paper's simulation settings (g_lk = 0.1, g_B = g_D = 1,
g_A = g_som = 0.8), not checked against its supplement's table in this environment.
A point population keeps every conductance ``None`` (and the resolved spec leaves them out).

A projection into a pyramidal population lands on a compartment: ``"basal"`` (default for
forward projections) or ``"apical"`` (default for feedback projections and for lateral
projections from an interneuron).
"""

from __future__ import annotations

from typing import Any

from circuits.schema import Param, TableReader

__all__ = ["CELLS", "COMPARTMENTS", "CONDUCTANCES", "CELL_KEYS", "read_cell", "default_compartment"]

CELLS = ("point", "pyramidal", "interneuron")
COMPARTMENTS = ("basal", "apical")

CONDUCTANCES: dict[str, tuple[float, str]] = {
    "g_lk": (0.1, "somatic leak conductance"),
    "g_basal": (1.0, "basal dendrite → soma coupling (pyramidal cells)"),
    "g_apical": (0.8, "apical dendrite → soma coupling (pyramidal cells)"),
    "g_dendrite": (1.0, "dendrite → soma coupling (interneurons)"),
    "g_som": (0.8, "somatic nudging conductance (output toward its target; interneuron toward the "
                   "pyramidal layer above)"),
}
CELL_KEYS = ("cell", *CONDUCTANCES)


def read_cell(reader: TableReader) -> dict[str, Any]:
    """Read ``cell`` and the conductances of one population table.

    Returns ``{"cell": None, "g_lk": None, ...}`` for a point population (conductances given
    to a point population are an error), else every conductance with its default filled in.
    """
    cell = reader.get(Param("cell", "point", "cell model: point unit, pyramidal (soma, basal and "
                                             "apical dendrites) or interneuron (soma and dendrite)",
                            choices=CELLS))
    values: dict[str, Any] = {"cell": None if cell == "point" else cell}
    for key, (default, doc) in CONDUCTANCES.items():
        if cell == "point":
            if reader.has(key):
                raise reader.error(f"conductances apply to compartmental cells; set cell = \"pyramidal\" "
                                   f"or \"interneuron\", or remove {key}", key=key)
            values[key] = None
            continue
        values[key] = reader.get(Param(key, default, doc, kind=float, minimum=0.0))
    if values["g_lk"] is not None and values["g_lk"] + (values["g_basal"] or 0.0) <= 0.0:
        raise reader.error("g_lk + g_basal must be > 0, or the soma has no stable potential", key="g_lk")
    return values


def default_compartment(kind: str, source_cell: str | None) -> str:
    """The compartment a projection of type ``kind`` lands on in a pyramidal cell."""
    if kind == "forward":
        return "basal"
    if kind == "lateral" and source_cell != "interneuron":
        return "basal"
    return "apical"
