"""The circuit spec: TOML text → frozen, fully resolved :class:`CircuitSpec`.

Stages of :func:`parse_spec`:

1. parse TOML (syntax errors carry line and column);
2. expand ``chain = [...]`` shorthands into one projection per link;
3. apply ``--set key=value`` overrides (:mod:`circuits.overrides`) to the raw tables, so they
   are checked like the file;
4. read every table key by key (unknown keys, wrong types, ranges, NaN/inf, names);
5. fill defaults, including the rule's declared parameters.

The result is *resolved*: :func:`circuits.spec_writer.dump_spec` writes every value, so
``parse_spec(dump_spec(s), rules=...) == s``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from circuits.cells import CELL_KEYS, COMPARTMENTS, default_compartment, read_cell
from circuits.data import DATASETS
from circuits.errors import SpecError, did_you_mean
from circuits.lr_schedule import resolve_schedule
from circuits.overrides import apply_override, load_toml, parse_overrides
from circuits.rates import PARAMETRISABLE, PLAIN, RATE_PARAM_KEYS, RateParams
from circuits.schema import Param, RuleSignature, TableReader, check_params, describe_value
from circuits.shapes import ConvSpec, PoolSpec, format_shape, read_conv, read_pool, read_shape

__all__ = [
    "ACTIVATIONS", "ROLES", "PROJECTION_TYPES", "INIT_SCHEMES", "LOSSES",
    "InitSpec", "SpikesSpec", "PopulationSpec", "ProjectionSpec", "RuleSpec", "TaskSpec", "RunSpec",
    "CircuitSpec", "load_spec", "parse_spec",
]

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softplus", "softmax")
ROLES = ("input", "hidden", "output")
PROJECTION_TYPES = ("forward", "feedback", "lateral")
INIT_SCHEMES = ("xavier", "glorot", "xavier_normal", "glorot_normal", "he", "he_uniform",
                "uniform", "normal", "orthogonal", "zeros")
LOSSES = ("mse", "cross_entropy")
NOISE_TYPES = ("gaussian", "poisson")

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@attrs.frozen
class InitSpec:
    """How a weight matrix is drawn: a scheme and its one optional parameter."""

    scheme: str = "xavier"
    std: float | None = None      # normal
    scale: float | None = None    # uniform: U[-scale, scale]
    gain: float = 1.0             # multiplies xavier/he/orthogonal


@attrs.frozen
class SpikesSpec:
    """A spiking population's sampling (see :mod:`circuits.spikes`).

    In training passes the population's rate ``r = f(pre) ≥ 0`` is replaced by its Poisson
    spike count over ``window`` time bins divided by the window, ``Poisson(r·T)/T``: unbiased,
    with variance ``r/T``. Error signals use ``f'(pre)`` (straight-through). ``at_test`` keeps
    the sampling in evaluation and prediction too (rates are used there otherwise).
    """

    window: int = 1
    at_test: bool = False


SPIKING_ACTIVATIONS = ("relu", "sigmoid", "hard_sigmoid")


@attrs.frozen
class PopulationSpec:
    """A population of neurons.

    ``step`` is the Euler step ε (= dt/τ) of leaky-integrator dynamics and ``noise`` the
    standard deviation of the state noise (or the rate scale of Poisson spikes); both are
    used only by rules with dynamics. ``dropout`` is the probability of silencing a unit
    during training. ``spikes`` makes it a spiking population (:class:`SpikesSpec`).
    """

    name: str
    size: int
    role: str = "hidden"
    activation: str = "relu"
    dropout: float = 0.0
    step: float = 0.5
    noise: float = 0.0
    noise_type: str = "gaussian"
    shape: tuple[int, ...] | None = None
    """Feature maps ``(channels, height, width)`` or ``(height, width)``; size is their product."""
    spikes: SpikesSpec | None = None
    cell: str | None = None
    """``pyramidal`` or ``interneuron`` (compartmental cells, :mod:`circuits.cells`); None: a point unit."""
    g_lk: float | None = None
    g_basal: float | None = None
    g_apical: float | None = None
    g_dendrite: float | None = None
    g_som: float | None = None
    rate_params: RateParams = PLAIN
    """``activation = { name = ..., scale, shift, gain }``: φ(u) = scale·f(gain·(u − shift)), see :mod:`circuits.rates`."""


@attrs.frozen
class ProjectionSpec:
    """A projection from population ``source`` to ``target``.

    A forward weight has shape ``(source.size, target.size)``: the target's pre-activation
    is the sum of ``source_rate @ weight`` over its forward projections, plus its bias.
    ``bias`` gives the target population a bias (it has one if any forward projection into
    it asks). ``lr`` overrides the rule's learning rate for this projection.
    """

    source: str
    target: str
    type: str = "forward"
    name: str = ""
    init: InitSpec = InitSpec()
    bias: bool = True
    plastic: bool = True
    lr: float | None = None
    compartment: str | None = None
    """``basal`` or ``apical``: where a projection into a pyramidal population lands (None otherwise)."""
    conv: ConvSpec | None = None
    """Convolve the source's maps (weight ``(out_channels, in_channels, k, k)``), see :mod:`circuits.shapes`."""
    pool: PoolSpec | None = None
    """Pool the convolution's output before it reaches the target."""


