"""``--set key=value`` overrides of a spec, applied to its raw TOML tables before they are read.

Values given as strings are read as TOML values when they parse as one (``rule.lr=0.01`` sets
a float), else kept as strings. :func:`circuits.spec.parse_spec` applies the overrides to the
raw tables, so an overridden value is checked exactly like one written in the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from circuits.errors import SpecError, did_you_mean

__all__ = ["parse_overrides", "apply_override"]


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str] | None, *,
                    source: str = "<spec>") -> dict[str, Any]:
    """Turn ``["a.b=1"]`` or ``{"a.b": 1}`` into ``{"a.b": 1}`` with TOML-typed values."""
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise SpecError(f"{source}: --set {item}: must look like key=value, e.g. rule.lr=0.01")
            items.append((key.strip(), value.strip()))
    parsed: dict[str, Any] = {}
    for key, value in items:
        key = str(key)
        if isinstance(value, str):
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except ValueError:  # not a TOML value (TOMLDecodeError) or too many digits: keep the string
                pass
        parsed[key] = value
    return parsed


def _projection_name(entry: Mapping[str, Any]) -> str:
    if isinstance(entry.get("name"), str) and entry["name"]:
        return entry["name"]
    return f"{entry.get('from')}->{entry.get('to')}"


def apply_override(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set ``raw[a][b][c] = value`` for ``key = "a.b.c"``; projections are addressed by name.

    ``raw["projections"]`` must already be a list with chain shorthands expanded.

    Raises
    ------
    SpecError
        When ``key`` names no table and key, an unknown population or projection, or runs
        through a value that is not a table.
    """
    where = f"{source}: --set {key}"
    parts = key.split(".")
    if len(parts) < 2:
        raise SpecError(f"{where}: must name a table and a key, e.g. rule.lr or populations.h1.size")
    if parts[0] == "projections":
        names = [_projection_name(p) for p in raw["projections"] if isinstance(p, dict)]
        if len(parts) != 3 or parts[1] not in names:
            raise SpecError(f"{where}: must be projections.<name>.<key> with a projection name "
                            f"among {', '.join(names)}{did_you_mean(parts[1], names)}")
        [p for p in raw["projections"] if isinstance(p, dict)][names.index(parts[1])][parts[2]] = value
        return
    if parts[0] == "populations" and isinstance(raw.get("populations"), dict):
        names = list(raw["populations"])
        if len(parts) != 3 or parts[1] not in names:
            raise SpecError(f"{where}: must be populations.<name>.<key> with a population among "
                            f"{', '.join(names)}{did_you_mean(parts[1], names)}")
    table = raw
    for depth, part in enumerate(parts[:-1]):
        nxt = table.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SpecError(f"{where}: '{'.'.join(parts[:depth + 1])}' is not a table")
        table = nxt
    table[parts[-1]] = value
