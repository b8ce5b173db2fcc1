"""The parametrized local plasticity family (Confavreux et al. 2020; Shervani-Tabar & Rosenbaum 2023).

Every plastic forward projection A→B changes by a weighted sum of named terms::

    ΔW = lr · Σ_k θ_k · term_k,   term_k = mean_batch(pre^a · err_pre^d · post^b · err^c) · w^e

``pre`` is A's rate, ``post`` B's rate, ``err`` the error signal at B's pre-activation as
feedback alignment delivers it (the loss gradient at the output, fixed random feedback
below it), ``err_pre`` the same signal at A (zero when A is an input), ``w`` the weight,
elementwise. ``err`` and ``err_pre`` are per-example signals (the batch-mean delta times
the batch size), so ``{"pre*err" = -1}`` is exactly FA and ``{"pre*post" = 1,
"post^2*w" = -1}`` is Oja's rule. Biases follow the same family with ``pre = 1`` (and
``err_pre = 0``).

Lowering: the product of each side's factors per example (:class:`~circuits.ops.PowerProduct`),
one GEMM per distinct (pre side, post side) pair shared by every term that needs it
(:class:`~circuits.ops.PlasticGram`), then one elementwise pass per parameter that weights
the GEMMs by θ and powers of w (:class:`~circuits.ops.PlasticCombination`). The optimizer
sees ``−Σ θ_k term_k`` as the rule's gradient estimate, so ``optimizer``, momentum and weight
decay work as for every rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from circuits import ops
from circuits.compile import Builder
from circuits.errors import CompileError, did_you_mean
from circuits.graph import CircuitGraph
from circuits.rules.alignment import FeedbackAlignment
from circuits.rules.base import emit_feedforward, find_feedback
from circuits.schema import COMMON_PARAMS, Param, RuleSignature

__all__ = ["Plasticity", "Term", "parse_term", "parse_terms", "all_terms", "FACTORS", "MAX_POWER",
           "format_rule"]

FACTORS = ("pre", "err_pre", "post", "err", "w")
"""Factor names in the order a term's canonical name lists them."""
MAX_POWER = {"pre": 2, "post": 2, "w": 2, "err": 1, "err_pre": 1}


@attrs.frozen(order=True)
class Term:
    """Powers of ``pre``, ``err_pre``, ``post``, ``err`` and ``w`` in one term of the family."""

    pre: int = 0
    err_pre: int = 0
    post: int = 0
    err: int = 0
    w: int = 0

    @property
    def name(self) -> str:
        """Canonical name: ``pre*post``, ``post^2*w``, ``1`` for the constant term."""
        parts = [f if p == 1 else f"{f}^{p}" for f, p in zip(FACTORS, attrs.astuple(self)) if p]
        return "*".join(parts) or "1"

    @property
    def pre_side(self) -> tuple[int, int]:
        """Powers of ``(pre, err_pre)``: the factors indexed by the source unit."""
        return self.pre, self.err_pre

    @property
    def post_side(self) -> tuple[int, int]:
        """Powers of ``(post, err)``: the factors indexed by the target unit."""
        return self.post, self.err

    @property
    def uses_error(self) -> bool:
        return bool(self.err or self.err_pre)

    def formula(self, unicode: bool = True) -> str:
        """``pre·post²·w`` (or ``pre*post^2*w`` without ``unicode``)."""
        if not unicode:
            return self.name
        sup = {2: "²"}
        parts = [f + sup.get(p, "") for f, p in zip(FACTORS, attrs.astuple(self)) if p]
        return "·".join(parts) or "1"