@attrs.frozen
class RuleSpec:
    """The learning rule by name, with every declared parameter resolved."""

    name: str
    params: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class TaskSpec:
    """The data set, loss and training schedule."""

    dataset: str = "digits"
    loss: str = "cross_entropy"
    epochs: int = 20
    batch_size: int = 32
    normalize: str = "standard"
    data_dir: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    autoencode: bool = False
    validation: float = 0.0
    """Fraction of the (kept) training split held out, from its end, as a validation set."""
    options: dict[str, Any] = attrs.field(factory=dict, hash=False)
    path: str | None = None
    """The data file of a file-backed data set (``npz``, ``csv``), made absolute on reading."""
    test_path: str | None = None
    """A ``csv`` set's test file (absolute); without it ``options.test_fraction`` of the rows."""
    label: str | None = None
    """A ``csv`` set's label column (``None``: the column named ``label``)."""


@attrs.frozen
class RunSpec:
    """Seed, backend, dtype, output folder and what to record."""

    seed: int = 0
    backend: str = "numpy"
    dtype: str = "float32"
    out: str | None = None
    align_every: int = 0
    eval_batch_size: int = 1000
    threads: int = 1
    """BLAS threads for the run (0: the BLAS library's own default, usually one per core)."""


@attrs.frozen
class CircuitSpec:
    """A whole, resolved circuit spec. ``source`` is where it was read from (not compared)."""

    name: str
    doc: str
    populations: tuple[PopulationSpec, ...]
    projections: tuple[ProjectionSpec, ...]
    rule: RuleSpec
    task: TaskSpec
    run: RunSpec
    source: str = attrs.field(default="<spec>", eq=False)

    def population(self, name: str) -> PopulationSpec:
        """The population called ``name`` (KeyError if absent)."""
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Reading


MAX_NAME_BYTES = 200
"""The longest circuit name: run folders are named after it, and a name has 255 bytes at most."""
MAX_SPEC_BYTES = 1 << 24
"""The largest spec file read (16 MiB; real specs are a few kilobytes)."""


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | Sequence[str] | None = None,
              *, rules: Mapping[str, RuleSignature]) -> CircuitSpec:
    """Read a spec file. See :func:`parse_spec`; ``path`` names the file in every error."""
    source = str(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO blocks until a writer comes, a device never ends
            kind = ("is a directory" if stat.S_ISDIR(info.st_mode)
                    else "is not a regular file (a FIFO, device or socket)")
            raise SpecError(f"{source}: {kind}; give the path of a TOML spec file")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{source}: {info.st_size:,} bytes is too large for a spec "
                            f"(at most {MAX_SPEC_BYTES:,}); is it a TOML spec?")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{source}: not a UTF-8 text file (is it a TOML spec?)") from None
    except OSError as exc:
        raise SpecError(f"{source}: cannot read: {exc.strerror or exc}") from None
    return parse_spec(text, source=source, overrides=overrides, rules=rules)


