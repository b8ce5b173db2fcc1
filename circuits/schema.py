"""Typed parameter declarations, and the reader that checks TOML tables against them.

A rule declares its parameters as :class:`Param` objects; the spec layer uses the same class
to check ``[rule]`` tables and ``--set`` overrides, so a rule's parameters are validated
exactly like the fixed keys of the spec. :class:`TableReader` is the one place where a TOML
table is read key by key, so that every error names the file, the key path, what is allowed,
what was given and a close match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from circuits.errors import SpecError, did_you_mean

__all__ = ["Param", "RuleSignature", "TableReader", "COMMON_PARAMS", "SCHEDULE_PARAMS", "SCHEDULES",
           "describe_value"]

_INT_LIMIT = 2**63 - 1  # what an int64 array dimension or seed can hold
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def describe_value(value: object) -> str:
    """Render a user's value the way it appears in an error message."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


@attrs.frozen
class Param:
    """One declared parameter: its type, default, allowed range or choices and meaning.

    ``minimum``/``maximum`` bound numbers (inclusive unless ``open_minimum``); ``choices``
    lists the allowed strings. A ``dict`` parameter is a table of numbers (name → float);
    ``check`` may inspect the coerced value further and raise ``ValueError`` with the reason.
    """

    name: str
    default: Any
    doc: str
    kind: type = attrs.field(default=None)
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    check: Callable[[Any], None] | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", type(self.default))

    def allowed(self) -> str:
        """Say in words what values this parameter accepts."""
        if self.choices is not None:
            return "must be one of " + ", ".join(self.choices)
        if self.kind is dict:
            return "must be a table of numbers, e.g. { \"pre*post\" = 1.0 }"
        if self.kind is tuple:
            low = "" if self.minimum is None else f" >= {self.minimum:g}"
            return f"must be an array of integers{low}, e.g. [8, 11]"
        text = "must be " + _TYPE_NAMES.get(self.kind, self.kind.__name__)
        if self.minimum is not None and self.maximum is not None:
            text += f" in {'(' if self.open_minimum else '['}{self.minimum:g}, {self.maximum:g}]"
        elif self.minimum is not None:
            text += f" {'>' if self.open_minimum else '>='} {self.minimum:g}"
        elif self.maximum is not None:
            text += f" <= {self.maximum:g}"
        return text

    def coerce(self, value: object) -> Any:
        """Return ``value`` converted to this parameter's type.

        Raises
        ------
        ValueError
            With the allowed values and a close match, when ``value`` does not fit.
        """
        given = describe_value(value)
        if self.kind is dict:
            return self._coerce_table(value, given)
        if self.kind is tuple:
            return self._coerce_array(value, given)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.allowed()} (got {given})")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.allowed()} (got {given})")
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{self.allowed()} (got {given}{did_you_mean(value, self.choices)})")
            return value
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{self.allowed()} (got {given})")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{self.allowed()} (got {given}; NaN and inf are not allowed)")
            if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
                raise ValueError(f"{self.allowed()} (got {given})")
            try:
                number = self.kind(value)
            except OverflowError:  # an integer beyond the float range
                raise ValueError(f"{self.allowed()} (got a number with {len(str(value))} digits)") from None
            if self.kind is int and abs(number) > _INT_LIMIT:
                raise ValueError(f"{self.allowed()} and at most {_INT_LIMIT} (got a number with "
                                 f"{len(str(abs(number)))} digits)")
            if isinstance(number, float) and not math.isfinite(number):
                raise ValueError(f"{self.allowed()} (got {given}; NaN and inf are not allowed)")
            too_low = self.minimum is not None and (
                number <= self.minimum if self.open_minimum else number < self.minimum
            )
            too_high = self.maximum is not None and number > self.maximum
            if too_low or too_high:
                raise ValueError(f"{self.allowed()} (got {given})")
            return number
        raise TypeError(f"unsupported parameter kind {self.kind!r}")  # a bug in a rule

    def _coerce_array(self, value: object, given: str) -> tuple[int, ...]:
        """An array of integers (each ``>= minimum``), as a tuple; ``check`` sees the tuple."""
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{self.allowed()} (got {given})")
        for item in value:
            whole = isinstance(item, int) and not isinstance(item, bool) and abs(item) <= _INT_LIMIT
            if not whole or (self.minimum is not None and item < self.minimum):
                raise ValueError(f"{self.allowed()} (got {describe_value(item)} in the array)")
        array = tuple(int(item) for item in value)
        if self.check is not None:
            self.check(array)
        return array

    def _coerce_table(self, value: object, given: str) -> dict[str, float]:
        if not isinstance(value, dict):
            raise ValueError(f"{self.allowed()} (got {given})")
        table = {}
        for key, number in value.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise ValueError(f"entry {key!r} must be a finite number (got {describe_value(number)})")
            table[str(key)] = float(number)
        if self.check is not None:
            self.check(table)
        return table


