"""circuits: describe cortical circuits as typed graphs in TOML, compile them under backprop or
any NGRAD-family learning rule, and measure each rule against the gradient.

The public API, in pipeline order::

    spec = circuits.load_spec("specs/fa_digits.toml")      # TOML → resolved CircuitSpec
    graph = circuits.build_graph(spec)                      # checked CircuitGraph
    program = circuits.compile_circuit(graph, rule)         # validated Program
    model = circuits.load("specs/fa_digits.toml")           # all of it, ready to train

Names are imported on first use (PEP 562 ``__getattr__``), so ``import circuits`` and the
command line's start are light: the ``circuits`` command can then turn a Ctrl-C during its
imports into one line (see :mod:`circuits.launch`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuits.rules import RuleRegistry
    from circuits.spec import CircuitSpec

_EXPORTS = {
    "compile_circuit": "circuits.compile",
    "BackendError": "circuits.errors", "CircuitsError": "circuits.errors", "CompileError": "circuits.errors",
    "DataError": "circuits.errors", "FixedPointError": "circuits.errors", "GraphError": "circuits.errors",
    "RelaxationWarning": "circuits.errors", "SimulationError": "circuits.errors", "SpecError": "circuits.errors",
    "CircuitGraph": "circuits.graph", "build_graph": "circuits.graph",
    "Buffer": "circuits.ir", "Op": "circuits.ir", "Phase": "circuits.ir", "Program": "circuits.ir",
    "Model": "circuits.model", "angle_degrees": "circuits.model", "load": "circuits.model",
    "Rule": "circuits.rules", "RuleRegistry": "circuits.rules", "default_registry": "circuits.rules",
    "CircuitSpec": "circuits.spec", "parse_spec": "circuits.spec",
    "dump_spec": "circuits.spec_writer",
    "EpochRecord": "circuits.training", "fit": "circuits.training", "load_data": "circuits.training",
    "load_run": "circuits.notebook",
}
"""Public name → the module that defines it."""

__all__ = sorted([*_EXPORTS, "load_spec"])


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule such as ``circuits.ops``) on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"circuits.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"circuits.{name}":
                raise
            raise AttributeError(f"module 'circuits' has no attribute '{name}'") from None
    else:
        raise AttributeError(f"module 'circuits' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | Sequence[str] | None = None,
              *, registry: RuleRegistry | None = None) -> CircuitSpec:
    """Read and resolve a spec file, checking ``[rule]`` against ``registry`` (default: built-ins)."""
    spec = importlib.import_module("circuits.spec")
    rules = importlib.import_module("circuits.rules")
    return spec.load_spec(path, overrides, rules=(registry or rules.default_registry()).signatures())
