"""Benchmark: circuits against PyTorch and JAX (XLA:CPU) implementations of the same circuit (not a test).

MNIST 784-800-800-10 ReLU, batch 100, plain SGD lr 0.1, float32, one epoch (600 steps) of
training per run; the LeNet-like conv circuit (tools/bench_lenet.py), batch 100, SGD lr 0.05,
200 steps per run. Every side starts from the same initial parameters (circuits draws them,
the references copy them), sees the same batches in the same order, and computes the same
update; circuits and the references run alternately, ``--repeats`` times each, and the median
seconds per run are compared. Achieved GFLOP/s (GEMM FLOPs of a run / median seconds) are
reported as a fraction of the machine's measured NumPy float32 GEMM peak.

References: PyTorch (``nn.Sequential`` and ``optim.SGD``, an ``autograd.Function`` for FA) and
JAX (``jax.grad`` inside one ``jax.jit`` step that donates the parameters, a ``jax.custom_vjp``
for FA; tools/bench_jax.py). The EqProp case has a PyTorch reference only.

Targets (DESIGN.md, "Performance"; issue 14): for the MLP cases circuits at most 0.9x PyTorch's
time and 1.0x JAX's, and at least 70 % of the square-GEMM peak; for the LeNet cases at most
1.0x PyTorch's time (the ratio to JAX reported, no target).

Usage::

    python tools/bench.py --json gallery/bench_cpu.json   # the recorded table: bp, fa, lenet_bp, lenet_fa
    python tools/bench.py --case fa --repeats 5
    python tools/bench.py --quick               # smoke test: 100 steps, 1 repeat
    python tools/bench.py --reference jax       # time against JAX only
    python tools/bench.py --profile             # add a per-op time table of circuits' step
    python tools/bench.py --case eqprop         # the EqProp case (not in the default set)

Cases live in :func:`make_cases`: each builds a circuits runner and its reference runners from
one shared :class:`Workload`, and lists the GEMMs of one training step, from which the FLOP
count and the GEMM-only floor are derived. Timings are wall-clock and include everything a
training step does (binding the batch, elementwise ops, the loss), but not data loading or
batch slicing, which are done once up front for every side.
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Targets of the issue: circuits' time / reference time, and fraction of the GEMM peak.
TARGET_RATIO = 0.9  # against PyTorch
TARGET_RATIO_JAX = 1.0  # against JAX (XLA:CPU), issue 14
TARGET_RATIO_LENET = 1.0  # LeNet against PyTorch (issue 14; the ratio to JAX is reported, no target)
LENET_STEPS = 200  # a LeNet run is a third of an epoch: the default table stays a few minutes long
REFERENCES = ("pytorch", "jax")
DEFAULT_CASES = ("bp", "fa", "lenet_bp", "lenet_fa")  # gallery/bench_cpu.json; --case eqprop: bench_eqprop.json
TARGET_PEAK_FRACTION = 0.70

SIZES = (784, 800, 800, 10)
LAYERS = (("x", "h1"), ("h1", "h2"), ("h2", "y"))
BATCH = 100
LR = 0.1
FA_FEEDBACK_SCALE = 0.05  # U[-0.05, 0.05] fixed feedback: stable FA at lr 0.1

SPEC_TEMPLATE = """
[circuit]
name = "bench-mnist-{rule}"
doc = "MNIST 784-800-800-10 ReLU, plain SGD (tools/bench.py)"

[populations]
x = {{ size = 784, role = "input" }}
h1 = {{ size = 800, activation = "relu" }}
h2 = {{ size = 800, activation = "relu" }}
y = {{ size = 10, role = "output", activation = "linear" }}

[[projections]]
chain = ["x", "h1", "h2", "y"]
init = "he"

[rule]
name = "{rule}"
lr = {lr}
momentum = 0.0
{extra}

[task]
dataset = "mnist"
loss = "cross_entropy"
batch_size = {batch}

[run]
seed = {seed}
dtype = "float32"
"""

# The EqProp case (issue 5, item 9): a 784-500-10 hard-sigmoid energy model, as in the
# published prototypical-EqProp MNIST setting, nudged with the squared error.
EQPROP_BATCH = 20
EQPROP_TARGET_RATIO = 0.5
EQPROP = {"hidden": 500, "beta": 0.5, "free_steps": 20, "nudged_steps": 4, "step": 0.5,
          "lr_hidden": 0.1, "lr_output": 0.05, "lr": 0.1}

EQPROP_SPEC = """
[circuit]
name = "bench-mnist-eqprop"
doc = "MNIST 784-{hidden}-10 hard-sigmoid energy model, equilibrium propagation (tools/bench.py)"

[populations]
x = {{ size = 784, role = "input" }}
h = {{ size = {hidden}, activation = "hard_sigmoid", step = {step} }}
y = {{ size = 10, role = "output", activation = "hard_sigmoid", step = {step} }}

[[projections]]
from = "x"
to = "h"
init = "xavier"
lr = {lr_hidden}

[[projections]]
from = "h"
to = "y"
init = "xavier"
lr = {lr_output}

[rule]
name = "equilibrium_propagation"
lr = {lr}
momentum = 0.0
beta = {beta}
free_steps = {free_steps}
nudged_steps = {nudged_steps}
tol = 0.0

[task]
dataset = "mnist"
loss = "mse"
normalize = "unit"
batch_size = {batch}

[run]
seed = {seed}
dtype = "float32"
"""

EQPROP_FORMULA = ("the GEMMs of circuits' train program: per relaxation step ρ_y @ W_hyᵀ and ρ_h @ W_hy "
                  "(plus x @ W_xh wherever the program computes it), times the free and nudged step budgets, "
                  "and the outer products of the update (elementwise work not counted)")


# ---------------------------------------------------------------------------------------------
# Shared workload


MNIST_TRAIN = 60_000  # examples in MNIST's training split: one epoch is MNIST_TRAIN // batch steps


@dataclass
class Workload:
    """The data and batches both sides train on (built once, outside every timing)."""

    x_test: np.ndarray
    y_test: np.ndarray
    batches: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    batch: int = BATCH
    lr: float = LR
    normalize: str = "standard"

    @property
    def steps(self) -> int:
        return len(self.batches)


def load_workload(data_dir: str, seed: int, steps: int, *, batch: int = BATCH,
                  normalize: str = "standard") -> Workload:
    """MNIST (normalised by ``normalize`` with training statistics) cut into ``steps`` seeded batches."""
    from circuits.data import load_dataset

    data = load_dataset("mnist", seed=seed, data_dir=data_dir, normalize=normalize, download=False)
    x_train = np.ascontiguousarray(data.x_train, dtype=np.float32)
    order = np.random.default_rng([seed, 1]).permutation(data.n_train)
    if steps * batch > data.n_train:
        raise SystemExit(f"--steps {steps} needs {steps * batch} examples at batch {batch}; "
                         f"MNIST has {data.n_train}")
    batches = []
    for step in range(steps):
        index = order[step * batch:(step + 1) * batch]
        batches.append((np.ascontiguousarray(x_train[index]), np.ascontiguousarray(data.y_train[index])))
    return Workload(x_test=np.ascontiguousarray(data.x_test, dtype=np.float32),
                    y_test=np.asarray(data.y_test), batches=batches, seed=seed, batch=batch,
                    normalize=normalize)


# ---------------------------------------------------------------------------------------------
# Runners


class Runner(Protocol):
    """One implementation of a case: trains on the workload's batches from a fixed init."""

    label: str
    batches: Sequence[tuple[Any, Any]]  # the workload's batches as this side's arrays

    def reset(self) -> None:
        """Put the initial parameters back (every timed epoch starts from the same point)."""

    def train(self, batches: Sequence[tuple[Any, Any]]) -> None:
        """One learning step per batch (the timed part)."""

    def accuracy(self) -> float:
        """Test accuracy of the current parameters."""

    def parameters(self) -> dict[str, np.ndarray]:
        """Current parameters as host arrays, in circuits' names and layouts."""


