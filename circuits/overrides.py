"""``--set key=value`` overrides of a spec, applied to its raw TOML tables before they are read.

Values given as strings are read as TOML values when they parse as one (``rule.lr=0.01`` sets
a float), else kept as strings. :func:`circuits.spec.parse_spec` applies the overrides to the
raw tables, so an overridden value is checked exactly like one written in the file.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from circuits.errors import SpecError, did_you_mean

__all__ = ["MAX_NESTING", "check_nesting", "load_toml", "parse_overrides", "apply_override"]

MAX_NESTING = 16
"""Deepest nesting of arrays and tables a spec may use (real specs use four or five levels)."""


def load_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads(text)``, with every failure a :class:`SpecError` starting with ``where``.

    Raises
    ------
    SpecError
        A syntax error, arrays or tables nested too deep to read (``RecursionError`` inside
        tomllib) or deeper than :data:`MAX_NESTING`.
    """
    try:
        raw = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer literal over Python's digit limit
        raise SpecError(f"{where}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise SpecError(f"{where}: arrays or tables are nested too deep to read; a spec needs at "
                        f"most {MAX_NESTING} levels") from None
    check_nesting(raw, where)
    return raw


def check_nesting(value: object, where: str) -> None:
    """Raise a :class:`SpecError` naming the key path if ``value`` nests deeper than allowed.

    Walks with an explicit stack, so no depth can exhaust Python's recursion limit.
    """
    stack: list[tuple[object, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_NESTING:
            at = ".".join(path[:4]).replace(".[", "[")
            raise SpecError(f"{where}: {at}…: arrays and tables nest more than {MAX_NESTING} "
                            "levels deep; a spec needs a few")
        if isinstance(item, dict):
            stack.extend((v, (*path, str(k))) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*path, f"[{i}]")) for i, v in enumerate(item))


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
                raise SpecError(f"{source}: --set {shlex.quote(str(item))}: must look like key=value, "
                                "e.g. rule.lr=0.01")
            items.append((key.strip(), value.strip()))
    parsed: dict[str, Any] = {}
    for key, value in items:
        key = str(key)
        where = f"{source}: --set {shlex.quote(key)}"
        if isinstance(value, str):
            # A line break would end the TOML value and let the rest pass as other keys,
            # silently dropped: say so instead.
            if "\n" in value or "\r" in value:
                raise SpecError(f"{where}: the value holds a line break (got {value!r}); give one "
                                "key=value per --set, on one line")
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except ValueError:  # not a TOML value (TOMLDecodeError) or too many digits: keep the string
                pass
            except RecursionError:
                raise SpecError(f"{where}: arrays or tables are nested too deep to read; a spec "
                                f"needs at most {MAX_NESTING} levels") from None
        check_nesting(value, where)
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
    where = f"{source}: --set {shlex.quote(key)}"  # quoted as a shell needs it: 'projections.x->h1.init'
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
