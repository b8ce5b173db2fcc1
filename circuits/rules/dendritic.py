"""Dendritic error learning in cortical microcircuits (Sacramento, Costa, Bengio & Senn 2018).

Pyramidal cells have a soma, a basal and an apical dendrite; interneurons a soma and one
dendrite (:mod:`circuits.cells`). Potentials (per layer ``k``; ``r = φ(u)``):

* basal ``v_B = r_{k−1} W_k (+ b_k)``; apical ``v_A = r_{k+1} B_k + r_I W_IP``;
  interneuron dendrite ``v_I = r_k W_PI``;
* a hidden soma settles at the fixed point of ``−g_lk u + g_B(v_B − u) + g_A(v_A − u)``,
  ``u = gain·v_B + λ_k·v_A`` with ``gain = g_B/(g_lk + g_B + g_A)``, ``λ_k = g_A/(g_lk + g_B + g_A)``;
* an interneuron at that of ``−g_lk u_I + g_D(v_I − u_I) + g_som(u_{k+1} − u_I)`` (nudged
  toward the layer above), ``u_I = (1 − λ_I)·v̂_I + λ_I·u_{k+1}``, ``v̂_I = g_D/(g_lk + g_D)·v_I``;
* the output at that of ``−g_lk u + g_B(v_B − u) + g_som(u_tgt − u)``,
  ``u_N = (1 − λ_N)·û_N + λ_N·u_tgt``, ``û_N = g_B/(g_lk + g_B)·v_B``. The current form
  ``g_som(u_tgt − u)`` equals the balanced conductance form ``g_E(E_E − u) + g_I(E_I − u)``
  with ``g_E + g_I = g_som`` and ``g_E E_E + g_I E_I = g_som·u_tgt`` exactly.

``u_tgt = target_low + (target_high − target_low)·target`` (a potential; class labels are
one-hot targets). Two solvers reach the potentials:

* ``sweep`` (default, the paper's MNIST simulation): a bottom-up pass with apical potentials
  zero, then from the output down each population's own fixed point given the potentials
  above it (the λ above). Every neuron is exactly at its fixed point given its inputs; the
  pass leaves out the top-down correction's effect on the basal input of the layers above,
  which vanishes as g_A → 0 (claim 6).
* ``euler``: from the sweep, ``euler_steps`` Euler steps of size ``dt`` of the full coupled
  dynamics (every compartment at once, optional state noise ``noise·√dt``), then every
  dendritic potential recomputed from the settled somata.

Plasticity (estimates of ∂loss/∂W, so a step moves ``W −= lr·estimate``):
forward ``ΔW_k ∝ (φ(u_k) − φ(v̂_B)) r_{k−1}ᵀ`` (``v̂_B = gain·v_B``, bias alike);
pyramidal→interneuron ``ΔW_PI ∝ (φ(u_I) − φ(v̂_I)) r_kᵀ``; interneuron→pyramidal
``ΔW_IP ∝ −v_A r_Iᵀ``; top-down, when plastic, ``ΔB ∝ (φ(u_k) − φ(r_{k+1} B)) r_{k+1}ᵀ``;
each averaged over the batch. To first order in the mixing weights a hidden layer's forward
update is ``λ_N·∏ λ_A(1 − λ_I)`` (over it and the hidden layers above) times its
feedback-alignment delta, so lower layers learn more slowly (about 0.025× the output's pace
for the first of two hidden layers at the default conductances); ``layer_lr = "compensate"``
divides each layer's estimate by that product (the paper, too, used larger learning rates
lower down); the pyramidal→interneuron weights, which track the forward weights of the layer
above, take that layer's factor (and, unless they set their own, its projection ``lr``), so the
interneurons keep predicting it. The prediction (``infer``) is the bottom-up pass: the output
``φ(û_N)`` of the equivalent feed-forward network, whose backprop gradient
:meth:`Model.gradients` returns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rules.base import Rule
from circuits.rules.microcircuit import (Layer, create_microcircuit, feedforward_gradients, gains, layers_of,
                                         self_predicting_weights)
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import CircuitSpec

if TYPE_CHECKING:
    from circuits.model import Model

__all__ = ["DendriticError", "DENDRITIC_PARAMS"]

DENDRITIC_PARAMS: tuple[Param, ...] = (
    Param("microcircuit", "self_predicting", "create the interneurons and top-down projections a plain "
          "feed-forward spec lacks, and start the interneuron weights in the self-predicting state or at "
          "their random draws", choices=("self_predicting", "random")),
    Param("solver", "sweep", "how the potentials are reached: the paper's top-down sweep of closed-form "
          "fixed points, or Euler steps of the full dynamics", choices=("sweep", "euler")),
    Param("euler_steps", 100, "Euler steps of the full dynamics (solver = euler)", minimum=1),
    Param("dt", 0.1, "Euler step size in units of the membrane time constant (solver = euler)",
          minimum=0.0, maximum=1.0, open_minimum=True),
    Param("noise", 0.0, "std of the somatic noise per unit time (solver = euler)", minimum=0.0),
    Param("target_low", 0.0, "output target potential for a target of 0 (class labels are one-hot)"),
    Param("target_high", 1.0, "output target potential for a target of 1"),
    Param("learn_topdown", False, "created top-down projections are plastic"),
    Param("topdown_scale", 0.0, "created top-down weights are drawn from U[-topdown_scale, topdown_scale]; 0 keeps "
          "xavier (the top-down weights set the size of every hidden layer's error signal)", minimum=0.0),
    Param("learn_inhibition", False, "created interneuron→pyramidal projections are plastic"),
    Param("layer_lr", "equal", "per-layer learning-rate scaling of the forward (basal) weights: 'equal' keeps "
          "lr everywhere; 'compensate' multiplies a hidden layer's by 1/∏(λ_A·(1 − λ_I)) over it and the hidden "
          "layers above, so that every layer's update is ≈ λ_N × its feedback-alignment delta (an interneuron "
          "population's dendritic weights, which track the forward weights of the layer above, take that layer's "
          "scale)",
          choices=("equal", "compensate")),
)


def _rate(b: Builder, pop: str) -> str:
    """Buffer of the bottom-up rate φ(û) (the output's is the program's output)."""
    if pop == b.graph.output or b.graph.population(pop).role == "input":
        return b.rate(pop)
    return f"{pop}.rate"


def _activate(b: Builder, phase: str, pop: str, source: str, out: str) -> None:
    fn, params = b.rate_function(pop)
    b.emit(phase, ops.Copy(source, out) if fn == "linear" else ops.Activate(fn, source, out, params))


class DendriticError(Rule):
    """Sacramento et al.'s dendritic error rule on a pyramidal/interneuron microcircuit."""

    signature = RuleSignature(
        name="dendritic_error",
        doc="Dendritic cortical microcircuits (Sacramento et al. 2018): errors are apical mismatches "
            "between top-down input and lateral interneurons; local plasticity of basal inputs.",
        params=(*COMMON_PARAMS, *DENDRITIC_PARAMS),
        needs="a layered chain of pyramidal populations; per hidden layer one interneuron population, a "
              "top-down feedback projection and lateral projections (rule.microcircuit creates them)",
    )

    inhibition_sign = 1.0
    """Sign of the interneuron→pyramidal estimate ``r_Iᵀ v_A`` (a claim's mutant flips it)."""

    # -- structure ---------------------------------------------------------------------------------

    def augment(self, spec: CircuitSpec) -> CircuitSpec:
        params = spec.rule.params
        return create_microcircuit(spec, topdown_plastic=params["learn_topdown"],
                                   inhibition_plastic=params["learn_inhibition"],
                                   topdown_scale=params["topdown_scale"])

    def check(self, graph: CircuitGraph) -> None:
        src = graph.spec.source
        if graph.spec.task.loss != "mse":
            raise CompileError(f"{src}: rule '{self.name}' nudges the output toward a target potential; "
                               "set task.loss = \"mse\"")
        for name, pop in graph.populations.items():
            if pop.role == "input":
                continue
            if pop.activation == "softmax":
                raise CompileError(f"{src}: populations.{name}.activation: a pyramidal soma has a rate "
                                   f"function of its own potential under rule '{self.name}'; use sigmoid")
            if pop.dropout > 0 or getattr(pop, "spikes", None) is not None:
                raise CompileError(f"{src}: populations.{name}: rule '{self.name}' supports neither dropout "
                                   "nor spikes; remove them")
        self.layers(graph)

    def layers(self, graph: CircuitGraph) -> list[Layer]:
        """The pyramidal chain (see :func:`circuits.rules.microcircuit.layers_of`)."""
        return layers_of(graph, self.name)

    def gains(self, graph: CircuitGraph, layer: Layer) -> dict[str, float]:
        """A layer's conductances and sweep weights (see :func:`circuits.rules.microcircuit.gains`)."""
        return gains(graph, layer)

    def layer_scale(self, graph: CircuitGraph, layers: list[Layer], layer: Layer) -> float:
        """``1/∏ λ_A·(1 − λ_I)`` over ``layer`` and the hidden layers above it (1 at the output).

        To first order in the mixing weights, a hidden layer's forward update is its
        feedback-alignment delta times ``λ_N·∏ λ_A·(1 − λ_I)`` over itself and the hidden
        layers above: each apical potential sees the layer above's nudge less the part its
        interneurons follow (``1 − λ_I``), and moves its soma by ``λ_A``. The scale undoes the
        product, so that every layer learns at the output's pace (``layer_lr = "compensate"``).
        """
        scale = 1.0
        for other in layers[layers.index(layer):-1]:
            g = self.gains(graph, other)
            if g["lam"] * (1.0 - g["lam_i"]) <= 0.0:
                raise CompileError(f"{graph.spec.source}: populations.{other.name}: layer_lr = \"compensate\" "
                                   "needs g_apical > 0 and interneurons not clamped to the layer above; use "
                                   "layer_lr = \"equal\"")
            scale /= g["lam"] * (1.0 - g["lam_i"])
        return scale

    def tracking_lr_ratio(self, b: Builder, layer: Layer, above: Layer) -> float:
        """``lr(forward into the layer above) / lr(dendrite)`` when the dendritic projection sets no lr.

        The pyramidal→interneuron weights track the forward weights of the layer above (they
        stay ``ratio ×`` those in the self-predicting state), so unless they set an ``lr`` of
        their own they learn at the rate of the weights they track: a projection ``lr`` on
        ``h1->h2`` applies to ``h1->h1_inter`` as well. 1 when neither sets one.
        """
        if b.graph.projection(layer.dendrite).lr is not None or not b.lr_of[layer.dendrite]:
            return 1.0
        return float(b.lr_of[above.forward]) / float(b.lr_of[layer.dendrite])

    def initialize(self, model: Model) -> None:
        """Set the self-predicting weights after drawing them (``microcircuit = "self_predicting"``)."""
        if model.spec.rule.params["microcircuit"] != "self_predicting":
            return
        params = {name: model.backend.to_numpy(value) for name, value in model.params.items()}
        model.set_params(self_predicting_weights(model.graph, self.layers(model.graph), params))

    def exact_gradients(self, model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Backprop of the equivalent feed-forward network (float64; see the module docstring)."""
        params = {name: model.backend.to_numpy(value) for name, value in model.params.items()}
        return feedforward_gradients(model.graph, self.layers(model.graph), params, x, self.targets(model, y))

    def targets(self, model: Model, y: np.ndarray) -> np.ndarray:
        """The task's targets as the loss sees them (class labels one-hot), float64."""
        y = np.asarray(y)
        if y.ndim == 1:
            return np.eye(model.graph.population(model.graph.output).size)[y]
        return y.astype(np.float64)

    # -- lowering ----------------------------------------------------------------------------------

    def emit(self, b: Builder) -> None:
        layers = self.layers(b.graph)
        self.emit_bottom_up(b, layers)
        b.lower_loss()
        if b.mode == "infer":
            return
        self.emit_sweep(b, layers)
        if b.params["solver"] == "euler":
            self.emit_euler(b, layers)
            self.emit_dendrites(b, layers)
        self.emit_plasticity(b, layers)
        b.lower_updates()

    def emit_bottom_up(self, b: Builder, layers: list[Layer]) -> None:
        """``v_B = r_below W (+ b)``, ``û = gain·v_B``, ``r = φ(û)``, layer by layer."""
        b.phase("forward", doc="bottom-up pass: basal potentials, somata at gain·v_B (apical silent)")
        for layer in layers:
            pop = layer.name
            basal = b.activity(f"{pop}.basal", pop)
            b.emit("forward", ops.MatMul(_rate(b, layer.below), b.weight(layer.forward), basal))
            if b.graph.has_bias(pop):
                b.emit("forward", ops.AddBias(b.bias(pop), basal))
            b.emit("forward", ops.LinearCombination((basal,), (self.gains(b.graph, layer)["gain"],),
                                                    b.activity(b.pre(pop), pop)))
            if _rate(b, pop) != b.pre(pop):
                _activate(b, "forward", pop, b.pre(pop), b.activity(_rate(b, pop), pop))

    def emit_sweep(self, b: Builder, layers: list[Layer]) -> None:
        """The output nudged toward its target, then each layer's fixed point from the top down."""
        b.phase("sweep", doc="top-down sweep: output nudged toward u_tgt, interneurons toward the layer "
                             "above, hidden somata by their apical potential")
        out = layers[-1]
        low, high = b.params["target_low"], b.params["target_high"]
        utgt = b.activity(f"{out.name}.utarget", out.name)
        terms, coeffs = [f"{out.name}.target"], [high - low]
        if low != 0.0:
            b.emit("sweep", ops.Fill(b.activity(f"{out.name}.floor", out.name), low))
            terms.append(f"{out.name}.floor")
            coeffs.append(1.0)
        b.emit("sweep", ops.LinearCombination(tuple(terms), tuple(coeffs), utgt))
        lam = self.gains(b.graph, out)["lam"]
        b.emit("sweep", ops.LinearCombination((b.pre(out.name), utgt), (1.0 - lam, lam),
                                              b.activity(f"{out.name}.soma", out.name)))
        _activate(b, "sweep", out.name, f"{out.name}.soma", b.activity(f"{out.name}.out", out.name))
        for layer in reversed(layers[:-1]):
            g, pop, inter = self.gains(b.graph, layer), layer.name, layer.interneuron
            dendrite = b.activity(f"{inter}.dendrite", inter)
            b.emit("sweep", ops.MatMul(_rate(b, pop), b.weight(layer.dendrite), dendrite))
            b.emit("sweep", ops.LinearCombination((dendrite, f"{layer.above}.soma"),
                                                  ((1.0 - g["lam_i"]) * g["gain_i"], g["lam_i"]),
                                                  b.activity(f"{inter}.soma", inter)))
            _activate(b, "sweep", inter, f"{inter}.soma", b.activity(f"{inter}.rate", inter))
            self._apical(b, "sweep", layer)
            b.emit("sweep", ops.LinearCombination((b.pre(pop), f"{pop}.apical"), (1.0, g["lam"]),
                                                  b.activity(f"{pop}.soma", pop)))
            _activate(b, "sweep", pop, f"{pop}.soma", b.activity(f"{pop}.out", pop))

    def _apical(self, b: Builder, phase: str, layer: Layer) -> None:
        apical = b.activity(f"{layer.name}.apical", layer.name)
        b.emit(phase, ops.MatMul(f"{layer.above}.out", b.weight(layer.topdown), apical))
        b.emit(phase, ops.MatMul(f"{layer.interneuron}.rate", b.weight(layer.inhibition), apical, accumulate=True))

    def emit_euler(self, b: Builder, layers: list[Layer]) -> None:
        """Euler steps of every soma at once, from the sweep's potentials."""
        phase, dt, noise = "settle", b.params["dt"], b.params["noise"] if b.mode != "infer" else 0.0
        b.phase(phase, repeat=b.params["euler_steps"],
                doc=f"Euler steps (dt = {dt:g}) of the full dynamics of every compartment"
                    + (f", noise {noise:g}·√dt" if noise else ""))
        moves = []
        for index, layer in enumerate(layers):
            pop, g = layer.name, self.gains(b.graph, layer)
            below = _rate(b, layer.below) if index == 0 else f"{layer.below}.out"
            _activate(b, phase, pop, f"{pop}.soma", f"{pop}.out")
            b.emit(phase, ops.MatMul(below, b.weight(layer.forward), f"{pop}.basal"))
            if b.graph.has_bias(pop):
                b.emit(phase, ops.AddBias(b.bias(pop), f"{pop}.basal"))
            if layer.hidden:
                third, g3 = f"{pop}.apical", g["g_a"]
            else:
                third, g3 = f"{pop}.utarget", g["g_som"]
            moves.append((pop, (f"{pop}.soma", f"{pop}.basal", third),
                          (-dt * (g["g_lk"] + g["g_b"] + g3), dt * g["g_b"], dt * g3)))
            if layer.hidden:
                inter = layer.interneuron
                _activate(b, phase, inter, f"{inter}.soma", f"{inter}.rate")
                b.emit(phase, ops.MatMul(f"{pop}.out", b.weight(layer.dendrite), f"{inter}.dendrite"))
                moves.append((inter, (f"{inter}.soma", f"{inter}.dendrite", f"{layer.above}.soma"),
                              (-dt * (g["i_lk"] + g["g_d"] + g["i_som"]), dt * g["g_d"], dt * g["i_som"])))
        for layer in layers[:-1]:
            self._apical(b, phase, layer)
        for pop, terms, coeffs in moves:
            step = b.activity(f"{pop}.du", pop)
            b.emit(phase, ops.LinearCombination(terms, coeffs, step))
            if noise:
                kick = b.activity(f"{pop}.kick", pop)
                b.emit(phase, ops.GaussianNoise(noise * math.sqrt(dt), kick, stream=f"{pop}.noise"))
                b.emit(phase, ops.Accumulate(kick, step))
        for pop, _, _ in moves:
            b.emit(phase, ops.Accumulate(f"{pop}.du", f"{pop}.soma"))

    def emit_dendrites(self, b: Builder, layers: list[Layer]) -> None:
        """Rates and dendritic potentials recomputed from the settled somata (for plasticity)."""
        phase = "dendrites"
        b.phase(phase, doc="rates and dendritic potentials of the settled somata")
        for index, layer in enumerate(layers):
            pop = layer.name
            below = _rate(b, layer.below) if index == 0 else f"{layer.below}.out"
            _activate(b, phase, pop, f"{pop}.soma", f"{pop}.out")
            b.emit(phase, ops.MatMul(below, b.weight(layer.forward), f"{pop}.basal"))
            if b.graph.has_bias(pop):
                b.emit(phase, ops.AddBias(b.bias(pop), f"{pop}.basal"))
            if layer.hidden:
                inter = layer.interneuron
                _activate(b, phase, inter, f"{inter}.soma", f"{inter}.rate")
                b.emit(phase, ops.MatMul(f"{pop}.out", b.weight(layer.dendrite), f"{inter}.dendrite"))
        for layer in layers[:-1]:
            self._apical(b, phase, layer)

    def presynaptic(self, b: Builder, layers: list[Layer], pop: str) -> str:
        """The rate that drove ``pop``'s targets' dendrites: bottom-up (sweep) or settled (euler)."""
        if b.graph.population(pop).role == "input" or b.params["solver"] == "sweep":
            return _rate(b, pop)
        return f"{pop}.out"

    def emit_plasticity(self, b: Builder, layers: list[Layer]) -> None:
        """Every plastic weight's estimate from the dendritic mismatches."""
        phase = "plasticity"
        b.phase(phase, doc="dendritic prediction errors: φ(v̂) − φ(u) per soma, the apical potential")
        sweep = b.params["solver"] == "sweep"
        for layer in layers:
            pop, g = layer.name, self.gains(b.graph, layer)
            if sweep:
                predicted = _rate(b, pop)
            else:
                vhat = b.activity(f"{pop}.vhat", pop)
                b.emit(phase, ops.LinearCombination((f"{pop}.basal",), (g["gain"],), vhat))
                predicted = b.activity(f"{pop}.vhat_rate", pop)
                _activate(b, phase, pop, vhat, predicted)
            error = b.activity(f"{pop}.error", pop)
            b.emit(phase, ops.LinearCombination((predicted, f"{pop}.out"), (1.0, -1.0), error, powers=(-1, -1)))
            scale = self.layer_scale(b.graph, layers, layer) if b.params["layer_lr"] == "compensate" else 1.0
            if b.graph.projection(layer.forward).plastic:
                b.learn(layer.forward, self.presynaptic(b, layers, layer.below), error, sign=scale)
            b.learn_bias(pop, error, sign=scale)
            if not layer.hidden:
                continue
            self._interneuron_plasticity(b, layers, layer, g)

    def _interneuron_plasticity(self, b: Builder, layers: list[Layer], layer: Layer, g: dict[str, float]) -> None:
        phase, pop, inter = "plasticity", layer.name, layer.interneuron
        if b.graph.projection(layer.dendrite).plastic:
            vhat = b.activity(f"{inter}.vhat", inter)
            b.emit(phase, ops.LinearCombination((f"{inter}.dendrite",), (g["gain_i"],), vhat))
            predicted = b.activity(f"{inter}.vhat_rate", inter)
            _activate(b, phase, inter, vhat, predicted)
            error = b.activity(f"{inter}.error", inter)
            b.emit(phase, ops.LinearCombination((predicted, f"{inter}.rate"), (1.0, -1.0), error,
                                                powers=(-1, -1)))
            above = next(other for other in layers if other.name == layer.above)
            scale = self.layer_scale(b.graph, layers, above) if b.params["layer_lr"] == "compensate" else 1.0
            scale *= self.tracking_lr_ratio(b, layer, above)
            b.learn(layer.dendrite, self.presynaptic(b, layers, pop), error, sign=scale)
        if b.graph.projection(layer.inhibition).plastic:
            scaled = b.activity(f"{pop}.apical_mean", pop)
            b.emit(phase, ops.LinearCombination((f"{pop}.apical",), (1.0,), scaled, powers=(-1,)))
            b.learn(layer.inhibition, f"{inter}.rate", scaled, sign=self.inhibition_sign)
        if b.graph.projection(layer.topdown).plastic:
            drive = b.activity(f"{pop}.topdown", pop)
            b.emit(phase, ops.MatMul(f"{layer.above}.out", b.weight(layer.topdown), drive))
            predicted = b.activity(f"{pop}.topdown_rate", pop)
            _activate(b, phase, pop, drive, predicted)
            error = b.activity(f"{pop}.topdown_error", pop)
            b.emit(phase, ops.LinearCombination((predicted, f"{pop}.out"), (1.0, -1.0), error, powers=(-1, -1)))
            b.learn(layer.topdown, f"{layer.above}.out", error)