@attrs.frozen
class RuleSignature:
    """What the spec layer needs to know about a learning rule: its name and parameters.

    ``needs`` says in words which feedback pathways the rule expects (shown by
    ``circuits rules``); ``energy_based`` rules accept cyclic forward graphs.
    """

    name: str
    doc: str
    params: tuple[Param, ...]
    needs: str = "nothing beyond the forward graph"
    energy_based: bool = False

    def param(self, name: str) -> Param:
        """Return the declared parameter called ``name`` (KeyError if absent)."""
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default value."""
        return {param.name: param.default for param in self.params}


SCHEDULES = ("constant", "step", "cosine")


def _check_milestones(value: tuple[int, ...]) -> None:
    if any(b <= a for a, b in zip(value, value[1:])):
        raise ValueError(f"must list epochs in increasing order, each once (got {list(value)})")


SCHEDULE_PARAMS: tuple[Param, ...] = (
    Param("lr_schedule", "constant", "how every learning rate changes from epoch to epoch: constant, "
          "step (times lr_gamma after each epoch of lr_milestones) or cosine (from lr down to "
          "lr_floor * lr over lr_epochs epochs)", choices=SCHEDULES),
    Param("lr_milestones", (), "step schedule: the epochs after which every learning rate is "
          "multiplied by lr_gamma", kind=tuple, minimum=1, check=_check_milestones),
    Param("lr_gamma", 0.1, "step schedule: the factor applied after each milestone",
          minimum=0.0, maximum=1.0, open_minimum=True),
    Param("lr_epochs", 0, "cosine schedule: epochs over which the rates fall to lr_floor * lr "
          "(0: task.epochs, resolved when the spec is read)", minimum=0),
    Param("lr_floor", 0.0, "cosine schedule: the final rate as a fraction of lr", minimum=0.0, maximum=1.0),
)
"""The learning-rate schedule's keys, part of :data:`COMMON_PARAMS` (see :mod:`circuits.lr_schedule`)."""

COMMON_PARAMS: tuple[Param, ...] = (
    Param("lr", 0.05, "learning rate of every plastic parameter (a projection's own lr overrides it)",
          minimum=0.0, open_minimum=True),
    Param("optimizer", "sgd", "sgd (with momentum and weight decay) or adam", choices=("sgd", "adam")),
    Param("momentum", 0.0, "SGD momentum", minimum=0.0, maximum=0.999),
    Param("weight_decay", 0.0, "L2 decay: each step multiplies weights by (1 - lr * weight_decay)",
          minimum=0.0),
    Param("adam_beta1", 0.9, "Adam's first-moment decay", minimum=0.0, maximum=0.9999),
    Param("adam_beta2", 0.999, "Adam's second-moment decay", minimum=0.0, maximum=0.999999),
    Param("adam_eps", 1e-8, "Adam's denominator floor", minimum=0.0, open_minimum=True),
    *SCHEDULE_PARAMS,
)


class TableReader:
    """Read one TOML table key by key, checking each value and every key's spelling.

    Parameters
    ----------
    table
        The parsed TOML table.
    path
        The key path of the table (``"populations.h1"``), used in messages.
    source
        The file name shown at the front of every message.
    """

    def __init__(self, table: object, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if not isinstance(table, dict):
            raise self.error(f"must be a table (got {describe_value(table)})", key=None)
        self.table = table
        self.seen: set[str] = set()

    def where(self, key: str | None) -> str:
        """The key path of ``key`` inside this table."""
        if key is None:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def error(self, message: str, key: str | None) -> SpecError:
        """A :class:`SpecError` for ``key`` of this table."""
        return SpecError(f"{self.source}: {self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        """Whether the table holds ``key``."""
        return key in self.table

    def raw(self, key: str, default: Any = None) -> Any:
        """The unchecked value of ``key`` (marked as seen)."""
        self.seen.add(key)
        return self.table.get(key, default)

    def get(self, param: Param, *, required: bool = False) -> Any:
        """The value of ``param.name`` checked against ``param``, or its default."""
        self.seen.add(param.name)
        if param.name not in self.table:
            if required:
                raise self.error(f"is required; {param.allowed()} ({param.doc})", key=param.name)
            return param.default
        value = self.table[param.name]
        if value is None and param.default is None:
            return None
        try:
            return param.coerce(value)
        except ValueError as exc:
            raise self.error(str(exc), key=param.name) from None

    def optional(self, name: str, kind: type, doc: str, check: Callable[[Any], bool] | None = None,
                 allowed: str | None = None) -> Any:
        """A value that may be absent (``None``); present values are type-checked."""
        self.seen.add(name)
        if name not in self.table:
            return None
        value = self.table[name]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value, ok = float(value), True
            except OverflowError:  # an integer beyond the float range
                ok = False
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and kind is int and abs(value) > _INT_LIMIT:
            ok = False
        if not ok or (check is not None and not check(value)):
            text = allowed or f"must be {_TYPE_NAMES.get(kind, kind.__name__)}"
            raise self.error(f"{text} ({doc}) (got {describe_value(value)})", key=name)
        return value

    def finish(self, allowed: Sequence[str] | None = None) -> None:
        """Raise for the first key that was never read (an unknown key)."""
        known = list(allowed) if allowed is not None else sorted(self.seen)
        for key in self.table:
            if key not in self.seen:
                listing = ", ".join(known) if known else "no keys"
                raise self.error(
                    f"unknown key; allowed keys are {listing}{did_you_mean(key, known)}", key=key
                )


def check_params(reader: TableReader, params: Sequence[Param]) -> dict[str, Any]:
    """Read every declared parameter from ``reader`` and reject unknown keys."""
    values = {param.name: reader.get(param) for param in params}
    reader.finish([param.name for param in params])
    return values


def as_mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict copy of an optional mapping."""
    return dict(value) if value else {}
