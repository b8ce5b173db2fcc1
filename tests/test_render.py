"""Diagrams and learning curves: formats, determinism, layout and the committed gallery."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

import numpy as np
import pytest

from circuits.errors import SpecError
from circuits.graph import CircuitGraph, build_graph
from circuits.plots import plot_alignment, plot_curves
from circuits.render import layout, render_graph
from circuits.render_text import to_dot, to_mermaid
from circuits.rules import default_registry
from circuits.spec import (CircuitSpec, PopulationSpec, ProjectionSpec, RuleSpec, RunSpec, TaskSpec,
                           parse_spec)

ROOT = Path(__file__).resolve().parent.parent

FA_TOML = """
[circuit]
name = "fa-tiny"
doc = "One hidden layer with fixed random feedback"

[populations]
x = { size = 8, role = "input" }
h1 = { size = 16, activation = "tanh" }
y = { size = 3, role = "output" }

[[projections]]
chain = ["x", "h1", "y"]

[[projections]]
from = "y"
to = "h1"
type = "feedback"
plastic = false

[rule]
name = "feedback_alignment"
"""


def _graph_from_toml(text: str) -> CircuitGraph:
    return build_graph(parse_spec(text, rules=default_registry().signatures()))


@pytest.fixture(scope="module")
def fa_graph() -> CircuitGraph:
    return _graph_from_toml(FA_TOML)


def _spec(pops: list[PopulationSpec], projs: list[ProjectionSpec], name: str = "test") -> CircuitSpec:
    return CircuitSpec(name=name, doc="a test circuit", populations=tuple(pops), projections=tuple(projs),
                       rule=RuleSpec("backprop", {}), task=TaskSpec(), run=RunSpec())


def _random_layered(seed: int, widths: tuple[int, ...] = (3, 4, 4, 3, 3, 2, 1)) -> CircuitGraph:
    """Twenty populations in layers of ``widths``, with skips, feedback and lateral loops."""
    rng = random.Random(seed)
    layers = [[f"p{k}_{i}" for i in range(w)] for k, w in enumerate(widths)]
    roles = {0: "input", len(layers) - 1: "output"}
    pops = [PopulationSpec(name=n, size=rng.choice([16, 64, 128]), role=roles.get(k, "hidden"),
                           activation="relu" if k in range(1, len(layers) - 1) else "linear")
            for k, layer in enumerate(layers) for n in layer]
    links = set()
    for k in range(1, len(layers)):
        for n in layers[k]:   # every population is driven from the layer below...
            links.update((s, n) for s in rng.sample(layers[k - 1], min(2, len(layers[k - 1]))))
        for n in layers[k - 1]:   # ...and drives the layer above
            if not any(s == n for s, _ in links):
                links.add((n, rng.choice(layers[k])))
    for _ in range(4):   # skips over at least one layer
        a = rng.randrange(len(layers) - 2)
        links.add((rng.choice(layers[a]), rng.choice(layers[rng.randrange(a + 2, len(layers))])))
    projs = [ProjectionSpec(source=s, target=t, name=f"{s}->{t}") for s, t in sorted(links)]
    for _ in range(3):
        a = rng.randrange(1, len(layers) - 1)
        s, t = rng.choice(layers[rng.randrange(a + 1, len(layers))]), rng.choice(layers[a])
        projs.append(ProjectionSpec(source=s, target=t, type="feedback", name=f"fb {s}->{t}", bias=False,
                                    plastic=rng.random() < 0.5))
    projs.append(ProjectionSpec(source=layers[2][0], target=layers[2][0], type="lateral", name="loop", bias=False))
    projs.append(ProjectionSpec(source=layers[3][0], target=layers[3][1], type="lateral", name="side", bias=False))
    assert len(pops) == 20
    return build_graph(_spec(pops, list({p.name: p for p in projs}.values()), name=f"random-{seed}"))


# -- formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, magic", [(".svg", (b"<?xml", b"<svg")), (".png", (b"\x89PNG\r\n\x1a\n",)),
                                           (".pdf", (b"%PDF",))])
def test_picture_formats_write_the_right_kind_of_file(fa_graph, tmp_path, suffix, magic):
    path = render_graph(fa_graph, tmp_path / f"fa{suffix}", phases=["forward", "loss", "backward", "update"])
    data = path.read_bytes()
    assert path == tmp_path / f"fa{suffix}"
    assert len(data) > 1000 and data.startswith(magic)


def test_svg_keeps_text_as_text(fa_graph, tmp_path):
    text = render_graph(fa_graph, tmp_path / "fa.svg", phases=["forward", "update"]).read_text(encoding="utf-8")
    assert "fa-tiny · feedback_alignment · phases: forward, update" in text
    assert "One hidden layer with fixed random feedback" in text
    assert "16 · tanh" in text


def test_dot_draws_feedback_dashed_and_inputs_at_the_bottom(fa_graph, tmp_path):
    text = render_graph(fa_graph, tmp_path / "fa.dot").read_text(encoding="utf-8")
    assert text.startswith('digraph "fa-tiny" {') and "rankdir=BT;" in text
    feedback = [line for line in text.splitlines() if line.strip().startswith('"y" -> "h1"')]
    assert len(feedback) == 1 and "style=dashed" in feedback[0] and "constraint=false" in feedback[0]
    assert '"x" -> "h1"' in text and "style=" not in text.split('"x" -> "h1"')[1].splitlines()[0]
    assert '"h1" [label="h1\\n16 · tanh"' in text


def test_mermaid_uses_dotted_arrows_for_feedback(fa_graph, tmp_path):
    text = render_graph(fa_graph, tmp_path / "fa.mmd").read_text(encoding="utf-8")
    assert "flowchart BT" in text
    assert "  y -.->|feedback, fixed| h1" in text
    assert "  x --> h1" in text
    assert 'h1["h1<br/>16 · tanh"]:::hidden' in text


def test_text_formats_mark_lateral_projections():
    graph = build_graph(_spec([PopulationSpec("x", 4, "input", "linear"), PopulationSpec("h", 8),
                               PopulationSpec("end", 2, "output", "linear")],
                              [ProjectionSpec("x", "h", name="x->h"), ProjectionSpec("h", "end", name="h->end"),
                               ProjectionSpec("h", "h", type="lateral", name="h->h", bias=False)]))
    assert '"h" -> "h" [color="#2a7f8f", tooltip="h->h", style=dotted' in to_dot(graph)
    mermaid = to_mermaid(graph)
    assert "  h ==>|lateral| h" in mermaid
    assert "  h --> pop_end" in mermaid   # 'end' is a Mermaid keyword


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf", ".dot", ".mmd"])
def test_rendering_twice_gives_identical_bytes(fa_graph, tmp_path, suffix):
    first = render_graph(fa_graph, tmp_path / f"a{suffix}", phases=["forward"]).read_bytes()
    second = render_graph(fa_graph, tmp_path / f"b{suffix}", phases=["forward"]).read_bytes()
    assert first == second


def test_unknown_suffix_is_a_spec_error(fa_graph, tmp_path):
    with pytest.raises(SpecError) as info:
        render_graph(fa_graph, tmp_path / "fa.xyz")
    assert str(info.value) == (f"{tmp_path / 'fa.xyz'}: unknown diagram format '.xyz'; "
                               "use .svg, .png, .pdf, .dot or .mmd")
    assert not (tmp_path / "fa.xyz").exists()
    with pytest.raises(SpecError, match="the name has no suffix"):
        render_graph(fa_graph, tmp_path / "fa")


# -- layout -----------------------------------------------------------------------------------

def test_layout_puts_inputs_at_the_bottom_and_the_output_on_top(fa_graph):
    lay = layout(fa_graph)
    ys = {name: y for name, (_, y) in lay.positions.items()}
    assert ys["x"] < ys["h1"] < ys["y"]
    assert len({x for x, _ in lay.positions.values()}) == 1   # a chain stands straight


def test_feedback_bends_away_from_the_forward_arrow(fa_graph):
    lay = layout(fa_graph)
    forward, feedback = lay.routes["h1->y"], lay.routes["y->h1"]
    assert np.allclose(forward[:, 0], forward[0, 0])   # straight up
    gap = np.min(np.linalg.norm(feedback[1:-1, None, :] - forward[None, :, :], axis=2))
    assert gap > 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twenty_population_circuit_fits_and_keeps_the_layers(tmp_path, seed):
    graph = _random_layered(seed)
    lay = layout(graph)
    assert all(lay.contains_box(name) for name in graph.populations)
    ys = {name: y for name, (_, y) in lay.positions.items()}
    assert max(ys[n] for n in graph.inputs) < min(y for n, y in ys.items() if n not in graph.inputs)
    assert ys[graph.output] > max(y for n, y in ys.items() if n != graph.output)
    width, height = lay.size
    for name, route in lay.routes.items():
        assert np.all((route >= 0) & (route <= (width, height))), name
    render_graph(graph, tmp_path / "random.svg")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projections_do_not_cross_other_boxes(seed):
    graph = _random_layered(seed)
    lay = layout(graph)
    (w, h), t = lay.box, np.linspace(0, 1, 50)[:, None]
    for proj in graph.projections():
        c = lay.routes[proj.name]
        pts = np.concatenate([(1 - t) ** 3 * c[i] + 3 * (1 - t) ** 2 * t * c[i + 1]
                              + 3 * (1 - t) * t ** 2 * c[i + 2] + t ** 3 * c[i + 3] for i in range(0, len(c) - 1, 3)])
        for name, (x, y) in lay.positions.items():
            if name not in (proj.source, proj.target):
                inside = (np.abs(pts[:, 0] - x) < w / 2) & (np.abs(pts[:, 1] - y) < h / 2)
                assert not inside.any(), f"{proj.name} crosses {name}"


def test_a_cyclic_energy_circuit_is_drawn_with_the_output_on_top(tmp_path):
    pops = [PopulationSpec("x", 4, "input", "linear"), PopulationSpec("a", 8), PopulationSpec("b", 8),
            PopulationSpec("y", 3, "output", "linear")]
    projs = [ProjectionSpec("x", "a", name="x->a"), ProjectionSpec("a", "b", name="a->b"),
             ProjectionSpec("b", "a", name="b->a"), ProjectionSpec("b", "y", name="b->y"),
             ProjectionSpec("y", "b", name="y->b")]
    graph = build_graph(_spec(pops, projs), require_dag=False)
    ys = {name: y for name, (_, y) in layout(graph).positions.items()}
    assert ys["x"] < ys["a"] < ys["b"] < ys["y"]
    assert render_graph(graph, tmp_path / "cycle.svg").stat().st_size > 0


# -- curves -----------------------------------------------------------------------------------

def _rows(align: bool) -> list[dict[str, float]]:
    rows = []
    for epoch in range(1, 6):
        row = {"epoch": float(epoch), "train_loss": 1.0 / epoch, "test_loss": 1.1 / epoch,
               "test_accuracy": 0.5 + 0.08 * epoch, "seconds": 0.1}
        if align:
            row.update({"align.x->h1.weight": 80.0 - epoch, "align.h1->y.weight": 40.0 + epoch})
        rows.append(row)
    return rows


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_curves(tmp_path, align, suffix, magic):
    path = plot_curves(_rows(align), tmp_path / f"curves{suffix}", title="fa-tiny · feedback_alignment")
    assert path.read_bytes().startswith(magic)
    if suffix == ".svg":
        text = path.read_text(encoding="utf-8")
        assert "test accuracy (%)" in text
        assert ("x-&gt;h1.weight" in text) == align


def test_curves_on_a_slow_machine_raise_no_legend_warning(tmp_path, monkeypatch):
    """Matplotlib warns when its search for the best legend place takes over a second, which a
    loaded machine can make happen (warnings are errors in the tests); the legends ask for that
    place explicitly, so the warning, which only concerns the implicit default, never comes."""
    import itertools

    import matplotlib.legend

    clock = itertools.count(step=5.0)
    monkeypatch.setattr(matplotlib.legend.time, "perf_counter", lambda: next(clock))
    assert plot_curves(_rows(True), tmp_path / "slow.png", title="slow").read_bytes().startswith(b"\x89PNG")


def test_plot_curves_skips_an_all_nan_accuracy_and_survives_no_rows(tmp_path):
    rows = [dict(row, test_accuracy=math.nan) for row in _rows(False)]
    text = plot_curves(rows, tmp_path / "loss.svg", title="regression").read_text(encoding="utf-8")
    assert "test accuracy" not in text and "loss" in text
    assert plot_curves([], tmp_path / "empty.png", title="nothing yet").stat().st_size > 0
    with pytest.raises(SpecError, match="unknown plot format '.jpg'; use .svg, .png or .pdf"):
        plot_curves(rows, tmp_path / "loss.jpg", title="x")


def test_plot_alignment(tmp_path):
    records = [(step, {"x->h1.weight": 85.0 - step / 10, "h1->y.weight": 60.0}) for step in range(0, 200, 20)]
    first = plot_alignment(records, tmp_path / "a.svg", title="alignment").read_bytes()
    assert first.startswith(b"<?xml") and b"training step" in first
    assert plot_alignment(records, tmp_path / "b.svg", title="alignment").read_bytes() == first


# -- gallery ----------------------------------------------------------------------------------

def _gallery_tool():
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "tools" / "make_gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gallery_is_up_to_date(tmp_path):
    specs_dir = ROOT / "specs"
    if not sorted(specs_dir.glob("*.toml")):
        pytest.skip("specs/ holds no .toml files yet")
    fresh = _gallery_tool().render_gallery(tmp_path, specs_dir)
    assert {p.name for p in fresh} == {f"{s.stem}{x}" for s in specs_dir.glob("*.toml") for x in (".svg", ".dot")}
    stale = [p.name for p in fresh
             if not (ROOT / "gallery" / p.name).exists() or (ROOT / "gallery" / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"gallery/ is stale for {', '.join(stale)}; run: python tools/make_gallery.py"
