"""The claims catalogue as property tests, and mutant rules that every claim must catch.

Each claim is run on hypothesis-drawn circuits that meet its precondition. Each claim is
also run against a deliberately broken version of its rule (registered under the real
rule's name in a separate registry): a claim that passed a broken rule would be worthless.
"""

from __future__ import annotations

import re

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dag_circuits, dag_spec_text

from circuits.claims import ClaimRegistry, alignment, default_claims, gradient, verify
from circuits.compile import Builder
from circuits.model import load
from circuits.rules import RuleRegistry
from circuits.rules.alignment import DirectFeedbackAlignment, FeedbackAlignment, KolenPollack, WeightMirror
from circuits.rules.backprop import Backprop
from circuits.rules.base import emit_feedforward, find_feedback
from circuits.rules.sign_symmetry import SignSymmetry
from circuits.spec import parse_spec

CLAIMS = default_claims()


def run_claim(name, spec, registry, seed=0):
    rng = np.random.default_rng(seed)
    return CLAIMS.get(name).run(spec, registry, rng)


def dag_spec(registry, circuit, rule="backprop", extra=""):
    text = dag_spec_text(circuit, rule=rule, dtype="float64", extra_rule=extra)
    spec = parse_spec(text, source="drawn.toml", rules=registry.signatures())
    return registry.get(rule).augment(spec)


LAYERED = """
[circuit]
name = "layered"
[populations]
x = {{ size = 64, role = "input" }}
h = {{ size = {hidden}, activation = "{act}" }}
y = {{ size = 10, role = "output" }}
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
lr = {lr}
{extra}
[task]
dataset = "digits"
batch_size = 32
"""


def layered(registry, rule, hidden=32, act="tanh", lr=0.05, extra=""):
    if rule == "sign_symmetry":
        extra = "feedback_gain = 0.3\n" + extra
    elif rule != "backprop":
        extra = "auto_feedback = true\n" + extra
    text = LAYERED.format(rule=rule, hidden=hidden, act=act, lr=lr, extra=extra)
    spec = parse_spec(text, source="layered.toml", rules=registry.signatures())
    return registry.get(rule).augment(spec)


# -- the claims hold on drawn circuits -----------------------------------------------------------


@given(circuit=dag_circuits())
def test_backprop_equals_finite_differences(registry, circuit):
    outcome = run_claim("reference_gradient_is_exact", dag_spec(registry, circuit), registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits())
def test_fa_with_tied_feedback_is_backprop(registry, circuit):
    spec = dag_spec(registry, circuit, "feedback_alignment", "auto_feedback = true")
    outcome = run_claim("tied_feedback_is_backprop", spec, registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits(), rule=st.sampled_from(
    ["feedback_alignment", "direct_feedback_alignment", "kolen_pollack", "weight_mirror"]))
def test_output_layer_update_is_backprop(registry, circuit, rule):
    spec = dag_spec(registry, circuit, rule, "auto_feedback = true")
    outcome = run_claim("output_layer_is_backprop", spec, registry)
    assert outcome.passed, outcome


@given(circuit=dag_circuits(), gain=st.sampled_from([0.1, 0.3, 1.0]))
def test_sign_symmetry_claims_hold_on_drawn_circuits(registry, circuit, gain):
    """Its output layer learns as backprop, and so does everything once the weights that carry
    errors back are ±g (then g·sign(W) = W)."""
    spec = dag_spec(registry, circuit, "sign_symmetry", f"feedback_gain = {gain}")
    for name in ("output_layer_is_backprop", "uniform_sign_is_backprop"):
        outcome = run_claim(name, spec, registry)
        assert outcome.passed, outcome


def test_sign_symmetry_is_not_backprop_when_magnitudes_spread(registry):
    """The reduction is the weights' magnitudes, not a property of any weights: on the same
    circuit with its drawn weights the hidden update is not backprop's."""
    from circuits.claims.gradient import _gap_to_backprop
    from circuits.claims.base import variant
    from circuits.model import Model

    model = Model(variant(layered(registry, "sign_symmetry")), registry=registry)
    worst, _ = _gap_to_backprop(model, np.random.default_rng(0))
    assert worst > 0.1


