"""The spec layer: TOML → CircuitSpec. Exact text of the most important messages is pinned."""

from __future__ import annotations

import re

import pytest

from circuits.errors import CircuitsError, SpecError
from circuits.graph import build_graph
from circuits.overrides import parse_overrides
from circuits.spec import (
    InitSpec,
    PopulationSpec,
    ProjectionSpec,
    load_spec,
    parse_spec,
)
from circuits.spec_writer import dump_spec

BASE = """\
[circuit]
name = "t"

[populations]
x = { size = 4, role = "input" }
h1 = { size = 3, activation = "tanh" }
y = { size = 2, role = "output" }

[[projections]]
chain = ["x", "h1", "y"]
"""


def parse(text: str, rules, **kwargs):
    return parse_spec(text, source="t.toml", rules=rules, **kwargs)


def message(text: str, rules, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        parse(text, rules, **kwargs)
    return str(info.value)


def test_spec_error_is_a_circuits_error():
    assert issubclass(SpecError, CircuitsError)


# -- the pinned messages -----------------------------------------------------------------------


def test_misspelt_activation_names_the_key_the_choices_and_a_match(rules):
    text = BASE.replace('activation = "tanh"', 'activation = "rleu"')
    assert message(text, rules) == (
        "t.toml: populations.h1.activation: must be one of linear, relu, tanh, sigmoid, "
        "hard_sigmoid, softplus, softmax (got 'rleu'; did you mean 'relu'?)")


def test_unknown_key_lists_the_allowed_keys_and_a_match(rules):
    text = BASE.replace('activation = "tanh"', 'activaton = "tanh"')
    assert message(text, rules) == (
        "t.toml: populations.h1.activaton: unknown key; allowed keys are size, role, activation, "
        "dropout, step, noise, noise_type, cell, g_lk, g_basal, g_apical, g_dendrite, g_som, spikes, shape; "
        "did you mean 'activation'?")


def test_unknown_table(rules):
    assert message(BASE + "[rul]\nlr = 0.1\n", rules) == (
        "t.toml: rul: unknown key; allowed keys are circuit, populations, projections, rule, task, "
        "run; did you mean 'rule'?")


def test_unknown_rule_parameter(rules):
    assert message(BASE + "[rule]\nlrr = 0.1\n", rules) == (
        "t.toml: rule.lrr: unknown key; allowed keys are name, lr, optimizer, momentum, "
        "weight_decay, adam_beta1, adam_beta2, adam_eps, lr_schedule, lr_milestones, lr_gamma, "
        "lr_epochs, lr_floor, target_low, target_high; did you mean 'lr'?")


def test_rule_parameters_depend_on_the_rule(rules):
    # auto_feedback belongs to feedback_alignment, not to backprop
    assert parse(BASE + '[rule]\nname = "feedback_alignment"\nauto_feedback = true\n', rules).rule.params[
        "auto_feedback"] is True
    assert "rule.auto_feedback: unknown key" in message(BASE + "[rule]\nauto_feedback = true\n", rules)


def test_unknown_rule_name(rules):
    listing = ", ".join(sorted(rules))
    assert message(BASE + '[rule]\nname = "feedback_alignmnt"\n', rules) == (
        f"t.toml: rule.name: must be one of {listing} "
        "(got 'feedback_alignmnt'; did you mean 'feedback_alignment'?)")


def test_toml_syntax_error_reports_line_and_column(rules):
    assert message(BASE + "[rule\nlr = 0.1\n", rules) == (
        "t.toml: TOML syntax error: Expected ']' at the end of a table declaration (at line 11, column 6)")
    text = BASE.replace("size = 3,", "size = 3,,")
    assert message(text, rules) == (
        "t.toml: TOML syntax error: Invalid initial character for a key part (at line 6, column 17)")


def test_integer_literal_beyond_pythons_digit_limit_is_a_syntax_error(rules):
    text = BASE + "[run]\nseed = 1" + "0" * 5000 + "\n"
    assert message(text, rules).startswith("t.toml: TOML syntax error: Exceeds the limit (4300 digits)")


@pytest.mark.parametrize(("text", "expected"), [
    (BASE.replace('name = "t"', ""),
     "t.toml: circuit.name: is required; must be a string (the circuit's name)"),
    ('[circuit]\nname = "t"\n',
     "t.toml: populations: is required; add a [populations] table, e.g. x = { size = 64, role = \"input\" }"),
    ('[circuit]\nname = "t"\n[populations]\n',
     "t.toml: populations: must declare at least one population"),
    (BASE.replace("size = 3, ", ""),
     "t.toml: populations.h1.size: is required; must be an integer >= 1 (number of neurons)"),
    (BASE + '[[projections]]\nto = "y"\n',
     "t.toml: projections[1].from: is required; name a population among x, h1, y"),
    (BASE + '[[projections]]\nfrom = "x"\n',
     "t.toml: projections[1].to: is required; name a population among x, h1, y"),
], ids=["circuit.name", "populations", "populations-empty", "size", "from", "to"])
def test_missing_required_keys(rules, text, expected):
    assert message(text, rules) == expected


def test_projection_to_an_unknown_population(rules):
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "hh1"\n', rules) == (
        "t.toml: projections[1].to: must name a population among x, h1, y (got 'hh1'; did you mean 'h1'?)")


