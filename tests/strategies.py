"""Hypothesis strategies shared by the test suite (the one place they live, STYLE rule 11).

Names here are used by several test files; keep them stable.

Raw specs
    :func:`population_names`, :func:`spec_dicts` (random *valid* spec tables as Python dicts),
    :func:`spec_texts` (the same rendered as TOML), :func:`to_toml` (a small TOML writer, since
    :mod:`tomllib` only reads).
Corruptions
    :func:`corrupted_dicts`, :func:`corrupted_texts`, :func:`corrupted_bytes`,
    :func:`override_lists`: inputs that must end in a ``SpecError``/``GraphError`` or parse.
Circuits for numerical tests
    :func:`dag_circuits` (a random forward DAG with sizes, activations, loss and seed) and
    :func:`dag_spec_text` (spec TOML text for one of them, under any rule).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "population_names", "spec_dicts", "spec_texts", "to_toml", "toml_value",
    "corrupted_dicts", "corrupted_texts", "corrupted_bytes", "override_lists", "misspell",
    "BAD_NUMBERS", "WRONG_TYPES", "GARBAGE_LINES",
    "dag_circuits", "dag_spec_text",
    "INIT_SCHEMES", "HIDDEN_ACTIVATIONS", "DAG_HIDDEN_ACTIVATIONS",
]

# Spelled out here rather than imported, so the strategies check the spec module against an
# independent statement of the format.
INIT_SCHEMES = ("xavier", "glorot", "xavier_normal", "glorot_normal", "he", "he_uniform",
                "uniform", "normal", "orthogonal", "zeros")
HIDDEN_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid")
OUTPUT_ACTIVATIONS = (*HIDDEN_ACTIVATIONS, "softmax")
DAG_HIDDEN_ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# ---------------------------------------------------------------------------------------------
# A small TOML writer


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def toml_value(value: Any) -> str:
    """Render one value as inline TOML (``nan``/``inf`` included, dicts as inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _emit(lines: list[str], path: tuple[str, ...], table: dict[str, Any], header: str | None,
          inline_from: int) -> None:
    depth = len(path) + 1  # depth of this table's values
    nested = depth < inline_from
    inline = [(k, v) for k, v in table.items()
              if not nested or not (isinstance(v, dict) or _is_table_array(v))]
    if header is not None:
        lines.append(header)
    lines.extend(f"{_toml_key(k)} = {toml_value(v)}" for k, v in inline)
    if header is not None or inline:
        lines.append("")
    if not nested:
        return
    for key, value in table.items():
        sub = (*path, key)
        dotted = ".".join(_toml_key(k) for k in sub)
        if isinstance(value, dict):
            _emit(lines, sub, value, f"[{dotted}]", inline_from)
        elif _is_table_array(value):
            for item in value:
                _emit(lines, sub, item, f"[[{dotted}]]", inline_from)


def to_toml(data: dict[str, Any], *, inline_from: int = 2) -> str:
    """Render nested dicts as TOML text.

    Parameters
    ----------
    data
        Tables as dicts, arrays of tables as lists of dicts, in the order to write them.
    inline_from
        Tables nested this deep or deeper are written inline (``x = { size = 3 }``); shallower
        ones get ``[a.b]`` / ``[[a]]`` headers. 1 writes everything inline.
    """
    lines: list[str] = []
    _emit(lines, (), data, None, inline_from)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Valid raw specs


def population_names() -> st.SearchStrategy[str]:
    """Valid population names: a letter then letters, digits and underscores (≤ 8 chars)."""
    return st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)


def _finite(lo: float, hi: float, *, exclude_min: bool = False) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, exclude_min=exclude_min, allow_nan=False, allow_infinity=False)


def _maybe(draw: Callable[..., Any], table: dict[str, Any], key: str,
           strategy: st.SearchStrategy[Any]) -> None:
    """Set ``table[key]`` to a drawn value, or leave it out (the default applies)."""
    if draw(st.booleans()):
        table[key] = draw(strategy)


