"""A trained circuit as a Neuromorphic Intermediate Representation graph (the ``nir`` package).

Stages of :func:`to_nir`:

1. check that NIR can express the circuit: forward projections only at inference (feedback
   projections and the rule are kept in the graph's metadata), and relu or linear populations
   (NIR has no tanh or sigmoid unit);
2. with ``normalize="rate"``, measure each relu population's activity on data (its
   ``percentile``-th percentile ``λ``) and scale weights and biases so that an
   integrate-and-fire unit's firing rate, in spikes per step, approximates ``activity / λ``;
3. write the nodes: an ``Input`` per input population, an ``Affine`` per forward projection
   (NIR stores weights ``(out, in)``: the transpose of circuits' ``(in, out)``), an ``IF``
   (integrate-and-fire, threshold 1, reset to 0, ``r = 1``) per relu population, a ``Scale``
   (a pass-through of currents) per linear hidden population, an ``I`` (integrator, ``r = 1``,
   whose potential after T steps is T times the mean input) per linear or softmax output, and
   an ``Output`` per output population.

The graph is meant to run in steps of ``dt = 1`` (recorded in the metadata) with the inputs
fed as constant currents (the circuit's normalized inputs, each step). A population's bias
rides on the ``Affine`` of its first incoming projection (in spec order); the others carry
zero bias. Without normalization the weights are exactly the trained ones.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from circuits.errors import CircuitsError
from circuits.model import Model
from circuits.spec_writer import dump_spec

__all__ = ["ExportError", "NORMALIZATIONS", "check_exportable", "node_names", "rate_scales", "to_nir",
           "write_nir"]

NORMALIZATIONS = ("none", "rate")
_SPIKING = {"relu"}
_PASSING = {"linear", "softmax"}


class ExportError(CircuitsError):
    """A circuit (or its options) cannot be written in the asked format."""


def _require_nir() -> Any:
    """The ``nir`` module (the ``export`` extra), imported on first use like the CuPy backend's
    ``cupy``: it is optional, and importing it (h5py) would slow every command's start."""
    try:
        return importlib.import_module("nir")
    except ImportError:
        raise ExportError("NIR export needs the nir package: pip install 'circuits[export]'") from None


def check_exportable(model: Model) -> None:
    """Raise :class:`ExportError` for what NIR cannot express, naming every population or projection.

    Raises
    ------
    ExportError
        tanh/sigmoid/hard_sigmoid populations; lateral projections; a rule that infers by
        relaxing to a fixed point; convolutional or compartmental projections.
    """
    graph, spec = model.graph, model.spec
    if model.rule.signature.energy_based:
        raise ExportError(f"rule '{spec.rule.name}' infers by relaxing to a fixed point, which NIR's "
                          "feed-forward export cannot express; export a circuit trained with a "
                          "feed-forward rule")
    bad = [f"{p.name} ({p.activation})" for p in spec.populations
           if p.role != "input" and p.activation not in _SPIKING | _PASSING]
    if bad:
        raise ExportError(f"NIR has no unit for population{'s' if len(bad) > 1 else ''} {', '.join(bad)}; "
                          "export needs relu (integrate-and-fire) or linear populations")
    scaled = [p.name for p in spec.populations if not p.rate_params.plain]
    if scaled:
        raise ExportError(f"population {scaled[0]} has a rate function with scale, shift or gain, which "
                          "NIR's integrate-and-fire units do not carry; export plain relu populations")
    hidden_softmax = [p.name for p in spec.populations if p.activation == "softmax" and p.role != "output"]
    if hidden_softmax:
        raise ExportError(f"population {hidden_softmax[0]} (softmax) is not an output; NIR has no softmax unit")
    lateral = [p.name for p in graph.projections("lateral")]
    if lateral:
        many = len(lateral) > 1
        raise ExportError(f"lateral projection{'s' if many else ''} {', '.join(lateral)} "
                          f"act{'' if many else 's'} at inference, which the feed-forward NIR export "
                          "cannot express")
    special = [p.name for p in graph.projections("forward")
               if getattr(p, "conv", None) is not None or getattr(p, "pool", None) is not None
               or getattr(p, "compartment", None) is not None]
    if special:
        raise ExportError(f"projection {special[0]} is convolutional, pooled or compartmental; the NIR "
                          "export writes dense projections only")


def rate_scales(model: Model, x: np.ndarray, *, percentile: float = 99.9,
                batch: int = 1000) -> dict[str, float]:
    """``λ`` per population: the ``percentile``-th percentile of its activity on inputs ``x``.

    Input populations and linear populations get 1 (their values pass as currents). A relu
    population that never fires on ``x`` also gets 1.
    """
    if not 0.0 < percentile <= 100.0:
        raise ExportError(f"percentile must be in (0, 100] (got {percentile})")
    if len(x) == 0:
        raise ExportError("rate normalization needs at least one input example")
    spiking = [p.name for p in model.spec.populations if p.role != "input" and p.activation in _SPIKING]
    seen: dict[str, list[np.ndarray]] = {name: [] for name in spiking}
    phases = model.compiled("infer").predict_phases
    for start in range(0, len(x), batch):
        exe = model.run("infer", np.asarray(x[start:start + batch]), phases=phases)
        for name in spiking:
            seen[name].append(np.array(model.backend.to_numpy(exe.arrays[f"{name}.rate"]), dtype=np.float64))
    scales = {p.name: 1.0 for p in model.spec.populations}
    for name, parts in seen.items():
        level = float(np.percentile(np.concatenate(parts), percentile))
        scales[name] = level if level > 0.0 else 1.0
    return scales