def test_wrong_types(rules):
    assert message(BASE.replace("size = 3", 'size = "3"'), rules) == (
        "t.toml: populations.h1.size: must be an integer >= 1 (got '3')")
    assert message(BASE.replace("size = 3", "size = 2.5"), rules) == (
        "t.toml: populations.h1.size: must be an integer >= 1 (got 2.5)")
    assert message(BASE.replace('h1 = { size = 3, activation = "tanh" }', "h1 = 3"), rules) == (
        "t.toml: populations.h1: must be a table (got 3)")
    assert message("rule = 3\n" + BASE, rules) == "t.toml: rule: must be a table (got 3)"
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "y"\ninit = 3\n', rules) == (
        "t.toml: projections[1].init: must be a table (got 3)")
    assert message(BASE.replace("[[projections]]\n", "[projections]\n"), rules) == (
        "t.toml: projections: must be an array of tables ([[projections]]) (got a table)")


def test_whole_number_floats_are_integers(rules):
    assert parse(BASE.replace("size = 3", "size = 3.0"), rules).population("h1").size == 3
    assert isinstance(parse(BASE.replace("size = 3", "size = 3.0"), rules).population("h1").size, int)


def test_ranges(rules):
    assert message(BASE + "[rule]\nlr = -0.1\n", rules) == "t.toml: rule.lr: must be a number > 0 (got -0.1)"
    assert message(BASE.replace("size = 3", "size = 3, dropout = 1.0"), rules) == (
        "t.toml: populations.h1.dropout: must be a number in [0, 0.95] (got 1.0)")
    assert message(BASE.replace("size = 3", "size = 3, step = 0"), rules) == (
        "t.toml: populations.h1.step: must be a number in (0, 1] (got 0)")
    assert message(BASE.replace("size = 3", "size = 0"), rules) == (
        "t.toml: populations.h1.size: must be an integer >= 1 (got 0)")
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "y"\nlr = 0\n', rules) == (
        "t.toml: projections[1].lr: must be a number > 0 (this projection's learning rate) (got 0.0)")


