"""Perturbation learning: node perturbation and weight perturbation (Williams 1992; Werfel et al. 2005).

Neither rule sends an error signal anywhere. Each runs the circuit twice on the same batch, a
clean pass and a pass perturbed by Gaussian noise of standard deviation σ, and correlates
the change of the loss with the noise:

* ``node_perturbation`` (parallel perturbation of every unit): noise ``ξ_p ~ N(0, σ²)`` is
  added to the pre-activation of every hidden and output population ``p`` (and a second,
  independent ``ζ_p`` after the lateral step of a population that has one). With the
  per-example losses ``ℓ_b`` (clean) and ``ℓ̃_b`` (perturbed), the estimate of
  ``∂loss/∂pre_p`` for example ``b`` is ``p.delta_b = (ℓ̃_b − ℓ_b) ξ_{p,b} / (σ² · batch)``
  (the loss is the batch mean, hence ``/batch``); weights and biases then learn from it
  exactly as backprop learns from its deltas: ``W_{A→p} ← −lr · A.rate.T @ p.delta``,
  with the presynaptic rates of the clean pass.
* ``weight_perturbation``: noise ``ξ_W ~ N(0, σ²)`` is added to every plastic forward and
  lateral weight and every bias, once per step (the same for the whole batch); with the
  batch losses ``L`` and ``L̃``, the estimate is ``ĝ_W = (L̃ − L) ξ_W / σ²``.

The estimator is unbiased up to ``O(σ²)`` (exactly, for a loss quadratic in the perturbed
quantities) and its error variance is ``(N + 1)‖∇‖²`` for ``N`` perturbed units or weights
(rules.md §2.9 and §3 H; the claims in :mod:`circuits.claims.perturbation` measure both).

Decisions:

* The clean loss is computed per example by :class:`~circuits.ops.ExampleLoss`, not by the
  shared loss lowering, so the program computes no exact gradient anywhere: ``circuits
  compile`` shows phases ``forward``, ``loss``, ``perturbed``, ``estimate``, ``update``.
* The loss difference already has a baseline, the clean loss. ``baseline = "running"``
  subtracts in addition a running average ``b̄`` of ``ℓ̃ − ℓ`` (``loss.baseline``, a state
  updated after use, in train mode only, with decay ``baseline_decay``), so it never
  depends on the current noise and the mean estimate is unchanged (REINFORCE).
* Perturbed buffers carry a ``~``: ``h1.pre~``, ``h1.rate~``, ``x->h1.weight~``; the
  noise is ``h1.noise`` / ``x->h1.weight.noise``, each from its own seeded stream, so the
  noise of a run does not depend on the order of anything else, and it advances run by run.
* A dropout mask drawn in the clean pass is applied unchanged in the perturbed pass.
* Weight perturbation writes its estimates with its own ops (:class:`~circuits.ops.Modulate`,
  then the optimizer's step), since an estimate that is a full matrix is not a sum of outer
  products; the probe program registers their ``<param>.grad`` buffers under the builder's
  estimate keys (with no terms) so that ``Model.deltas`` finds them.
"""

from __future__ import annotations

from collections.abc import Callable

from circuits import ops
from circuits.compile import Builder, topographic
from circuits.ir import BATCH
from circuits.rules.base import Rule, learn_forward
from circuits.schema import COMMON_PARAMS, Param, RuleSignature
from circuits.spec import ProjectionSpec

__all__ = ["NodePerturbation", "WeightPerturbation", "perturbed", "node_estimates",
           "lower_example_loss", "lower_perturbed_forward"]

_BASELINE = Param("baseline", "none", "none, or running: also subtract a running average of the loss change",
                  choices=("none", "running"))
_DECAY = Param("baseline_decay", 0.99, "decay of the running-average baseline", minimum=0.0, maximum=0.999999)


def _sigma(default: float) -> Param:
    # The estimates divide by σ²: below 1e-12 it underflows (1e-300² is 0.0) or its inverse
    # leaves float32's range, and the loss change is far below float32's resolution anyway.
    return Param("sigma", default, "standard deviation σ of the Gaussian perturbation",
                 minimum=1e-12)


def perturbed(name: str) -> str:
    """The name of the perturbed pass's copy of buffer ``name``."""
    return f"{name}~"


def _rate(b: Builder, pop: str) -> str:
    """A population's activity in the perturbed pass (inputs are not perturbed)."""
    return b.rate(pop) if b.graph.population(pop).role == "input" else perturbed(b.rate(pop))