class CircuitsRunner:
    """A :class:`circuits.Model` stepped through its public ``Model.step`` (as ``circuits.fit`` does).

    With ``api="executable"`` the batch is copied straight into the train executable's input
    arrays and the executable is run, skipping ``Model.step``'s lookups and checks.
    """

    label = "circuits"

    def __init__(self, spec_text: str, work: Workload, *, api: str = "step") -> None:
        import circuits
        from circuits.spec import parse_spec

        registry = circuits.default_registry()
        spec = parse_spec(spec_text, source="tools/bench.py", rules=registry.signatures())
        self.model = circuits.Model(spec, registry=registry)
        self.work = work
        self.batches = work.batches
        self.api = api
        self.initial = {name: np.array(value, copy=True) for name, value in self.model.params.items()}

    def reset(self) -> None:
        self.model.set_params(self.initial)

    def train(self, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        if self.api == "step":
            step = self.model.step
            for xb, yb in batches:
                step(xb, yb)
            return
        model = self.model
        exe = model.sim.executable(model.program, self.work.batch)
        x_in = exe.arrays[f"{model.graph.inputs[0]}.rate"]
        y_in, as_target = target_input(model, exe)
        run, copyto = exe.run, np.copyto
        for xb, yb in batches:
            copyto(x_in, xb)
            copyto(y_in, as_target(yb))
            run()

    def accuracy(self) -> float:
        return self.model.evaluate(self.work.x_test, self.work.y_test)[1]

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: np.array(value) for name, value in self.model.params.items()}


def target_input(model: Any, exe: Any) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """The executable's array for a batch's labels, and how labels become its contents.

    A cross-entropy program takes the labels as they are (``<out>.labels``); a squared-error
    program takes one-hot targets (``<out>.target``), as ``Model.step`` makes them.
    """
    out = model.graph.output
    if f"{out}.labels" in exe.arrays:
        return exe.arrays[f"{out}.labels"], lambda labels: labels
    eye = np.eye(model.graph.population(out).size, dtype=exe.arrays[f"{out}.target"].dtype)
    return exe.arrays[f"{out}.target"], lambda labels: eye[labels]


def _torch_batches(work: Workload) -> list[tuple[Any, Any]]:
    import torch

    return [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in work.batches]


class TorchMLP:
    """PyTorch reference: ``nn.Sequential`` of Linear/ReLU, mean cross-entropy, ``optim.SGD``.

    ``feedback`` (feedback alignment) swaps each hidden layer's Linear for
    :func:`feedback_linear`, whose backward sends the error down through a fixed matrix.
    """

    def __init__(self, initial: dict[str, np.ndarray], work: Workload, *, feedback: bool) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.work = work
        self.initial = initial
        self.feedback = feedback
        self.label = "pytorch"
        if feedback:
            self.net: Any = feedback_mlp(initial)
        else:
            self.net = nn.Sequential(nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(),
                                     nn.Linear(800, 10))
        self.linears = [m for m in self.net.modules() if hasattr(m, "weight")]
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=work.lr, momentum=0.0)
        self.loss = nn.CrossEntropyLoss()
        self.batches = _torch_batches(work)
        self.reset()

    def reset(self) -> None:
        torch = self.torch
        with torch.no_grad():
            for layer, (source, target) in zip(self.linears, LAYERS):
                layer.weight.copy_(torch.from_numpy(self.initial[f"{source}->{target}"].T))
                layer.bias.copy_(torch.from_numpy(self.initial[f"{target}.bias"]))

    def train(self, batches: Sequence[tuple[Any, Any]]) -> None:
        net, optimizer, loss_fn = self.net, self.optimizer, self.loss
        for xb, yb in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()

    def accuracy(self) -> float:
        torch = self.torch
        with torch.no_grad():
            logits = self.net(torch.from_numpy(self.work.x_test))
            return float((logits.argmax(dim=1).numpy() == self.work.y_test).mean())

    def parameters(self) -> dict[str, np.ndarray]:
        out = {}
        for layer, (source, target) in zip(self.linears, LAYERS):
            out[f"{source}->{target}"] = layer.weight.detach().numpy().T.copy()
            out[f"{target}.bias"] = layer.bias.detach().numpy().copy()
        return out


def _feedback_function() -> Any:
    """``torch.autograd.Function`` of a linear layer whose input gradient uses a fixed matrix."""
    import torch

    class FeedbackLinear(torch.autograd.Function):
        """``y = x @ Wᵀ + b``; backward: ``dx = dy @ B`` (B fixed, shaped like W), ``dW = dyᵀ x``."""

        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, bias: Any, feedback: Any) -> Any:
            ctx.save_for_backward(x, feedback)
            return torch.addmm(bias, x, weight.t())

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, feedback = ctx.saved_tensors
            grad_x = grad.mm(feedback) if ctx.needs_input_grad[0] else None
            grad_w = grad.t().mm(x) if ctx.needs_input_grad[1] else None
            grad_b = grad.sum(0) if ctx.needs_input_grad[2] else None
            return grad_x, grad_w, grad_b, None

    return FeedbackLinear


def feedback_mlp(initial: dict[str, np.ndarray]) -> Any:
    """784-800-800-10 ReLU network trained by feedback alignment (the torch reference).

    Layer ``A→B`` has the fixed feedback ``initial["B->A"]``, which circuits stores with shape
    ``(size of B, size of A)``: the layout of torch's ``(out, in)`` weight, used as it is.
    """
    import torch
    from torch import nn

    function = _feedback_function()

    class FeedbackLayer(nn.Module):
        def __init__(self, fan_in: int, fan_out: int, feedback: np.ndarray | None) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
            self.bias = nn.Parameter(torch.empty(fan_out))
            self.register_buffer("feedback", None if feedback is None else
                                 torch.from_numpy(np.array(feedback, dtype=np.float32, order="C")))

        def forward(self, x: Any) -> Any:
            if self.feedback is None:  # first layer: its input needs no gradient
                return torch.addmm(self.bias, x, self.weight.t())
            return function.apply(x, self.weight, self.bias, self.feedback)

    layers = [FeedbackLayer(SIZES[i], SIZES[i + 1], None if i == 0 else initial[f"{target}->{source}"])
              for i, (source, target) in enumerate(LAYERS)]
    return nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])


