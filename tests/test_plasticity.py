"""The `plasticity` rule family: term parsing, lowering, and known rules as points of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

from circuits import ops
from circuits.claims import default_claims
from circuits.errors import SpecError
from circuits.model import Model
from circuits.rules import default_registry
from circuits.rules.plasticity import Term, all_terms, format_rule, parse_term, parse_terms
from circuits.spec import load_spec, parse_spec
from circuits.spec_writer import dump_spec

REGISTRY = default_registry()
OJA_SPEC = Path(__file__).resolve().parent.parent / "specs" / "plasticity_oja.toml"

TINY = """
[circuit]
name = "tiny"
[populations]
x = {{ size = 3, role = "input" }}
h = {{ size = 4, activation = "tanh" }}
y = {{ size = 2, role = "output", activation = "linear" }}
[[projections]]
chain = ["x", "h", "y"]
[[projections]]
from = "y"
to = "h"
type = "feedback"
plastic = false
[rule]
name = "plasticity"
lr = 0.1
terms = {terms}
[task]
dataset = "teacher_linear"
loss = "mse"
[run]
dtype = "float64"
seed = 3
"""


def tiny(terms: str, extra: str = "") -> Model:
    text = TINY.format(terms=terms) + extra
    return Model(parse_spec(text, source="tiny.toml", rules=REGISTRY.signatures()), registry=REGISTRY)


def batch(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2))


def hand_signals(model: Model, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Rates and per-example FA error signals of the tiny circuit, written out in NumPy."""
    p = {k: np.array(v) for k, v in model.params.items()}
    h = np.tanh(x @ p["x->h"] + p["h.bias"])
    y = h @ p["h->y"] + p["y.bias"]
    err_y = y - t  # ∂(½‖y − t‖²)/∂y for one example
    err_h = (err_y @ p["y->h"]) * (1 - h * h)  # fixed random feedback, FA
    return {"x": x, "h": h, "y": y, "err_h": err_h, "err_y": err_y, **p}


