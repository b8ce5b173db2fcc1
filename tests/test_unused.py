"""Projections the rule never reads are reported, by the compiler and by check/compile/simulate."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from circuits.cli import main
from circuits.compile import compile_circuit, unused_projections
from circuits.graph import build_graph
from circuits.spec import load_spec

WARNING = ("warning: {path}: rule 'backprop' does not use projection 'y->h1' (no op reads its weight); "
           "remove it or choose a rule that uses it")


def _unused(path, registry, overrides=(), mode="train"):
    spec = load_spec(path, list(overrides), rules=registry.signatures())
    rule = registry.get(spec.rule.name)
    spec = rule.augment(spec)
    graph = build_graph(spec, require_dag=not rule.signature.energy_based)
    return unused_projections(graph, compile_circuit(graph, rule, mode=mode))


@pytest.mark.parametrize("rule,unused", [
    ("feedback_alignment", ()),
    ("kolen_pollack", ()),
    ("weight_mirror", ()),
    ("backprop", ("h2->h1", "y->h1", "y->h2")),
    ("direct_feedback_alignment", ("h2->h1",)),
    ("node_perturbation", ("h2->h1", "y->h1", "y->h2")),
    ("predictive_coding", ("h2->h1", "y->h1", "y->h2")),
], ids=lambda v: v if isinstance(v, str) else None)
def test_which_projections_each_rule_reads(registry, repo_root, rule, unused):
    overrides = [f"rule.name={rule}"]
    if rule in ("kolen_pollack", "weight_mirror"):  # these learn their feedback
        overrides += [f"projections.{name}.plastic=true" for name in ("h2->h1", "y->h1", "y->h2")]
    assert _unused(repo_root / "specs" / "fa_skip_digits.toml", registry, overrides) == unused


def test_no_shipped_spec_holds_an_unused_projection(registry, repo_root):
    found = {path.stem: names for path in sorted((repo_root / "specs").glob("*.toml"))
             if (names := _unused(path, registry))}
    assert not found


def test_check_compile_and_simulate_warn_in_one_line(repo_root, tmp_path):
    path = str(repo_root / "specs" / "fa_digits.toml")
    as_backprop = ["--set", "rule.name=backprop"]
    for args in (["check", path, *as_backprop], ["compile", path, "--mode", "infer", *as_backprop],
                 ["simulate", path, *as_backprop, "--quiet", "--out", str(tmp_path / "run"),
                  "--set", "task.epochs=1", "--set", "task.n_train=64", "--set", "task.n_test=32"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert [line for line in result.output.splitlines() if "warning" in line] == [WARNING.format(path=path)]


def test_no_warning_when_the_rule_uses_every_projection(repo_root):
    result = CliRunner().invoke(main, ["check", str(repo_root / "specs" / "fa_digits.toml")])
    assert result.exit_code == 0 and "warning" not in result.output
