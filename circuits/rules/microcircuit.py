"""The layout of a dendritic cortical microcircuit, its creation, and its closed forms.

A microcircuit (Sacramento et al. 2018) is a chain of pyramidal populations
``P_0 (input) → P_1 → … → P_N (output)``; each hidden layer ``P_k`` has an interneuron
population ``I_k`` sized like ``P_{k+1}``, a top-down feedback projection ``P_{k+1} → P_k``
onto its apical dendrites, a lateral projection ``P_k → I_k`` onto the interneurons'
dendrite and a lateral projection ``I_k → P_k`` back onto the apical dendrites.

:func:`create_microcircuit` adds whatever of that a plain feed-forward spec lacks (the rule
option ``microcircuit``); :func:`layers_of` reads the layout of a checked graph;
:func:`self_predicting_weights` gives the closed-form state in which every apical potential
is zero without a target; :func:`feedforward_gradients` is backprop of the equivalent
feed-forward network (hidden gains ``g_B/(g_lk + g_B + g_A)``, output gain
``g_B/(g_lk + g_B)``), which :meth:`Model.gradients` returns for the dendritic rules.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from circuits.cells import CONDUCTANCES
from circuits.errors import CompileError
from circuits.graph import CircuitGraph
from circuits.rates import Elementwise
from circuits.spec import CircuitSpec, InitSpec, PopulationSpec, ProjectionSpec

__all__ = ["Layer", "layers_of", "create_microcircuit", "gains", "self_predicting_weights",
           "feedforward_pass", "feedforward_gradients", "RATE_FUNCTIONS", "rate_pair"]


@attrs.frozen
class Layer:
    """One pyramidal population of the chain and the projections that serve it.

    ``forward`` comes from the layer below (basal); for a hidden layer, ``topdown`` from the
    layer above and ``inhibition`` from its interneurons land on the apical dendrite, and
    ``dendrite`` carries its rates to the interneurons ``interneuron``.
    """

    name: str
    below: str
    forward: str
    above: str | None = None
    interneuron: str | None = None
    topdown: str | None = None
    dendrite: str | None = None
    inhibition: str | None = None

    @property
    def hidden(self) -> bool:
        """Whether the layer has an apical dendrite that hears a layer above."""
        return self.above is not None


def _conductance(pop: PopulationSpec, key: str) -> float:
    value = getattr(pop, key)
    return CONDUCTANCES[key][0] if value is None else float(value)


def gains(graph: CircuitGraph, layer: Layer) -> dict[str, float]:
    """A layer's conductances and the mixing weights of the paper's MNIST sweep.

    ``gain`` = g_B/(g_lk + g_B + g_A) (g_A = 0 for the output): the bottom-up potential is
    ``gain · v_B``. ``lam`` = g_A/(g_lk + g_B + g_A) for a hidden layer (``u = gain·v_B +
    lam·v_A``) and g_som/(g_lk + g_B + g_som) for the output (``u = (1 − lam)·û + lam·u_tgt``).
    For a hidden layer, ``gain_i`` = g_D/(g_lk + g_D) and ``lam_i`` = g_som/(g_lk + g_D + g_som)
    of its interneurons.
    """
    pop = graph.population(layer.name)
    g_lk, g_b = _conductance(pop, "g_lk"), _conductance(pop, "g_basal")
    g_a = _conductance(pop, "g_apical") if layer.hidden else 0.0
    g_som = _conductance(pop, "g_som")
    values = {"g_lk": g_lk, "g_b": g_b, "g_a": g_a, "g_som": g_som,
              "gain": g_b / (g_lk + g_b + g_a),
              "lam": g_a / (g_lk + g_b + g_a) if layer.hidden else g_som / (g_lk + g_b + g_som)}
    if layer.interneuron is not None:
        inter = graph.population(layer.interneuron)
        i_lk, g_d, i_som = (_conductance(inter, k) for k in ("g_lk", "g_dendrite", "g_som"))
        values.update(i_lk=i_lk, g_d=g_d, i_som=i_som, gain_i=g_d / (i_lk + g_d),
                      lam_i=i_som / (i_lk + g_d + i_som))
    return values


def layers_of(graph: CircuitGraph, rule: str) -> list[Layer]:
    """The pyramidal chain of a checked graph, first hidden layer first.

    Raises
    ------
    CompileError
        When the circuit is not a layered chain of pyramidal populations with one
        interneuron population, one top-down projection and both lateral projections per
        hidden layer.
    """
    src = graph.spec.source
    if not graph.is_layered() or not graph.hidden:
        raise CompileError(f"{src}: rule '{rule}' needs a layered chain input → h1 → … → output with at "
                           "least one hidden population")
    chain = graph.forward_order()
    layers = []
    for below, name, above in zip(chain, chain[1:], [*chain[2:], None]):
        if graph.population(name).cell != "pyramidal":
            raise CompileError(f"{src}: populations.{name}.cell: rule '{rule}' runs pyramidal cells; set "
                               "cell = \"pyramidal\" (or rule.microcircuit creates them)")
        forward = graph.incoming(name)[0]
        if forward.compartment != "basal":
            raise CompileError(f"{src}: projection '{forward.name}': forward input lands on the basal "
                               "dendrite under rule '{rule}'; set compartment = \"basal\"")
        if above is None:
            for proj in graph.projections():
                if proj.target == name and proj.type != "forward":
                    raise CompileError(f"{src}: projection '{proj.name}': the output has no apical "
                                       f"dendrite under rule '{rule}'; remove it")
            layers.append(Layer(name=name, below=below, forward=forward.name))
            continue
        layers.append(_hidden_layer(graph, rule, name, below, forward.name, above))
    return layers


def _hidden_layer(graph: CircuitGraph, rule: str, name: str, below: str, forward: str, above: str) -> Layer:
    src = graph.spec.source
    inters = [i for i in graph.interneurons if graph.served_by(i) == name]
    if len(inters) != 1:
        raise CompileError(f"{src}: population '{name}': rule '{rule}' needs one interneuron population "
                           f"serving it (got {len(inters)}); set rule.microcircuit to create it")
    inter = inters[0]
    if graph.population(inter).size != graph.population(above).size:
        raise CompileError(f"{src}: populations.{inter}.size: interneurons predict the layer above, so "
                           f"they number {graph.population(above).size} like '{above}' "
                           f"(got {graph.population(inter).size})")
    topdown = [p for p in graph.projections("feedback") if p.source == above and p.target == name]
    if len(topdown) != 1:
        raise CompileError(f"{src}: rule '{rule}' needs one feedback projection from '{above}' to '{name}' "
                           f"(its apical top-down input; got {len(topdown)}); set rule.microcircuit to create it")
    others = [p for p in graph.projections() if p.target == name and p.type != "forward"
              and p.name != topdown[0].name and p.source != inter]
    if others or topdown[0].compartment != "apical":
        bad = others[0] if others else topdown[0]
        raise CompileError(f"{src}: projection '{bad.name}': rule '{rule}' has only the top-down and the "
                           "interneuron projections on a hidden layer's apical dendrite; remove it or set "
                           "compartment = \"apical\" on the top-down one")
    dendrite = [p for p in graph.incoming(inter, "lateral") if p.source == name][0]
    inhibition = [p for p in graph.outgoing(inter, "lateral") if p.target == name][0]
    for proj in graph.incoming(above):
        if proj.bias:
            raise CompileError(f"{src}: projection '{proj.name}': interneurons have no bias, so they "
                               f"cannot predict a biased '{above}' and the self-predicting state does not "
                               "exist; set bias = false")
    return Layer(name=name, below=below, forward=forward, above=above, interneuron=inter,
                 topdown=topdown[0].name, dendrite=dendrite.name, inhibition=inhibition.name)


def create_microcircuit(spec: CircuitSpec, *, topdown_plastic: bool, inhibition_plastic: bool,
                        topdown_scale: float = 0.0) -> CircuitSpec:
    """``spec`` with pyramidal cells, interneurons and their projections added where missing.

    Hidden and output point populations become pyramidal (default conductances); forward
    projections into them land on the basal dendrite. Each hidden layer ``h`` below ``a``
    gets an interneuron population ``h_inter`` (size and rate function of ``a``), a top-down
    projection ``a->h`` (feedback, apical; xavier init, or uniform on ``[−topdown_scale,
    topdown_scale]`` when that is > 0), ``h->h_inter`` (lateral, plastic) and ``h_inter->h``
    (lateral, apical). Created weights are drawn like any other; the rule sets the
    self-predicting values after drawing them when asked.
    """
    topdown_init = (InitSpec(scheme="uniform", scale=topdown_scale) if topdown_scale > 0
                    else InitSpec(scheme="xavier"))
    defaults = {key: default for key, (default, _) in CONDUCTANCES.items()}
    pops = [attrs.evolve(p, cell="pyramidal", **defaults) if p.role != "input" and p.cell is None else p
            for p in spec.populations]
    cells = {p.name: p.cell for p in pops}
    projections = [attrs.evolve(p, compartment="basal") if cells[p.target] == "pyramidal" and p.compartment is None
                   and p.type == "forward" else p for p in spec.projections]
    graph = CircuitGraph(attrs.evolve(spec, populations=tuple(pops), projections=tuple(projections)))
    if not graph.is_layered():
        return spec  # the rule's check names what is wrong
    chain = graph.forward_order()
    names = {p.name for p in pops} | {p.name for p in projections}
    for name, above in zip(chain[1:], chain[2:]):
        inter = next((i for i in graph.interneurons if graph.served_by(i) == name), None)
        top = graph.population(above)
        if inter is None:
            inter = _fresh(f"{name}_inter", names)
            pops.append(PopulationSpec(name=inter, size=top.size, role="hidden", activation=top.activation,
                                       rate_params=top.rate_params, cell="interneuron", **defaults))
            projections.append(ProjectionSpec(source=name, target=inter, type="lateral",
                                              name=_fresh(f"{name}->{inter}", names), bias=False))
            projections.append(ProjectionSpec(source=inter, target=name, type="lateral",
                                              name=_fresh(f"{inter}->{name}", names), bias=False,
                                              plastic=inhibition_plastic, compartment="apical"))
        if not any(p.type == "feedback" and p.source == above and p.target == name for p in projections):
            projections.append(ProjectionSpec(source=above, target=name, type="feedback",
                                              name=_fresh(f"{above}->{name}", names), bias=False,
                                              plastic=topdown_plastic, compartment="apical",
                                              init=topdown_init))
    return attrs.evolve(spec, populations=tuple(pops), projections=tuple(projections))


def _fresh(name: str, taken: set[str]) -> str:
    base, index = name, 2
    while name in taken:
        name, index = f"{base}{index}", index + 1
    taken.add(name)
    return name


def self_predicting_weights(graph: CircuitGraph, layers: list[Layer],
                            params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights of the self-predicting state (Sacramento et al. 2018):

    ``W_{P→I} = g_B(g_lk + g_D) / (g_D(g_lk + g_B + g_A)) · W_{forward of the layer above}``
    (conductances g_B, g_A of the layer above, g_A = 0 at the output; g_lk, g_D of the
    interneurons), so the interneurons' bottom-up potential equals the layer above's; and
    ``W_{I→P} = −W_{top-down}``, so the apical potential cancels without a target.
    """
    out = {}
    by_name = {layer.name: layer for layer in layers}
    for layer in layers:
        if not layer.hidden:
            continue
        above = by_name[layer.above]
        up, inter = gains(graph, above), gains(graph, layer)
        ratio = up["gain"] / inter["gain_i"]
        out[layer.dendrite] = ratio * np.asarray(params[above.forward], dtype=np.float64)
        out[layer.inhibition] = -np.asarray(params[layer.topdown], dtype=np.float64)
    return out


