"""Segregated dendrites (Guerguiev, Lillicrap & Richards 2017), rate version.

A chain of pyramidal populations ``P_0 (input) → P_1 → … → P_N (output)``; every hidden layer
has an apical dendrite that hears the output through a fixed random feedback projection
``Y_k`` (output → hidden, compartment apical): the feedback is broadcast from the output,
not passed down layer by layer. Two phases see the same input:

* forward phase: basal ``v_B = r_below W (+ b)``; hidden somata ignore their apical input
  (g_A = 0, the electrotonic segregation), ``C = g_B/(g_lk + g_B)·v_B``, ``r = φ(C)``; the
  output alike (``g_B/(g_lk + g_B)``). Apical potential ``A_f = r_N Y_k``, plateau
  ``α_f = σ(A_f)``;
* target phase: the output's rates are its targets (``target_low + (target_high −
  target_low)·target``, rates); ``α_t = σ(target_rates Y_k)``. The basal input and so the
  hidden somata are those of the forward phase.

Updates (estimates of ∂loss/∂W, so a step moves ``W −= lr·estimate``, averaged over the batch):
hidden ``ΔW ∝ k_B (α_t − α_f) ⊙ φ′(C_f) r_belowᵀ``, output ``ΔW ∝ k_D (φ_t − φ(C_f)) ⊙ φ′(C_f)
r_belowᵀ`` with ``k_B = g_B/(g_lk + g_B + g_A)`` (the paper's constant, from the population's
g_apical) and ``k_D = g_B/(g_lk + g_B)``; biases alike. The paper's plateau is the mean
apical potential over each phase passed through σ; in this rate version a phase has one
value, so the mean is that value. :meth:`Model.gradients` is backprop of the same
feed-forward network (gains ``g_B/(g_lk + g_B)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np

from circuits import ops
from circuits.cells import CONDUCTANCES
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rates import Elementwise
from circuits.rules.base import Rule
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import CircuitSpec, InitSpec, ProjectionSpec

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["SegregatedDendrites"]

_PARAMS = (
    Param("auto_feedback", True, "create missing output→hidden apical feedback projections (xavier, fixed)"),
    Param("target_low", 0.0, "target rate of the output for a target of 0"),
    Param("target_high", 1.0, "target rate of the output for a target of 1"),
)


def _cond(pop: object, key: str) -> float:
    value = getattr(pop, key)
    return CONDUCTANCES[key][0] if value is None else float(value)


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-u))


_DERIVS = {"sigmoid": lambda u: _sigmoid(u) * (1 - _sigmoid(u)), "linear": np.ones_like,
           "tanh": lambda u: 1 - np.tanh(u) ** 2, "relu": lambda u: (u > 0).astype(np.float64),
           "hard_sigmoid": lambda u: ((u > 0) & (u < 1)).astype(np.float64), "softplus": _sigmoid}
_RATES = {"sigmoid": _sigmoid, "linear": lambda u: u, "tanh": np.tanh, "relu": lambda u: np.maximum(u, 0.0),
          "hard_sigmoid": lambda u: np.clip(u, 0.0, 1.0), "softplus": lambda u: np.logaddexp(u, 0.0)}


def _rate_pair(graph: CircuitGraph, pop: str) -> tuple[Elementwise, ...]:
    """NumPy ``(φ, φ')`` of ``pop`` with its scale, shift and gain."""
    spec = graph.population(pop)
    return spec.rate_params.wrap(_RATES[spec.activation], _DERIVS[spec.activation])


class SegregatedDendrites(Rule):
    """Guerguiev et al.'s segregated-dendrite rule: plateau differences between two phases."""

    signature = RuleSignature(
        name="segregated_dendrites",
        doc="Segregated dendrites (Guerguiev, Lillicrap & Richards 2017, rate version): hidden layers learn "
            "from the difference of apical plateaus between a forward and a target phase, the apical "
            "input broadcast from the output through fixed random weights.",
        params=(*COMMON_PARAMS, *_PARAMS),
        needs="a layered chain; a feedback projection output→h onto the apical dendrite of every hidden "
              "layer h (rule.auto_feedback creates them)",
    )

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        defaults = {key: default for key, (default, _) in CONDUCTANCES.items()}
        pops = tuple(attrs.evolve(p, cell="pyramidal", **defaults) if p.role != "input" and p.cell is None else p
                     for p in spec.populations)
        projections = [attrs.evolve(p, compartment="basal") if p.type == "forward" and p.compartment is None
                       and spec.population(p.target).role != "input" else p for p in spec.projections]
        spec = attrs.evolve(spec, populations=pops, projections=tuple(projections))
        if not spec.rule.params.get("auto_feedback"):
            return spec
        graph = CircuitGraph(spec)
        out, names = graph.output, {p.name for p in projections}
        for hidden in graph.hidden:
            if any(p.type == "feedback" and p.source == out and p.target == hidden for p in projections):
                continue
            name = f"{out}->{hidden}" if f"{out}->{hidden}" not in names else f"{out}->{hidden}_apical"
            projections.append(ProjectionSpec(source=out, target=hidden, type="feedback", name=name, bias=False,
                                              plastic=False, compartment="apical", init=InitSpec(scheme="xavier")))
        return attrs.evolve(spec, projections=tuple(projections))

    def check(self, graph: CircuitGraph) -> None:
        src = graph.spec.source
        if not graph.is_layered() or not graph.hidden:
            raise CompileError(f"{src}: rule '{self.name}' needs a layered chain input → h1 → … → output with "
                               "at least one hidden population")
        if graph.spec.task.loss != "mse":
            raise CompileError(f"{src}: rule '{self.name}' compares output rates with target rates; set "
                               "task.loss = \"mse\"")
        for name in graph.hidden + (graph.output,):
            pop = graph.population(name)
            if pop.cell != "pyramidal" or pop.activation == "softmax" or pop.dropout > 0:
                raise CompileError(f"{src}: populations.{name}: rule '{self.name}' runs pyramidal cells without "
                                   "dropout and with a rate function of their own soma (not softmax)")
        for name in graph.hidden:
            if self.feedback(graph, name) is None:
                raise CompileError(f"{src}: rule '{self.name}' needs a feedback projection from '{graph.output}' "
                                   f"to '{name}' (its apical input); add [[projections]] from = \"{graph.output}\", "
                                   f"to = \"{name}\", type = \"feedback\", or set rule.auto_feedback = true")

    @staticmethod
    def feedback(graph: CircuitGraph, hidden: str) -> ProjectionSpec | None:
        """The output→``hidden`` feedback projection onto its apical dendrite."""
        for proj in graph.projections("feedback"):
            if proj.source == graph.output and proj.target == hidden:
                return proj
        return None

    @staticmethod
    def soma_gain(graph: CircuitGraph, pop: str) -> float:
        """``g_B/(g_lk + g_B)``: the soma of the forward phase, apical input ignored."""
        spec = graph.population(pop)
        return _cond(spec, "g_basal") / (_cond(spec, "g_lk") + _cond(spec, "g_basal"))

    # -- lowering ----------------------------------------------------------------------------------

    def emit(self, b: Builder) -> None:
        graph = b.graph
        chain = graph.forward_order()
        b.phase("forward", doc="forward phase: somata from basal input alone (g_A = 0), apical plateaus")
        for below, pop in zip(chain, chain[1:]):
            basal = b.activity(f"{pop}.basal", pop)
            rate_below = b.rate(below) if below == chain[0] else f"{below}.rate"
            b.emit("forward", ops.MatMul(rate_below, b.weight(graph.incoming(pop)[0]), basal))
            if graph.has_bias(pop):
                b.emit("forward", ops.AddBias(b.bias(pop), basal))
            self.emit_soma(b, pop, basal)
        b.lower_loss(target_range=(b.params["target_low"], b.params["target_high"]))  # the rates it trains toward
        if b.mode == "infer":
            return
        out = graph.output
        b.phase("target", doc="target phase: output rates at their targets, apical plateaus again")
        low, high = b.params["target_low"], b.params["target_high"]
        terms, coeffs = [f"{out}.target"], [high - low]
        if low != 0.0:
            b.emit("target", ops.Fill(b.activity(f"{out}.floor", out), low))
            terms, coeffs = [*terms, f"{out}.floor"], [*coeffs, 1.0]
        b.emit("target", ops.LinearCombination(tuple(terms), tuple(coeffs), b.activity(f"{out}.rate_target", out)))
        for pop in graph.hidden:
            for phase, source in (("forward", self._out_rate(b)), ("target", f"{out}.rate_target")):
                apical = b.activity(f"{pop}.apical_{phase}", pop)
                b.emit(phase, ops.MatMul(source, b.weight(self.feedback(graph, pop)), apical))
                b.emit(phase, ops.Activate("sigmoid", apical, b.activity(f"{pop}.plateau_{phase}", pop)))
        b.phase("plasticity", doc="plateau differences (hidden) and rate errors (output) times φ'")
        for pop in graph.hidden:
            spec = graph.population(pop)
            k_b = _cond(spec, "g_basal") / (_cond(spec, "g_lk") + _cond(spec, "g_basal") + _cond(spec, "g_apical"))
            self._error(b, pop, f"{pop}.plateau_forward", f"{pop}.plateau_target", k_b)
        self._error(b, out, self._out_rate(b), f"{out}.rate_target", self.soma_gain(graph, out))
        for below, pop in zip(chain, chain[1:]):
            rate_below = b.rate(below) if below == chain[0] else f"{below}.rate"
            if graph.incoming(pop)[0].plastic:
                b.learn(graph.incoming(pop)[0].name, rate_below, f"{pop}.error")
            b.learn_bias(pop, f"{pop}.error")
        b.lower_updates()

    def emit_soma(self, b: Builder, pop: str, basal: str) -> None:
        """``C = g_B/(g_lk + g_B)·v_B`` and ``r = φ(C)``: the apical dendrite does not reach the soma."""
        pre = b.activity(b.pre(pop), pop)
        b.emit("forward", ops.LinearCombination((basal,), (self.soma_gain(b.graph, pop),), pre))
        rate = b.rate(pop) if pop == b.graph.output else f"{pop}.rate"
        if rate != pre:
            fn, params = b.rate_function(pop)
            b.emit("forward", ops.Copy(pre, b.activity(rate, pop)) if fn == "linear"
                   else ops.Activate(fn, pre, b.activity(rate, pop), params))

    @staticmethod
    def _out_rate(b: Builder) -> str:
        return b.rate(b.graph.output)

    def _error(self, b: Builder, pop: str, forward: str, target: str, k: float) -> None:
        """``error = k·(forward − target) ⊙ φ'(C_f) / batch`` (the negative of the paper's update)."""
        diff = b.activity(f"{pop}.difference", pop)
        b.emit("plasticity", ops.LinearCombination((forward, target), (k, -k), diff, powers=(-1, -1)))
        fn, params = b.rate_function(pop)
        rate = b.rate(pop) if pop == b.graph.output else f"{pop}.rate"
        if fn == "linear":
            b.emit("plasticity", ops.Copy(diff, b.activity(f"{pop}.error", pop)))
        else:
            b.emit("plasticity", ops.ActivationDeriv(fn, b.pre(pop), rate, diff, b.activity(f"{pop}.error", pop),
                                                     params=params))

    # -- reference ---------------------------------------------------------------------------------

    def exact_gradients(self, model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Backprop of ``mean_b ½‖φ(C_N) − target rates‖²`` through the same feed-forward network (float64).

        The target rates are the ones the rule trains toward, ``target_low + (target_high −
        target_low)·target``, so the output layer's update is parallel to this gradient.
        """
        graph = model.graph
        params = {k: np.asarray(model.backend.to_numpy(v), dtype=np.float64) for k, v in model.params.items()}
        y = np.asarray(y)
        target = np.eye(graph.population(graph.output).size)[y] if y.ndim == 1 else y.astype(np.float64)
        low, high = model.spec.rule.params["target_low"], model.spec.rule.params["target_high"]
        target = low + (high - low) * target
        chain = graph.forward_order()
        rates, pres = [np.asarray(x, dtype=np.float64)], []
        for pop in chain[1:]:
            proj = graph.incoming(pop)[0]
            basal = rates[-1] @ params[proj.name] + params.get(f"{pop}.bias", 0.0)
            pres.append(self.soma_gain(graph, pop) * basal)
            rates.append(_rate_pair(graph, pop)[0](pres[-1]))
        grad, out = (rates[-1] - target) / len(x), {}
        for index in reversed(range(len(chain) - 1)):
            pop = chain[index + 1]
            proj = graph.incoming(pop)[0]
            delta = grad * _rate_pair(graph, pop)[1](pres[index]) * self.soma_gain(graph, pop)
            out[proj.name] = rates[index].T @ delta
            if f"{pop}.bias" in params:
                out[f"{pop}.bias"] = delta.sum(axis=0)
            grad = delta @ params[proj.name].T
        return out
