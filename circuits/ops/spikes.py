"""The op of spiking populations: a rate replaced by its Poisson spike count over a window."""

from __future__ import annotations

import attrs

from circuits.ir import Op, access

__all__ = ["PoissonSample"]


@attrs.frozen
class PoissonSample(Op):
    """Implements ``out = Poisson(T · out) / T`` elementwise (``out ≥ 0``, ``T = window``).

    The rate ``r`` becomes the spike count of a Poisson neuron firing at ``r`` per unit time
    over ``T`` time bins of unit length, divided by ``T``: unbiased (``E = r``) with variance
    ``r/T``. The op has no gradient of its own: rules differentiate the rate function at the
    pre-activation (straight-through), see :mod:`circuits.spikes`. The random stream is seeded
    from the run seed and ``stream`` (``<population>.spikes``), like dropout's.
    """

    window: int
    out: str
    stream: str

    def access(self) -> dict[str, tuple[str, ...]]:
        return access(updates=(self.out,))

    def math(self) -> str:
        return f"{self.out} = poisson({self.window}·{self.out})/{self.window}"