class TorchEqProp:
    """PyTorch reference of the EqProp case, written the way published EqProp code is.

    As in Laborieux et al. 2021's ``P_MLP`` (prototypical EqProp): the states are the rates
    (hard-sigmoid states live in [0, 1], where ``ρ(s) = s``), the layers are ``nn.Linear``, and
    the primitive function of a batch is

        Φ(x, h, y) = Σ h·(W_xh x + b_h) + Σ y·(W_hy h + b_y) − β·½‖y − target‖²,

    At every relaxation step ``torch.autograd.grad`` gives ``∂Φ/∂s`` for every state, and the
    state takes the clipped Euler step ``s ← clip(s + ε(∂Φ/∂s − s), 0, 1)`` (the published
    code's ``s ← σ(∂Φ/∂s)`` is ε = 1). States start at zero for every batch; the nudged
    phase continues from the free states. The update is ``backward`` of
    ``(Φ̄(s^β) − Φ̄(s⁰)) / (0 − β)`` (batch means) followed by ``optim.SGD`` with circuits'
    learning rate of each parameter (projection lrs for weights, the rule's lr for biases).
    """

    label = "pytorch"

    def __init__(self, initial: dict[str, np.ndarray], work: Workload, *, lrs: dict[str, float]) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.work = work
        self.initial = initial
        self.beta, self.eps = float(EQPROP["beta"]), float(EQPROP["step"])
        self.free_steps, self.nudged_steps = int(EQPROP["free_steps"]), int(EQPROP["nudged_steps"])
        self.sizes = (784, int(EQPROP["hidden"]), 10)
        self.names = (("x", "h"), ("h", "y"))
        self.synapses = nn.ModuleList([nn.Linear(self.sizes[i], self.sizes[i + 1]) for i in range(2)])
        groups = []
        for layer, (source, target) in zip(self.synapses, self.names):
            groups.append({"params": [layer.weight], "lr": lrs[f"{source}->{target}"]})
            groups.append({"params": [layer.bias], "lr": lrs[f"{target}.bias"]})
        self.optimizer = torch.optim.SGD(groups, lr=lrs[f"{self.names[0][0]}->{self.names[0][1]}"], momentum=0.0)
        eye = torch.eye(10)
        self.batches = [(torch.from_numpy(xb), eye[torch.from_numpy(yb).long()]) for xb, yb in work.batches]
        self.reset()

    def reset(self) -> None:
        torch = self.torch
        with torch.no_grad():
            for layer, (source, target) in zip(self.synapses, self.names):
                layer.weight.copy_(torch.from_numpy(self.initial[f"{source}->{target}"].T))
                layer.bias.copy_(torch.from_numpy(self.initial[f"{target}.bias"]))

    def phi(self, x: Any, neurons: list[Any], target: Any, beta: float) -> Any:
        """Per-example primitive function Φ (minus the nudging cost when ``beta``)."""
        layers = [x, *neurons]
        phi = 0.0
        for index, synapse in enumerate(self.synapses):
            phi = phi + (synapse(layers[index]) * layers[index + 1]).sum(dim=1)
        if beta:
            phi = phi - beta * 0.5 * ((neurons[-1] - target) ** 2).sum(dim=1)
        return phi

    def relax(self, x: Any, target: Any, neurons: list[Any], steps: int, beta: float) -> list[Any]:
        torch, eps = self.torch, self.eps
        ones = torch.ones(x.shape[0])
        for _ in range(steps):
            phi = self.phi(x, neurons, target, beta)
            grads = torch.autograd.grad(phi, neurons, grad_outputs=ones)
            with torch.no_grad():
                neurons = [torch.clamp(s + eps * (g - s), 0.0, 1.0).requires_grad_()
                           for s, g in zip(neurons, grads)]
        return neurons

    def train(self, batches: Sequence[tuple[Any, Any]]) -> None:
        torch, beta = self.torch, self.beta
        for x, target in batches:
            neurons = [torch.zeros(x.shape[0], n, requires_grad=True) for n in self.sizes[1:]]
            neurons = self.relax(x, target, neurons, self.free_steps, 0.0)
            free = [s.detach().clone() for s in neurons]
            neurons = self.relax(x, target, neurons, self.nudged_steps, beta)
            nudged = [s.detach() for s in neurons]
            self.optimizer.zero_grad(set_to_none=True)
            phi_free = self.phi(x, free, target, 0.0).mean()
            phi_nudged = self.phi(x, nudged, target, beta).mean()
            delta_phi = (phi_nudged - phi_free) / (0.0 - beta)
            delta_phi.backward()
            self.optimizer.step()

    def accuracy(self) -> float:
        """Argmax of the output after the free relaxation of the test set (not timed: no autograd,
        and the clamped input's drive computed once)."""
        torch = self.torch
        with torch.no_grad():
            x = torch.from_numpy(self.work.x_test)
            first, second = self.synapses
            bottom_up = first(x)
            h = torch.zeros(x.shape[0], self.sizes[1])
            y = torch.zeros(x.shape[0], self.sizes[2])
            for _ in range(self.free_steps):
                drive_h = bottom_up + y @ second.weight
                drive_y = second(h)
                h = torch.clamp(h + self.eps * (drive_h - h), 0.0, 1.0)
                y = torch.clamp(y + self.eps * (drive_y - y), 0.0, 1.0)
            return float((y.argmax(dim=1).numpy() == self.work.y_test).mean())

    def parameters(self) -> dict[str, np.ndarray]:
        out = {}
        for layer, (source, target) in zip(self.synapses, self.names):
            out[f"{source}->{target}"] = layer.weight.detach().numpy().T.copy()
            out[f"{target}.bias"] = layer.bias.detach().numpy().copy()
        return out


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Gemm:
    """One matrix product ``(m, k) @ (k, n)`` of a training step."""

    label: str
    m: int
    k: int
    n: int
    count: int = 1  # how many times a training step does this product
    one_thread: bool = False  # circuits holds BLAS to one thread for it (the conv kernels' small products)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


def mlp_gemms(batch: int) -> list[Gemm]:
    """GEMMs of one backprop/FA step: forward, input gradients of h2 and h1, weight gradients."""
    b = batch
    return [
        Gemm("fwd x@W1", b, 784, 800), Gemm("fwd h1@W2", b, 800, 800), Gemm("fwd h2@W3", b, 800, 10),
        Gemm("bwd dy@W3ᵀ|B3", b, 10, 800), Gemm("bwd dh2@W2ᵀ|B2", b, 800, 800),
        Gemm("dW1 xᵀ@d1", 784, b, 800), Gemm("dW2 h1ᵀ@d2", 800, b, 800), Gemm("dW3 h2ᵀ@dy", 800, b, 10),
    ]


MLP_FORMULA = ("per step 2·B·(784·800+800·800+800·10) forward + 2·B·(800·10+800·800) input "
               "gradients of h2, h1 + 2·B·(784·800+800·800+800·10) weight gradients; B = 100 "
               "(bias and elementwise work not counted)")