def parse_spec(text: str, *, source: str = "<spec>",
               overrides: Mapping[str, Any] | Sequence[str] | None = None,
               rules: Mapping[str, RuleSignature]) -> CircuitSpec:
    """Parse spec text into a resolved :class:`CircuitSpec`.

    Parameters
    ----------
    text
        TOML text.
    source
        Name shown at the front of every error (usually the file path).
    overrides
        ``{"rule.lr": 0.01}`` or ``["rule.lr=0.01"]``; values given as strings are read as
        TOML values when they parse as one, else kept as strings.
    rules
        Rule name → signature, used to check ``[rule]`` and fill its defaults.

    Raises
    ------
    SpecError
        Naming the file, the key path, what is allowed and what was given.
    """
    raw = load_toml(text, source)
    raw["projections"], labels = _expand_projections(raw.get("projections", []), source)
    for key, value in parse_overrides(overrides, source=source).items():
        apply_override(raw, key, value, source)
    return _read_spec(raw, source, rules, labels)


def _expand_projections(entries: object, source: str) -> tuple[list[Any], list[str]]:
    """Replace each ``{chain = [a, b, c], ...}`` entry by ``a→b`` and ``b→c`` entries.

    Returns the entries and, for each, the key path that errors name: ``projections[i]`` (its
    place in the file) for a table of its own, ``projections.a->b`` for a link of a chain.
    """
    if not isinstance(entries, list):
        raise SpecError(f"{source}: projections: must be an array of tables ([[projections]]) "
                        f"(got {describe_value(entries)})")
    expanded: list[Any] = []
    labels: list[str] = []
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and "chain" in entry):
            expanded.append(entry)
            labels.append(f"projections[{index}]")
            continue
        chain = entry["chain"]
        where = f"{source}: projections[{index}].chain"
        if not isinstance(chain, list) or len(chain) < 2 or not all(isinstance(n, str) for n in chain):
            raise SpecError(f"{where}: must be an array of at least two population names "
                            f"(got {describe_value(chain)})")
        for key in ("from", "to", "name"):
            if key in entry:
                raise SpecError(f"{where}: a chain entry cannot also set '{key}'; "
                                "write a separate [[projections]] table for it")
        rest = {k: v for k, v in entry.items() if k != "chain"}
        expanded.extend({"from": a, "to": b, **rest} for a, b in zip(chain, chain[1:]))
        labels.extend(f"projections.{a}->{b}" for a, b in zip(chain, chain[1:]))
    return expanded, labels


def _check_name(reader: TableReader, key: str, name: object) -> str:
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS or name[0].isdigit():
        raise reader.error("names are letters, digits and underscores, not starting with a digit "
                           f"(got {describe_value(name)})", key=key)
    return name


