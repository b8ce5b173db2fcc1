"""Ops of neural dynamics: leaky-integrator steps, nudges, residuals (energy-based rules)."""

from __future__ import annotations

import attrs

from circuits.ir import Op, access
from circuits.ops.basic import Shapes, check_same
from circuits.rates import PLAIN, RateParams

__all__ = [
    "Fill",
    "Nudge",
    "LeakyIntegrate",
    "ResidualNorm",
    "RandomSign",
]


@attrs.frozen
class Fill(Op):
    """Implements ``out = value`` everywhere (a relaxation's starting state)."""

    out: str
    value: float = 0.0

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,))

    def math(self) -> str:
        return f"{self.out} = {self.value:g}"


@attrs.frozen
class Nudge(Op):
    """Implements ``drive += beta · (target − rate)``, or ``drive += beta · sign · (target − rate)``
    with a scalar buffer ``sign`` (a sign of β drawn at run time): the output pulled toward its target.

    Added to the output's drive before :class:`LeakyIntegrate` multiplies by ``ρ'(s)``, this is
    the force ``−β ∂C/∂s`` of the cost ``C = ½‖ρ(s) − target‖²``.
    """

    rate: str
    target: str
    drive: str
    beta: float
    sign: str = ""

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(incs=(self.drive,), reads=(self.rate, self.target) + ((self.sign,) if self.sign else ()))

    def math(self) -> str:
        sign = f"{self.sign}·" if self.sign else ""
        return f"{self.drive} += {self.beta:g}·{sign}({self.target} − {self.rate})"

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.drive, self.rate, self.target)
        if self.sign and shapes[self.sign] != ():
            raise self.fail(f"the sign must be a scalar (got shape {shapes[self.sign]})")


@attrs.frozen
class LeakyIntegrate(Op):
    """Implements one Euler step of leaky-integrator dynamics ``ds/dt = ρ'(s) ⊙ drive − s``:

    ``s ← clip(s + step·(ρ'(s) ⊙ drive − s) + noise·√step·ξ)``, with ``ξ`` standard normal
    (Euler–Maruyama for Langevin dynamics; ``noise = 0`` for none) and the clip to [0, 1]
    only for ``hard_sigmoid`` units, whose state lives in that box (where ``ρ' = 1``, so a
    unit at a bound leaves it whenever its drive pulls inward). ``rate`` must hold ``ρ(s)``
    of the state before the step. ``residual`` (one value per example) receives, or with
    ``accumulate`` adds, the squared norm of the step taken divided by ``step``: the force
    that was applied, zero at a fixed point. With ``params``, ``ρ(s) = scale·f(gain·(s − shift))``
    and ``ρ'(s) = scale·gain·f'(gain·(s − shift))`` (not for ``hard_sigmoid``, whose box is [0, 1]).
    """

    fn: str
    state: str
    rate: str
    drive: str
    residual: str
    step: float
    noise: float = 0.0
    stream: str = ""
    accumulate: bool = False
    params: RateParams = PLAIN

    def access(self) -> dict[str, tuple[str, ...]]:
        res = (self.residual,)
        return access(updates=(self.state,), sets=() if self.accumulate else res,
                      incs=res if self.accumulate else (), reads=(self.rate, self.drive))

    def math(self) -> str:
        clip = "clip₀¹" if self.fn == "hard_sigmoid" else ""
        noise = f" + {self.noise:g}·√ε·ξ" if self.noise else ""
        return (f"{self.state} = {clip}({self.state} + {self.step:g}·({self.params.derivative_formula(self.fn, self.state)} ⊙ "
                f"{self.drive} − {self.state}){noise}); {self.residual} {'+=' if self.accumulate else '='} "
                "‖Δs/ε‖²")

    def check(self, shapes: Shapes) -> None:
        check_same(self, shapes, self.state, self.rate, self.drive)
        if shapes[self.residual] != shapes[self.state][:1]:
            raise self.fail(f"residual must have shape {shapes[self.state][:1]} (got {shapes[self.residual]})")
        if self.fn == "softmax":
            raise self.fail("softmax units have no leaky-integrator dynamics")
        if not self.params.plain and self.fn in ("linear", "hard_sigmoid"):
            raise self.fail(f"'{self.fn}' units relax without scale, shift or gain")
        if self.noise and not self.stream:
            raise self.fail("noisy dynamics need a random stream name")


@attrs.frozen
class ResidualNorm(Op):
    """Implements ``out = max_b √squared_b``: the largest per-example force norm of a step.

    A relaxation phase stops once this falls to its tolerance.
    """

    squared: str
    out: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,), reads=(self.squared,))

    def math(self) -> str:
        return f"{self.out} = max over the batch of √{self.squared}"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out] != () or len(shapes[self.squared]) != 1:
            raise self.fail("needs one squared norm per example and a scalar output")


@attrs.frozen
class RandomSign(Op):
    """Implements ``out = ±1``, each with probability ½, a scalar drawn from the seeded stream ``stream``.

    EqProp's random-sign estimator draws the sign of β once per batch with it.
    """

    out: str
    stream: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(sets=(self.out,))

    def math(self) -> str:
        return f"{self.out} = ±1 with probability ½ each (stream '{self.stream}')"

    def check(self, shapes: Shapes) -> None:
        if shapes[self.out] != ():
            raise self.fail(f"the sign must be a scalar (got shape {shapes[self.out]})")