def test_many_terms_at_once_match_the_formula_written_by_hand() -> None:
    terms = {"pre^2*post*w": 0.3, "err_pre*err": 0.7, "1": 0.1, "post^2": -0.2, "w^2": 0.05, "pre*err": -1.0}
    model = tiny("{ " + ", ".join(f'"{k}" = {v}' for k, v in terms.items()) + " }")
    x, t = batch()
    s = hand_signals(model, x, t)
    n, lr = len(x), 0.1

    def mean_outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a.T @ b / n

    w = s["h->y"]
    expected_hy = lr * (0.3 * mean_outer(s["h"] ** 2, s["y"]) * w + 0.7 * mean_outer(s["err_h"], s["err_y"])
                        + 0.1 - 0.2 * np.mean(s["y"] ** 2, axis=0) + 0.05 * w * w
                        - mean_outer(s["h"], s["err_y"]))
    w = s["x->h"]  # x is an input: err_pre is zero there
    expected_xh = lr * (0.3 * mean_outer(s["x"] ** 2, s["h"]) * w + 0.1 - 0.2 * np.mean(s["h"] ** 2, axis=0)
                        + 0.05 * w * w - mean_outer(s["x"], s["err_h"]))
    b = s["y.bias"]  # biases: pre = 1, err_pre = 0
    expected_by = lr * (0.3 * np.mean(s["y"], axis=0) * b + 0.1 - 0.2 * np.mean(s["y"] ** 2, axis=0)
                        + 0.05 * b * b - np.mean(s["err_y"], axis=0))
    deltas = model.deltas(x, t)
    np.testing.assert_allclose(deltas["h->y"], expected_hy, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(deltas["x->h"], expected_xh, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(deltas["y.bias"], expected_by, rtol=1e-12, atol=1e-14)
    assert "y->h" not in deltas  # fixed feedback stays fixed


def test_fa_point_equals_feedback_alignment_exactly() -> None:
    x, t = batch(7, seed=1)
    family = tiny('{ "pre*err" = -1.0 }').deltas(x, t)
    text = TINY.format(terms="{}").replace('name = "plasticity"', 'name = "feedback_alignment"')
    text = text.replace("terms = {}\n", "")
    fa = Model(parse_spec(text, source="fa.toml", rules=REGISTRY.signatures()), registry=REGISTRY).deltas(x, t)
    assert set(family) == set(fa)
    for name in fa:
        rel = np.linalg.norm(family[name] - fa[name]) / np.linalg.norm(fa[name])
        assert rel < 1e-12, name


def test_oja_point_equals_oja_by_hand_and_hebb_is_pre_post() -> None:
    x, t = batch(6, seed=2)
    oja = tiny('{ "pre*post" = 1.0, "post^2*w" = -1.0 }')
    s = hand_signals(oja, x, t)
    got = oja.deltas(x, t)["h->y"]
    y, h, w = s["y"], s["h"], s["h->y"]
    by_hand = np.zeros_like(w)
    for i in range(w.shape[0]):  # Oja 1982, one synapse at a time: Δw_ij = lr·⟨y_j (h_i − y_j w_ij)⟩
        for j in range(w.shape[1]):
            by_hand[i, j] = 0.1 * np.mean(y[:, j] * (h[:, i] - y[:, j] * w[i, j]))
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    hebb = tiny('{ "pre*post" = 1.0 }').deltas(x, t)
    np.testing.assert_allclose(hebb["x->h"], 0.1 * x.T @ s["h"] / len(x), rtol=1e-12)


def test_a_training_step_applies_the_probed_deltas() -> None:
    x, t = batch(4, seed=5)
    model = tiny('{ "pre*post" = 0.5, "post^2*w" = -0.7, "err_pre*err" = 0.2, "pre*err" = -1.0 }')
    before = {k: np.array(v) for k, v in model.params.items()}
    deltas = model.deltas(x, t)
    model.step(x, t)
    for name, delta in deltas.items():
        np.testing.assert_allclose(np.array(model.params[name]) - before[name], delta, rtol=1e-10, atol=1e-14)


def test_terms_share_one_gemm_per_distinct_pre_post_pair() -> None:
    model = tiny('{ "pre*post" = 1.0, "pre*post*w" = 0.5, "pre*post^2*w" = 0.2, "pre*post^2" = 0.1 }')
    grams = [op for phase in model.program.phases for op in phase.ops if isinstance(op, ops.PlasticGram)]
    weight_grams = [op for op in grams if op.a and op.b]
    # two projections × two pairs (pre, post) and (pre, post²); bias grams are column sums
    assert len(weight_grams) == 4
    assert len({op.out for op in grams}) == len(grams)
    combos = [op for phase in model.program.phases for op in phase.ops if isinstance(op, ops.PlasticCombination)]
    assert sorted(c.w for c in combos) == ["h->y.weight", "h.bias", "x->h.weight", "y.bias"]
    assert "x->h.gram[pre*post^2]" in model.program.describe()


def test_rules_without_error_terms_need_no_feedback() -> None:
    full = TINY.format(terms='{ "pre*post" = 1.0 }')
    text = full.split("[[projections]]\nfrom")[0] + "[rule]" + full.split("[rule]")[1]
    model = Model(parse_spec(text, source="hebb.toml", rules=REGISTRY.signatures()), registry=REGISTRY)
    assert "backward" not in [p.name for p in model.program.phases]
    with pytest.raises(Exception, match="needs a feedback projection from 'y' to 'h'"):
        Model(parse_spec(text.replace('"pre*post" = 1.0', '"pre*err" = -1.0'), source="fa.toml",
                         rules=REGISTRY.signatures()), registry=REGISTRY)


@pytest.mark.parametrize(("terms", "message"), [
    ('{ "pre*pst" = 1.0 }',
     "tiny.toml: rule.terms: term 'pre*pst': unknown factor 'pst'; factors are pre, err_pre, post, err, w "
     "(or the constant term \"1\"); did you mean 'post'?"),
    ('{ "pre^3" = 1.0 }',
     "tiny.toml: rule.terms: term 'pre^3': factor 'pre' has power 3; pre, post and w take powers 0-2, "
     "err and err_pre 0-1"),
    ('{ "err*err" = 1.0 }',
     "tiny.toml: rule.terms: term 'err*err': factor 'err' has power 2; pre, post and w take powers 0-2, "
     "err and err_pre 0-1"),
    ('{ "pre*post" = 1.0, "post*pre" = 2.0 }',
     "tiny.toml: rule.terms: terms 'pre*post' and 'post*pre' are the same term (pre*post); keep one"),
    ('{ "pre*post" = "big" }', "tiny.toml: rule.terms: entry 'pre*post' must be a finite number (got 'big')"),
    ('"pre*post"', "tiny.toml: rule.terms: must be a table of numbers"),
])
def test_bad_terms_fail_in_one_line_naming_the_factor(terms: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(TINY.format(terms=terms), source="tiny.toml", rules=REGISTRY.signatures())
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_terms_survive_the_resolved_spec() -> None:
    text = TINY.format(terms='{ "pre*post" = 1.29, "post^2*w" = -1.17, "1" = 0.5 }')
    spec = parse_spec(text, source="tiny.toml", rules=REGISTRY.signatures())
    again = parse_spec(dump_spec(spec), source="again.toml", rules=REGISTRY.signatures())
    assert again.rule.params["terms"] == {"pre*post": 1.29, "post^2*w": -1.17, "1": 0.5}
    over = parse_spec(text, source="tiny.toml", rules=REGISTRY.signatures(),
                      overrides=['rule.terms={ "pre*post" = 2.0 }'])
    assert over.rule.params["terms"] == {"pre*post": 2.0}


def test_term_names_and_formula() -> None:
    assert parse_term("w*post^2").name == "post^2*w"
    assert parse_term("1") == Term()
    assert len(all_terms()) == 27 and len(all_terms(error=True)) == 108
    terms = parse_terms({"pre*post": 1.29, "post^2*w": -1.17})
    assert format_rule(terms) == "ΔW = lr·(1.29·pre·post − 1.17·post²·w)"
    assert format_rule({}) == "ΔW = 0"


@settings(max_examples=12, deadline=None)
@given(dag_circuits(max_depth=3, max_size=5))
def test_family_claims_hold_on_random_circuits(circuit: dict) -> None:
    text = dag_spec_text(circuit, rule="plasticity", extra_rule="auto_feedback = true")
    spec = parse_spec(text, source="dag.toml", rules=REGISTRY.signatures())
    claims = default_claims()
    for name in ("plasticity_fa_point", "plasticity_hebb_oja_points"):
        outcome = claims.get(name).run(spec, REGISTRY, np.random.default_rng(circuit["seed"]))
        assert outcome.passed, (name, outcome)


@settings(max_examples=2, deadline=None)
@given(st.integers(0, 10_000))
def test_search_claims_hold_on_the_oja_task(seed: int) -> None:
    spec = load_spec(OJA_SPEC, rules=REGISTRY.signatures())
    claims = default_claims()
    for name in ("plasticity_oja_beats_zero", "plasticity_search_reaches_oja"):
        outcome = claims.get(name).run(spec, REGISTRY, np.random.default_rng(seed))
        assert outcome.passed, (name, outcome)
    skipped = claims.get("plasticity_search_reaches_oja").run(
        parse_spec(TINY.format(terms="{}"), source="tiny.toml", rules=REGISTRY.signatures()), REGISTRY,
        np.random.default_rng(0))
    assert skipped.status == "skip" and "covariances task" in skipped.reason
