"""A run's identity: the hash of its resolved spec, its default folder, and spec differences."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from circuits.spec import CircuitSpec
from circuits.spec_writer import dump_spec

__all__ = ["run_id", "run_dirs", "default_run_dir", "expand_out", "first_difference", "without_out"]

RUNS_ROOT = Path("runs")


def without_out(spec: CircuitSpec) -> CircuitSpec:
    """``spec`` with ``run.out`` blanked (where a run is written is not what it computes)."""
    return attrs.evolve(spec, run=attrs.evolve(spec.run, out=None))


def run_id(spec: CircuitSpec) -> str:
    """16 hex digits of the SHA-256 of the resolved spec's TOML, ``run.out`` blanked.

    Pass the fully resolved spec (the rule's ``augment`` applied, overrides such as the
    backend and thread count folded in): two runs with the same id compute the same numbers.
    """
    return hashlib.sha256(dump_spec(without_out(spec)).encode("utf-8")).hexdigest()[:16]


def _safe(name: str) -> str:
    """A name usable as one path component."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "circuit"
    return cleaned[:100]


def run_dirs(spec: CircuitSpec, root: str | Path = RUNS_ROOT) -> Iterator[Path]:
    """``runs/<circuit>/<rule>-seed<k>``, then ``…-2``, ``…-3``…: the default folders, in order."""
    base = Path(root) / _safe(spec.name) / f"{_safe(spec.rule.name)}-seed{spec.run.seed}"
    yield base
    for number in itertools.count(2):
        yield base.with_name(f"{base.name}-{number}")


def default_run_dir(spec: CircuitSpec, root: str | Path = RUNS_ROOT) -> Path:
    """The first of :func:`run_dirs` that does not exist yet."""
    return next(path for path in run_dirs(spec, root) if not path.exists())


def expand_out(out: str | Path) -> Path:
    """The run folder named by ``--out`` or ``run.out``, ``~`` expanded."""
    return Path(out).expanduser()


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            label = f"{prefix}.{item['name']}" if prefix == "populations" else f"{prefix}[{index}]"
            _flatten({k: v for k, v in item.items() if not (prefix == "populations" and k == "name")},
                     label, into)
    else:
        into[prefix] = value


def flat_keys(spec: CircuitSpec) -> dict[str, Any]:
    """The spec as dotted TOML key paths → values (``populations.h1.size``, ``projections[0].lr``)."""
    flat: dict[str, Any] = {}
    fields = attrs.asdict(spec)
    fields.pop("source", None)
    fields["circuit"] = {"name": fields.pop("name"), "doc": fields.pop("doc")}
    fields["rule"] = {"name": fields["rule"]["name"], **fields["rule"].get("params", {})}
    _flatten(fields, "", flat)
    return flat


def first_difference(saved: CircuitSpec, given: CircuitSpec) -> str | None:
    """``"rule.lr (saved 0.05, given 0.01)"`` for the first key that differs, else ``None``."""
    a, b = flat_keys(saved), flat_keys(given)
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            return f"{key} (saved {a.get(key, '<absent>')!r}, given {b.get(key, '<absent>')!r})"
    return None