def _conv_gemm(op: Any, batch: int, phase: str, repeat: int) -> Gemm:
    """The GEMMs of one conv op as circuits' kernels make them (``circuits/backends/conv_kernels.py``):
    the forward conv one per example, or one over the batch below ``BATCHED_POSITIONS``
    positions; the transposed conv one over the batch (the zero columns of its wide grid not
    counted); the kernel gradient one over batch × positions. A batch whose columns exceed a
    chunk is counted as one product all the same."""
    from circuits import ops
    from circuits.backends import conv_kernels

    g = op.geometry
    label = f"{phase}: {type(op).__name__} {op.out}"
    if isinstance(op, ops.ConvTranspose):
        return Gemm(label, g.patch, g.out_channels, batch * g.positions, count=repeat)
    if isinstance(op, ops.ConvWeightGrad):
        return Gemm(label, g.out_channels, batch * g.positions, g.patch, count=repeat,
                    one_thread=g.out_channels * g.patch < conv_kernels.THREADED_KERNEL)
    if g.positions < conv_kernels.BATCHED_POSITIONS:
        return Gemm(label, g.out_channels, g.patch, batch * g.positions, count=repeat)
    return Gemm(label, g.out_channels, g.patch, g.positions, count=batch * repeat, one_thread=True)


def program_gemms(program: Any, batch: int) -> list[Gemm]:
    """The GEMMs a circuits program does per run: every ``MatMul``, ``OuterUpdate`` and conv GEMM
    (forward, transposed, kernel gradient), each counted once per repetition of its phase (a
    relaxation counted at its full step budget)."""
    from circuits import ops

    def shape(name: str) -> tuple[int, ...]:
        return program.buffers[name].concrete_shape(batch)

    rows = []
    for phase in program.phases:
        for op in phase.ops:
            if isinstance(op, (ops.Conv, ops.ConvGemm, ops.ConvTranspose, ops.ConvWeightGrad)):
                rows.append(_conv_gemm(op, batch, phase.name, phase.repeat))
                continue
            if isinstance(op, ops.MatMul):
                (m, k), b = shape(op.a), shape(op.b)
                n = b[0] if op.transpose_b else b[1]
                label = f"{phase.name}: {op.a} @ {op.b}{'ᵀ' if op.transpose_b else ''}"
            elif isinstance(op, ops.OuterUpdate):
                (k, m), (_, n) = shape(op.a), shape(op.b)
                label = f"{phase.name}: {op.a}ᵀ @ {op.b}"
            else:
                continue
            rows.append(Gemm(label, m, k, n, count=phase.repeat))
    return rows


@dataclass(frozen=True)
class Case:
    """A named benchmark: how to build the circuits and reference runners, and its GEMMs.

    ``gemms`` lists a training step's GEMMs given the circuits runner and the batch size.
    ``batch`` and ``normalize`` choose the case's workload. ``target_peak`` is ``None`` where
    a fraction of the GEMM peak is no target (a step of small products and elementwise work).
    """

    name: str
    title: str
    build: Callable[[Workload], tuple[Runner, list[Runner]]]
    gemms: Callable[[Any, int], list[Gemm]]
    flop_formula: str
    notes: str = ""
    batch: int = BATCH
    normalize: str = "standard"
    target_ratio: float = TARGET_RATIO
    target_peak: float | None = TARGET_PEAK_FRACTION
    target_ratios: dict[str, float] = field(default_factory=dict)  # other references' ratio targets
    steps: int | None = None  # training steps per timed run (None: one epoch of MNIST)

    def ratio_target(self, label: str) -> float | None:
        """The target of circuits' time over reference ``label``'s (``None``: reported, no target)."""
        return self.target_ratio if label == "pytorch" else self.target_ratios.get(label)


def _mlp_case(rule: str, extra: str, feedback: bool, api: str,
              references: Sequence[str]) -> Callable[[Workload], tuple[Runner, list[Runner]]]:
    def build(work: Workload) -> tuple[Runner, list[Runner]]:
        text = SPEC_TEMPLATE.format(rule=rule, lr=work.lr, extra=extra, batch=work.batch, seed=work.seed)
        ours = CircuitsRunner(text, work, api=api)
        refs: list[Runner] = []
        if "pytorch" in references:
            refs.append(TorchMLP(ours.initial, work, feedback=feedback))
        if "jax" in references:
            from bench_jax import JaxMLP

            refs.append(JaxMLP(ours.initial, LAYERS, work.batches, work.x_test, work.y_test,
                               lr=work.lr, feedback=feedback))
        return ours, refs
    return build


def _mlp_gemms(ours: Any, batch: int) -> list[Gemm]:
    return mlp_gemms(batch)


def _eqprop_case(api: str, references: Sequence[str]) -> Callable[[Workload], tuple[Runner, list[Runner]]]:
    def build(work: Workload) -> tuple[Runner, list[Runner]]:
        text = EQPROP_SPEC.format(batch=work.batch, seed=work.seed, **EQPROP)
        ours = CircuitsRunner(text, work, api=api)
        refs: list[Runner] = []
        if "pytorch" in references:  # no JAX reference of this case
            refs.append(TorchEqProp(ours.initial, work, lrs=dict(ours.model.compiled("train").lrs)))
        return ours, refs
    return build


def _lenet_case(rule: str, extra: str, feedback: bool, api: str,
                references: Sequence[str]) -> Callable[[Workload], tuple[Runner, list[Runner]]]:
    def build(work: Workload) -> tuple[Runner, list[Runner]]:
        from bench_lenet import LENET_LR, LENET_SPEC

        text = LENET_SPEC.format(rule=rule, lr=LENET_LR, extra=extra, batch=work.batch, seed=work.seed)
        ours = CircuitsRunner(text, work, api=api)
        refs: list[Runner] = []
        common = {"lr": LENET_LR, "feedback": feedback}
        if "pytorch" in references:
            from bench_lenet import TorchLeNet

            refs.append(TorchLeNet(ours.initial, work.batches, work.x_test, work.y_test,
                                   dense_feedback=_feedback_function(), **common))
        if "jax" in references:
            from bench_jax import _feedback_linear
            from bench_lenet import JaxLeNet

            refs.append(JaxLeNet(ours.initial, work.batches, work.x_test, work.y_test,
                                 dense_feedback=_feedback_linear(), **common))
        return ours, refs
    return build


def _program_gemms(ours: Any, batch: int) -> list[Gemm]:
    return program_gemms(ours.model.compiled("train"), batch)


LENET_FORMULA = ("the GEMMs of circuits' train program: per conv and example the im2col GEMM, the transposed "
                 "conv's GEMM (not for the first) and the kernel-gradient GEMM; per dense projection forward, input "
                 "gradient (not for the first) and weight gradient (im2col, col2im, pooling and "
                 "elementwise work not counted)")


def _eqprop_gemms(ours: Any, batch: int) -> list[Gemm]:
    return program_gemms(ours.model.compiled("train"), batch)