@settings(max_examples=10)
@given(hidden=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_fa_conserved_quantity_drifts_at_second_order(registry, hidden, seed):
    spec = layered(registry, "feedback_alignment", hidden=hidden)
    outcome = run_claim("fa_conserved_quantity", spec, registry, seed)
    assert outcome.passed, outcome


@given(circuit=dag_circuits(), decay=st.sampled_from([0.0, 1e-3, 0.05]), lr=st.sampled_from([0.01, 0.1]))
def test_kp_contracts_w_minus_b_transpose_exactly(registry, circuit, decay, lr):
    spec = dag_spec(registry, circuit, "kolen_pollack", f"auto_feedback = true\nweight_decay = {decay}\nlr = {lr}")
    outcome = run_claim("kp_exact_contraction", spec, registry)
    assert outcome.passed, outcome


@settings(max_examples=8)
@given(hidden=st.integers(4, 48), batch=st.sampled_from([16, 64]), mirror_lr=st.sampled_from([0.02, 0.1]))
def test_weight_mirror_moment_identity(registry, hidden, batch, mirror_lr):
    spec = layered(registry, "weight_mirror", hidden=hidden,
                   extra=f"mirror_batch = {batch}\nmirror_lr = {mirror_lr}")
    outcome = run_claim("wm_moment_identity", spec, registry)
    assert outcome.passed, outcome


@settings(max_examples=3)
@given(hidden=st.sampled_from([24, 64]), rule=st.sampled_from(
    ["feedback_alignment", "direct_feedback_alignment", "kolen_pollack", "weight_mirror"]))
def test_alignment_falls_below_90_degrees(registry, hidden, rule):
    outcome = run_claim("alignment_improves", layered(registry, rule, hidden=hidden), registry)
    assert outcome.passed, outcome


@settings(max_examples=2)
@given(hidden=st.sampled_from([32, 64]))
def test_dfa_learns_from_zero_weights(registry, hidden):
    outcome = run_claim("dfa_learns_from_zero_weights", layered(registry, "direct_feedback_alignment",
                                                                hidden=hidden), registry)
    assert outcome.passed, outcome


def test_preconditions_skip_with_a_reason(registry, repo_root):
    spec = parse_spec((repo_root / "specs" / "dfa_digits.toml").read_text(), source="dfa.toml",
                      rules=registry.signatures())
    spec = attrs.evolve(spec, rule=attrs.evolve(spec.rule, name="feedback_alignment"))
    spec = registry.get("feedback_alignment").augment(attrs.evolve(
        spec, projections=tuple(p for p in spec.projections if p.type == "forward"),
        rule=attrs.evolve(spec.rule, params={**spec.rule.params, "auto_feedback": True})))
    outcome = run_claim("fa_conserved_quantity", spec, registry)
    assert outcome.status == "skip"
    assert outcome.reason == "needs a layered circuit input → one hidden population → output"


def test_verify_runs_the_claims_of_the_rule(registry, repo_root):
    spec = parse_spec((repo_root / "specs" / "kp_digits.toml").read_text(), source="kp.toml",
                      rules=registry.signatures())
    outcomes = verify(registry.get("kolen_pollack").augment(spec), registry)
    assert [o.claim for o in outcomes] == [c.name for c in CLAIMS.for_rule("kolen_pollack")]
    assert all(o.passed for o in outcomes), outcomes


# -- mutant rules: each claim must fail on a rule that is wrong in the way the claim guards ----------


def _flip_hidden(b: Builder) -> None:
    """Negate the learned estimate of every parameter into a hidden population."""
    for name, terms in b.learned.items():
        if b.graph.population(b.graph.projection(name).target).role == "hidden":
            b.learned[name] = [(x, d, -s) for x, d, s in terms]


class ForgetsDerivative(Backprop):
    """Backprop that learns from the error at the rate instead of the pre-activation."""

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, {p: [(q.target, b.weight(q), True) for q in b.graph.outgoing(p)]
                             for p in b.graph.hidden})
        for name, terms in b.learned.items():
            target = b.graph.projection(name).target
            b.learned[name] = [(x, b.grad(target) if d == b.delta(target) else d, s) for x, d, s in terms]
        b.lower_updates()


class FlippedFA(FeedbackAlignment):
    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        _flip_hidden(b)
        b.lower_updates()


class FlippedOutputDFA(DirectFeedbackAlignment):
    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        out = b.graph.output
        for name, terms in b.learned.items():
            if b.graph.projection(name).target == out:
                b.learned[name] = [(x, d, -s) for x, d, s in terms]
        b.lower_updates()


class FrozenHiddenDFA(DirectFeedbackAlignment):
    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        for name in [n for n in b.learned if b.graph.projection(n).target != b.graph.output]:
            del b.learned[name]
        b.lower_updates()


class HalfRateKP(KolenPollack):
    """Kolen–Pollack whose feedback learns at half the forward learning rate."""

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        for proj in b.graph.projections("forward"):
            if b.graph.population(proj.source).role == "hidden":
                feedback = find_feedback(b.graph, proj.target, proj.source)
                b.lr_of[feedback.name] = 0.5 * b.lr_of[proj.name]
                b.learn(feedback.name, b.delta(proj.target), b.rate(proj.source))
        b.lower_updates()