def parse_term(text: str) -> Term:
    """Read ``"pre*post^2*w"`` into a :class:`Term`.

    Raises
    ------
    ValueError
        One line naming the bad factor or power, what is allowed and a close match.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"term {text!r} is empty; write factors joined by '*', e.g. \"pre*post\" or \"1\"")
    powers = dict.fromkeys(FACTORS, 0)
    if text.strip() == "1":
        return Term()
    for raw in text.split("*"):
        factor, _, power_text = raw.strip().partition("^")
        factor = factor.strip()
        if factor not in powers:
            hint = did_you_mean(factor, FACTORS)
            raise ValueError(f"term '{text}': unknown factor '{factor}'; factors are "
                             f"{', '.join(FACTORS)} (or the constant term \"1\"){hint}")
        power = 1
        if power_text:
            try:
                power = int(power_text.strip())
            except ValueError:
                raise ValueError(f"term '{text}': factor '{factor}' has power '{power_text}'; write an "
                                 f"integer, e.g. {factor}^{MAX_POWER[factor]}") from None
        powers[factor] += power
        if not 0 <= powers[factor] <= MAX_POWER[factor]:
            raise ValueError(f"term '{text}': factor '{factor}' has power {powers[factor]}; "
                             "pre, post and w take powers 0-2, err and err_pre 0-1")
    return Term(**powers)


def parse_terms(table: Mapping[str, float]) -> dict[Term, float]:
    """Read ``{"pre*post": 1.0, ...}``; two names of one term (``post*pre``, ``pre*post``) raise."""
    terms: dict[Term, float] = {}
    names: dict[Term, str] = {}
    for text, value in table.items():
        term = parse_term(text)
        if term in terms:
            raise ValueError(f"terms '{names[term]}' and '{text}' are the same term ({term.name}); keep one")
        terms[term], names[term] = float(value), text
    return terms


def _check_terms(table: dict[str, float]) -> None:
    parse_terms(table)


def all_terms(*, error: bool = False) -> tuple[Term, ...]:
    """Every term of the family: the 27 pre/post/w terms, times err and err_pre when ``error``."""
    err = (0, 1) if error else (0,)
    return tuple(sorted(Term(pre=a, err_pre=d, post=b, err=c, w=e)
                        for a in range(3) for d in err for b in range(3) for c in err for e in range(3)))


def format_rule(terms: Mapping[Term, float], *, digits: int = 3) -> str:
    """The rule as a formula, largest coefficients first: ``ΔW = lr·(1.29·pre·post − 1.17·post²·w)``."""
    shown = sorted(((t, c) for t, c in terms.items() if c != 0.0), key=lambda tc: (-abs(tc[1]), tc[0]))
    if not shown:
        return "ΔW = 0"
    text = ""
    for index, (term, coeff) in enumerate(shown):
        sign = "−" if coeff < 0 else "+"
        magnitude = f"{abs(coeff):.{digits}g}"
        factor = term.formula()
        body = magnitude if factor == "1" else f"{magnitude}·{factor}"
        text += (("−" if sign == "−" else "") if index == 0 else f" {sign} ") + body
    return f"ΔW = lr·({text})"


TERMS = Param("terms", {"pre*err": -1.0},
              "term → coefficient θ of ΔW = lr·Σ θ·term; factors pre, post, err, err_pre, w "
              "(powers 0-2, err 0-1), '1' the constant term", kind=dict, check=_check_terms)


_AUTO = Param("auto_feedback", False, "create missing feedback projections (U[-scale, scale]) "
               "when err terms need them")
_SCALE = Param("feedback_scale", 0.5, "half-width of the created feedback weights", minimum=0.0,
               open_minimum=True)


class Plasticity(FeedbackAlignment):
    """``ΔW = lr · Σ_k θ_k · mean_batch(pre^a err_pre^d post^b err^c) ⊙ w^e`` for every plastic projection."""

    signature = RuleSignature(
        name="plasticity",
        doc="A parametrized local rule: a weighted sum of products of pre, post, error and weight terms.",
        params=(*COMMON_PARAMS, TERMS, _AUTO, _SCALE),
        needs="with err or err_pre terms, a feedback projection C→h for every forward projection h→C "
              "out of a hidden population (as feedback_alignment)",
    )
    topographic = False  # its factor products are dense matrices (FA, which it extends, runs conv)

    def terms(self, params: Mapping[str, object]) -> dict[Term, float]:
        """The spec's terms, parsed (their names were checked when the spec was read)."""
        return parse_terms(params["terms"])  # type: ignore[arg-type]

    def _uses_error(self, graph: CircuitGraph) -> bool:
        return any(t.uses_error for t, c in self.terms(graph.spec.rule.params).items() if c != 0.0)

    def pairs(self, graph: CircuitGraph) -> list[tuple[str, str]]:
        return super().pairs(graph) if self._uses_error(graph) else []

    def check(self, graph: CircuitGraph) -> None:
        super().check(graph)
        for proj in graph.projections("lateral"):
            if proj.plastic:
                raise CompileError(f"{graph.spec.source}: projection '{proj.name}': rule 'plasticity' "
                                   "defines updates of forward projections only; set plastic = false on it")

    def emit(self, b: Builder) -> None:
        terms = {t: c for t, c in self.terms(b.params).items() if c != 0.0}
        if self._uses_error(b.graph):
            emit_feedforward_signals(b, self.carriers(b))
        else:
            b.lower_forward()
            b.lower_loss()
        if b.mode != "infer" and terms:
            _learn_terms(b, terms)
        b.lower_updates()

    def carriers(self, b: Builder) -> dict[str, list[tuple[str, str, bool]]]:
        return {pop: [(p.target, b.weight(find_feedback(b.graph, p.target, pop)), False)
                      for p in b.graph.outgoing(pop)]
                for pop in b.graph.hidden}