def make_cases(api: str, references: Sequence[str] = REFERENCES) -> dict[str, Case]:
    """The benchmark table (add a case here; ``--case NAME`` picks it).

    ``references`` names the implementations circuits is timed against (``pytorch``, ``jax``).
    """
    return {
        "bp": Case("bp", "backprop, MNIST 784-800-800-10 ReLU, SGD lr 0.1, batch 100",
                   _mlp_case("backprop", "", False, api, references), _mlp_gemms, MLP_FORMULA,
                   "torch: nn.Sequential(Linear, ReLU, ...), CrossEntropyLoss, optim.SGD; jax: jax.grad of "
                   "the mean cross-entropy in one jitted, buffer-donating step",
                   target_ratios={"jax": TARGET_RATIO_JAX}),
        "fa": Case("fa", "feedback alignment, MNIST 784-800-800-10 ReLU, SGD lr 0.1, batch 100",
                   _mlp_case("feedback_alignment",
                             f"auto_feedback = true\nfeedback_scale = {FA_FEEDBACK_SCALE}", True, api, references),
                   _mlp_gemms, MLP_FORMULA,
                   f"fixed feedback U[±{FA_FEEDBACK_SCALE}]; torch: autograd.Function with dx = dy @ B; "
                   "jax: jax.custom_vjp with dx = dy @ B",
                   target_ratios={"jax": TARGET_RATIO_JAX}),
        "lenet_bp": Case("lenet_bp", "backprop, LeNet-like MNIST circuit (conv5-pool2 ×2, 120, 10), SGD "
                         "lr 0.05, batch 100", _lenet_case("backprop", "", False, api, references),
                         _program_gemms, LENET_FORMULA,
                         "torch: F.conv2d/max_pool2d, per-unit biases, optim.SGD; jax: lax.conv_general_dilated "
                         "in one jitted step (tools/bench_lenet.py)",
                         target_ratio=TARGET_RATIO_LENET, target_peak=None, steps=LENET_STEPS),
        "lenet_fa": Case("lenet_fa", "feedback alignment, LeNet-like MNIST circuit (conv5-pool2 ×2, 120, 10), "
                         "SGD lr 0.05, batch 100",
                         _lenet_case("feedback_alignment",
                                     f"auto_feedback = true\nfeedback_scale = {FA_FEEDBACK_SCALE}", True, api,
                                     references),
                         _program_gemms, LENET_FORMULA,
                         f"fixed feedback kernels and matrices U[±{FA_FEEDBACK_SCALE}]; torch: autograd.Functions "
                         "(conv2d_input with the feedback kernel); jax: custom_vjp (the conv's VJP by the feedback kernel)",
                         target_ratio=TARGET_RATIO_LENET, target_peak=None, steps=LENET_STEPS),
        "eqprop": Case("eqprop", f"equilibrium propagation, MNIST 784-{EQPROP['hidden']}-10 hard sigmoid, "
                       f"batch {EQPROP_BATCH}, {EQPROP['free_steps']} free + {EQPROP['nudged_steps']} nudged "
                       f"steps, β {EQPROP['beta']}",
                       _eqprop_case(api, references), _eqprop_gemms, EQPROP_FORMULA,
                       "torch: primitive function Φ per relaxation step, state force by torch.autograd.grad, "
                       "clipped Euler step; weight update by backward of −(Φ(s^β) − Φ(s⁰))/β and optim.SGD "
                       "(Laborieux et al. 2021's code, with ε = 0.5)",
                       batch=EQPROP_BATCH, normalize="unit", target_ratio=EQPROP_TARGET_RATIO, target_peak=None),
    }


# ---------------------------------------------------------------------------------------------
# Measurements


def _median_seconds(fn: Callable[[], None], repeats: int, *, number: int = 1) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def gemm_peak(size: int, repeats: int) -> dict[str, float]:
    """NumPy float32 GEMM GFLOP/s on ``size``² matrices (median of ``repeats``)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    c = np.empty((size, size), dtype=np.float32)
    seconds = _median_seconds(lambda: np.matmul(a, b, out=c), repeats)
    return {"size": size, "seconds": seconds, "gflops": 2 * size**3 / seconds / 1e9}


def gemm_shapes(gemms: list[Gemm], repeats: int) -> dict[str, Any]:
    """NumPy float32 GEMM time of each of a step's shapes (median over ``repeats`` × 20 calls), on
    one BLAS thread where circuits computes the product on one."""
    import contextlib

    from circuits.backends.blas import one_thread

    rng = np.random.default_rng(0)
    rows, total = [], 0.0
    for g in gemms:
        a = rng.standard_normal((g.m, g.k), dtype=np.float32)
        b = rng.standard_normal((g.k, g.n), dtype=np.float32)
        c = np.empty((g.m, g.n), dtype=np.float32)
        with one_thread() if g.one_thread else contextlib.nullcontext():
            seconds = _median_seconds(lambda: np.matmul(a, b, out=c), repeats, number=20)
        rows.append({"label": g.label, "shape": [g.m, g.k, g.n], "count": g.count, "seconds": seconds,
                     "gflops": g.flops / g.count / seconds / 1e9})
        total += seconds * g.count
    flops = sum(g.flops for g in gemms)
    return {"per_shape": rows, "step_seconds": total, "gflops": flops / total / 1e9}


def param_differences(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                      initial: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Per parameter: ``max_abs`` = max|ours − ref|, ``rel`` = that / max|ours|, and, given the
    ``initial`` values, ``rel_change`` = that / max|ours − initial| (the difference measured
    against how far the steps moved the parameter)."""
    rows = {}
    for name, value in ref.items():
        diff = float(np.max(np.abs(ours[name] - value))) if value.size else 0.0
        row = {"max_abs": diff, "rel": diff / (float(np.max(np.abs(ours[name]))) or 1.0)}
        if initial is not None:
            moved = float(np.max(np.abs(ours[name] - initial[name]))) if value.size else 0.0
            row["rel_change"] = diff / (moved or 1.0)
        rows[name] = row
    return rows


def compare_updates(ours: Runner, ref: Runner, steps: int) -> float:
    """Largest ``max|Δ| / max|W|`` between the two sides' parameters after the same ``steps`` steps."""
    return max(row["rel"] for row in compare_parameters(ours, ref, steps).values())


def compare_parameters(ours: Runner, ref: Runner, steps: int) -> dict[str, dict[str, float]]:
    """:func:`param_differences` of the two sides after the same ``steps`` steps from the same init."""
    ours.reset()
    ref.reset()
    initial = {name: np.array(value, copy=True) for name, value in ours.parameters().items()}
    ours.train(ours.batches[:steps])
    ref.train(ref.batches[:steps])
    return param_differences(ours.parameters(), ref.parameters(), initial)


def step_overhead(runner: CircuitsRunner, work: Workload, calls: int = 300) -> dict[str, float]:
    """Per-step host work of ``Model.step`` beyond running the executable, in microseconds.

    Times ``Model.step``'s lookup of the executable, its input binding (shape and label
    checks, ``astype(int64)``, copies) and the ``float(loss)`` read-back, against binding by
    two ``np.copyto`` calls into the executable's input arrays. Nothing is learned here.
    """
    model = runner.model
    xb, yb = work.batches[0]
    exe = model.sim.executable(model.program, work.batch)

    def via_step() -> None:
        e = model.sim.executable(model.compiled("train"), len(xb))
        model._bind(e, xb, yb)
        float(e.arrays["loss.value"])

    x_in = exe.arrays[f"{model.graph.inputs[0]}.rate"]
    y_in, as_target = target_input(model, exe)

    def direct() -> None:
        np.copyto(x_in, xb)
        np.copyto(y_in, as_target(yb))

    step_us = _median_seconds(via_step, 5, number=calls) * 1e6
    direct_us = _median_seconds(direct, 5, number=calls) * 1e6
    return {"model_step_host_us": step_us, "direct_bind_us": direct_us,
            "extra_us_per_step": step_us - direct_us,
            "extra_ms_per_epoch": (step_us - direct_us) * work.steps / 1e3}


