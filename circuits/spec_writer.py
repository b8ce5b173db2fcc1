"""The resolved spec back to TOML: :func:`dump_spec`.

Every value is written, defaults included (except the learning-rate schedule's keys at their
defaults, see :func:`dump_spec`), so reading the text back gives the same spec:
``parse_spec(dump_spec(s), rules=...) == s`` (see :mod:`circuits.spec`). A run folder's
``spec.toml`` is written this way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from circuits.lr_schedule import SCHEDULE_DEFAULTS
from circuits.spec import CircuitSpec

__all__ = ["dump_spec"]

_OMITTED_AT_DEFAULT = {**SCHEDULE_DEFAULTS, "target_low": 0.0, "target_high": 1.0}

# TOML's bare-key characters; any other key is written as a quoted string.
_BARE_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN/inf cannot be written to a spec")
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escape(c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _escape(char: str) -> str:
    """One character of a TOML basic string, escaped where TOML requires it."""
    if char in ('"', "\\"):
        return "\\" + char
    if char == "\n":
        return "\\n"
    if char == "\t":
        return char
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char


def _toml_key(key: str) -> str:
    return key if key and set(key) <= _BARE_KEY_CHARS else _toml_value(key)


def _table(name: str, items: Mapping[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in items.items() if v is not None]
    return lines + [""]


def dump_spec(spec: CircuitSpec) -> str:
    """Write ``spec`` as TOML with every default filled in (the resolved spec)."""
    lines = _table("circuit", {"name": spec.name, "doc": spec.doc})
    lines.append("[populations]")
    for pop in spec.populations:
        fields = {k: v for k, v in attrs.asdict(pop).items() if v is not None}  # spikes: absent when off
        del fields["name"]
        del fields["rate_params"]  # a plain rate function stays a string, as before parameters existed
        if not pop.rate_params.plain:
            fields["activation"] = pop.rate_params.as_table(pop.activation)
        lines.append(f"{_toml_key(pop.name)} = {_toml_value(fields)}")
    lines.append("")
    for proj in spec.projections:
        init = {k: v for k, v in attrs.asdict(proj.init).items() if v is not None}
        entry = {"from": proj.source, "to": proj.target, "type": proj.type, "name": proj.name,
                 "init": init, "bias": proj.bias, "plastic": proj.plastic, "lr": proj.lr, "compartment": proj.compartment,
                 "conv": attrs.asdict(proj.conv) if proj.conv else None,
                 "pool": attrs.asdict(proj.pool) if proj.pool else None}
        lines += _table("[projections]", entry)
    # Schedule keys at their default are left out, so that a run without a schedule keeps the
    # identity (hash of this text) it had before schedules existed; reading fills them back in.
    # Output target rates at their default (0, 1) likewise, since the feed-forward rules gained them.
    params = {k: v for k, v in spec.rule.params.items()
              if not (k in _OMITTED_AT_DEFAULT and v == _OMITTED_AT_DEFAULT[k])}
    lines += _table("rule", {"name": spec.rule.name, **params})
    task = attrs.asdict(spec.task)
    options = task.pop("options")
    lines += _table("task", task)
    if options:
        lines += _table("task.options", options)
    lines += _table("run", attrs.asdict(spec.run))
    return "\n".join(lines)