def node_estimates(b: Builder) -> list[tuple[str, str, str]]:
    """``(population, noise buffer, estimate buffer)`` of every node perturbation, in forward order.

    Every hidden and output population gets noise on its pre-activation (estimating its
    ``delta``); one with a lateral step gets a second noise after that step (``delta2``).
    """
    found = []
    for pop in b.graph.forward_order():
        if b.graph.population(pop).role == "input":
            continue
        found.append((pop, f"{pop}.noise", b.delta(pop)))
        if b.lateral(pop):
            found.append((pop, f"{pop}.noise2", b.delta2(pop)))
    return found


def lower_perturbed_forward(b: Builder, phase: str, *, weight: Callable[[ProjectionSpec], str],
                            bias: Callable[[str], str], sigma: float | None) -> None:
    """The forward pass again, into ``~`` buffers, with ``weight``/``bias`` naming the parameters.

    With ``sigma``, node noise ``N(0, σ²)`` is added to every pre-activation (and after every
    lateral step); the clean pass's dropout masks are applied again.
    """
    def add_noise(pop: str, noise: str, target: str) -> None:
        if sigma is None:
            return
        b.activity(noise, pop)
        b.emit(phase, ops.GaussianNoise(sigma, noise, stream=f"{noise}:node_perturbation"),
               ops.Accumulate(noise, target))

    for pop in b.graph.forward_order():
        if b.graph.population(pop).role == "input":
            continue
        pre = b.activity(perturbed(b.pre(pop)), pop)
        for index, proj in enumerate(b.graph.incoming(pop)):
            topographic.drive(b, phase, proj, _rate(b, proj.source), pre, accumulate=index > 0, tag="~",
                              weight=weight(proj))
        if b.graph.has_bias(pop):
            b.emit(phase, ops.AddBias(bias(pop), pre))
        add_noise(pop, f"{pop}.noise", pre)
        fn, params = b.rate_function(pop)
        if b.lateral(pop):
            rate0 = perturbed(b.rate0(pop))
            if not b.linear(pop):
                b.emit(phase, ops.Activate(fn, pre, b.activity(rate0, pop), params))
            settled = b.activity(perturbed(b.settled(pop)), pop)
            b.emit(phase, ops.Copy(pre, settled))
            for proj in b.lateral(pop):
                b.emit(phase, ops.MatMul(rate0, weight(proj), settled, accumulate=True))
            add_noise(pop, f"{pop}.noise2", settled)
        if not b.linear(pop):
            b.emit(phase, ops.Activate(fn, perturbed(b.settled(pop)), b.activity(_rate(b, pop), pop), params))
        if b.graph.population(pop).dropout > 0 and b.mode == "train" and pop != b.graph.output:
            b.emit(phase, ops.Multiply(f"{pop}.mask", _rate(b, pop)))


def lower_example_loss(b: Builder, phase: str, *, clean: bool) -> tuple[str, str]:
    """Per-example losses and their batch mean of the clean (or perturbed) pass.

    Returns the names of the ``(batch,)`` losses and of the scalar mean (``loss.value`` for
    the clean pass, the program's loss).
    """
    out = b.graph.output
    name = (lambda n: n) if clean else perturbed
    losses = b.add_buffer(name(f"{out}.losses"), (BATCH,), "temp", doc="loss of each example")
    mean = b.add_buffer("loss.value" if clean else perturbed("loss.value"), (), "temp",
                        doc="mean loss over the batch")
    if b.graph.spec.task.loss == "cross_entropy":
        target = b.add_buffer(f"{out}.labels", (BATCH,), "input", dtype="int64", doc="class labels")
        b.emit(phase, ops.ExampleLoss("cross_entropy", name(b.settled(out)), target, losses, mean))
    else:
        target = b.add_buffer(f"{out}.target", (BATCH, b.size(out)), "input", doc="regression targets")
        b.emit(phase, ops.ExampleLoss("mse", name(b.rate(out)), target, losses, mean))
    return losses, mean


def _lower_clean(b: Builder) -> None:
    b.lower_forward()
    b.phase("loss", doc="the loss of every example (no gradient is computed)")
    lower_example_loss(b, "loss", clean=True)


def _lower_signal(b: Builder, change: str, shape: tuple[int | str, ...]) -> str:
    """The reinforcement signal: the loss change, minus a running-average baseline if asked."""
    if b.params["baseline"] == "none":
        return change
    baseline = b.add_buffer("loss.baseline", (), "state", doc="running average of the loss change")
    signal = b.add_buffer("loss.signal", shape, "temp", doc="loss change minus its running average")
    b.emit("estimate", ops.Offset(change, baseline, signal))
    if b.mode == "train":  # read before it is updated: the baseline never sees the current noise
        b.emit("estimate", ops.RunningMean(change, baseline, b.params["baseline_decay"]))
    return signal