@pytest.mark.parametrize(("edit", "key"), [
    (("[[projections]]", "[rule]\nlr = nan\n[[projections]]"), "rule.lr"),
    (("[[projections]]", "[rule]\nmomentum = -nan\n[[projections]]"), "rule.momentum"),
    (("[[projections]]", "[rule]\nweight_decay = inf\n[[projections]]"), "rule.weight_decay"),
    (("size = 3", "size = 3, noise = inf"), "populations.h1.noise"),
    (("size = 3", "size = 3, step = -inf"), "populations.h1.step"),
    (("size = 3", "size = 3, dropout = nan"), "populations.h1.dropout"),
    (("[[projections]]", "[run]\neval_batch_size = inf\n[[projections]]"), "run.eval_batch_size"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_nan_and_inf_are_rejected(rules, edit, key):
    text = BASE.replace(*edit)
    assert "nan" in text or "inf" in text
    assert re.fullmatch(rf"t\.toml: {re.escape(key)}: must be .* \(got -?(nan|inf)(; NaN and inf are not allowed)?\)",
                        message(text, rules))


def test_nan_message(rules):
    assert message(BASE + "[rule]\nlr = nan\n", rules) == (
        "t.toml: rule.lr: must be a number > 0 (got nan; NaN and inf are not allowed)")
    assert message(BASE.replace("size = 3", "size = inf"), rules) == (
        "t.toml: populations.h1.size: must be an integer >= 1 (got inf; NaN and inf are not allowed)")


@pytest.mark.parametrize("text", [
    BASE + '[[projections]]\nfrom = "x"\nto = "y"\nlr = nan\n',
    BASE + '[[projections]]\nfrom = "x"\nto = "y"\ninit = { scheme = "normal", std = inf }\n',
    BASE + '[[projections]]\nfrom = "x"\nto = "y"\ninit = { scheme = "he", gain = nan }\n',
    BASE + "[task]\nn_train = inf\n",
    BASE + "[task]\noptions = { test_fraction = nan }\n",
])
def test_nan_and_inf_are_rejected_in_optional_values(rules, text):
    with pytest.raises(SpecError, match=r"\(got -?(nan|inf)"):
        parse(text, rules)


def test_softmax_only_on_the_output(rules):
    text = BASE.replace('activation = "tanh"', 'activation = "softmax"')
    assert message(text, rules) == (
        "t.toml: populations.h1.activation: softmax is allowed only on an output population "
        "(got 'softmax' on a hidden population)")
    ok = BASE.replace('role = "output"', 'role = "output", activation = "softmax"')
    assert parse(ok, rules).population("y").activation == "softmax"


def test_duplicate_projection_names(rules):
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "h1"\n', rules) == (
        "t.toml: projections[1].name: projection name 'x->h1' is already used by projections.x->h1; "
        "give one of them a distinct name = \"...\"")
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "y"\nname = "h1->y"\n', rules) == (
        "t.toml: projections[1].name: projection name 'h1->y' is already used by projections.h1->y; "
        "give one of them a distinct name = \"...\"")
    # two projections between the same populations are fine once named apart
    spec = parse(BASE + '[[projections]]\nfrom = "x"\nto = "h1"\nname = "x->h1_b"\n', rules)
    assert [p.name for p in spec.projections] == ["x->h1", "h1->y", "x->h1_b"]


def test_names(rules):
    bad = "names are letters, digits and underscores, not starting with a digit"
    assert message(BASE.replace("h1 = {", '"h 1" = {'), rules) == f"t.toml: populations.h 1: {bad} (got 'h 1')"
    assert message(BASE.replace("h1 = {", '"1h" = {'), rules) == f"t.toml: populations.1h: {bad} (got '1h')"
    assert parse(BASE.replace('name = "t"', 'name = "fa-digits"'), rules).name == "fa-digits"
    assert message(BASE.replace('name = "t"', 'name = "a b"'), rules) == (
        "t.toml: circuit.name: must be letters, digits, underscores and hyphens (got 'a b')")


def test_bad_circuit_name_is_shown_as_written(rules):
    assert "(got 'a b-c')" in message(BASE.replace('name = "t"', 'name = "a b-c"'), rules)


def test_init_tables(rules):
    def init(value: str) -> InitSpec:
        return parse(BASE + f'[[projections]]\nfrom = "x"\nto = "y"\ninit = {value}\n', rules).projections[-1].init

    assert init('"he"') == InitSpec(scheme="he")
    assert init('{ scheme = "normal" }') == InitSpec(scheme="normal", std=0.01)
    assert init('{ scheme = "normal", std = 0.2 }') == InitSpec(scheme="normal", std=0.2)
    assert init('{ scheme = "uniform" }') == InitSpec(scheme="uniform", scale=0.05)
    assert init('{ scheme = "orthogonal", gain = 2 }') == InitSpec(scheme="orthogonal", gain=2.0)
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "y"\ninit = { scheme = "he", std = 0.1 }\n',
                   rules) == "t.toml: projections[1].init.std: std applies to scheme 'normal' only (scheme is 'he')"
    assert message(BASE + '[[projections]]\nfrom = "x"\nto = "y"\ninit = "xavir"\n', rules) == (
        "t.toml: projections[1].init.scheme: must be one of xavier, glorot, xavier_normal, glorot_normal, "
        "he, he_uniform, uniform, normal, orthogonal, zeros (got 'xavir'; did you mean 'xavier'?)")


