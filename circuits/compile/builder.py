"""The builder that rules drive: buffer naming, the shared lowerings, and update lowering.

Buffers are named ``<owner>.<role>``: ``h1.pre`` (pre-activation), ``h1.rate`` (activity),
``h1.grad`` (∂loss/∂rate, or the rule's stand-in for it), ``h1.delta`` (∂loss/∂pre, or the
rule's stand-in), ``x->h1.weight``, ``h1.bias``. A linear population's rate *is* its
pre-activation buffer and its delta *is* its grad buffer, so no copies are made for them.

Lateral projections of a population onto itself add one step of within-population
interaction after the feed-forward drive: ``rate0 = f(pre)``, ``pre2 = pre + rate0 @ L``,
``rate = f(pre2)``. The step is differentiated exactly (``L`` is local to the population):
``delta2 = grad ⊙ f'(pre2)``, ``delta = (delta2 @ L.T) ⊙ f'(pre) + delta2``, and ``L``
learns ``rate0.T @ delta2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from circuits import ops
from circuits.compile import topographic
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.ir import BATCH, Buffer, Op, Phase, Program, order_ops
from circuits.rates import RateParams
from circuits.spec import InitSpec, ProjectionSpec

__all__ = ["Builder", "Carrier", "MODES"]

MODES = ("train", "probe", "infer")

Carrier = tuple[str, str, bool]
"""``(source population, matrix buffer, transpose)``: a term ``source.delta @ matrix[.T]``."""


class Builder:
    """Collects the buffers and ops of one program while a rule emits them.

    Parameters
    ----------
    graph
        The checked circuit graph.
    rule
        The rule's name (for the program's title).
    params
        The rule's resolved parameters (``lr``, ``optimizer``, ...).
    mode
        ``train``, ``probe`` or ``infer`` (see :class:`circuits.ir.Program`).
    dtype
        ``float32`` or ``float64``.
    separate_rates
        Give every non-input population its own ``<pop>.rate`` buffer, even a linear one
        (energy rules, whose states and rates differ between steps of a relaxation).
    lr_scale
        Multiplies every learning rate of the train program's optimizer ops (an epoch of a
        learning-rate schedule, see :mod:`circuits.lr_schedule`); :attr:`lr_of` and the
        program's ``lrs`` keep the spec's rates.
    """

    def __init__(self, graph: CircuitGraph, *, rule: str, params: dict[str, Any], mode: str,
                 dtype: str, separate_rates: bool = False, lr_scale: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.graph = graph
        self.rule = rule
        self.params = params
        self.mode = mode
        self.dtype = dtype
        self.buffers: dict[str, Buffer] = {}
        self.phase_ops: dict[str, list[Op]] = {}
        self.phase_info: dict[str, dict[str, Any]] = {}
        self.separate_rates = separate_rates
        self.lr_scale = lr_scale
        self.learned: dict[str, list[tuple[str, str, float]]] = {}
        self.learned_bias: dict[str, list[tuple[str, float]]] = {}
        self.public: dict[str, str] = {}
        self.lr_of: dict[str, float] = {}
        self.particles: dict[str, str] = {}
        """Input buffer → buffer saved back into it per example (see :attr:`Program.particles`)."""
        self._declare_params()

    # -- names -------------------------------------------------------------------------------------

    def size(self, pop: str) -> int:
        """Number of units of population ``pop``."""
        return self.graph.population(pop).size

    def linear(self, pop: str) -> bool:
        """Whether ``pop`` has the identity rate function."""
        return self.graph.population(pop).activation == "linear"

    def rate_function(self, pop: str) -> tuple[str, RateParams]:
        """``pop``'s rate function: the name of ``f`` and the parameters of ``scale·f(gain·(u − shift))``."""
        spec = self.graph.population(pop)
        return spec.activation, spec.rate_params

    def pre(self, pop: str) -> str:
        """Buffer of ``pop``'s pre-activation."""
        return f"{pop}.pre"

    def lateral(self, pop: str) -> tuple[ProjectionSpec, ...]:
        """The lateral projections of ``pop`` onto itself."""
        return self.graph.incoming(pop, "lateral")

    def settled(self, pop: str) -> str:
        """Buffer of ``pop``'s pre-activation after the lateral step (``pre`` when it has none)."""
        return f"{pop}.pre2" if self.lateral(pop) else self.pre(pop)

    def rate0(self, pop: str) -> str:
        """Buffer of ``pop``'s feed-forward activity, before the lateral step."""
        if not self.lateral(pop):
            return self.rate(pop)
        return self.pre(pop) if self.linear(pop) else f"{pop}.rate0"

    def rate(self, pop: str) -> str:
        """Buffer of ``pop``'s activity (the pre-activation itself for linear and input units)."""
        if self.graph.population(pop).role == "input" or self.separate_rates:
            return f"{pop}.rate"
        return self.settled(pop) if self.linear(pop) else f"{pop}.rate"

    def grad(self, pop: str) -> str:
        """Buffer of the error signal arriving at ``pop``'s activity."""
        return f"{pop}.grad"

    def delta2(self, pop: str) -> str:
        """Buffer of the error signal at ``pop``'s settled pre-activation (after the lateral step)."""
        if not self.lateral(pop):
            return self.delta(pop)
        return self.grad(pop) if self.linear(pop) else f"{pop}.delta2"

    def delta(self, pop: str) -> str:
        """Buffer of the error signal at ``pop``'s feed-forward pre-activation."""
        return self.grad(pop) if self.linear(pop) and not self.lateral(pop) else f"{pop}.delta"

    @staticmethod
    def weight(proj: ProjectionSpec | str) -> str:
        """Buffer of a projection's weight."""
        return f"{proj if isinstance(proj, str) else proj.name}.weight"

    @staticmethod
    def bias(pop: str) -> str:
        """Buffer of a population's bias."""
        return f"{pop}.bias"

    # -- buffers and ops -----------------------------------------------------------------------

    def add_buffer(self, name: str, shape: tuple[int | str, ...], kind: str, *, dtype: str = "float",
                   init: Any = "zeros", doc: str = "") -> str:
        """Declare a buffer (declaring the same one twice identically is allowed)."""
        buf = Buffer(name=name, shape=tuple(shape), kind=kind, dtype=dtype, init=init, doc=doc)
        old = self.buffers.get(name)
        if old is not None and old != buf:
            raise CompileError(f"buffer '{name}' declared twice with different shapes or kinds")
        self.buffers[name] = buf
        return name

    def activity(self, name: str, pop: str) -> str:
        """Declare a batched temp buffer shaped like ``pop``'s activity."""
        return self.add_buffer(name, (BATCH, self.size(pop)), "temp")

    def phase(self, name: str, *, repeat: int = 1, doc: str = "", until: str = "", tol: float = 0.0) -> None:
        """Open a phase (phases run in the order they are opened); see :class:`Phase` for ``until``."""
        self.phase_ops.setdefault(name, [])
        self.phase_info[name] = {"repeat": repeat, "doc": doc, "until": until, "tol": tol}

    def emit(self, phase: str, *new_ops: Op) -> None:
        """Append ops to ``phase``, declaring any activity buffers they write."""
        if phase not in self.phase_ops:
            self.phase(phase)
        self.phase_ops[phase].extend(new_ops)

    def _declare_params(self) -> None:
        for proj in self.graph.projections():
            shape = topographic.kernel_shape(self.graph, proj) or (self.size(proj.source), self.size(proj.target))
            self.add_buffer(self.weight(proj), shape, "param", init=proj.init,
                            doc=f"{proj.type} projection {proj.source} → {proj.target}")
            self.public[proj.name] = self.weight(proj)
            self.lr_of[proj.name] = proj.lr if proj.lr is not None else self.params["lr"]
        for pop in self.graph.populations:
            if self.graph.has_bias(pop):
                self.add_buffer(self.bias(pop), (self.size(pop),), "param", doc=f"bias of {pop}")
                self.public[f"{pop}.bias"] = self.bias(pop)
                self.lr_of[f"{pop}.bias"] = self.params["lr"]
        for pop in self.graph.inputs:
            self.add_buffer(self.rate(pop), (BATCH, self.size(pop)), "input", doc="data")

    # -- shared lowerings ------------------------------------------------------------------------

    def lower_forward(self, phase: str = "forward") -> None:
        """Feed-forward pass: ``pre = Σ source.rate @ W + bias``, ``rate = f(pre)``, dropout."""
        self.phase(phase, doc="feed-forward pass through the forward projections")
        for pop in self.graph.inputs:
            self._dropout(phase, pop)
        for pop in self.graph.forward_order():
            if self.graph.population(pop).role == "input":
                continue
            self.activity(self.pre(pop), pop)
            for index, proj in enumerate(self.graph.incoming(pop)):
                topographic.drive(self, phase, proj, self.rate(proj.source), self.pre(pop), accumulate=index > 0)
            if self.graph.has_bias(pop):
                self.emit(phase, ops.AddBias(self.bias(pop), self.pre(pop)))
            fn, params = self.rate_function(pop)
            if self.lateral(pop):
                if not self.linear(pop):
                    self.emit(phase, ops.Activate(fn, self.pre(pop), self.activity(self.rate0(pop), pop), params))
                self.emit(phase, ops.Copy(self.pre(pop), self.activity(self.settled(pop), pop)))
                for proj in self.lateral(pop):
                    self.emit(phase, ops.MatMul(self.rate0(pop), self.weight(proj), self.settled(pop),
                                                accumulate=True))
            if not self.linear(pop):
                self.emit(phase, ops.Activate(fn, self.settled(pop), self.activity(self.rate(pop), pop), params))
            if pop != self.graph.output:
                self._dropout(phase, pop)
                self.sample_spikes(phase, pop)

    def spiking(self, pop: str) -> bool:
        """Whether ``pop``'s rate is a Poisson spike count in this program (training; tests if asked)."""
        spikes = self.graph.population(pop).spikes
        return spikes is not None and (self.mode == "train" or (self.mode == "infer" and spikes.at_test))

    def sample_spikes(self, phase: str, pop: str, rate: str | None = None, stream: str = "spikes") -> None:
        """``rate = Poisson(T·rate)/T`` on a spiking population.

        ``rate`` defaults to the population's rate buffer; ``stream`` names the random stream
        ``<pop>.<stream>`` (a second sample of the same population needs its own name).
        """
        if self.spiking(pop):
            window = self.graph.population(pop).spikes.window
            self.emit(phase, ops.PoissonSample(window, rate or self.rate(pop), stream=f"{pop}.{stream}"))

    def _dropout(self, phase: str, pop: str) -> None:
        p = self.graph.population(pop).dropout
        if p > 0 and self.mode == "train":
            mask = self.activity(f"{pop}.mask", pop)
            self.emit(phase, ops.Dropout(p, mask, self.rate(pop), stream=f"{pop}.dropout"))

    def lower_loss(self, phase: str = "loss", target_range: tuple[float, float] = (0.0, 1.0)) -> None:
        """The loss value and the output's delta (∂loss/∂pre of the output).

        With ``task.loss = "mse"`` a ``target_range`` ``(low, high)`` other than ``(0, 1)`` maps each
        target ``t`` to the rate ``low + (high − low)·t`` before the loss (one-hot class labels
        become ``low``/``high``).
        """
        out = self.graph.output
        self.phase(phase, doc="loss and its gradient at the output")
        self.add_buffer("loss.value", (), "temp", doc="mean loss over the batch")
        loss = self.graph.spec.task.loss
        if loss == "cross_entropy":
            self.add_buffer(f"{out}.labels", (BATCH,), "input", dtype="int64", doc="class labels")
            # Softmax + cross-entropy gives ∂loss/∂logits directly: the output's (settled) delta.
            self.emit(phase, ops.SoftmaxCrossEntropy(self.settled(out), f"{out}.labels",
                                                     self.activity(self.delta2(out), out), "loss.value"))
            self._lateral_deriv(phase, out)
        else:
            self.add_buffer(f"{out}.target", (BATCH, self.size(out)), "input", doc="regression targets")
            target = f"{out}.target"
            low, high = target_range
            if (low, high) != (0.0, 1.0):
                terms, coeffs = [target], [high - low]
                if low != 0.0:
                    self.emit(phase, ops.Fill(self.activity(f"{out}.target_floor", out), low))
                    terms, coeffs = [*terms, f"{out}.target_floor"], [*coeffs, 1.0]
                target = self.activity(f"{out}.target_rate", out)
                self.emit(phase, ops.LinearCombination(tuple(terms), tuple(coeffs), target))
            self.emit(phase, ops.MeanSquaredError(self.rate(out), target,
                                                  self.activity(self.grad(out), out), "loss.value"))
            self._deriv(phase, out)

    def _deriv(self, phase: str, pop: str) -> None:
        """``delta = grad ⊙ f'`` (through the lateral step, if any), after the dropout mask.

        A spiking population's ``delta`` is ``grad ⊙ f'(pre)``: the straight-through estimate
        that treats the spike count as its rate ``f(pre)`` (so ``f`` is recomputed from ``pre``
        where its derivative is written in terms of the rate).
        """
        masked = self.graph.population(pop).dropout > 0 and self.mode == "train" and pop != self.graph.output
        if masked:
            self.emit(phase, ops.Multiply(f"{pop}.mask", self.grad(pop)))
        fn, params = self.rate_function(pop)
        if not self.linear(pop):
            self.emit(phase, ops.ActivationDeriv(fn, self.settled(pop), self.rate(pop), self.grad(pop),
                                                 self.activity(self.delta2(pop), pop),
                                                 masked=masked or self.spiking(pop), params=params))
        self._lateral_deriv(phase, pop)

    def _lateral_deriv(self, phase: str, pop: str) -> None:
        if not self.lateral(pop):
            return
        grad0 = self.activity(f"{pop}.grad0", pop)
        for index, proj in enumerate(self.lateral(pop)):
            self.emit(phase, ops.MatMul(self.delta2(pop), self.weight(proj), grad0, transpose_b=True,
                                        accumulate=index > 0))
        fn, params = self.rate_function(pop)
        if self.linear(pop):
            self.emit(phase, ops.Copy(grad0, self.activity(self.delta(pop), pop)))
        else:
            self.emit(phase, ops.ActivationDeriv(fn, self.pre(pop), self.rate0(pop), grad0,
                                                 self.activity(self.delta(pop), pop), params=params))
        self.emit(phase, ops.Accumulate(self.delta2(pop), self.delta(pop)))

    def lower_backward(self, carriers: dict[str, Sequence[Carrier]], phase: str = "backward") -> None:
        """Send error signals down: ``pop.grad = Σ source.delta @ M``, ``pop.delta = grad ⊙ f'``.

        ``carriers[pop]`` lists the terms for each hidden population; populations are
        visited from the output down, so every source's delta exists when it is read.
        """
        self.phase(phase, doc="error signals sent down to the hidden populations")
        for pop in reversed(self.graph.forward_order()):
            if self.graph.population(pop).role != "hidden":
                continue
            terms = carriers.get(pop, ())
            if not terms:
                raise CompileError(f"rule '{self.rule}' sends no error signal to population '{pop}'")
            self.activity(self.grad(pop), pop)
            for index, (source, matrix, transpose) in enumerate(terms):
                if len(self.buffers[matrix].shape) == 4:  # a kernel: always a transposed conv
                    proj = topographic.carrier_projection(self.graph, pop, source)
                    topographic.send_back(self, phase, proj, matrix, self.delta(source), self.grad(pop),
                                          accumulate=index > 0)
                    continue
                self.emit(phase, ops.MatMul(self.delta(source), matrix, self.grad(pop),
                                            transpose_b=transpose, accumulate=index > 0))
            self._deriv(phase, pop)

    # -- learning ------------------------------------------------------------------------------

    def learn(self, param: str, a: str, b: str, sign: float = 1.0) -> None:
        """Add ``sign · a.T @ b`` to the rule's estimate of ∂loss/∂(weight ``param``).

        The optimizer lowering turns estimates into updates (train) or gradient buffers (probe).
        """
        if param not in self.public:
            raise CompileError(f"rule '{self.rule}' learns unknown parameter '{param}'")
        self.learned.setdefault(param, []).append((a, b, sign))

    def learn_bias(self, pop: str, a: str, sign: float = 1.0) -> None:
        """Add ``sign · Σ_batch a`` to the rule's estimate of ∂loss/∂(bias of ``pop``)."""
        name = f"{pop}.bias"
        if name in self.public:
            self.learned_bias.setdefault(name, []).append((a, sign))

    def learn_modulated(self, param: str, signal: str, trace: str, scale: float = 1.0) -> None:
        """Add ``scale · signal ⊙ trace`` (``signal`` a scalar or one value per example, see
        :class:`~circuits.ops.Modulate`) to the rule's estimate of ∂loss/∂``param``, a weight or a bias."""
        if param not in self.public:
            raise CompileError(f"rule '{self.rule}' learns unknown parameter '{param}'")
        self.learned.setdefault(param, []).append(("modulate", signal, trace, scale))

    def learn_op(self, param: str, make: Any) -> None:
        """Add the estimate that the op ``make(out, alpha, beta)`` writes as ``out = beta·out +
        alpha·estimate`` to the rule's estimate of ∂loss/∂``param`` (a rule's own update op)."""
        if param not in self.public:
            raise CompileError(f"rule '{self.rule}' learns unknown parameter '{param}'")
        self.learned.setdefault(param, []).append(("op", make))

    def lower_updates(self, phase: str = "update", *, plain_sgd: bool = False,
                      terms: tuple[dict[str, list[Any]], dict[str, list[Any]]] | None = None) -> None:
        """Lower the learned estimates into the optimizer's ops.

        Probe mode writes each estimate into ``<param>.grad``. Train mode with SGD and no
        momentum fuses the estimate into one GEMM: ``W = (1 − lr·wd)·W − lr·a.T @ b``.
        ``plain_sgd`` forces that fused form whatever the optimizer (used by rules whose
        update must be exactly the same for two parameters, such as Kolen–Pollack).
        ``terms`` lowers other ``(weights, biases)`` estimates than the ones :meth:`learn`
        collected (a rule that trains a second set of parameters in its own phase).
        """
        learned, learned_bias = terms if terms is not None else (self.learned, self.learned_bias)
        if self.mode == "infer" or not (learned or learned_bias):
            return
        self.phase(phase, doc="apply the rule's updates" if self.mode == "train"
                   else "write the rule's gradient estimates (not applied)")
        opt = "sgd" if plain_sgd else self.params["optimizer"]
        momentum = 0.0 if plain_sgd else self.params["momentum"]
        for name, terms_of in [*learned.items(), *learned_bias.items()]:
            param = self.public[name]
            shape = self.buffers[param].shape
            lr, wd = self.lr_of[name], self.params["weight_decay"]
            if self.mode == "train" and self.lr_scale != 1.0:
                lr *= self.lr_scale
            fused = self.mode == "train" and opt == "sgd" and momentum == 0.0
            if fused:
                self._accumulate(phase, name, terms_of, param, scale=-lr, first_beta=1.0 - lr * wd)
                continue
            grad = self.add_buffer(f"{param}.grad", shape, "temp")
            if self.mode == "probe":
                self._accumulate(phase, name, terms_of, grad, scale=1.0, first_beta=0.0)
            elif opt == "sgd":
                velocity = self.add_buffer(f"{param}.velocity", shape, "state")
                self._accumulate(phase, name, terms_of, velocity, scale=1.0, first_beta=momentum)
                self.emit(phase, ops.SgdStep(param, velocity, lr, 1.0 - lr * wd))
            else:
                self._accumulate(phase, name, terms_of, grad, scale=1.0, first_beta=0.0)
                m = self.add_buffer(f"{param}.adam_m", shape, "state")
                v = self.add_buffer(f"{param}.adam_v", shape, "state")
                count = self.add_buffer(f"{param}.adam_t", (), "state")
                self.emit(phase, ops.AdamStep(param, grad, m, v, count, lr, self.params["adam_beta1"],
                                              self.params["adam_beta2"], self.params["adam_eps"], wd))

    def _accumulate(self, phase: str, name: str, terms: list[Any], out: str, *, scale: float,
                    first_beta: float) -> None:
        for index, term in enumerate(terms):
            beta = first_beta if index == 0 else 1.0
            if term[0] == "modulate":
                _, signal, trace, factor = term
                self.emit(phase, ops.Modulate(signal, trace, out, alpha=scale * factor, beta=beta))
            elif term[0] == "op":
                self.emit(phase, term[1](out, scale, beta))  # a rule's own op: make(out, alpha, beta)
            elif len(term) == 3:
                a, b, sign = term
                self.emit(phase, ops.OuterUpdate(a, b, out, alpha=scale * sign, beta=beta))
            else:
                a, sign = term
                self.emit(phase, ops.ColSumUpdate(a, out, alpha=scale * sign, beta=beta))

    # -- result --------------------------------------------------------------------------------

    def loss_params(self) -> dict[str, str]:
        """Public names of the parameters the loss depends on (forward weights and biases)."""
        names = [p.name for p in self.graph.projections() if p.type != "feedback"]
        names += [n for n in self.public if n.endswith(".bias")]
        return {n: self.public[n] for n in names}

    @staticmethod
    def _predict_phases(phases: tuple[Phase, ...]) -> tuple[str, ...]:
        names = [phase.name for phase in phases]
        return tuple(names[:names.index("loss")] if "loss" in names else names)

    def finish(self, name: str) -> Program:
        """Order every phase, validate, and return the program."""
        phases = tuple(
            Phase(name=phase, ops=order_ops(phase_ops), **self.phase_info[phase])
            for phase, phase_ops in self.phase_ops.items() if phase_ops
        )
        grads = {}
        if self.mode == "probe":
            grads = {n: f"{self.public[n]}.grad" for n in [*self.learned, *self.learned_bias]}
        program = Program(name=name, rule=self.rule, mode=self.mode, dtype=self.dtype,
                          buffers=dict(self.buffers), phases=phases, params=dict(self.public),
                          grads=grads, lrs=dict(self.lr_of), loss_params=tuple(self.loss_params()),
                          inputs=tuple(b for b, buf in self.buffers.items() if buf.kind == "input"),
                          output=self.rate(self.graph.output), loss="loss.value",
                          predict_phases=self._predict_phases(phases), particles=dict(self.particles))
        program.validate()
        return program


def default_init_feedback(scale: float) -> InitSpec:
    """The init of feedback projections a rule creates: ``U[-scale, scale]`` (Lillicrap's B)."""
    return InitSpec(scheme="uniform", scale=scale)
