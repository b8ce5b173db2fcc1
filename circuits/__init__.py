"""circuits: describe cortical circuits as typed graphs in TOML, compile them under backprop or
any NGRAD-family learning rule, and measure each rule against the gradient.

The public API, in pipeline order::

    spec = circuits.load_spec("specs/fa_digits.toml")      # TOML → resolved CircuitSpec
    graph = circuits.build_graph(spec)                      # checked CircuitGraph
    program = circuits.compile_circuit(graph, rule)         # validated Program
    model = circuits.load("specs/fa_digits.toml")           # all of it, ready to train
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from circuits.compile import compile_circuit
from circuits.errors import (BackendError, CircuitsError, CompileError, DataError, FixedPointError,
                             GraphError, RelaxationWarning, SimulationError, SpecError)
from circuits.graph import CircuitGraph, build_graph
from circuits.ir import Buffer, Op, Phase, Program
from circuits.model import Model, angle_degrees, load
from circuits.rules import Rule, RuleRegistry, default_registry
from circuits.spec import CircuitSpec, parse_spec
from circuits.spec import load_spec as _load_spec
from circuits.spec_writer import dump_spec
from circuits.training import EpochRecord, fit, load_data

__all__ = [
    "BackendError", "Buffer", "CircuitGraph", "CircuitSpec", "CircuitsError", "CompileError",
    "DataError", "EpochRecord", "FixedPointError", "GraphError", "Model", "Op", "Phase", "Program", "Rule",
    "RelaxationWarning", "RuleRegistry", "SimulationError", "SpecError", "angle_degrees", "build_graph",
    "compile_circuit", "default_registry", "dump_spec", "fit", "load", "load_data", "load_spec",
    "parse_spec",
]


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | Sequence[str] | None = None,
              *, registry: RuleRegistry | None = None) -> CircuitSpec:
    """Read and resolve a spec file, checking ``[rule]`` against ``registry`` (default: built-ins)."""
    return _load_spec(path, overrides, rules=(registry or default_registry()).signatures())