@st.composite
def _init_values(draw: Callable[..., Any]) -> str | dict[str, Any]:
    scheme = draw(st.sampled_from(INIT_SCHEMES))
    if draw(st.booleans()):
        return scheme
    table: dict[str, Any] = {"scheme": scheme}
    _maybe(draw, table, "gain", _finite(0.0, 4.0))
    if scheme == "normal":
        _maybe(draw, table, "std", _finite(0.0, 2.0))
    if scheme == "uniform":
        _maybe(draw, table, "scale", _finite(0.0, 2.0))
    if len(table) > 1 and draw(st.booleans()):
        table = dict(draw(st.permutations(list(table.items()))))
    return table


@st.composite
def _population_table(draw: Callable[..., Any], role: str) -> dict[str, Any]:
    table: dict[str, Any] = {"size": draw(st.integers(1, 12))}
    if role != "hidden" or draw(st.booleans()):
        table["role"] = role
    choices = OUTPUT_ACTIVATIONS if role == "output" else HIDDEN_ACTIVATIONS
    _maybe(draw, table, "activation", st.sampled_from(choices))
    _maybe(draw, table, "dropout", _finite(0.0, 0.95))
    _maybe(draw, table, "step", _finite(0.0, 1.0, exclude_min=True))
    _maybe(draw, table, "noise", _finite(0.0, 3.0))
    _maybe(draw, table, "noise_type", st.sampled_from(("gaussian", "poisson")))
    return table


@st.composite
def _forward_edges(draw: Callable[..., Any], order: Sequence[str]) -> list[tuple[str, str]]:
    """Edges of a DAG over ``order`` (a topological order) in which every node is reachable
    from ``order[0]`` and reaches ``order[-1]``: each node gets one edge in from an earlier node
    and one out to a later node (the adjacent ones when layered), plus random skips."""
    n = len(order)
    layered = draw(st.booleans())
    edges: set[tuple[int, int]] = set()
    for i in range(1, n):
        edges.add((i - 1 if layered else draw(st.integers(0, i - 1)), i))
    for i in range(n - 1):
        if not any(a == i for a, _ in edges):
            edges.add((i, i + 1 if layered else draw(st.integers(i + 1, n - 1))))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) not in edges]
    if pairs:
        edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=3)))
    return [(order[i], order[j]) for i, j in sorted(edges)]


@st.composite
def _rule_table(draw: Callable[..., Any], name: str) -> dict[str, Any]:
    table: dict[str, Any] = {"name": name}
    _maybe(draw, table, "lr", _finite(0.0, 10.0, exclude_min=True))
    _maybe(draw, table, "optimizer", st.sampled_from(("sgd", "adam")))
    _maybe(draw, table, "momentum", _finite(0.0, 0.999))
    _maybe(draw, table, "weight_decay", _finite(0.0, 1.0))
    _maybe(draw, table, "adam_beta1", _finite(0.0, 0.9999))
    _maybe(draw, table, "adam_beta2", _finite(0.0, 0.999999))
    _maybe(draw, table, "adam_eps", _finite(0.0, 1e-3, exclude_min=True))
    schedule = draw(st.sampled_from((None, "constant", "step", "cosine")))
    if schedule is not None:
        table["lr_schedule"] = schedule
    if schedule == "step":
        table["lr_milestones"] = sorted(draw(st.sets(st.integers(1, 200), min_size=1, max_size=4)))
        _maybe(draw, table, "lr_gamma", _finite(0.0, 1.0, exclude_min=True))
    if schedule == "cosine":
        _maybe(draw, table, "lr_epochs", st.integers(0, 200))
        _maybe(draw, table, "lr_floor", _finite(0.0, 1.0))
    if name == "feedback_alignment":
        _maybe(draw, table, "feedback_scale", _finite(0.0, 2.0, exclude_min=True))
    return table