class NodePerturbation(Rule):
    """NP: ``p.delta = (ℓ̃ − ℓ) ξ_p / (σ² · batch)`` for every non-input population, then local updates."""

    signature = RuleSignature(
        name="node_perturbation",
        doc="Node perturbation: noise on every unit's pre-activation, the loss change correlated with it.",
        params=(*COMMON_PARAMS, _sigma(0.01), _BASELINE, _DECAY),
        needs="nothing beyond the forward graph (no error signal is sent anywhere)",
    )
    topographic = True

    def scale(self, sigma: float) -> float:
        """The factor ``1/σ²`` of the estimate."""
        return 1.0 / (sigma * sigma)

    def noise_for(self, b: Builder, index: int, nodes: list[tuple[str, str, str]]) -> str:
        """The noise buffer that the ``index``-th estimate is correlated with (its own)."""
        return nodes[index][1]

    def emit(self, b: Builder) -> None:
        _lower_clean(b)
        if b.mode == "infer":
            return
        sigma = b.params["sigma"]
        b.phase("perturbed", doc="the same batch again, with noise N(0, σ²) on every pre-activation")
        lower_perturbed_forward(b, "perturbed", weight=b.weight, bias=b.bias, sigma=sigma)
        losses, _ = lower_example_loss(b, "perturbed", clean=False)
        b.phase("estimate", doc="each unit's noise times its example's loss change: the estimate of ∂loss/∂pre")
        out = b.graph.output
        change = b.add_buffer(f"{out}.loss_change", (BATCH,), "temp", doc="perturbed minus clean loss")
        b.emit("estimate", ops.LinearCombination((losses, f"{out}.losses"), (1.0, -1.0), change))
        signal = _lower_signal(b, change, (BATCH,))
        nodes = node_estimates(b)
        for index, (pop, _, delta) in enumerate(nodes):
            b.emit("estimate", ops.Modulate(signal, self.noise_for(b, index, nodes), b.activity(delta, pop),
                                            alpha=self.scale(sigma), per_batch=True))
        for proj in b.graph.projections("forward"):
            if proj.plastic:
                learn_forward(b, proj, b.rate(proj.source), b.delta(proj.target))
        for proj in b.graph.projections("lateral"):
            if proj.plastic:
                b.learn(proj.name, b.rate0(proj.target), b.delta2(proj.target))
        for pop in b.graph.populations:
            if b.graph.population(pop).role != "input":
                b.learn_bias(pop, b.delta(pop))
        b.lower_updates()


class WeightPerturbation(Rule):
    """WP: ``ĝ_W = (L̃ − L) ξ_W / σ²`` for every plastic weight and bias, one ``ξ`` per step."""

    signature = RuleSignature(
        name="weight_perturbation",
        doc="Weight perturbation: noise on every plastic weight, the batch loss change correlated with it.",
        params=(*COMMON_PARAMS, _sigma(0.01), _BASELINE, _DECAY),
        needs="nothing beyond the forward graph (no error signal is sent anywhere)",
    )

    def perturbed_params(self, b: Builder) -> list[str]:
        """Public names of the parameters it perturbs and learns: plastic forward and lateral
        weights, and the bias of every population that has one."""
        names = [p.name for p in b.graph.projections() if p.type != "feedback" and p.plastic]
        return names + [n for n in b.public if n.endswith(".bias")]

    def emit(self, b: Builder) -> None:
        _lower_clean(b)
        if b.mode == "infer":
            return
        sigma = b.params["sigma"]
        learned = self.perturbed_params(b)
        b.phase("perturbed", doc="every plastic weight and bias plus noise N(0, σ²), then the same batch again")
        for name in learned:
            param = b.public[name]
            shape = b.buffers[param].shape
            noise = b.add_buffer(f"{param}.noise", shape, "temp")
            b.emit("perturbed", ops.GaussianNoise(sigma, noise, stream=f"{param}:weight_perturbation"),
                   ops.LinearCombination((param, noise), (1.0, 1.0), b.add_buffer(perturbed(param), shape, "temp")))
        chosen = set(learned)
        lower_perturbed_forward(
            b, "perturbed", sigma=None,
            weight=lambda p: perturbed(b.weight(p)) if p.name in chosen else b.weight(p),
            bias=lambda pop: perturbed(b.bias(pop)))
        _, mean = lower_example_loss(b, "perturbed", clean=False)
        b.phase("estimate", doc="the batch loss change, the signal that gates every weight's noise")
        change = b.add_buffer("loss.change", (), "temp", doc="perturbed minus clean batch loss")
        b.emit("estimate", ops.LinearCombination((mean, "loss.value"), (1.0, -1.0), change))
        signal = _lower_signal(b, change, ())
        for name in learned:  # ĝ = (L̃ − L)·ξ/σ², lowered into the optimizer like any estimate
            b.learn_modulated(name, signal, f"{b.public[name]}.noise", 1.0 / (sigma * sigma))
        b.lower_updates()