def emit_feedforward_signals(b: Builder, carriers: dict[str, list[tuple[str, str, bool]]]) -> None:
    """Forward pass, loss and FA's error signals, without FA's own updates."""
    b.lower_forward()
    b.lower_loss()
    if b.mode != "infer":
        b.lower_backward(carriers)


class _Sides:
    """Per-example factor products and grams of one program, each made once and shared."""

    def __init__(self, b: Builder, phase: str) -> None:
        self.b = b
        self.phase = phase
        self.products: dict[tuple[str, int, int], str] = {}
        self.grams: dict[tuple[str, tuple[int, int], str, tuple[int, int]], str] = {}

    def side(self, pop: str, powers: tuple[int, int]) -> str:
        """Buffer of ``rate^p ⊙ delta^q`` of ``pop`` (``""`` for the constant side)."""
        p, q = powers
        if p == 0 and q == 0:
            return ""
        b = self.b
        factors = [(b.rate(pop), p)] if p else []
        factors += [(b.delta(pop), q)] if q else []
        if len(factors) == 1 and factors[0][1] == 1:
            return factors[0][0]
        key = (pop, p, q)
        if key not in self.products:
            name = b.activity(f"{pop}.plastic_rate{p}_err{q}", pop)
            b.emit(self.phase, ops.PowerProduct(tuple(f for f, _ in factors), tuple(k for _, k in factors), name))
            self.products[key] = name
        return self.products[key]

    def gram(self, source: str | None, pre: tuple[int, int], target: str, post: tuple[int, int]) -> str:
        """Buffer of ``batch^(errors−1)·Σ_n pre_side[n] ⊗ post_side[n]`` (``""`` for the constant term)."""
        a = self.side(source, pre) if source is not None else ""
        bside = self.side(target, post)
        if not a and not bside:
            return ""
        key = (source if a else "", pre if a else (0, 0), target, post)
        if key not in self.grams:
            errors = pre[1] + post[1]
            b = self.b
            if a and bside:
                shape: tuple[int, ...] = (b.size(source), b.size(target))
                name = f"{source}->{target}.gram[{Term(pre[0], pre[1], post[0], post[1]).name}]"
            elif bside:
                shape = (b.size(target),)
                name = f"{target}.gram[{Term(post=post[0], err=post[1]).name}]"
            else:
                shape = (b.size(source), 1)
                name = f"{source}.gram[{Term(pre=pre[0], err_pre=pre[1]).name}]"
            b.add_buffer(name, shape, "temp")
            b.emit(self.phase, ops.PlasticGram(a, bside, name, batch_power=errors - 1))
            self.grams[key] = name
        return self.grams[key]


def _learn_terms(b: Builder, terms: dict[Term, float], phase: str = "plasticity") -> None:
    """Grams of every plastic parameter, and its estimate ``−Σ θ·gram ⊙ w^e`` as a learned op."""
    b.phase(phase, doc="per-example factors and one GEMM per distinct (pre side, post side) pair")
    sides = _Sides(b, phase)
    for proj in b.graph.projections("forward"):
        if not proj.plastic:
            continue
        hidden_source = b.graph.population(proj.source).role == "hidden"
        chosen = [(t, c) for t, c in terms.items() if hidden_source or not t.err_pre]
        if chosen:
            grams = tuple(sides.gram(proj.source, t.pre_side, proj.target, t.post_side) for t, _ in chosen)
            _learn(b, proj.name, b.weight(proj), grams, chosen)
    for pop in b.graph.populations:
        if f"{pop}.bias" not in b.public:
            continue
        chosen = [(t, c) for t, c in terms.items() if not t.err_pre]
        if chosen:
            grams = tuple(sides.gram(None, (0, 0), pop, t.post_side) for t, _ in chosen)
            _learn(b, f"{pop}.bias", b.bias(pop), grams, chosen)


def _learn(b: Builder, param: str, w: str, grams: tuple[str, ...], chosen: list[tuple[Term, float]]) -> None:
    coeffs = tuple(-c for _, c in chosen)  # the optimizer descends the estimate: −Σ θ·term
    powers = tuple(t.w for t, _ in chosen)

    def make(out: str, alpha: float, beta: float) -> ops.PlasticCombination:
        return ops.PlasticCombination(grams, coeffs, powers, w, out, alpha=alpha, beta=beta)
    b.learn_op(param, make)