def test_task_and_run_checks(rules):
    assert message(BASE + '[task]\ndataset = "mnst"\n', rules) == (
        "t.toml: task.dataset: must be one of cifar10, covariances, csv, digits, fashion-mnist, mnist, npz, parity, "
        "teacher_linear, teacher_nonlinear, xor (got 'mnst'; did you mean 'mnist'?)")
    assert message(BASE + "[task]\noptions = { test_frac = 0.3 }\n", rules) == (
        "t.toml: task.options.test_frac: unknown key; allowed keys are test_fraction; did you mean 'test_fraction'?")
    assert message(BASE + '[run]\ndtype = "float16"\n', rules) == (
        "t.toml: run.dtype: must be one of float32, float64 (got 'float16'; did you mean 'float64'?)")
    spec = parse(BASE + '[task]\ndataset = "xor"\noptions = { n = 20 }\n', rules)
    assert spec.task.options == {"n": 20, "noise": 0.1}


# -- overrides ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [["rule.lr=0.01"], [" rule.lr = 0.01 "], {"rule.lr": 0.01}, {"rule.lr": "0.01"}])
def test_overrides_are_typed(rules, overrides):
    spec = parse(BASE, rules, overrides=overrides)
    assert spec.rule.params["lr"] == 0.01
    assert isinstance(spec.rule.params["lr"], float)


def test_override_values_are_read_as_toml(rules):
    assert parse_overrides(["run.seed=3", "rule.optimizer=adam", 'run.out="a b"', "x.y=[1, 2]", "a.b=true"]) == {
        "run.seed": 3, "rule.optimizer": "adam", "run.out": "a b", "x.y": [1, 2], "a.b": True}
    assert parse_overrides(None) == {} == parse_overrides([])
    spec = parse(BASE, rules, overrides=["run.seed=3", "rule.optimizer=adam", "populations.h1.size=7"])
    assert (spec.run.seed, spec.rule.params["optimizer"], spec.population("h1").size) == (3, "adam", 7)


def test_overrides_are_checked_like_the_file(rules):
    assert message(BASE, rules, overrides=["rule.lr=abc"]) == "t.toml: rule.lr: must be a number > 0 (got 'abc')"
    assert message(BASE, rules, overrides=["rule.lr=nan"]) == (
        "t.toml: rule.lr: must be a number > 0 (got nan; NaN and inf are not allowed)")
    assert message(BASE, rules, overrides={"populations.h1.size": -2}) == (
        "t.toml: populations.h1.size: must be an integer >= 1 (got -2)")
    assert message(BASE, rules, overrides=["rule.lrr=0.1"]).startswith("t.toml: rule.lrr: unknown key;")
    assert message(BASE, rules, overrides=["run.seed=1.5"]) == "t.toml: run.seed: must be an integer >= 0 (got 1.5)"


@pytest.mark.parametrize("value", ['"he"', "he"])
def test_projection_overrides_address_projections_by_name(rules, value):
    spec = parse(BASE, rules, overrides=[f"projections.x->h1.init={value}"])
    assert spec.projections[0].init == InitSpec(scheme="he")
    assert spec.projections[1].init == InitSpec()
    spec = parse(BASE, rules, overrides={"projections.h1->y.init": {"scheme": "normal", "std": 0.5}})
    assert spec.projections[1].init == InitSpec(scheme="normal", std=0.5)


def test_malformed_overrides(rules):
    assert message(BASE, rules, overrides=["rule.lr"]) == "t.toml: --set rule.lr: must look like key=value, e.g. rule.lr=0.01"
    assert message(BASE, rules, overrides=["=3"]) == "t.toml: --set =3: must look like key=value, e.g. rule.lr=0.01"
    assert message(BASE, rules, overrides=["lr=3"]) == (
        "t.toml: --set lr: must name a table and a key, e.g. rule.lr or populations.h1.size")
    assert message(BASE, rules, overrides=["projections.x->h2.init=he"]) == (
        "t.toml: --set 'projections.x->h2.init': must be projections.<name>.<key> with a projection name "
        "among x->h1, h1->y; did you mean 'x->h1'?")
    assert message(BASE, rules, overrides=["circuit.name.x=1"]) == (
        "t.toml: --set circuit.name.x: 'circuit.name' is not a table")