def _sigmoid(u: np.ndarray) -> np.ndarray:
    """``1/(1 + e^(−u))`` without overflow for large ``|u|``."""
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


RATE_FUNCTIONS = {
    "linear": (lambda u: u, lambda u: np.ones_like(u)),
    "sigmoid": (lambda u: _sigmoid(u), lambda u: _sigmoid(u) * _sigmoid(-u)),
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(np.float64)),
    "hard_sigmoid": (lambda u: np.clip(u, 0.0, 1.0), lambda u: ((u > 0) & (u < 1)).astype(np.float64)),
    "softplus": (lambda u: np.logaddexp(u, 0.0), lambda u: _sigmoid(u)),
}


def rate_pair(graph: CircuitGraph, pop: str) -> tuple[Elementwise, Elementwise]:
    """NumPy ``(φ, φ')`` of population ``pop``, its scale, shift and gain included (float64)."""
    spec = graph.population(pop)
    rate, slope = spec.rate_params.wrap(*RATE_FUNCTIONS[spec.activation])
    return rate, slope


def feedforward_pass(graph: CircuitGraph, layers: list[Layer], params: Mapping[str, np.ndarray],
                     x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Bottom-up potentials ``û_k = gain_k · (r_{k−1} W_k + b_k)`` and rates of every layer (float64)."""
    rate, potentials, rates = np.asarray(x, dtype=np.float64), [], []
    for layer in layers:
        basal = rate @ np.asarray(params[layer.forward], dtype=np.float64)
        if f"{layer.name}.bias" in params:
            basal = basal + np.asarray(params[f"{layer.name}.bias"], dtype=np.float64)
        u = gains(graph, layer)["gain"] * basal
        rate = rate_pair(graph, layer.name)[0](u)
        potentials.append(u)
        rates.append(rate)
    return potentials, rates


def feedforward_gradients(graph: CircuitGraph, layers: list[Layer], params: Mapping[str, np.ndarray],
                          x: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Backprop of ``mean_b ½‖φ(û_N) − target‖²`` through the equivalent feed-forward network."""
    potentials, rates = feedforward_pass(graph, layers, params, x)
    grad = (rates[-1] - target) / len(x)
    inputs = [np.asarray(x, dtype=np.float64), *rates[:-1]]
    out = {}
    for index in reversed(range(len(layers))):
        layer = layers[index]
        delta = grad * rate_pair(graph, layer.name)[1](potentials[index]) * gains(graph, layer)["gain"]
        out[layer.forward] = inputs[index].T @ delta
        if f"{layer.name}.bias" in params:
            out[f"{layer.name}.bias"] = delta.sum(axis=0)
        grad = delta @ np.asarray(params[layer.forward], dtype=np.float64).T
    return out