def to_nir(model: Model, *, normalize: str = "none", x: np.ndarray | None = None,
           percentile: float = 99.9) -> Any:
    """The forward circuit of ``model`` (with its current parameters) as a ``nir.NIRGraph``.

    Parameters
    ----------
    model
        A model of a feed-forward rule with relu/linear populations.
    normalize
        ``"none"``: the trained weights exactly, thresholds 1. ``"rate"``: weights scaled by
        ``λ_source / λ_target`` and biases by ``1 / λ_target`` (:func:`rate_scales`), so that
        spike rates approximate the circuit's activities divided by ``λ``.
    x
        Inputs to measure ``λ`` on (needed for ``"rate"``), normalized as the model sees them.
    percentile
        Which percentile of each population's activity is ``λ``.

    Returns
    -------
    nir.NIRGraph
        Node names: populations by name, projections by name (``"A->B"``; see
        :func:`node_names`), outputs ``"<pop>.output"``.
        Metadata: the resolved spec (TOML), the rule, feedback weights, ``dt``, the scales.

    Raises
    ------
    ExportError
        When NIR cannot express the circuit, ``nir`` is missing, or an option is wrong.
    """
    check_exportable(model)
    ir = _require_nir()
    if normalize not in NORMALIZATIONS:
        raise ExportError(f"normalize must be one of {', '.join(NORMALIZATIONS)} (got '{normalize}')")
    if normalize == "rate" and x is None:
        raise ExportError("normalize='rate' needs inputs x to measure each population's activity on")
    graph, spec = model.graph, model.spec
    params = {name: np.array(model.backend.to_numpy(value)) for name, value in model.params.items()}
    scales = rate_scales(model, x, percentile=percentile) if normalize == "rate" else \
        {p.name: 1.0 for p in spec.populations}
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    names = node_names(model)
    for pop in spec.populations:
        size = np.array([pop.size])
        if pop.role == "input":
            nodes[pop.name] = ir.Input(input_type={"input": size})
            continue
        incoming = graph.incoming(pop.name)
        for index, proj in enumerate(incoming):
            weight = params[proj.name].T * (scales[proj.source] / scales[pop.name])
            bias = params.get(f"{pop.name}.bias") if index == 0 else None
            bias = np.zeros(pop.size, weight.dtype) if bias is None else bias / scales[pop.name]
            node = names[proj.name]
            nodes[node] = ir.Affine(weight=np.ascontiguousarray(weight.astype(params[proj.name].dtype)),
                                    bias=np.ascontiguousarray(bias.astype(params[proj.name].dtype)))
            edges += [(proj.source, node), (node, pop.name)]
        ones = np.ones(pop.size, dtype=np.float32)
        if pop.activation in _SPIKING:
            nodes[pop.name] = ir.IF(r=ones, v_threshold=ones.copy(), v_reset=np.zeros_like(ones))
        elif pop.role == "output":
            nodes[pop.name] = ir.I(r=ones)
        else:
            nodes[pop.name] = ir.Scale(scale=ones)
        if pop.role == "output":
            nodes[f"{pop.name}.output"] = ir.Output(output_type={"output": size})
            edges.append((pop.name, f"{pop.name}.output"))
    metadata = _metadata(model, params, normalize, scales, percentile)
    return ir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def node_names(model: Model) -> dict[str, str]:
    """Forward projection → its ``Affine`` node's name: the projection's own name, or
    ``"<name>.projection"`` where a population (or an output node) already has that name."""
    taken = {p.name for p in model.spec.populations} | {f"{p}.output" for p in model.graph.outputs}
    return {proj.name: proj.name if proj.name not in taken else f"{proj.name}.projection"
            for proj in model.graph.projections("forward")}


def _metadata(model: Model, params: Mapping[str, np.ndarray], normalize: str,
              scales: Mapping[str, float], percentile: float) -> dict[str, Any]:
    """What NIR cannot run but a reader should know: spec, rule, feedback weights, dt, scales."""
    spec = model.spec
    feedback = {proj.name: {"source": proj.source, "target": proj.target,
                            "weight": np.ascontiguousarray(params[proj.name].T)}
                for proj in model.graph.projections("feedback") if proj.name in params}
    meta: dict[str, Any] = {
        "generator": "circuits",
        "circuit": spec.name,
        "spec": dump_spec(spec),
        "rule": {"name": spec.rule.name, "params": json.dumps(spec.rule.params, sort_keys=True, default=str)},
        "dt": 1.0,
        "input_encoding": "constant current: the circuit's normalized inputs at every step",
        "weight_layout": "(out, in), the transpose of circuits' (in, out)",
        "normalize": normalize,
    }
    if feedback:
        meta["feedback"] = feedback
    if normalize == "rate":
        meta["rate_scales"] = {name: float(value) for name, value in scales.items()}
        meta["percentile"] = float(percentile)
    return meta


def write_nir(model: Model, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write :func:`to_nir` of ``model`` to ``path`` (HDF5, as ``nir.write`` does); returns the path.

    Raises
    ------
    ExportError
        As :func:`to_nir`, or when the file cannot be written.
    """
    graph = to_nir(model, **options)
    target = Path(path).expanduser()
    try:
        _require_nir().write(target, graph)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc}") from None
    return target