@st.composite
def _task_table(draw: Callable[..., Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if draw(st.booleans()):
        table["dataset"] = "digits"
    _maybe(draw, table, "loss", st.sampled_from(("mse", "cross_entropy")))
    _maybe(draw, table, "epochs", st.integers(0, 100))
    _maybe(draw, table, "batch_size", st.integers(1, 512))
    _maybe(draw, table, "normalize", st.sampled_from(("standard", "unit", "none")))
    _maybe(draw, table, "data_dir", st.sampled_from(("data", "/tmp/circuits data", "C:\\data")))
    _maybe(draw, table, "n_train", st.integers(1, 2000))
    _maybe(draw, table, "n_test", st.integers(1, 500))
    _maybe(draw, table, "options", st.fixed_dictionaries({}, optional={
        "test_fraction": _finite(0.05, 0.5)}))
    return table


@st.composite
def _run_table(draw: Callable[..., Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    _maybe(draw, table, "seed", st.integers(0, 2**32))
    _maybe(draw, table, "backend", st.sampled_from(("numpy", "cupy")))
    _maybe(draw, table, "dtype", st.sampled_from(("float32", "float64")))
    _maybe(draw, table, "out", st.sampled_from(("runs/a", "out dir/ü")))
    _maybe(draw, table, "align_every", st.integers(0, 50))
    _maybe(draw, table, "eval_batch_size", st.integers(1, 4096))
    return table


_DOC_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@st.composite
def spec_dicts(draw: Callable[..., Any], rule: str | None = None) -> dict[str, Any]:
    """Random *valid* raw specs: the TOML tables as Python dicts, in writing order.

    One input, one output and 0–4 hidden populations (sizes 1–12, activations allowed for the
    role, optional dropout/step/noise); forward projections forming a DAG in which every
    population is reachable from the input and reaches the output (a random layered DAG, or a
    random one, with skips); optionally output→hidden feedback projections and a lateral self
    projection; every init form; a ``[rule]`` of ``rule`` (``backprop`` or
    ``feedback_alignment``, drawn when None) with valid parameters (FA gets a fixed feedback
    projection for every forward projection out of a hidden population, or
    ``auto_feedback = true``); ``[task]`` digits and ``[run]`` with valid values. Optional
    keys are left out at random so that defaults are exercised.
    """
    n_hidden = draw(st.integers(0, 4))
    names = draw(st.lists(population_names(), min_size=n_hidden + 2, max_size=n_hidden + 2,
                          unique=True))
    inp, out, hidden = names[0], names[-1], names[1:-1]
    roles = {inp: "input", out: "output", **{h: "hidden" for h in hidden}}
    populations = {name: draw(_population_table(roles[name])) for name in names}

    projections: list[dict[str, Any]] = []
    used: set[str] = set()

    def add(source: str, target: str, kind: str | None, *, plastic: bool | None = None) -> None:
        entry: dict[str, Any] = {"from": source, "to": target}
        if kind is not None:
            entry["type"] = kind
        if draw(st.integers(0, 4)) == 0:  # a custom name (never holds "->", unlike defaults)
            name = draw(st.sampled_from((f"w_{source}_{target}", f"{kind or 'forward'}-{source}-{target}")))
            if name not in used:
                entry["name"] = name
                used.add(name)
        _maybe(draw, entry, "init", _init_values())
        if plastic is not None:
            entry["plastic"] = plastic
        else:
            _maybe(draw, entry, "plastic", st.booleans())
        _maybe(draw, entry, "bias", st.booleans())
        _maybe(draw, entry, "lr", _finite(0.0, 1.0, exclude_min=True))
        projections.append(entry)

    forward = draw(_forward_edges(names))
    for source, target in forward:
        add(source, target, draw(st.sampled_from((None, "forward"))))

    rule_name = rule or draw(st.sampled_from(("backprop", "feedback_alignment")))
    rule_table = draw(_rule_table(rule_name))
    feedback: set[tuple[str, str]] = set()
    if rule_name == "feedback_alignment":
        if draw(st.booleans()):
            rule_table["auto_feedback"] = True
        else:
            feedback = {(t, s) for s, t in forward if roles[s] == "hidden"}
    elif hidden:
        feedback = {(out, h) for h in draw(st.lists(st.sampled_from(hidden), max_size=2))}
    for source, target in sorted(feedback):
        add(source, target, "feedback", plastic=False if rule_name == "feedback_alignment" else None)
    if hidden and draw(st.booleans()):
        h = draw(st.sampled_from(hidden))
        add(h, h, "lateral")

    circuit: dict[str, Any] = {"name": draw(st.sampled_from(("t", "fa-digits", "circuit_2")))}
    _maybe(draw, circuit, "doc", _DOC_TEXT)
    spec: dict[str, Any] = {"circuit": circuit, "populations": populations,
                            "projections": projections, "rule": rule_table}
    for key, table in (("task", _task_table()), ("run", _run_table())):
        value = draw(table)
        if value or draw(st.booleans()):
            spec[key] = value
    return spec


@st.composite
def spec_texts(draw: Callable[..., Any], rule: str | None = None) -> str:
    """Random valid spec TOML text: a :func:`spec_dicts` draw written by :func:`to_toml`
    with a random choice of inline tables versus ``[headers]``."""
    return to_toml(draw(spec_dicts(rule)), inline_from=draw(st.integers(1, 3)))


# ---------------------------------------------------------------------------------------------
# Corruptions


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path (dict keys and list indices) inside ``value``."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        found.append((*prefix, key))
        found.extend(_paths(sub, (*prefix, key)))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _leaf(data: Any, path: tuple[Any, ...]) -> Any:
    return _parent(data, path)[path[-1]]


def misspell(draw: Callable[..., Any], word: str) -> str:
    """``word`` with one character dropped, doubled, swapped or replaced (never unchanged)."""
    letters = "abcdefghijklmnopqrstuvwxyz_-0 >"
    for _ in range(5):
        i = draw(st.integers(0, max(len(word) - 1, 0)))
        op = draw(st.sampled_from(("drop", "double", "swap", "replace", "append")))
        if op == "drop" and word:
            new = word[:i] + word[i + 1:]
        elif op == "double" and word:
            new = word[:i] + word[i] + word[i:]
        elif op == "swap" and len(word) > 1:
            i = min(i, len(word) - 2)
            new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        elif op == "replace" and word:
            new = word[:i] + draw(st.sampled_from(letters)) + word[i + 1:]
        else:
            new = word + draw(st.sampled_from(letters))
        if new != word:
            return new
    return word + "x"


BAD_NUMBERS = (-1, 0, -7.5, 0.0, -0.0, math.nan, math.inf, -math.inf, 2**63 - 1, -(2**63),
               10**30, 1e300, -1e300, 1e-320, 0.5, 3.7, 1000001)
"""Numbers that are out of range, non-finite, huge or of the wrong kind somewhere in a spec.
(Integers beyond the float range, e.g. ``10**400``, are left out: see ``test_spec.py``.)"""

WRONG_TYPES: tuple[Any, ...] = ("", "x", "relu", "nan", True, False, 3, -2, 0.25, [], [1, "a"],
                                {}, {"size": 3}, [{"from": "x"}], {"a": {"b": [1]}})
"""Values of the wrong type (or shape) for most keys of a spec."""


@st.composite
def corrupted_dicts(draw: Callable[..., Any], base: st.SearchStrategy[dict[str, Any]] | None = None
                    ) -> dict[str, Any]:
    """A :func:`spec_dicts` draw with 1–3 corruptions: a key deleted, a value of the wrong
    type, a key or a string value (a name, a choice) misspelt, a number replaced by a bad one
    (negative, zero, NaN, inf, huge), a table emptied or a population dropped."""
    data = copy.deepcopy(draw(base if base is not None else spec_dicts()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        kind = draw(st.sampled_from(("delete", "wrong_type", "misspell_key", "misspell_value",
                                     "bad_number", "empty_table")))
        if kind in ("misspell_value", "bad_number"):
            want = str if kind == "misspell_value" else (int, float)
            paths = [p for p in paths if isinstance(_leaf(data, p), want)
                     and not isinstance(_leaf(data, p), bool)] or paths
        if kind in ("delete", "misspell_key", "empty_table"):
            paths = [p for p in paths if isinstance(_parent(data, p), dict)] or paths
        if not paths:
            data[draw(st.sampled_from(("circuit", "populations", "rule")))] = draw(st.sampled_from(WRONG_TYPES))
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        value = parent[key]
        if kind == "delete":
            del parent[key]
        elif kind == "wrong_type":
            parent[key] = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
        elif kind == "misspell_key" and isinstance(parent, dict):
            new_key = misspell(draw, str(key))
            parent[new_key] = parent.pop(key)
        elif kind == "misspell_value" and isinstance(value, str):
            parent[key] = misspell(draw, value)
        elif kind == "bad_number":
            parent[key] = draw(st.sampled_from(BAD_NUMBERS))
        elif isinstance(value, (dict, list)):
            parent[key] = type(value)()
        else:
            parent[key] = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
    return data


GARBAGE_LINES = ("[", "]]", "x = ", "= 1", "[populations]", "[[projections]]", "name = 'a' 'b'",
                 "size = 1_000_", "a.b.c = {", '"unterminated', "x = 1979-05-27T07:32:00Z",
                 "lr = 0x1F", "k = +inf", "k = -nan", "\\u0000", "\t\t", "#", "chain = []")


@st.composite
def corrupted_texts(draw: Callable[..., Any]) -> str:
    """Valid spec text (or a :func:`corrupted_dicts` rendering) then 1–3 text corruptions:
    truncation, a garbage line inserted, a line deleted or duplicated, a character replaced."""
    if draw(st.booleans()):
        text = draw(spec_texts())
    else:
        text = to_toml(draw(corrupted_dicts()), inline_from=draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(("truncate", "insert", "delete", "duplicate", "replace_char")))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
            continue
        if kind == "insert":
            garbage = draw(st.one_of(st.sampled_from(GARBAGE_LINES), st.text(max_size=20)))
            lines.insert(i, garbage)
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.characters()) + lines[i][j + 1:]
        text = "\n".join(lines)
    return text


@st.composite
def corrupted_bytes(draw: Callable[..., Any]) -> bytes:
    """Spec text encoded as UTF-8, then random bytes (often invalid UTF-8) inserted,
    overwritten or the data cut mid-character."""
    data = bytearray(draw(st.one_of(spec_texts(), corrupted_texts())).encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        chunk = draw(st.one_of(st.sampled_from((b"\xff", b"\xc3", b"\xe2\x82", b"\x00", b"\xef\xbb\xbf",
                                                b"\xed\xa0\x80", b"\r", b"\x80abc")),
                               st.binary(min_size=1, max_size=6)))
        if draw(st.booleans()):
            data[i:i] = chunk
        else:
            data[i:i + len(chunk)] = chunk
    return bytes(data)


_OVERRIDE_KEYS = ("rule.lr", "rule.name", "rule.momentum", "rule.nope", "populations.h1.size",
                  "populations.y.activation", "task.epochs", "task.options.test_fraction",
                  "run.seed", "run.dtype", "circuit.name", "projections.x->h1.init",
                  "projections.nope.lr", "projections.x->h1", "rule", "", "a.b.c.d",
                  "populations", "circuit.name.x", "task.options.bad")
_OVERRIDE_VALUES = ("0.01", "abc", "-1", "nan", "inf", "1e999", "true", "[1, 2]", "{ a = 1 }",
                    '"he"', "he", "", "=", "1 2", '"unterminated', "99999999999999999999")


def override_lists() -> st.SearchStrategy[list[str]]:
    """Lists of ``--set key=value`` strings, mostly nonsense: unknown keys, wrong types, bad
    numbers, missing ``=``; some valid. Applying them must parse or raise ``SpecError``."""
    item = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_OVERRIDE_KEYS), st.sampled_from(_OVERRIDE_VALUES)),
        st.sampled_from(_OVERRIDE_KEYS),
        st.text(max_size=12),
    )
    return st.lists(item, max_size=3)


# ---------------------------------------------------------------------------------------------
# Circuits for numerical tests


@st.composite
def dag_circuits(draw: Callable[..., Any], max_depth: int = 4, max_size: int = 12) -> dict[str, Any]:
    """A random forward DAG circuit, for gradient and rule tests through the Python API.

    Returns a dict:

    ``sizes``
        population name → size (1–``max_size``), in a topological order: the input ``"x"``
        first, the output ``"y"`` last, hidden ``"h1"``, ``"h2"``, … between.
    ``activations``
        name → activation: ``"linear"`` for the input; linear/tanh/sigmoid/relu for hidden;
        linear or sigmoid for the output under ``mse``, linear under ``cross_entropy``.
    ``edges``
        ``[(source, target), ...]`` forward projections, no duplicates. Depth (the longest
        path from x to y, in projections) is 1–``max_depth``; hidden layers hold 1–2
        populations; every population is reachable from x and reaches y; random skips.
    ``loss``
        ``"mse"`` or ``"cross_entropy"`` (then the output has size ≥ 2).
    ``seed``
        the run seed.
    ``input``, ``output``
        the names ``"x"`` and ``"y"``.
    """
    depth = draw(st.integers(1, max_depth))
    layers: list[list[str]] = [["x"]]
    count = 0
    for _ in range(depth - 1):
        width = draw(st.integers(1, 2))
        layers.append([f"h{count + k + 1}" for k in range(width)])
        count += width
    layers.append(["y"])
    loss = draw(st.sampled_from(("mse", "cross_entropy")))

    sizes: dict[str, int] = {}
    activations: dict[str, str] = {}
    for layer in layers:
        for name in layer:
            low = 2 if name == "y" and loss == "cross_entropy" else 1
            sizes[name] = draw(st.integers(low, max(low, max_size)))
            if name == "x":
                activations[name] = "linear"
            elif name == "y":
                activations[name] = "linear" if loss == "cross_entropy" else draw(
                    st.sampled_from(("linear", "sigmoid")))
            else:
                activations[name] = draw(st.sampled_from(DAG_HIDDEN_ACTIVATIONS))

    edges: set[tuple[str, str]] = set()
    for index in range(1, len(layers)):
        for name in layers[index]:  # one edge in from the layer before keeps the depth exact
            edges.add((draw(st.sampled_from(layers[index - 1])), name))
    for index in range(len(layers) - 1):
        for name in layers[index]:  # one edge out to the next layer: everything reaches y
            if not any(s == name and t in layers[index + 1] for s, t in edges):
                edges.add((name, draw(st.sampled_from(layers[index + 1]))))
    later = [(a, b) for i, la in enumerate(layers) for lb in layers[i + 1:] for a in la for b in lb]
    edges |= set(draw(st.lists(st.sampled_from(later), max_size=3)))
    position = {name: i for i, name in enumerate(sizes)}
    return {
        "sizes": sizes,
        "activations": activations,
        "edges": sorted(edges, key=lambda e: (position[e[0]], position[e[1]])),
        "loss": loss,
        "seed": draw(st.integers(0, 2**31 - 1)),
        "input": "x",
        "output": "y",
    }


def dag_spec_text(circuit: dict[str, Any], rule: str = "backprop", dtype: str = "float64",
                  extra_rule: str = "") -> str:
    """Spec TOML text for a :func:`dag_circuits` draw.

    Parameters
    ----------
    circuit
        A :func:`dag_circuits` draw.
    rule
        The rule name written to ``[rule]``.
    dtype
        ``run.dtype``.
    extra_rule
        Extra lines for the ``[rule]`` table, e.g. ``"auto_feedback = true"``.

    The task is ``xor`` with the circuit's loss (these specs are meant for the Python API,
    not for training on the data set); the run seed is the circuit's.
    """
    first, last = circuit.get("input", "x"), circuit.get("output", "y")
    populations = {}
    shapes = circuit.get("shapes", {})
    for name, size in circuit["sizes"].items():
        table: dict[str, Any] = {"shape": list(shapes[name])} if name in shapes else {"size": size}
        if name == first:
            table["role"] = "input"
        elif name == last:
            table["role"] = "output"
        table["activation"] = circuit["activations"][name]
        populations[name] = table
    text = to_toml({
        "circuit": {"name": "dag", "doc": "a random forward DAG from tests/strategies.py"},
        "populations": populations,
        "projections": [{"from": s, "to": t, **circuit.get("convs", {}).get((s, t), {})}
                        for s, t in circuit["edges"]],
    })
    rule_lines = f'[rule]\nname = "{rule}"\n' + (extra_rule.strip() + "\n" if extra_rule.strip() else "")
    rest = to_toml({
        "task": {"dataset": "xor", "loss": circuit["loss"]},
        "run": {"seed": circuit["seed"], "dtype": dtype},
    })
    return text + rule_lines + "\n" + rest


@st.composite
def conv_circuits(draw: Callable[..., Any], max_stages: int = 2) -> dict[str, Any]:
    """A random topographic circuit, in the format of :func:`dag_circuits` plus two keys.

    ``x`` (``C×H×W`` maps, C 1–2, H and W 3–8) feeds 1–``max_stages`` conv stages ``c1``, ``c2``,
    … (kernel 1–3, stride 1–2, padding below the kernel, 1–3 output channels, then no pooling,
    max or average pooling where the size divides the maps), then optionally a dense hidden
    population ``h``, then the output ``y``; a random dense skip from a conv stage to ``y``.

    ``shapes``
        name → population shape, for the shaped populations.
    ``convs``
        ``(source, target)`` → ``{"conv": {...}, "pool": {...}}`` of each conv projection.
    """
    channels = draw(st.integers(1, 2))
    shape = (channels, draw(st.integers(3, 8)), draw(st.integers(3, 8)))
    shapes = {"x": shape}
    convs: dict[tuple[str, str], dict[str, Any]] = {}
    order = ["x"]
    for index in range(draw(st.integers(1, max_stages))):
        kernel = draw(st.integers(1, min(3, shape[1], shape[2])))
        stride = draw(st.integers(1, 2))
        padding = draw(st.integers(0, kernel - 1))
        height = (shape[1] + 2 * padding - kernel) // stride + 1
        width = (shape[2] + 2 * padding - kernel) // stride + 1
        table: dict[str, Any] = {"conv": {"kernel": kernel, "stride": stride, "padding": padding}}
        sizes = [n for n in (2, 3) if height % n == 0 and width % n == 0]
        kind = draw(st.sampled_from(["none", "max", "avg"])) if sizes else "none"
        if kind != "none":
            size = draw(st.sampled_from(sizes))
            table["pool"] = {"kind": kind, "size": size}
            height, width = height // size, width // size
        name = f"c{index + 1}"
        shape = (draw(st.integers(1, 3)), height, width)
        shapes[name] = shape
        convs[(order[-1], name)] = table
        order.append(name)
    edges = list(zip(order, order[1:]))
    if draw(st.booleans()):
        order.append("h")
        edges.append((order[-2], "h"))
    edges.append((order[-1], "y"))
    skips = [(name, "y") for name in order[1:-1] if (name, "y") not in edges]
    if skips and draw(st.booleans()):
        edges.append(draw(st.sampled_from(skips)))
    order.append("y")
    loss = draw(st.sampled_from(("mse", "cross_entropy")))
    sizes = {name: math.prod(shapes[name]) if name in shapes else draw(st.integers(2, 6)) for name in order}
    activations = {name: draw(st.sampled_from(DAG_HIDDEN_ACTIVATIONS)) for name in order}
    activations["x"] = "linear"
    activations["y"] = "linear" if loss == "cross_entropy" else draw(st.sampled_from(("linear", "sigmoid")))
    position = {name: i for i, name in enumerate(order)}
    return {
        "sizes": sizes,
        "shapes": shapes,
        "convs": convs,
        "activations": activations,
        "edges": sorted(edges, key=lambda e: (position[e[0]], position[e[1]])),
        "loss": loss,
        "seed": draw(st.integers(0, 2**31 - 1)),
        "input": "x",
        "output": "y",
    }