def _read_spec(raw: dict[str, Any], source: str, rules: Mapping[str, RuleSignature],
               labels: Sequence[str]) -> CircuitSpec:
    top = TableReader(raw, "", source)
    circuit = TableReader(top.raw("circuit", {}), "circuit", source)
    name = circuit.get(Param("name", "", "the circuit's name"), required=True)
    if not name or not set(name) <= _NAME_CHARS | {"-"}:
        raise circuit.error("must be letters, digits, underscores and hyphens "
                            f"(got {describe_value(name)})", key="name")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise circuit.error(f"must be at most {MAX_NAME_BYTES} characters, so that a folder named "
                            "after it (file systems allow 255 bytes) keeps room for suffixes "
                            f"(got {len(name.encode())})", key="name")
    doc = circuit.get(Param("doc", "", "one line saying what the circuit is"))
    circuit.finish(["name", "doc"])
    if "populations" not in raw:
        raise SpecError(f"{source}: populations: is required; add a [populations] table, e.g. "
                        "x = { size = 64, role = \"input\" }")
    populations = _read_populations(TableReader(top.raw("populations"), "populations", source))
    projections = _read_projections(top.raw("projections", []), populations, source, labels)
    rule = _read_rule(TableReader(top.raw("rule", {}), "rule", source), rules)
    task = _read_task(TableReader(top.raw("task", {}), "task", source))
    rule = attrs.evolve(rule, params=resolve_schedule(rule.params, task.epochs, source))
    run = _read_run(TableReader(top.raw("run", {}), "run", source))
    top.finish(["circuit", "populations", "projections", "rule", "task", "run"])
    return CircuitSpec(name=name, doc=doc, populations=populations, projections=projections,
                       rule=rule, task=task, run=run, source=source)


_POP_PARAMS = {
    "size": Param("size", 1, "number of neurons", minimum=1),
    "role": Param("role", "hidden", "what the population does", choices=ROLES),
    "activation": Param("activation", "relu", "rate function", choices=ACTIVATIONS),
    "dropout": Param("dropout", 0.0, "probability of silencing a unit in training",
                     minimum=0.0, maximum=0.95),
    "step": Param("step", 0.5, "Euler step ε of the leaky-integrator dynamics",
                  minimum=0.0, maximum=1.0, open_minimum=True),
    "noise": Param("noise", 0.0, "state noise (std, or Poisson rate scale)", minimum=0.0),
    "noise_type": Param("noise_type", "gaussian", "kind of state noise", choices=NOISE_TYPES),
}


def _read_populations(table: TableReader) -> tuple[PopulationSpec, ...]:
    if not table.table:
        raise table.error("must declare at least one population", key=None)
    pops = []
    for name in table.table:
        _check_name(table, name, name)
        reader = TableReader(table.raw(name), f"populations.{name}", table.source)
        shape = read_shape(reader)
        size = reader.get(_POP_PARAMS["size"], required=shape is None)
        if shape is not None:
            cells = 1
            for dim in shape:
                cells *= dim
            if reader.has("size") and size != cells:
                raise reader.error(f"is {size}, but shape = {format_shape(shape)} has {cells} units; "
                                   "remove size (it follows from shape)", key="size")
            size = cells
        role = reader.get(_POP_PARAMS["role"])
        default_act = "relu" if role == "hidden" else "linear"
        activation, rate_params = _read_activation(reader, default_act)
        if activation == "softmax" and role != "output":
            raise reader.error("softmax is allowed only on an output population "
                               f"(got 'softmax' on a {role} population)", key="activation")
        values = {key: reader.get(param) for key, param in _POP_PARAMS.items()
                  if key not in ("size", "role", "activation")}
        values["spikes"] = _read_spikes(reader, role, activation, values["dropout"])
        values["shape"] = shape
        values.update(read_cell(reader))
        reader.finish([*_POP_PARAMS, *CELL_KEYS, "spikes", "shape"])
        pops.append(PopulationSpec(name=name, size=size, role=role, activation=activation,
                                   rate_params=rate_params, **values))
    return tuple(pops)