def op_profile(runner: CircuitsRunner, work: Workload, steps: int = 50) -> list[dict[str, Any]]:
    """Median wall time of every op of circuits' train step (runs ``steps`` steps op by op).

    ``ms`` is one call; ``ms_per_step`` multiplies it by the calls a step makes (a relaxation
    phase's step budget).
    """
    model = runner.model
    exe = model.sim.executable(model.program, work.batch)
    model._bind(exe, *work.batches[0])
    ops_by_phase = {phase.name: phase.ops for phase in model.program.phases}
    samples: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    for _ in range(steps):
        for phase, closures in exe.phases:
            for _ in range(phase.repeat):
                for index, closure in enumerate(closures):
                    start = time.perf_counter()
                    closure()
                    samples[(phase.name, index)].append(time.perf_counter() - start)
    repeats = {phase.name: phase.repeat for phase in model.program.phases}
    rows = []
    for (phase, index), times in samples.items():
        op = ops_by_phase[phase][index]
        ms = statistics.median(times) * 1e3
        rows.append({"phase": phase, "op": type(op).__name__, "math": op.math(), "ms": ms,
                     "calls": repeats[phase], "ms_per_step": ms * repeats[phase]})
    return rows


def blas_switch(calls: int = 200) -> dict[str, float] | None:
    """Cost of alternating NumPy's BLAS with SciPy's (circuits' fused update calls ``scipy.linalg.blas``).

    Times pairs of a forward-shaped product ``(100, 800) @ (800, 800)`` and a weight-update
    product ``(800, 100) @ (100, 800)``: both through ``np.matmul``, then the second through
    ``scipy.linalg.blas.sgemm`` as circuits' ``OuterUpdate`` does. When NumPy and SciPy bundle
    separate OpenBLAS copies, each keeps its own worker threads, which spin after a call and
    compete with the other library's threads for the cores.
    """
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((100, 800), dtype=np.float32)
    w = rng.standard_normal((800, 800), dtype=np.float32)
    out = np.empty((100, 800), dtype=np.float32)
    target = np.zeros((800, 800), dtype=np.float32)

    def numpy_pair() -> None:
        np.matmul(a, w, out=out)
        np.matmul(a.T, out, out=target)

    def mixed_pair() -> None:
        np.matmul(a, w, out=out)
        blas.sgemm(1e-6, out.T, a.T, beta=1.0, c=target.T, trans_b=1, overwrite_c=1)

    numpy_ms = _median_seconds(numpy_pair, 5, number=calls // 5) * 1e3
    mixed_ms = _median_seconds(mixed_pair, 5, number=calls // 5) * 1e3
    return {"numpy_numpy_pair_ms": numpy_ms, "numpy_scipy_pair_ms": mixed_ms}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    if "jax" in sys.modules:  # only when a case ran it: importing JAX starts nothing here
        jax = sys.modules["jax"]
        info["jax"] = jax.__version__
        info["jax_backend"] = f"{jax.default_backend()}, {jax.local_device_count()} device(s)"
        info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    try:
        from threadpoolctl import threadpool_info

        info["thread_pools"] = [f"{p.get('internal_api')} {p.get('version') or '(version unknown)'} from "
                                f"{os.path.basename(os.path.dirname(p.get('filepath', '')))}: "
                                f"{p.get('num_threads')} threads"
                                + (f", {p['architecture']} kernels" if p.get("architecture") else "")
                                for p in threadpool_info()]
    except ImportError:
        pass
    return info


# ---------------------------------------------------------------------------------------------
# Running and reporting


@dataclass
class CaseResult:
    case: Case
    circuits_seconds: list[float] = field(default_factory=list)
    circuits_accuracy: float = float("nan")
    references: dict[str, ReferenceResult] = field(default_factory=dict)
    check_steps: int = 0
    overhead: dict[str, float] = field(default_factory=dict)
    profile: list[dict[str, Any]] = field(default_factory=list)
    shapes: dict[str, Any] = field(default_factory=dict)
    gemms: list[Gemm] = field(default_factory=list)
    steps: int = 0
    batch: int = BATCH

    def summary(self, peak: float) -> dict[str, Any]:
        """The case's JSON record: circuits' numbers, one entry per reference under ``vs``, and
        (for the first reference, PyTorch) the flat ``reference_*`` keys of earlier records."""
        ours = statistics.median(self.circuits_seconds)
        steps = self.steps
        flops = sum(g.flops for g in self.gemms) * steps
        gflops = flops / ours / 1e9
        fraction = gflops / peak
        target_peak = self.case.target_peak
        versus = {}
        for label, ref in self.references.items():
            median = statistics.median(ref.seconds)
            target = self.case.ratio_target(label)
            versus[label] = {"seconds": ref.seconds, "median_s": median, "ratio": ours / median,
                             "target_ratio": target, "meets_ratio": target is None or ours / median <= target,
                             "gflops": flops / median / 1e9, "peak_fraction": flops / median / 1e9 / peak,
                             "accuracy": ref.accuracy, "max_param_rel_diff": ref.max_param_diff,
                             "param_diffs": ref.param_diffs}
        out = {
            "title": self.case.title, "steps": steps, "batch": self.batch,
            "target_ratio": self.case.target_ratio, "target_peak_fraction": target_peak,
            "circuits_seconds": self.circuits_seconds, "circuits_median_s": ours,
            "gflop_per_epoch": flops / 1e9, "circuits_gflops": gflops, "peak_fraction": fraction,
            "gemm_floor_s": self.shapes.get("step_seconds", float("nan")) * steps,
            "circuits_accuracy": self.circuits_accuracy,
            "param_check_steps": self.check_steps, "flop_formula": self.case.flop_formula,
            "model_step_overhead": self.overhead, "gemm_shapes": self.shapes,
            "op_profile_ms": self.profile, "vs": versus,
            "meets_ratio": all(v["meets_ratio"] for v in versus.values()),
            "meets_peak": target_peak is None or fraction >= target_peak,
        }
        if "pytorch" in versus:
            torch = versus["pytorch"]
            out.update({"reference_seconds": torch["seconds"], "reference_median_s": torch["median_s"],
                        "ratio": torch["ratio"], "reference_gflops": torch["gflops"],
                        "reference_accuracy": torch["accuracy"], "max_param_rel_diff": torch["max_param_rel_diff"],
                        "param_diffs": torch["param_diffs"]})
        return out


@dataclass
class ReferenceResult:
    """One reference implementation's timings, accuracy and agreement with circuits."""

    seconds: list[float] = field(default_factory=list)
    accuracy: float = float("nan")
    param_diffs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def max_param_diff(self) -> float:
        return max((row["rel"] for row in self.param_diffs.values()), default=float("nan"))


def run_case(case: Case, work: Workload, repeats: int, *, profile: bool, log: Callable[[str], None],
             shape_repeats: int) -> CaseResult:
    """Time circuits and every reference on ``work``, alternating runs, after checking they agree."""
    result = CaseResult(case, steps=work.steps, batch=work.batch, check_steps=min(3, work.steps))
    ours, refs = case.build(work)
    # Warm-up (and for JAX compilation) doubling as a check that each side computes the same update.
    for ref in refs:
        entry = result.references[ref.label] = ReferenceResult()
        entry.param_diffs = compare_parameters(ours, ref, steps=result.check_steps)
        worst_abs = max(row["max_abs"] for row in entry.param_diffs.values())
        log(f"[{case.name}] circuits vs {ref.label}: parameters after {result.check_steps} identical steps "
            f"differ by at most {entry.max_param_diff:.2e} (relative to max |W|), {worst_abs:.2e} absolute")
    for r in range(repeats):  # alternate, so every side sees the same drift in machine load
        for runner in (ours, *refs):
            times = result.circuits_seconds if runner is ours else result.references[runner.label].seconds
            runner.reset()
            gc.collect()
            start = time.perf_counter()
            runner.train(runner.batches)
            times.append(time.perf_counter() - start)
            log(f"[{case.name}] repeat {r + 1}/{repeats}: {runner.label:8s} {times[-1]:7.3f} s")
    result.circuits_accuracy = ours.accuracy()
    for ref in refs:
        result.references[ref.label].accuracy = ref.accuracy()
    if isinstance(ours, CircuitsRunner):
        result.overhead = step_overhead(ours, work)
        if profile:
            result.profile = op_profile(ours, work)
    result.gemms = case.gemms(ours, work.batch)
    result.shapes = gemm_shapes(result.gemms, shape_repeats)
    return result


def report(results: list[CaseResult], peak: dict[str, float], info: dict[str, Any],
           args: argparse.Namespace) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 150))
    console.print(f"[bold]circuits vs PyTorch and JAX on the CPU[/bold] — "
                  f"{', '.join(f'{r.case.name}: {r.steps} steps of batch {r.batch}' for r in results)} per "
                  f"run, median of {args.repeats} alternating run(s) each, float32")
    console.print(f"machine: {info.get('processor')} ({info.get('cpus')} CPUs, load average "
                  f"{info.get('load_average')}), numpy {info['numpy']}, torch {info.get('torch')} "
                  f"({info.get('torch_threads')} threads), jax {info.get('jax')} ({info.get('jax_backend')})")
    for pool in info.get("thread_pools", []):
        console.print(f"  thread pool: {pool}")
    console.print(f"NumPy float32 GEMM peak ({peak['size']}²): {peak['gflops']:.1f} GFLOP/s")
    switch = info.get("blas_switch")
    if switch:
        console.print(f"BLAS switch: (100,800)@(800,800) then (800,100)@(100,800) takes "
                      f"{switch['numpy_numpy_pair_ms']:.3f} ms with np.matmul twice, "
                      f"{switch['numpy_scipy_pair_ms']:.3f} ms when the second is scipy.linalg.blas.sgemm")

    labels = list(dict.fromkeys(label for res in results for label in res.references))
    table = Table(title="seconds per run of training (median), throughput, sanity checks")
    columns = ["case", "circuits s", *(f"{label} s" for label in labels),
               *(f"ratio to {label} (target)" for label in labels), "circuits GFLOP/s", "of peak (target)",
               "GEMM floor s", "test acc " + " / ".join(["circuits", *labels]), "max Δparam"]
    for col in columns:
        table.add_column(col, justify="right" if col != "case" else "left")
    summaries = {}
    mark = {True: "[green]✓[/green]", False: "[red]✗[/red]"}
    for res in results:
        s = res.summary(peak["gflops"])
        summaries[res.case.name] = s
        versus = s["vs"]
        target_peak = res.case.target_peak
        peak_cell = f"{s['peak_fraction']:.0%} " + (f"(≥{target_peak:.0%}) {mark[s['meets_peak']]}"
                                                   if target_peak is not None else "(none)")

        def cell(label: str, fmt: Callable[[dict[str, Any]], str]) -> str:
            return fmt(versus[label]) if label in versus else "—"

        def ratio_cell(v: dict[str, Any]) -> str:
            target = f"≤{v['target_ratio']}" if v["target_ratio"] is not None else "none"
            return f"{v['ratio']:.2f} ({target}) " + (mark[v["meets_ratio"]] if v["target_ratio"] is not None else "")

        worst = max((v["max_param_rel_diff"] for v in versus.values()), default=float("nan"))
        table.add_row(res.case.name, f"{s['circuits_median_s']:.3f}",
                      *(cell(label, lambda v: f"{v['median_s']:.3f}") for label in labels),
                      *(cell(label, ratio_cell) for label in labels),
                      f"{s['circuits_gflops']:.1f}", peak_cell, f"{s['gemm_floor_s']:.3f}",
                      " / ".join([f"{s['circuits_accuracy']:.4f}",
                                  *(cell(label, lambda v: f"{v['accuracy']:.4f}") for label in labels)]),
                      f"{worst:.1e}")
    console.print(table)
    for res in results:
        s = summaries[res.case.name]
        console.print(f"[bold]{res.case.name}[/bold]: {res.case.title}; {res.case.notes}")
        for label, v in s["vs"].items():
            console.print(f"  parameters after {res.check_steps} identical steps, circuits vs {label}: " + "; ".join(
                f"{name} max|Δ| {row['max_abs']:.1e} ({row['rel']:.1e} of max|W|"
                + (f", {row['rel_change']:.1e} of max|change|" if "rel_change" in row else "") + ")"
                for name, row in v["param_diffs"].items()))
        console.print(f"  runs circuits: {', '.join(f'{t:.3f}' for t in s['circuits_seconds'])} s; " + "; ".join(
            f"{label}: {', '.join(f'{t:.3f}' for t in v['seconds'])} s" for label, v in s["vs"].items()))
        console.print(f"  GFLOP/s: circuits {s['circuits_gflops']:.1f} ({s['peak_fraction']:.0%} of peak); "
                      + "; ".join(f"{label} {v['gflops']:.1f} ({v['peak_fraction']:.0%})" for label, v in s["vs"].items()))
        console.print(f"  FLOPs: {s['gflop_per_epoch']:.1f} GFLOP per run = {res.case.flop_formula}")
        shapes = ", ".join(f"{r['label']} {r['gflops']:.0f}" for r in res.shapes["per_shape"])
        console.print(f"  NumPy GEMM GFLOP/s on this case's shapes: {shapes}; all together "
                      f"{res.shapes['gflops']:.1f} GFLOP/s → GEMM-only floor {s['gemm_floor_s']:.3f} s per run")
        o = res.overhead
        if o:
            console.print(f"  Model.step host overhead: {o['model_step_host_us']:.1f} µs/step vs "
                          f"{o['direct_bind_us']:.1f} µs binding by np.copyto → "
                          f"{o['extra_ms_per_epoch']:.1f} ms per run extra")
        if res.profile:
            total = sum(r["ms_per_step"] for r in res.profile)
            prof = Table(title=f"{res.case.name}: circuits train step, median ms per op call and per step")
            for col in ("phase", "op", "math", "ms/call", "calls", "ms/step", "share"):
                prof.add_column(col, justify="left" if col in ("phase", "op", "math") else "right")
            for row in res.profile:
                prof.add_row(row["phase"], row["op"], row["math"], f"{row['ms']:.4f}", str(row["calls"]),
                             f"{row['ms_per_step']:.3f}", f"{row['ms_per_step'] / total:.0%}")
            prof.add_row("", "total", "", "", "", f"{total:.3f}", "")
            console.print(prof)
            by_type: dict[str, float] = collections.defaultdict(float)
            for row in res.profile:
                by_type[row["op"]] += row["ms_per_step"]
            console.print("  by op type (ms/step): " + ", ".join(
                f"{name} {ms:.3f} ({ms / total:.0%})" for name, ms in sorted(by_type.items(), key=lambda kv: -kv[1])))
    met = all(s["meets_ratio"] and s["meets_peak"] for s in summaries.values())
    console.print("targets (each case's ratio and GEMM-peak fraction, as in the table): "
                  + ("[green]met[/green]" if met else "[red]not met[/red]"))

    def common(key: str) -> Any:  # one value when every case agrees (the MLP cases), else None
        values = {s[key] for s in summaries.values()}
        return values.pop() if len(values) == 1 else None

    return {"bench": "circuits-vs-pytorch-and-jax", "references": labels, "steps": common("steps"),
            "batch": common("batch"),
            "repeats": args.repeats, "quick": args.quick, "api": args.api, "machine": info,
            "gemm_peak": peak, "targets": {"ratio_max": TARGET_RATIO, "ratio_max_jax": TARGET_RATIO_JAX,
                                           "peak_fraction_min": TARGET_PEAK_FRACTION,
                                           "per_case": {name: {"ratio_max": s["target_ratio"],
                                                               "ratio_max_by_reference": {
                                                                   label: v["target_ratio"]
                                                                   for label, v in s["vs"].items()},
                                                               "peak_fraction_min": s["target_peak_fraction"]}
                                                        for name, s in summaries.items()}},
            "cases": summaries, "targets_met": met}