def test_override_on_a_spec_with_non_table_projections(rules):
    # once raised TypeError: the override indexed the filtered list into the unfiltered one
    text = 'projections = [1, { from = "x", to = "h1" }]\n' + BASE.split("[[projections]]")[0]
    assert message(text, rules, overrides=["projections.x->h1.lr=0.1"]) == (
        "t.toml: projections[0]: must be a table (got 1)")


# -- chains and defaults -----------------------------------------------------------------------


def test_chain_expands_into_one_projection_per_link(rules):
    text = BASE.replace('chain = ["x", "h1", "y"]', 'chain = ["x", "h1", "y"]\ninit = "he"\nbias = false')
    spec = parse(text, rules)
    assert spec.projections == (
        ProjectionSpec("x", "h1", name="x->h1", init=InitSpec("he"), bias=False),
        ProjectionSpec("h1", "y", name="h1->y", init=InitSpec("he"), bias=False),
    )
    assert message(BASE + '[[projections]]\nchain = ["y", "h1"]\nname = "fb"\ntype = "feedback"\n', rules) == (
        "t.toml: projections[1].chain: a chain entry cannot also set 'name'; write a separate "
        "[[projections]] table for it")
    assert message(BASE + '[[projections]]\nchain = ["x"]\n', rules) == (
        "t.toml: projections[1].chain: must be an array of at least two population names (got an array)")


def test_errors_name_a_chain_link_and_a_table_by_its_place_in_the_file(rules):
    """A chain's link is named as --set addresses it, not by its index after expansion."""
    assert message(BASE.replace('chain = ["x", "h1", "y"]', 'chain = ["x", "h1", "y"]\ninit = "hee"'), rules) == (
        "t.toml: projections.x->h1.init.scheme: must be one of xavier, glorot, xavier_normal, glorot_normal, "
        "he, he_uniform, uniform, normal, orthogonal, zeros (got 'hee'; did you mean 'he'?)")
    text = BASE.replace('chain = ["x", "h1", "y"]', 'chain = ["x", "h1", "y"]\n[[projections]]\nfrom = "y"\nto = "h9"')
    assert message(text, rules).startswith("t.toml: projections[1].to: must name a population")


def test_chain_and_explicit_entries_mix_in_file_order(rules):
    text = BASE + '[[projections]]\nfrom = "y"\nto = "h1"\ntype = "feedback"\n[[projections]]\nchain = ["x", "y"]\n'
    assert [p.name for p in parse(text, rules).projections] == ["x->h1", "h1->y", "y->h1", "x->y"]


@pytest.mark.parametrize("rule", ["backprop", "feedback_alignment", "direct_feedback_alignment",
                                  "kolen_pollack", "weight_mirror"])
def test_rule_parameters_get_every_declared_default(rules, rule):
    spec = parse(BASE + f'[rule]\nname = "{rule}"\n', rules)
    assert spec.rule.name == rule
    assert spec.rule.params == rules[rule].defaults()
    spec = parse(BASE + f'[rule]\nname = "{rule}"\nlr = 0.5\n', rules)
    assert spec.rule.params == {**rules[rule].defaults(), "lr": 0.5}


def test_defaults_are_filled(rules):
    spec = parse(BASE + '[[projections]]\nfrom = "y"\nto = "h1"\ntype = "feedback"\n', rules)
    assert spec.doc == ""
    assert spec.populations == (
        PopulationSpec("x", 4, role="input", activation="linear"),
        PopulationSpec("h1", 3, role="hidden", activation="tanh"),
        PopulationSpec("y", 2, role="output", activation="linear"),
    )
    assert parse(BASE.replace(', activation = "tanh"', ""), rules).population("h1").activation == "relu"
    forward, feedback = spec.projections[0], spec.projections[2]
    assert (forward.type, forward.init, forward.bias, forward.plastic, forward.lr) == (
        "forward", InitSpec(), True, True, None)
    assert (feedback.type, feedback.bias, feedback.plastic) == ("feedback", False, False)
    assert spec.rule.name == "backprop"
    task, run = spec.task, spec.run
    assert (task.dataset, task.loss, task.epochs, task.batch_size, task.normalize) == (
        "digits", "cross_entropy", 20, 32, "standard")
    assert (task.data_dir, task.n_train, task.n_test, task.options) == (None, None, None, {"test_fraction": 0.2})
    assert (run.seed, run.backend, run.dtype, run.out, run.align_every, run.eval_batch_size) == (
        0, "numpy", "float32", None, 0, 1000)