def _read_activation(reader: TableReader, default: str) -> tuple[str, RateParams]:
    """``activation = "softplus"`` or ``activation = { name = "softplus", scale = 0.1, shift = 3, gain = 1 }``.

    The table form gives φ(u) = scale·f(gain·(u − shift)) (:mod:`circuits.rates`); scale and
    gain must be > 0, and ``linear`` and ``softmax`` take no parameters.
    """
    value = reader.raw("activation", default)
    if not isinstance(value, dict):
        return reader.get(attrs.evolve(_POP_PARAMS["activation"], default=default)), PLAIN
    sub = TableReader(value, reader.where("activation"), reader.source)
    name = sub.get(attrs.evolve(_POP_PARAMS["activation"], name="name", default=default))
    numbers = {
        "scale": sub.get(Param("scale", 1.0, "φ = scale·f(gain·(u − shift))", minimum=0.0, open_minimum=True)),
        "shift": sub.get(Param("shift", 0.0, "φ = scale·f(gain·(u − shift))")),
        "gain": sub.get(Param("gain", 1.0, "φ = scale·f(gain·(u − shift))", minimum=0.0, open_minimum=True)),
    }
    sub.finish(["name", *RATE_PARAM_KEYS])
    params = RateParams(**numbers)
    if not params.plain and name not in PARAMETRISABLE:
        raise sub.error(f"'{name}' takes no scale, shift or gain (they apply to {', '.join(PARAMETRISABLE)}); "
                        f"write activation = \"{name}\"", key=None)
    return name, params


def _read_spikes(reader: TableReader, role: str, activation: str, dropout: float) -> SpikesSpec | None:
    """The optional ``spikes = { window = T, at_test = false }`` of a population.

    ``spikes = false`` says "not spiking" explicitly, so that an override
    (``--set populations.h1.spikes=false``) can turn a spiking population into a rate one.
    """
    value = reader.raw("spikes")
    if value is None or value is False:
        return None
    if not isinstance(value, dict):
        raise reader.error(f"must be a table {{ window = T, at_test = false }}, or false for no spikes "
                           f"(got {describe_value(value)})", key="spikes")
    sub = TableReader(value, reader.where("spikes"), reader.source)
    window = sub.get(Param("window", 1, "time bins T of the spike count", minimum=1))
    at_test = sub.get(Param("at_test", False, "sample spikes in evaluation too"))
    sub.finish(["window", "at_test"])
    if role != "hidden":
        raise reader.error(f"spikes apply to hidden populations only (this one is {role}); remove the key",
                           key="spikes")
    if activation not in SPIKING_ACTIVATIONS:
        raise reader.error(f"spikes need a rate >= 0: activation must be one of {', '.join(SPIKING_ACTIVATIONS)} "
                           f"(got '{activation}'); change the activation or remove spikes", key="spikes")
    if dropout > 0:
        raise reader.error(f"a population has dropout or spikes, not both (dropout is {dropout:g}); "
                           "set dropout = 0 or remove spikes", key="spikes")
    return SpikesSpec(window=window, at_test=at_test)


_PROJ_KEYS = ("from", "to", "type", "name", "init", "bias", "plastic", "lr", "compartment", "conv", "pool")


def _read_projections(entries: list[Any], pops: tuple[PopulationSpec, ...],
                      source: str, labels: Sequence[str]) -> tuple[ProjectionSpec, ...]:
    names = [p.name for p in pops]
    result: list[ProjectionSpec] = []
    taken: dict[str, str] = {}
    for entry, label in zip(entries, labels, strict=True):
        reader = TableReader(entry, label, source)
        ends = []
        for key in ("from", "to"):
            end = reader.raw(key)
            if end is None:
                raise reader.error(f"is required; name a population among {', '.join(names)}", key=key)
            if end not in names:
                raise reader.error(f"must name a population among {', '.join(names)} "
                                   f"(got {describe_value(end)}{did_you_mean(end, names)})", key=key)
            ends.append(end)
        kind = reader.get(Param("type", "forward", "projection type", choices=PROJECTION_TYPES))
        name = reader.get(Param("name", f"{ends[0]}->{ends[1]}", "projection name"))
        if not name or not set(name) <= _NAME_CHARS | {"-", ">"}:
            raise reader.error("must be letters, digits, underscores, '-' and '>' "
                               f"(got {describe_value(name)})", key="name")
        if name in taken:
            raise reader.error(f"projection name '{name}' is already used by {taken[name]}; "
                               "give one of them a distinct name = \"...\"", key="name")
        taken[name] = label
        init = _read_init(reader)
        bias = reader.get(Param("bias", kind == "forward", "give the target population a bias"))
        plastic = reader.get(Param("plastic", kind != "feedback", "whether the rule may change it"))
        lr = reader.optional("lr", float, "this projection's learning rate",
                             check=lambda v: v > 0, allowed="must be a number > 0")
        conv, pool = read_conv(reader), read_pool(reader)
        compartment = _read_compartment(reader, pops, ends, kind)
        reader.finish(list(_PROJ_KEYS))
        result.append(ProjectionSpec(source=ends[0], target=ends[1], type=kind, name=name,
                                     init=init, bias=bias, plastic=plastic, lr=lr, compartment=compartment, conv=conv, pool=pool))
    return tuple(result)


