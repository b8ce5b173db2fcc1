"""Bad input that used to end in a traceback: each is one line on stderr and exit code 2.

Every case goes through the command line (click's CliRunner, stderr kept apart), so what is
checked is what a user sees: the exit code, one ``error:`` line naming the problem, and no
traceback. An exception escaping a command would show as exit code 1 here.
"""

from __future__ import annotations

import os
import threading
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import circuits
from circuits.cli import main
from circuits.errors import DataError, SpecError
from circuits.rules import PluginWarning, Rule, default_registry
from circuits.rules.backprop import Backprop

SPEC = """
[circuit]
name = "bad"
[populations]
x = {{ size = 64, role = "input" }}
h1 = {{ size = 16, activation = "tanh" }}
h2 = {{ size = 16, activation = "tanh" }}
y = {{ size = 10, role = "output", activation = "linear" }}
[[projections]]
chain = ["x", "h1", "h2", "y"]
{extra}
[rule]
name = "{rule}"
{rule_extra}
[task]
dataset = "digits"
epochs = 1
n_train = 64
n_test = 32
"""


def spec_text(rule: str = "backprop", extra: str = "", rule_extra: str = "") -> str:
    return SPEC.format(rule=rule, extra=extra, rule_extra=rule_extra)


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result, *fragments: str) -> str:
    """Assert exit 2 and a single ``error:`` line on stderr holding every fragment."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- graph: a forward cycle met while a rule adds its feedback ---------------------------------

CYCLE = '[[projections]]\nfrom = "h2"\nto = "h1"\n'


@pytest.mark.parametrize("rule", ["target_propagation", "difference_target_propagation",
                                  "direct_feedback_alignment"])
@pytest.mark.parametrize("command", ["check", "compile", "simulate"])
def test_forward_cycle_with_auto_feedback(tmp_path, rule, command):
    path = write(tmp_path, spec_text(rule, CYCLE, "auto_feedback = true"))
    args = [command, path] + (["--out", str(tmp_path / "run")] if command == "simulate" else [])
    one_line_error(invoke(*args), "forward projections form a cycle h1 -> h2 -> h1",
                   'make one of them type = "feedback"')


# --- rule parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["node_perturbation", "weight_perturbation"])
@pytest.mark.parametrize("command", ["check", "compile"])
def test_tiny_sigma_is_a_range_error(tmp_path, rule, command):
    path = write(tmp_path, spec_text(rule, rule_extra="sigma = 1e-300"))
    one_line_error(invoke(command, path), "rule.sigma: must be a number >= 1e-12 (got 1e-300)")
    assert invoke("check", path, "--set", "rule.sigma=1e-12").exit_code == 0


# --- TOML nesting, spec paths, --set values, names ---------------------------------------------


def test_deeply_nested_toml_is_one_line_and_the_other_specs_are_checked(tmp_path):
    arrays = write(tmp_path, "a = " + "[" * 100_000 + "]" * 100_000 + "\n", "arrays.toml")
    tables = write(tmp_path, "a = " + "{b = " * 5000 + "1" + "}" * 5000 + "\n", "tables.toml")
    options = write(tmp_path, spec_text().replace('dataset = "digits"', 'dataset = "digits"\n'
                                                  "options = " + "[" * 40 + "]" * 40), "deep.toml")
    good = write(tmp_path, spec_text(), "good.toml")
    result = invoke("check", arrays, tables, options, good)
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit
    assert result.stdout.startswith(f"ok: {good}: backprop, 4 populations, 3 projections, "
                                    "1,482 parameters, ≈ ")
    assert len(result.stdout.strip().splitlines()) == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {arrays}: arrays or tables are nested too deep to read; a spec needs at most 16 "
        "levels",
        f"error: {tables}: arrays or tables are nested too deep to read; a spec needs at most 16 "
        "levels",
        f"error: {options}: task.options[0][0]…: arrays and tables nest more than 16 levels "
        "deep; a spec needs a few",
    ]


def test_deeply_nested_set_value(tmp_path):
    path = write(tmp_path, spec_text())
    one_line_error(invoke("check", path, "--set", "task.options=" + "[" * 5000 + "]" * 5000),
                   "--set task.options: arrays or tables are nested too deep to read")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_and_directory_as_spec_do_not_hang_or_stop_the_others(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it blocks until a writer appears
    # A writer in the wings: were the FIFO read, the test would fail on its text, not hang.
    writer = threading.Thread(target=fifo.write_text, args=("not = 'a spec'\n",), daemon=True)
    writer.start()
    good = write(tmp_path, spec_text(), "good.toml")
    result = invoke("check", str(fifo), str(tmp_path), good)
    assert result.exit_code == 2 and result.stdout.startswith(f"ok: {good}: ")
    assert result.stderr.strip().splitlines() == [
        f"error: {fifo}: is not a regular file (a FIFO, device or socket); give the path of a "
        "TOML spec file",
        f"error: {tmp_path}: is a directory; give the path of a TOML spec file",
    ]
    for command in ("compile", "simulate"):
        one_line_error(invoke(command, str(fifo)), "is not a regular file")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer finish
    writer.join()
    os.close(reader)


def test_huge_spec_file_is_not_read(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_bytes(b"")
    os.truncate(path, 1 << 26)  # sparse, 64 MiB: over the limit, small enough to be read
    one_line_error(invoke("check", str(path)), "67,108,864 bytes is too large for a spec "
                                               "(at most 16,777,216)")


def test_newline_inside_a_set_value_is_refused_not_cut(tmp_path):
    path = write(tmp_path, spec_text())
    line = one_line_error(invoke("check", path, "--set", "rule.lr=0.5\nrule.momentum=0.9"),
                          "--set rule.lr: the value holds a line break")
    assert "give one key=value per --set" in line
    with pytest.raises(SpecError, match="line break"):
        circuits.load(path, overrides=["task.epochs=2\r\nrule.lr=3"])


def test_circuit_name_too_long_for_a_folder(tmp_path):
    name = "c" * 201
    path = write(tmp_path, spec_text().replace('name = "bad"', f'name = "{name}"'))
    one_line_error(invoke("check", path), "circuit.name: must be at most 200 characters",
                   "(got 201)")
    ok = write(tmp_path, spec_text().replace('name = "bad"', f'name = "{"c" * 200}"'), "ok.toml")
    assert invoke("check", ok).exit_code == 0


# --- labels out of range -----------------------------------------------------------------------


def idx_file(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_label_outside_the_classes_names_the_value(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, n in (("train", 60000), ("t10k", 10000)):
        idx_file(folder / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        labels = np.arange(n) % 10
        labels[7] = 12 if split == "train" else 0
        idx_file(folder / f"{split}-labels-idx1-ubyte", labels)
    text = spec_text().replace('dataset = "digits"', f'dataset = "mnist"\ndata_dir = "{tmp_path}"')
    path = write(tmp_path, text.replace("size = 64", "size = 784"))
    one_line_error(invoke("simulate", path, "--quiet", "--out", str(tmp_path / "run")),
                   "data set 'mnist': train label 12 of example 7 is outside 0..9 (10 classes; "
                   "1 such labels)")


def test_model_names_the_label_and_the_output_size(tmp_path):
    model = circuits.load(write(tmp_path, spec_text()))
    x = np.zeros((4, 64))
    with pytest.raises(DataError) as info:
        model.step(x, np.array([0, 1, 10, 3]))
    assert str(info.value) == ("label 10 (row 2 of the batch) is outside 0..9: output population "
                               "'y' has 10 units")
    with pytest.raises(DataError, match=r"shape \(4,\) \(got int64 with shape \(3,\)\)"):
        model.step(x, np.array([0, 1, 2]))
    mse = circuits.load(write(tmp_path, spec_text(), "mse.toml"), overrides={"task.loss": "mse"})
    with pytest.raises(DataError, match="label -1 "):  # one-hot encoding would have wrapped it
        mse.step(x, np.array([0, 1, -1, 3]))


# --- rule plug-ins -----------------------------------------------------------------------------


class _Entry:
    """Stands in for an ``importlib.metadata.EntryPoint``."""

    def __init__(self, name: str, loader) -> None:  # noqa: ANN001
        self.name, self.value, self._loader = name, f"{name}_pkg.rules:Rule", loader

    def load(self):  # noqa: ANN201
        return self._loader()


class _Extra(Backprop):
    signature = Backprop.signature.__class__(name="extra_rule", doc="a plug-in rule",
                                             params=Backprop.signature.params)


def _fail_import():
    raise ImportError("No module named 'broken_pkg'")


@pytest.fixture
def plugins(monkeypatch):
    entries = [_Entry("broken", _fail_import), _Entry("clash", lambda: Backprop),
               _Entry("junk", lambda: dict), _Entry("extra", lambda: _Extra)]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group: entries if group == "circuits.rules" else [])


def test_broken_plugins_cost_one_warning_each(plugins):
    with pytest.warns(PluginWarning) as caught:
        registry = default_registry()
    messages = [str(w.message) for w in caught]
    assert messages == [
        "rule plug-in 'broken' (broken_pkg.rules:Rule, entry point group circuits.rules) failed "
        "to load: ImportError: No module named 'broken_pkg'; it is skipped",
        "rule plug-in 'clash' (clash_pkg.rules:Rule, entry point group circuits.rules) reuses "
        "the name 'backprop' of a rule already registered; it is skipped",
        "rule plug-in 'junk' (junk_pkg.rules:Rule, entry point group circuits.rules) is not a "
        "circuits Rule (got dict); it is skipped",
    ]
    assert "extra_rule" in registry.names() and isinstance(registry.get("backprop"), Rule)
    assert type(registry.get("backprop")) is Backprop


def test_broken_plugins_leave_the_commands_working(plugins, tmp_path):
    path = write(tmp_path, spec_text())
    with pytest.warns(PluginWarning):
        result = invoke("check", path)
    assert result.exit_code == 0 and result.stdout.startswith(f"ok: {path}: backprop")
    with pytest.warns(PluginWarning):
        result = invoke("rules")
    assert result.exit_code == 0 and "extra_rule: a plug-in rule" in result.stdout
