"""Recirculation (Hinton & McClelland 1988): an autoencoder loop trained without backprop.

Activity goes around a loop visible → hidden → visible twice, and each synapse learns
"presynaptic activity × change of postsynaptic activity across the two passes". With
regression λ, batch n and σ the populations' rate functions:

* pass 1, hidden: ``y_j(1) = σ(Σ_i w_ji y_i(0) + b_j)``;
* reconstruction: ``y_i(2) = λ y_i(0) + (1 − λ) σ(Σ_j w_ij y_j(1) + b_i)`` (an average of the
  original and the reconstructed visible vector goes around the loop);
* pass 2, hidden: ``y_j(3) = λ y_j(1) + (1 − λ) σ(Σ_i w_ji y_i(2) + b_j)``;
* updates: ``Δw_ij = ε y_j(1) (y_i(0) − y_i(2))`` (hidden → visible) and
  ``Δw_ji = ε y_i(2) (y_j(1) − y_j(3))`` (visible → hidden); each bias learns like a weight
  from an always-on unit, ``Δb_i = ε (y_i(0) − y_i(2))``, ``Δb_j = ε (y_j(1) − y_j(3))``.

**Mapping onto a circuit.** The loop is the graph ``x → h → r`` with ``task.autoencode = true``
(targets are the inputs, loss MSE): the input population ``x`` holds ``y(0)``; the hidden
population ``h`` holds ``y(1)`` after the forward pass; the output ``r`` (size = input size)
holds the raw reconstruction ``σ(Σ_j w_ij y_j(1) + b_i)``, whose squared error against the input
is the loss the run reports. ``w_ji`` is the forward weight ``x->h`` (shape (n_x, n_h)),
``w_ij`` the forward weight ``h->r`` (shape (n_h, n_x)): the top-down reconstruction weights
of the loop are this forward projection, since ``r`` is the visible layer's second state.
The rule declares as its estimate of ∂loss/∂W the batch mean of the negated changes:
``h.rateᵀ (y(2) − y(0))/n`` for ``h->r`` and ``y(2)ᵀ (y(3) − y(1))/n`` for ``x->h``, so a plain
SGD step with rate ε is the rule above averaged over the batch. Since
``y(0) − y(2) = (1 − λ)(y(0) − r)``, the hidden → visible update is the delta rule on the raw
reconstruction scaled by (1 − λ), and the visible → hidden update is O((1 − λ)²) as λ → 1.

Dropout on ``h`` silences the same units in both passes (``y_j(3)`` uses the pass-1 mask), so a
dropped unit neither changes nor learns; ``y(0)`` is the input population's activity, after any
input dropout.
"""

from __future__ import annotations

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rules.base import Rule
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["Recirculation"]

_NEEDS = ("one loop: an input x → one hidden population h → an output r with r.size = x.size, "
          "and task.autoencode = true")


class Recirculation(Rule):
    """Hinton & McClelland's two-pass loop: pre × (change of post between the passes)."""

    signature = RuleSignature(
        name="recirculation",
        doc="Recirculation (Hinton & McClelland 1988): an autoencoder loop whose synapses learn "
            "presynaptic activity × change of postsynaptic activity between two passes.",
        params=(*COMMON_PARAMS,
                Param("regression", 0.75, "λ: weight of the previous state in each state that goes "
                      "around the loop a second time", minimum=0.0, maximum=1.0)),
        needs=_NEEDS,
    )

    def check(self, graph: CircuitGraph) -> None:
        super().check(graph)
        source = graph.spec.source
        for proj in graph.projections("lateral"):
            raise CompileError(f"{source}: projection '{proj.name}': rule '{self.name}' does not model "
                               "lateral projections; remove it")
        if not graph.spec.task.autoencode:
            raise CompileError(f"{source}: rule '{self.name}' reconstructs its input; set "
                               "task.autoencode = true (and task.loss = \"mse\")")
        loop = self.loop(graph)
        if loop is None:
            raise CompileError(f"{source}: rule '{self.name}' needs {_NEEDS}; write [[projections]] "
                               "chain = [\"x\", \"h\", \"r\"] and no other forward projection")
        x, _, r = loop
        if graph.population(x).size != graph.population(r).size:
            raise CompileError(f"{source}: rule '{self.name}': output '{r}' reconstructs input '{x}'; "
                               f"set populations.{r}.size = {graph.population(x).size}")

    @staticmethod
    def loop(graph: CircuitGraph) -> tuple[str, str, str] | None:
        """``(visible input, hidden, reconstruction output)``, or None when the graph is not the loop."""
        if len(graph.inputs) != 1 or len(graph.hidden) != 1:
            return None
        x, h, r = graph.inputs[0], graph.hidden[0], graph.output
        forward = sorted((p.source, p.target) for p in graph.projections("forward"))
        return (x, h, r) if forward == sorted([(x, h), (h, r)]) else None

    def emit(self, b: Builder) -> None:
        b.lower_forward()
        b.lower_loss()
        if b.mode == "infer":
            return
        lam = b.params["regression"]
        x, h, r = self.loop(b.graph)
        w_ji, w_ij = b.graph.incoming(h)[0], b.graph.incoming(r)[0]
        phase = "recirculate"
        b.phase(phase, doc=f"second pass around the loop with regression λ = {lam:g}")
        y2 = b.activity(f"{r}.recirc", r)
        b.emit(phase, ops.LinearCombination((b.rate(x), b.rate(r)), (lam, 1.0 - lam), y2))
        pre2 = b.activity(f"{h}.pre_recirc", h)
        b.emit(phase, ops.MatMul(y2, b.weight(w_ji), pre2))
        if b.graph.has_bias(h):
            b.emit(phase, ops.AddBias(b.bias(h), pre2))
        rate2 = pre2
        if not b.linear(h):
            rate2 = b.activity(f"{h}.rate_recirc", h)
            fn, params = b.rate_function(h)
            b.emit(phase, ops.Activate(fn, pre2, rate2, params))
        if b.graph.population(h).dropout > 0 and b.mode == "train":
            b.emit(phase, ops.Multiply(f"{h}.mask", rate2))
        y3 = b.activity(f"{h}.recirc", h)
        b.emit(phase, ops.LinearCombination((b.rate(h), rate2), (lam, 1.0 - lam), y3))
        # Estimates of ∂loss/∂W: the negated changes, averaged over the batch.
        visible = b.activity(f"{r}.change", r)
        b.emit(phase, ops.LinearCombination((y2, b.rate(x)), (1.0, -1.0), visible, powers=(-1, -1)))
        hidden = b.activity(f"{h}.change", h)
        b.emit(phase, ops.LinearCombination((y3, b.rate(h)), (1.0, -1.0), hidden, powers=(-1, -1)))
        if w_ij.plastic:
            b.learn(w_ij.name, b.rate(h), visible)
        if w_ji.plastic:
            b.learn(w_ji.name, y2, hidden)
        b.learn_bias(r, visible)
        b.learn_bias(h, hidden)
        b.lower_updates()