def _read_compartment(reader: TableReader, pops: tuple[PopulationSpec, ...], ends: list[str],
                      kind: str) -> str | None:
    """The compartment of a projection into a pyramidal population (None for other targets)."""
    cells = {p.name: p.cell for p in pops}
    if cells[ends[1]] != "pyramidal":
        if reader.has("compartment"):
            raise reader.error(f"only projections into a pyramidal population land on a compartment "
                               f"('{ends[1]}' is not one); remove compartment or set "
                               f"populations.{ends[1]}.cell = \"pyramidal\"", key="compartment")
        return None
    return reader.get(Param("compartment", default_compartment(kind, cells[ends[0]]),
                            "dendrite of the pyramidal target", choices=COMPARTMENTS))


def _read_init(reader: TableReader) -> InitSpec:
    value = reader.raw("init", "xavier")
    scheme_param = Param("scheme", "xavier", "weight initialisation", choices=INIT_SCHEMES)
    if isinstance(value, str):
        value = {"scheme": value}
    sub = TableReader(value, reader.where("init"), reader.source)
    scheme = sub.get(scheme_param)
    std = sub.optional("std", float, "standard deviation of normal init", check=lambda v: v >= 0,
                       allowed="must be a number >= 0")
    scale = sub.optional("scale", float, "half-width of uniform init", check=lambda v: v >= 0,
                         allowed="must be a number >= 0")
    gain = sub.get(Param("gain", 1.0, "multiplies xavier, he and orthogonal init", minimum=0.0))
    sub.finish(["scheme", "std", "scale", "gain"])
    if scheme == "normal" and std is None:
        std = 0.01
    if scheme == "uniform" and scale is None:
        scale = 0.05
    if std is not None and scheme != "normal":
        raise sub.error(f"std applies to scheme 'normal' only (scheme is '{scheme}')", key="std")
    if scale is not None and scheme != "uniform":
        raise sub.error(f"scale applies to scheme 'uniform' only (scheme is '{scheme}')", key="scale")
    return InitSpec(scheme=scheme, std=std, scale=scale, gain=gain)


def _read_rule(reader: TableReader, rules: Mapping[str, RuleSignature]) -> RuleSpec:
    names = sorted(rules)
    name = reader.get(Param("name", "backprop", "learning rule", choices=tuple(names)))
    params = check_params(reader, [Param("name", "", "learning rule"), *rules[name].params])
    del params["name"]
    return RuleSpec(name=name, params=params)


