"""The program IR and the compiler: op ordering, validation, the printed schedule."""

from __future__ import annotations

import pytest

from circuits import ops
from circuits.compile import compile_circuit
from circuits.errors import CompileError
from circuits.graph import build_graph
from circuits.ir import BATCH, Buffer, Phase, Program, order_ops
from circuits.spec import parse_spec

CHAIN = """
[circuit]
name = "chain"
[populations]
x = { size = 4, role = "input" }
h = { size = 3, activation = "tanh" }
y = { size = 2, role = "output" }
[[projections]]
chain = ["x", "h", "y"]
[rule]
name = "{rule}"
{extra}
"""


def compiled(rules, registry, rule="backprop", extra="", mode="train"):
    spec = parse_spec(CHAIN.replace("{rule}", rule).replace("{extra}", extra), source="t.toml", rules=rules)
    spec = registry.get(rule).augment(spec)
    return compile_circuit(build_graph(spec), registry.get(rule), mode=mode)


def test_order_ops_follows_declared_accesses():
    # Setter before incrementers before updates and reads, whatever the emission order;
    # between an in-place update and a read, the emission order decides.
    emitted = [
        ops.AddBias("h.bias", "h.pre"),
        ops.Activate("tanh", "h.pre", "h.rate"),
        ops.MatMul("x.rate", "w2", "h.pre", accumulate=True),
        ops.MatMul("x.rate", "w1", "h.pre"),
    ]
    ordered = order_ops(emitted)
    assert [type(o).__name__ for o in ordered] == ["MatMul", "MatMul", "AddBias", "Activate"]
    assert ordered[0].accumulate is False


def test_order_is_deterministic_and_keeps_valid_emission_order():
    emitted = [ops.MatMul("a", "w", "b"), ops.MatMul("c", "w", "d"), ops.Copy("b", "e")]
    assert order_ops(emitted) == tuple(emitted)
    assert order_ops(list(reversed(emitted)))[0].out in ("b", "d")


def test_update_and_read_keep_their_emission_order():
    read = ops.MatMul("d", "w", "g", transpose_b=True)
    update = ops.OuterUpdate("x", "d", "w", alpha=-0.1, beta=1.0)
    assert order_ops([read, update]) == (read, update)
    assert order_ops([update, read]) == (update, read)


def _program(*phase_ops, buffers):
    return Program(name="p", rule="r", mode="train", dtype="float64", buffers=buffers,
                   phases=tuple(Phase(f"p{i}", tuple(o)) for i, o in enumerate(phase_ops)))


BUFS = {
    "x": Buffer("x", (BATCH, 4), "input"),
    "w": Buffer("w", (4, 3), "param"),
    "h": Buffer("h", (BATCH, 3), "temp"),
    "g": Buffer("g", (BATCH, 3), "temp"),
}


def test_validate_rejects_read_before_write():
    with pytest.raises(CompileError, match="reads 'h' in phase 'p0' before anything writes it"):
        _program([ops.Copy("h", "g")], buffers=BUFS).validate()


def test_validate_rejects_two_writers():
    with pytest.raises(CompileError, match="sets 'h', which 'h = x @ w' already sets"):
        _program([ops.MatMul("x", "w", "h"), ops.MatMul("x", "w", "h")], buffers=BUFS).validate()


def test_validate_rejects_bad_shapes_and_unknown_buffers():
    with pytest.raises(CompileError, match="shapes do not chain"):
        _program([ops.MatMul("h", "w", "g")], buffers=BUFS).validate()
    with pytest.raises(CompileError, match="does not declare"):
        _program([ops.Copy("x", "nowhere")], buffers=BUFS).validate()


def test_validate_accepts_write_in_earlier_phase():
    _program([ops.MatMul("x", "w", "h")], [ops.Copy("h", "g")], buffers=BUFS).validate()


def test_backprop_schedule(rules, registry):
    program = compiled(rules, registry)
    assert [p.name for p in program.phases] == ["forward", "loss", "backward", "update"]
    text = program.describe(batch=8)
    assert "h.grad = y.grad @ h->y.weight.T" in text
    assert "x->h.weight = x->h.weight + -0.05·x.rate.T @ h.delta" in text
    assert "h.pre  " in text and "8×3" in text
    assert "parameters: 23" in text


def test_fa_differs_from_backprop_only_in_the_feedback_matrix(rules, registry):
    bp = compiled(rules, registry).describe().splitlines()
    fa = compiled(rules, registry, "feedback_alignment", "auto_feedback = true").describe().splitlines()
    changed = [(a, b) for a, b in zip(bp, fa) if a != b and "·" not in a]
    assert ("    1. h.grad = y.grad @ h->y.weight.T", "    1. h.grad = y.grad @ y->h.weight") in changed


def test_probe_mode_writes_gradient_buffers(rules, registry):
    program = compiled(rules, registry, mode="probe")
    assert set(program.grads) == {"x->h", "h->y", "h.bias", "y.bias"}
    update = program.phase("update")
    assert all(isinstance(o, (ops.OuterUpdate, ops.ColSumUpdate)) for o in update.ops)
    assert {o.out for o in update.ops} == set(program.grads.values())


def test_infer_mode_has_no_backward(rules, registry):
    program = compiled(rules, registry, mode="infer")
    assert [p.name for p in program.phases] == ["forward", "loss"]


def test_optimizers_lower_to_their_ops(rules, registry):
    momentum = compiled(rules, registry, extra="momentum = 0.9")
    assert any(isinstance(o, ops.SgdStep) for o in momentum.phase("update").ops)
    assert "x->h.weight.velocity" in momentum.buffers
    adam = compiled(rules, registry, extra='optimizer = "adam"')
    assert sum(isinstance(o, ops.AdamStep) for o in adam.phase("update").ops) == 4


def test_missing_feedback_error_shows_the_toml_to_add(rules, registry):
    with pytest.raises(CompileError) as err:
        compiled(rules, registry, "feedback_alignment")
    assert str(err.value) == (
        "t.toml: rule 'feedback_alignment' needs a feedback projection from 'y' to 'h'; add "
        "[[projections]] from = \"y\", to = \"h\", type = \"feedback\" (or set rule.auto_feedback = true)")


def test_weight_mirror_has_a_mirror_phase(rules, registry):
    program = compiled(rules, registry, "weight_mirror", "auto_feedback = true")
    assert program.phases[-1].name == "mirror"
    assert "y->h.weight" in {o.out for o in program.phase("mirror").ops if isinstance(o, ops.OuterUpdate)}