class LoudMirror(WeightMirror):
    """A mirror phase whose update is twice too large: B drifts to 2·Wᵀ."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        if "mirror" in b.phase_ops:
            b.phase_ops["mirror"] = [attrs.evolve(op, alpha=2 * op.alpha) if hasattr(op, "alpha") else op
                                     for op in b.phase_ops["mirror"]]


class UngainedSignSymmetry(SignSymmetry):
    """Sign symmetry whose feedback is sign(W): the gain g is left out."""

    def emit(self, b: Builder) -> None:
        super().emit(b)
        if "feedback" in b.phase_ops:
            b.phase_ops["feedback"] = [attrs.evolve(op, scale=1.0) for op in b.phase_ops["feedback"]]


class FirstChildFA(FeedbackAlignment):
    """FA that sends each hidden population only the error of its first child.

    Indistinguishable from FA on a chain, where every hidden population has one child.
    """

    def carriers(self, b: Builder) -> dict[str, list[tuple[str, str, bool]]]:
        return {pop: carried[:1] for pop, carried in super().carriers(b).items()}


class FirstIncomingDFA(DirectFeedbackAlignment):
    """DFA that updates only the first forward projection into each population.

    Indistinguishable from DFA on a chain, where every population has one incoming projection.
    """

    def emit(self, b: Builder) -> None:
        emit_feedforward(b, self.carriers(b))
        for pop in b.graph.populations:
            for later in b.graph.incoming(pop)[1:]:
                b.learned.pop(later.name, None)
        b.lower_updates()


def mutant_registry(*rules) -> RuleRegistry:
    registry = RuleRegistry()
    names = {rule.signature.name for rule in rules}
    for rule in rules:
        registry.register(rule)
    for rule in (Backprop(), FeedbackAlignment(), DirectFeedbackAlignment(), KolenPollack(), WeightMirror(),
                 SignSymmetry()):
        if rule.signature.name not in names:
            registry.register(rule)
    return registry


MUTANTS = [
    ("reference_gradient_is_exact", ForgetsDerivative(), "backprop"),
    ("tied_feedback_is_backprop", FlippedFA(), "feedback_alignment"),
    ("output_layer_is_backprop", FlippedOutputDFA(), "direct_feedback_alignment"),
    ("fa_conserved_quantity", FlippedFA(), "feedback_alignment"),
    ("alignment_improves", FlippedFA(), "feedback_alignment"),
    ("dfa_learns_from_zero_weights", FrozenHiddenDFA(), "direct_feedback_alignment"),
    ("kp_exact_contraction", HalfRateKP(), "kolen_pollack"),
    ("wm_moment_identity", LoudMirror(), "weight_mirror"),
    ("uniform_sign_is_backprop", UngainedSignSymmetry(), "sign_symmetry"),
]


def test_every_claim_has_a_mutant():
    """Every claim of the engine's rules (gradient.py, alignment.py) is caught failing by a mutant."""
    engine = {getattr(module, name).name for module in (gradient, alignment) for name in module.__all__}
    assert {name for name, _, _ in MUTANTS} == engine


@pytest.mark.parametrize("claim,mutant,rule", MUTANTS, ids=[f"{m[0]}-{m[2]}" for m in MUTANTS])
def test_claim_catches_its_mutant(claim, mutant, rule):
    registry = mutant_registry(mutant)
    spec = layered(registry, rule, hidden=24, act="tanh")
    outcome = run_claim(claim, spec, registry)
    assert outcome.status == "fail", outcome


# -- shipped specs with a skip catch what a chain cannot --------------------------------------------

SKIP_MUTANTS = [
    ("fa_skip_digits", FirstChildFA(), ["tied_feedback_is_backprop"]),
    ("dfa_skip_digits", FirstIncomingDFA(), ["output_layer_is_backprop"]),
]


def _shipped(repo_root, stem, registry):
    return load(repo_root / "specs" / f"{stem}.toml", registry=registry).spec


def _only(names):
    claims = ClaimRegistry()
    for name in names:
        claims.register(CLAIMS.get(name))
    return claims


@pytest.mark.parametrize("stem,mutant,caught_by", SKIP_MUTANTS,
                         ids=[f"{m[0]}-{m[1].signature.name}" for m in SKIP_MUTANTS])
def test_verify_catches_a_mutant_on_the_skip_spec(registry, repo_root, stem, mutant, caught_by):
    """``verify`` fails the mutant on the shipped skip spec and passes the real rule there."""
    broken = mutant_registry(mutant)
    outcomes = verify(_shipped(repo_root, stem, broken), broken)
    assert [o.claim for o in outcomes if o.status == "fail"] == caught_by, outcomes
    assert all(o.passed for o in verify(_shipped(repo_root, stem, registry), registry, _only(caught_by)))


@pytest.mark.parametrize("stem,mutant,caught_by", [
    ("fa_digits", FirstChildFA(), ["tied_feedback_is_backprop", "output_layer_is_backprop"]),
    ("dfa_digits", FirstIncomingDFA(), ["output_layer_is_backprop"]),
], ids=["fa_digits-feedback_alignment", "dfa_digits-direct_feedback_alignment"])
def test_a_chain_spec_cannot_catch_the_mutant(repo_root, stem, mutant, caught_by):
    """Why the skip specs exist: on a chain the exact claims pass the same mutants."""
    broken = mutant_registry(mutant)
    assert all(o.passed for o in verify(_shipped(repo_root, stem, broken), broken, _only(caught_by)))


def test_claims_cite_papers_not_a_missing_file():
    """Sources name papers (authors, year, title), never the design notes' rules.md, which is not
    in the repository."""
    for claim in CLAIMS.all():
        assert "rules.md" not in claim.source, claim.name
        assert re.search(r"\b(19|20)\d\d, \"", claim.source), (claim.name, claim.source)