def _read_task(reader: TableReader) -> TaskSpec:
    dataset = reader.get(Param("dataset", "digits", "data set", choices=DATASETS.names()))
    loss = reader.get(Param("loss", "cross_entropy", "loss function", choices=LOSSES))
    epochs = reader.get(Param("epochs", 20, "passes over the training set", minimum=0))
    batch = reader.get(Param("batch_size", 32, "examples per learning step", minimum=1))
    normalize = reader.get(Param("normalize", "standard", "input normalisation",
                                 choices=("standard", "unit", "none")))
    data_dir = reader.optional("data_dir", str, "folder holding the data files")
    n_train = reader.optional("n_train", int, "use the first n training examples",
                              check=lambda v: v >= 1, allowed="must be an integer >= 1")
    n_test = reader.optional("n_test", int, "use the first n test examples",
                             check=lambda v: v >= 1, allowed="must be an integer >= 1")
    autoencode = reader.get(Param("autoencode", False, "targets are the inputs themselves (needs loss = mse)"))
    if autoencode and loss != "mse":
        raise reader.error("autoencoding compares the output with the input, which needs "
                           f"loss = \"mse\" (got '{loss}')", key="autoencode")
    validation = reader.get(Param("validation", 0.0, "fraction of the training split held out "
                                  "for validation (0: none)", minimum=0.0, maximum=0.5))
    options_reader = TableReader(reader.raw("options", {}), reader.where("options"), reader.source)
    allowed = DATASETS.info(dataset).options
    options = {}
    for key, default in allowed.items():
        kind = type(default)
        param = Param(key, default, f"option of data set '{dataset}'", kind=kind,
                      minimum=0 if kind in (int, float) else None)
        options[key] = options_reader.get(param)
    options_reader.finish(list(allowed))
    files = _read_files(reader, dataset)
    reader.finish(["dataset", "loss", "epochs", "batch_size", "normalize", "data_dir",
                   "n_train", "n_test", "autoencode", "validation", "options", *files])
    return TaskSpec(dataset=dataset, loss=loss, epochs=epochs, batch_size=batch, normalize=normalize,
                    data_dir=data_dir, n_train=n_train, n_test=n_test, autoencode=autoencode,
                    validation=validation, options=options, **files)


def _read_files(reader: TableReader, dataset: str) -> dict[str, str | None]:
    """``task.path``/``test_path`` (absolute, from the spec's folder) and ``task.label``.

    Only data sets that read the user's files take them; such a set needs ``path``.
    """
    values = {key: reader.optional(key, str, doc, check=bool, allowed="must be a non-empty string")
              for key, doc in (("path", "the data file, relative to the spec's folder"),
                               ("test_path", "a csv test file, relative to the spec's folder"),
                               ("label", "the csv column holding the labels"))}
    given = [key for key, value in values.items() if value is not None]
    if not DATASETS.info(dataset).files:
        if given:
            takers = ", ".join(n for n in DATASETS.names() if DATASETS.info(n).files)
            raise reader.error(f"is read by the file data sets ({takers}) only, and dataset is "
                               f"'{dataset}'; remove it or set task.dataset", key=given[0])
        return {}
    if values["path"] is None:
        raise reader.error(f"is required for dataset '{dataset}'; give the data file, relative "
                           "to the spec's folder", key="path")
    source = Path(reader.source)
    folder = source.parent if source.is_file() else Path.cwd()
    for key in ("path", "test_path"):
        if values[key] is not None:
            values[key] = str((folder / Path(values[key]).expanduser()).resolve())
    return values


def _read_run(reader: TableReader) -> RunSpec:
    values = check_params(reader, [
        Param("seed", 0, "random seed of the whole run", minimum=0),
        Param("backend", "numpy", "array backend", choices=("numpy", "cupy")),
        Param("dtype", "float32", "floating-point precision", choices=("float32", "float64")),
        Param("out", None, "run folder", kind=str),
        Param("align_every", 0, "record alignment with backprop every N steps (0: never)", minimum=0),
        Param("eval_batch_size", 1000, "batch size for evaluation", minimum=1),
        Param("threads", 1, "BLAS threads (0: the BLAS library's default, one per core)", minimum=0),
    ])
    if values["out"] is not None and not values["out"].strip():
        raise reader.error("must name a folder (got ''); leave it out for the default "
                           "runs/<circuit>/<rule>-seed<k>", key="out")
    return RunSpec(**values)