def limit_threads(threads: int) -> None:
    """Every side on ``threads`` threads: torch's intra-op pool, XLA's (set before JAX starts), and
    every BLAS pool NumPy and SciPy load (on a shared machine, spinning BLAS threads fighting for
    cores distort timings). Where the OS allows it the process is also bound to ``threads`` of its
    cores: XLA:CPU keeps more than one busy thread even with its flags at one (measured: 1.5 CPU-s
    per wall second on a jitted 100×800×800 GEMM loop), which the flags alone would let use a core
    the other sides are denied."""
    import torch
    from bench_jax import limit_xla_threads
    from threadpoolctl import threadpool_limits

    limit_xla_threads(threads)
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[:threads])
    torch.set_num_threads(threads)
    try:
        import scipy.linalg  # noqa: F401  (load SciPy's BLAS too, so the limit reaches it)
    except ImportError:
        pass
    threadpool_limits(threads)


def parse_args(argv: Sequence[str] | None, case_names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=list(case_names),
                        help="case to run (repeatable; default: " + ", ".join(DEFAULT_CASES) + ")")
    parser.add_argument("--reference", action="append", choices=list(REFERENCES),
                        help="implementation to time circuits against (repeatable; default: pytorch and jax)")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per side (default 3)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per timed run (default: all of MNIST's 60k, i.e. 600 steps of "
                             f"batch {BATCH} for bp and fa, {MNIST_TRAIN // EQPROP_BATCH} of batch "
                             f"{EQPROP_BATCH} for eqprop; {LENET_STEPS} steps for the LeNet cases)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 steps, 1 repeat")
    parser.add_argument("--seed", type=int, default=0, help="init and batch-order seed")
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
    parser.add_argument("--data-dir", default=os.environ.get("CIRCUITS_DATA", os.path.normpath(beside)),
                        help="folder holding mnist/ (default: $CIRCUITS_DATA, else ../shared/data beside "
                             "the repository)")
    parser.add_argument("--gemm-size", type=int, default=2048, help="side of the square peak GEMM")
    parser.add_argument("--api", choices=("step", "executable"), default="step",
                        help="circuits entry point timed: Model.step (default) or the bound executable")
    parser.add_argument("--profile", action="store_true", help="also print circuits' per-op times")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS and torch to this many threads (default: leave them be)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", metavar="PATH", help="also write the final JSON line to PATH")
    args = parser.parse_args(argv)
    if args.steps is None and args.quick:
        args.steps = 100
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.repeats < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--repeats and --steps must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_jax beside this file
    args = parse_args(argv, list(make_cases("step")))
    references = tuple(dict.fromkeys(args.reference or REFERENCES))
    for module, label in (("torch", "PyTorch"), ("jax", "JAX")):
        if module == "torch" or "jax" in references:
            if importlib.util.find_spec(module) is None:  # not imported: XLA reads its flags on import
                print(f"{label} is not installed: pip install 'circuits[bench]'", file=sys.stderr)
                return 2
    if args.threads is not None:
        limit_threads(args.threads)
    cases = make_cases(args.api, references)
    chosen = [cases[name] for name in dict.fromkeys(args.case or DEFAULT_CASES)]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    workloads: dict[tuple[int, str, int], Workload] = {}

    def workload_key(case: Case) -> tuple[int, str, int]:
        return case.batch, case.normalize, args.steps or case.steps or MNIST_TRAIN // case.batch

    for case in chosen:  # one workload per batch size, normalisation and length, loaded before any timing
        key = workload_key(case)
        if key not in workloads:
            steps = key[2]
            log(f"loading MNIST from {args.data_dir} ({case.normalize} inputs, {steps} batches of {case.batch}) ...")
            workloads[key] = load_workload(args.data_dir, args.seed, steps, batch=case.batch,
                                           normalize=case.normalize)
    peak_repeats = 3 if args.quick else 7
    log(f"measuring the NumPy GEMM peak ({args.gemm_size}², median of {peak_repeats}) ...")
    peak = gemm_peak(args.gemm_size, peak_repeats)
    results = [run_case(case, workloads[workload_key(case)], args.repeats, profile=args.profile,
                        log=log, shape_repeats=3 if args.quick else 5) for case in chosen]
    # Measure the peak again after the cases and keep the better one (a busy machine only slows it).
    again = gemm_peak(args.gemm_size, peak_repeats)
    peak = max(peak, again, key=lambda p: p["gflops"])
    info = machine_info()  # after the cases: every BLAS library they use is loaded by now
    if args.profile:
        info["blas_switch"] = blas_switch()
    summary = report(results, peak, info, args)
    line = json.dumps(summary, default=float)
    print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")
    return 1 if args.check and not summary["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