def test_population_lookup(rules):
    spec = parse(BASE, rules)
    assert spec.population("h1").size == 3
    with pytest.raises(KeyError):
        spec.population("h2")


# -- files and round trip ----------------------------------------------------------------------


def test_load_spec_names_the_file(rules, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace('"tanh"', '"tahn"'), encoding="utf-8")
    pattern = rf"^{re.escape(str(path))}: populations\.h1\.activation: .*did you mean 'tanh'\?\)$"
    with pytest.raises(SpecError, match=pattern):
        load_spec(path, rules=rules)
    assert str(load_spec(path, {"populations.h1.activation": "tanh"}, rules=rules).source) == str(path)


def test_load_spec_rejects_missing_and_binary_files(rules, tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(missing, rules=rules)
    assert str(info.value) == f"{missing}: no such file"
    binary = tmp_path / "spec.toml"
    binary.write_bytes(BASE.encode() + b"\xff\xfe")
    with pytest.raises(SpecError) as info:
        load_spec(binary, rules=rules)
    assert str(info.value) == f"{binary}: not a UTF-8 text file (is it a TOML spec?)"
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path, rules=rules)
    assert str(info.value) == f"{tmp_path}: is a directory; give the path of a TOML spec file"


def test_source_is_not_compared(rules):
    assert parse_spec(BASE, source="a.toml", rules=rules) == parse_spec(BASE, source="b.toml", rules=rules)


def test_dump_round_trips_awkward_strings(rules):
    text = BASE.replace('name = "t"', 'name = "t"\ndoc = "quote \\" backslash \\\\ tab \\t newline \\n ünï ☃"')
    spec = parse(text, rules, overrides=['run.out="C:\\\\runs\\\\a b"'])
    assert spec.doc == 'quote " backslash \\ tab \t newline \n ünï ☃'
    assert spec.run.out == "C:\\runs\\a b"
    assert parse(dump_spec(spec), rules) == spec


def test_dump_round_trips_control_characters(rules):
    spec = parse(BASE.replace('name = "t"', 'name = "t"\ndoc = "a\\u0001b\\rc\\u007f"'), rules)
    assert parse(dump_spec(spec), rules) == spec


@pytest.mark.parametrize("text", [
    BASE.replace("size = 3", "size = 1" + "0" * 400),
    BASE + "[rule]\nlr = 1" + "0" * 400 + "\n",
    BASE + "[task]\nn_train = 1" + "0" * 400 + "\n",
    BASE + '[[projections]]\nfrom = "x"\nto = "y"\nlr = 1' + "0" * 400 + "\n",
], ids=["size", "rule.lr", "task.n_train", "projection.lr"])
def test_integers_beyond_the_float_range_are_spec_errors(rules, text):
    with pytest.raises(SpecError):
        parse(text, rules)


def test_example_specs_load_round_trip_and_build(rules, repo_root):
    paths = sorted((repo_root / "specs").glob("*.toml"))
    assert paths
    for path in paths:
        spec = load_spec(path, rules=rules)
        assert spec.source == str(path)
        assert parse(dump_spec(spec), rules) == spec
        build_graph(spec)


def test_resolved_spec_states_every_value(rules):
    text = dump_spec(parse(BASE, rules))
    for line in ("[circuit]", 'name = "t"', 'doc = ""', "[populations]", "[[projections]]", 'name = "x->h1"',
                 "init = { scheme = \"xavier\", gain = 1.0 }", "[rule]", 'name = "backprop"', "lr = 0.05",
                 "[task]", "[task.options]", "test_fraction = 0.2", "[run]", 'dtype = "float32"'):
        assert line in text.splitlines()
