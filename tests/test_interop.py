"""The user's data in (npz, csv, plug-ins, arrays) and runs out to notebooks (load_run, reprs)."""

from __future__ import annotations

import dataclasses
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import circuits
from circuits import notebook
from circuits.cli import main
from circuits.data import DATASETS, Arrays, Dataset, DatasetInfo, DatasetPluginWarning, DatasetRegistry
from circuits.data.files import load_csv, load_npz
from circuits.data.plugins import register_plugins
from circuits.errors import DataError, SpecError
from circuits.export import ExportError, check_exportable, write_nir
from circuits.notebook import RunReadError, diagram

SPEC = """
[circuit]
name = "mine"

[populations]
x = {{ size = {n_in}, role = "input" }}
h = {{ size = 8, activation = "relu" }}
y = {{ size = {n_out}, role = "output", activation = "linear" }}

[[projections]]
chain = ["x", "h", "y"]

[rule]
name = "backprop"
lr = 0.1

[task]
{task}
epochs = 30
batch_size = 8
"""


def blobs(n: int = 60, classes: int = 3, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: class k centred at 3·e_k."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0.0, 0.3, (n, features))
    x[np.arange(n), y] += 3.0
    return x.astype(np.float32), y


def write_spec(folder: Path, task: str, n_in: int = 4, n_out: int = 3, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(SPEC.format(task=task, n_in=n_in, n_out=n_out), encoding="utf-8")
    return path


def save_blobs(path: Path, **changes: object) -> None:
    x, y = blobs()
    arrays = {"x_train": x[:40], "y_train": y[:40], "x_test": x[40:], "y_test": y[40:], **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line(result, code: int = 2) -> str:
    """The single ``error:`` line of a failed command (no traceback)."""
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0][len("error: "):]


# -- npz ---------------------------------------------------------------------------------------


def test_npz_path_is_relative_to_the_spec_folder_and_absolute_in_the_resolved_spec(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    save_blobs(tmp_path / "data" / "blobs.npz")
    spec_path = write_spec(tmp_path, 'dataset = "npz"\npath = "data/blobs.npz"')
    monkeypatch.chdir(Path("/"))  # not the spec's folder
    spec = circuits.load_spec(spec_path)
    assert spec.task.path == str(tmp_path / "data" / "blobs.npz")
    assert f'path = "{tmp_path / "data" / "blobs.npz"}"' in circuits.dump_spec(spec)
    model = circuits.load(spec_path)
    data = circuits.load_data(model)
    x, y = blobs()
    assert (data.n_train, data.n_test, data.n_features, data.n_outputs) == (40, 20, 4, 3)
    np.testing.assert_array_equal(data.y_test, y[40:])
    # task.normalize = "standard" with the training split's statistics, as for built-in sets
    train = x[:40].astype(np.float64)
    np.testing.assert_allclose(data.x_test, (x[40:] - train.mean(0)) / train.std(0), rtol=1e-6)
    records = list(circuits.fit(model, data))
    assert records[-1].test_accuracy == 1.0


def test_npz_run_through_the_command_line_and_resume_from_its_saved_spec(tmp_path):
    save_blobs(tmp_path / "blobs.npz")
    spec_path = write_spec(tmp_path, 'dataset = "npz"\npath = "blobs.npz"')
    out = tmp_path / "runs" / "one"
    result = invoke("simulate", str(spec_path), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    saved = circuits.load_spec(out / "spec.toml")  # read from another folder: the path still holds
    assert saved.task.path == str(tmp_path / "blobs.npz")
    assert circuits.load_data(circuits.Model(saved)).n_train == 40


def test_npz_validation_arrays_become_the_validation_split(tmp_path):
    x, y = blobs(seed=1)
    save_blobs(tmp_path / "b.npz", x_val=x[:9], y_val=y[:9])
    model = circuits.load(write_spec(tmp_path, 'dataset = "npz"\npath = "b.npz"'))
    data = circuits.load_data(model)
    assert data.n_validation == 9 and data.n_train == 40
    np.testing.assert_array_equal(data.y_validation, y[:9])
    clash = circuits.load(write_spec(tmp_path, 'dataset = "npz"\npath = "b.npz"\nvalidation = 0.2'))
    with pytest.raises(DataError, match="already holds 9 validation examples and task.validation = 0.2"):
        circuits.load_data(clash)


def test_images_are_flattened_and_regression_targets_kept(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((30, 2, 2))
    targets = images.reshape(30, 4) @ rng.normal(size=(4, 2))
    np.savez(tmp_path / "r.npz", x_train=images[:20], y_train=targets[:20], x_test=images[20:],
             y_test=targets[20:])
    data = load_npz(path=tmp_path / "r.npz")
    assert data.task == "regression" and data.x_train.shape == (20, 4) and data.n_outputs == 2
    np.testing.assert_array_equal(data.y_test, targets[20:])


BAD_NPZ = [
    ({"x_test": None}, "no array 'x_test' (it holds x_train, y_train, y_test); save it with numpy.savez"),
    ({"X_val": np.zeros((2, 4))}, "unexpected array 'X_val'; did you mean 'x_val'?"),
    ({"x_train": blobs()[0][:40, 0]}, "array 'x_train' has shape (40,); inputs must be (examples, "
                                      "features): for one feature save x.reshape(-1, 1)"),
    ({"x_test": blobs()[0][40:, :3]}, "array 'x_test' has 3 features but 'x_train' has 4; every split "
                                      "needs the same features"),
    ({"y_train": blobs()[1][:39]}, "array 'y_train' has 39 rows but its inputs have 40; save one label"),
    ({"y_train": -blobs()[1][:40]}, "array 'y_train' has label -1 at row 1; class labels must be 0, 1, 2, …"),
    ({"y_train": blobs()[1][:40].astype(float)}, "array 'y_train' holds whole numbers as float64; save "
                                                 "class labels as integers (y.astype(np.int64))"),
    ({"x_train": np.where(np.arange(160).reshape(40, 4) == 9, np.nan, 1.0)},
     "array 'x_train' holds 1 NaN or infinite values (the first, NaN, at row 2, column 1); drop or "
     "fill them before saving"),
    ({"x_train": np.array([["a"] * 4] * 40)}, "array 'x_train' has dtype <U1; inputs must be numbers"),
    ({"x_val": np.zeros((2, 4))}, "'x_val' is given without 'y_val'; give both or neither"),
    ({"x_test": np.zeros((0, 4)), "y_test": np.zeros(0, np.int64)},
     "array 'x_test' is empty; the test split needs examples"),
    ({"y_train": np.int64(3)}, "array 'y_train' has no rows but its inputs have 40"),
]


@pytest.mark.parametrize("changes, expected", BAD_NPZ)
def test_bad_npz_is_one_line_naming_the_file_the_array_and_the_fix(tmp_path, changes, expected):
    save_blobs(tmp_path / "bad.npz", **changes)
    spec = write_spec(tmp_path, 'dataset = "npz"\npath = "bad.npz"')
    message = one_line(invoke("simulate", str(spec), "--out", str(tmp_path / "run"), "--quiet"))
    assert message.startswith(f"{tmp_path / 'bad.npz'}: {expected}"), message


def test_npz_that_is_not_an_archive_or_missing(tmp_path):
    (tmp_path / "junk.npz").write_text("not a zip")
    spec = write_spec(tmp_path, 'dataset = "npz"\npath = "junk.npz"')
    assert one_line(invoke("simulate", str(spec), "--quiet", "--out", str(tmp_path / "r"))).startswith(
        f"{tmp_path / 'junk.npz'}: cannot read as .npz (")
    spec = write_spec(tmp_path, 'dataset = "npz"\npath = "gone.npz"')
    assert one_line(invoke("simulate", str(spec), "--quiet", "--out", str(tmp_path / "r"))) == (
        f"task.path: no such file {tmp_path / 'gone.npz'}; paths are relative to the spec's folder")
    save_blobs(tmp_path / "objects.npz", x_train=np.array([{}, 1], dtype=object))
    with pytest.raises(DataError, match="an array holds Python objects; save numeric arrays only"):
        load_npz(path=tmp_path / "objects.npz")


def test_spec_refuses_path_for_other_data_sets_and_requires_it_for_files(tmp_path):
    with pytest.raises(SpecError) as caught:
        circuits.load_spec(write_spec(tmp_path, 'dataset = "digits"\npath = "x.npz"', 64, 10))
    assert str(caught.value) == (f"{tmp_path / 'spec.toml'}: task.path: is read by the file data sets "
                                 "(csv, npz) only, and dataset is 'digits'; remove it or set task.dataset")
    with pytest.raises(SpecError, match=r"task.path: is required for dataset 'csv'; give the data file"):
        circuits.load_spec(write_spec(tmp_path, 'dataset = "csv"'))


def test_a_digits_spec_resolves_as_before():
    """No new keys appear in the resolved spec of a built-in data set (run ids stay the same)."""
    text = circuits.dump_spec(circuits.load_spec("specs/bp_digits.toml"))
    assert "path" not in text and "label" not in text


# -- csv ---------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[object]], header: str = "a,b,species") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_csv_words_are_classes_and_test_fraction_is_drawn_by_the_seed(tmp_path):
    rows = [[i, i % 3 + 0.5, ["setosa", "virginica", "versicolor"][i % 3]] for i in range(20)]
    write_csv(tmp_path / "iris.csv", rows)
    data = load_csv(seed=0, test_fraction=0.25, path=tmp_path / "iris.csv", label="species")
    assert (data.n_train, data.n_test, data.n_features, data.n_outputs) == (15, 5, 2, 3)
    # classes numbered in sorted order: setosa 0, versicolor 1, virginica 2
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    order = np.argsort(x[:, 0])
    np.testing.assert_array_equal(x[order, 0], np.arange(20))
    np.testing.assert_array_equal(y[order], [[0, 2, 1][i % 3] for i in range(20)])
    again = load_csv(seed=0, test_fraction=0.25, path=tmp_path / "iris.csv", label="species")
    np.testing.assert_array_equal(again.x_test, data.x_test)
    other = load_csv(seed=1, test_fraction=0.25, path=tmp_path / "iris.csv", label="species")
    assert not np.array_equal(other.x_test, data.x_test)


def test_csv_with_a_test_file_through_a_spec(tmp_path):
    x, y = blobs()
    header = "f0,f1,f2,f3,label"
    write_csv(tmp_path / "train.csv", [[*row, k] for row, k in zip(x[:40], y[:40])], header)
    write_csv(tmp_path / "test.csv", [[*row, k] for row, k in zip(x[40:], y[40:])], header)
    spec = write_spec(tmp_path, 'dataset = "csv"\npath = "train.csv"\ntest_path = "test.csv"')
    model = circuits.load(spec)
    data = circuits.load_data(model)
    assert (data.n_train, data.n_test) == (40, 20)
    np.testing.assert_array_equal(data.y_test, y[40:])
    assert list(circuits.fit(model, data))[-1].test_accuracy == 1.0


def test_csv_numbers_with_decimals_are_regression_targets(tmp_path):
    write_csv(tmp_path / "r.csv", [[i, 2 * i, 0.5 * i] for i in range(10)], "a,b,target")
    data = load_csv(seed=0, test_fraction=0.2, path=tmp_path / "r.csv", label="target")
    assert data.task == "regression" and data.y_train.shape == (8, 1)
    np.testing.assert_allclose(data.y_train[:, 0], 0.5 * data.x_train[:, 0])


BAD_CSV = [
    ("a,b,kind\n1,2,0\n", "no column 'species' for the labels (columns: a, b, kind); set task.label "
                          "to the label column"),
    ("a,b,species\n1,2,0\n3,4\n", "line 3 has 2 cells but the header has 3"),
    ("a,b,species\n1,2,0\n1,x,1\n", "line 3, column 'b': 'x' is not a number; features must be numbers"),
    ("a,b,species\n1,2,0\n1,,1\n", "line 3, column 'b': '' is not a number"),
    ("a,b,species\n1,2,0\n1,nan,1\n", "line 3, column 'b': nan is missing or not finite; drop or fill it"),
    ("a,b,species\n1,2,0\n1,2,-1\n", "line 3, column 'species': class label -1 is negative"),
    ("a,b,species\n1,2,0\n1,2,\n", "line 3, column 'species': the label is empty; every row needs one"),
    ("", "no header row; the first line must name the columns"),
]


@pytest.mark.parametrize("text, expected", BAD_CSV)
def test_bad_csv_is_one_line_naming_the_line_and_column(tmp_path, text, expected):
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    spec = write_spec(tmp_path, 'dataset = "csv"\npath = "t.csv"\nlabel = "species"', n_in=2)
    message = one_line(invoke("simulate", str(spec), "--quiet", "--out", str(tmp_path / "r")))
    assert message.startswith(f"{tmp_path / 't.csv'}: {expected}"), message


def test_csv_test_file_with_other_columns_or_classes(tmp_path):
    write_csv(tmp_path / "a.csv", [[1, 2, "cat"], [3, 4, "dog"]])
    write_csv(tmp_path / "b.csv", [[1, 2, "cow"]])
    with pytest.raises(DataError, match=r"b.csv: column 'species': class 'cow' is not among the "
                                        r"training file's classes \(cat, dog\)"):
        load_csv(seed=0, test_fraction=0.2, path=tmp_path / "a.csv", test_path=tmp_path / "b.csv",
                 label="species")
    write_csv(tmp_path / "c.csv", [[1, 2, "cat"]], "b,a,species")
    with pytest.raises(DataError, match="columns b, a differ from the training file's a, b"):
        load_csv(seed=0, test_fraction=0.2, path=tmp_path / "a.csv", test_path=tmp_path / "c.csv",
                 label="species")


# -- plug-ins ----------------------------------------------------------------------------------


class _Entry:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"{name}_pkg.data:register", target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _register_spirals(registry: DatasetRegistry) -> None:
    def load(*, seed: int, n: int, **_location: object) -> Dataset:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 2))
        y = (x[:, 0] > 0).astype(np.int64)
        return Dataset("spirals", "classification", x, y, x[: n // 4], y[: n // 4], 2)

    registry.register(DatasetInfo("spirals", "classification", "two half-planes", {"n": 40},
                                  n_features=2, n_outputs=2), load)


def test_dataset_plugins_register_and_broken_ones_cost_one_warning_each(monkeypatch):
    entries = [_Entry("good", _register_spirals), _Entry("broken", ImportError("No module named 'x'")),
               _Entry("clash", lambda registry: registry.register(DATASETS.info("digits"), load_npz))]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group: entries if group == "circuits.datasets" else [])
    registry = DatasetRegistry()
    registry.register(DATASETS.info("digits"), load_npz)
    with pytest.warns(DatasetPluginWarning) as caught:
        register_plugins(registry)
    assert [str(w.message) for w in caught] == [
        "data-set plug-in 'broken' (broken_pkg.data:register, entry point group circuits.datasets) "
        "failed to load: ImportError: No module named 'x'; it is skipped",
        "data-set plug-in 'clash' (clash_pkg.data:register, entry point group circuits.datasets) "
        "reuses the name 'digits' of a data set already registered; it is skipped",
    ]
    assert registry.names() == ("digits", "spirals")
    assert registry.load("spirals", seed=0, options={"n": 8}).n_train == 8


# -- arrays from Python ------------------------------------------------------------------------


@dataclasses.dataclass
class MyData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def blob_model(tmp_path: Path) -> circuits.Model:
    save_blobs(tmp_path / "unused.npz")
    return circuits.load(write_spec(tmp_path, 'dataset = "npz"\npath = "unused.npz"'))


@pytest.mark.parametrize("wrap", [
    lambda x, y: (x[:40], y[:40], x[40:], y[40:]),
    lambda x, y: {"x_train": x[:40], "y_train": y[:40], "x_test": x[40:], "y_test": y[40:]},
    lambda x, y: MyData(x[:40], y[:40], x[40:], y[40:]),
    lambda x, y: Arrays(x[:40], y[:40], x[40:], y[40:]),
], ids=["tuple", "mapping", "dataclass", "Arrays"])
def test_fit_takes_arrays_as_given(tmp_path, wrap):
    model = blob_model(tmp_path)
    x, y = blobs()
    records = list(circuits.fit(model, wrap(x, y), epochs=1))
    reference = blob_model(tmp_path / ".")
    expected = list(circuits.fit(reference, Dataset("arrays", "classification", x[:40].astype(np.float64),
                                                    y[:40], x[40:].astype(np.float64), y[40:], 3), epochs=1))
    assert records[0].train_loss == expected[0].train_loss
    assert records[0].test_accuracy == expected[0].test_accuracy


def test_fit_refuses_arrays_that_do_not_fit_in_one_line(tmp_path):
    model = blob_model(tmp_path)
    x, y = blobs(features=5)
    with pytest.raises(DataError) as caught:
        next(circuits.fit(model, (x[:40], y[:40], x[40:], y[40:])))
    assert str(caught.value) == (f"{tmp_path / 'spec.toml'}: data set 'arrays' has 5 features but the "
                                 "input populations take x 4 = 4; make the input sizes add up to the "
                                 "feature count")
    with pytest.raises(DataError, match=r"^data: array 'y_test' has 19 rows but its inputs have 20"):
        next(circuits.fit(model, (x[:40, :4], y[:40], x[40:, :4], y[41:])))
    with pytest.raises(DataError, match=r"^data: missing x_test, y_test; give x_train"):
        next(circuits.fit(model, {"x_train": x, "y_train": y}))
    with pytest.raises(DataError, match=r"^data: expected a Dataset, a data set name, or arrays"):
        next(circuits.fit(model, 3))


# -- export without the extra ------------------------------------------------------------------


def test_export_names_what_nir_cannot_express_and_the_missing_extra(monkeypatch, tmp_path):
    with pytest.raises(ExportError) as caught:
        check_exportable(circuits.load("specs/fa_digits.toml"))
    assert str(caught.value) == ("NIR has no unit for population h1 (tanh); export needs relu "
                                 "(integrate-and-fire) or linear populations")
    monkeypatch.setitem(sys.modules, "nir", None)  # as if the extra were not installed
    with pytest.raises(ExportError) as caught:
        write_nir(circuits.load("specs/bp_digits.toml"), tmp_path / "x.nir")
    assert str(caught.value) == "NIR export needs the nir package: pip install 'circuits[export]'"


# -- notebooks ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "bp"
    result = invoke("simulate", "specs/bp_digits.toml", "--set", "task.epochs=2", "--set", "run.align_every=20",
                    "--out", str(folder), "--quiet")
    assert result.exit_code == 0, result.output
    return folder


def test_load_run_gives_spec_metrics_and_params(finished_run):
    pandas = pytest.importorskip("pandas")
    run = circuits.load_run(finished_run)
    assert run.spec == circuits.load_spec(finished_run / "spec.toml")
    assert isinstance(run.metrics, pandas.DataFrame)
    assert list(run.metrics["epoch"]) == [1.0, 2.0]
    assert run.metrics["test_accuracy"].iloc[-1] == pytest.approx(run.summary["final"]["test_accuracy"])
    assert isinstance(run.alignment, pandas.DataFrame) and "x->h1" in run.alignment.columns
    saved = np.load(finished_run / "params.npz")
    assert sorted(run.params) == sorted(saved.files)
    np.testing.assert_array_equal(run.params["x->h1"], saved["x->h1"])
    model = run.model()
    data = circuits.load_data(model)
    assert model.evaluate(data.x_test.astype(np.float32), data.y_test)[1] == run.final()["test_accuracy"]


def test_load_run_without_pandas_gives_a_dict_of_arrays(finished_run, monkeypatch):
    monkeypatch.setattr(notebook, "_pandas", lambda: None)
    run = notebook.load_run(finished_run)
    assert isinstance(run.metrics, dict)
    np.testing.assert_array_equal(run.metrics["epoch"], [1.0, 2.0])
    assert run.metrics["test_accuracy"][-1] == pytest.approx(run.summary["final"]["test_accuracy"])


def test_a_run_displays_its_status_metrics_schedule_and_diagram(finished_run):
    run = circuits.load_run(finished_run)
    page = run._repr_html_()
    accuracy = f"{run.summary['final']['test_accuracy']:.4g}"
    assert "<b>bp-digits</b> · rule <code>backprop</code> · completed after 2 of 2 epochs" in page
    assert f"<tr><td>test accuracy</td><td>{accuracy}</td></tr>" in page
    assert "<tr><td>forward</td><td>1×</td><td>5</td><td>feed-forward pass" in page
    assert page.count("<svg") == 1 and "</svg>" in page
    assert 'src="data:image/png;base64,' in page  # curves.png
    text = run._repr_markdown_()
    assert f"| test accuracy | {accuracy} |" in text and "| update | 1× | 8 |" in text


def test_a_model_displays_its_populations_and_schedule():
    text = circuits.load("specs/bp_digits.toml")._repr_markdown_()
    assert text.startswith("**bp-digits** · rule `backprop` · 9,610 parameters · float32 on numpy")
    assert "| h1 | 128 | hidden | relu |" in text
    assert "| backward | 1× | 2 | error signals sent down to the hidden populations |" in text
    assert diagram(circuits.load("specs/bp_digits.toml"))._repr_svg_().startswith("<svg")


def test_load_run_of_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(RunReadError) as caught:
        circuits.load_run(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no spec.toml, so it is not a run folder of circuits simulate"


# -- the shipped example -----------------------------------------------------------------------


def test_the_iris_csv_example_checks_and_learns(repo_root, tmp_path):
    spec = repo_root / "examples" / "iris_csv.toml"
    result = invoke("check", str(spec))
    assert result.exit_code == 0 and result.stdout.startswith(f"ok: {spec}: backprop"), result.output
    model = circuits.load(spec)
    data = circuits.load_data(model)
    assert (data.n_train, data.n_test, data.n_features, data.n_outputs) == (120, 30, 4, 3)
    assert list(circuits.fit(model, data))[-1].test_accuracy >= 0.85  # README: 90.0 % at seed 0


def test_check_reads_the_users_file_before_any_training(tmp_path):
    save_blobs(tmp_path / "bad.npz", y_test=blobs()[1][40:] - 5)
    spec = write_spec(tmp_path, 'dataset = "npz"\npath = "bad.npz"')
    assert one_line(invoke("check", str(spec))) == (
        f"{tmp_path / 'bad.npz'}: array 'y_test' has label -4 at row 0; class labels must be 0, 1, 2, …")
    save_blobs(tmp_path / "good.npz")
    spec = write_spec(tmp_path, 'dataset = "npz"\npath = "good.npz"', n_out=4)
    assert one_line(invoke("check", str(spec))) == (
        f"{spec}: data set 'npz' has 3 classes but output population 'y' has size 4; "
        "set populations.y.size = 3")


# -- properties of the readers -----------------------------------------------------------------


_labelled = st.integers(2, 12).flatmap(lambda n: st.tuples(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16]), st.tuples(st.just(n), st.integers(1, 4)),
               elements=st.integers(-1000, 1000)),
    hnp.arrays(np.int64, n, elements=st.integers(0, 3))))


@settings(deadline=None)
@given(train=_labelled, test=_labelled)
def test_npz_and_csv_give_back_what_was_saved(tmp_path_factory, train, test):
    """Property: arrays saved with numpy.savez, or written to CSV files with a label column, come
    back as the same numbers and labels, with ``max label + 1`` classes."""
    (x, y), (x_test, y_test) = train, test
    if x.shape[1] != x_test.shape[1]:
        x_test = np.resize(x_test, (len(x_test), x.shape[1])).astype(x_test.dtype)
    folder = tmp_path_factory.mktemp("files")
    np.savez(folder / "d.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    data = load_npz(path=folder / "d.npz")
    np.testing.assert_array_equal(data.x_train, x)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.n_outputs == max(y.max(), y_test.max()) + 1
    header = ",".join([f"f{j}" for j in range(x.shape[1])] + ["label"])
    write_csv(folder / "train.csv", [[*map(repr, row.tolist()), k] for row, k in zip(x, y)], header)
    write_csv(folder / "test.csv", [[*map(repr, row.tolist()), k] for row, k in zip(x_test, y_test)], header)
    data = load_csv(seed=0, test_fraction=0.2, path=folder / "train.csv", test_path=folder / "test.csv")
    np.testing.assert_array_equal(data.x_train, x.astype(np.float64))
    np.testing.assert_array_equal(data.x_test, x_test.astype(np.float64))
    np.testing.assert_array_equal(data.y_train, y)
