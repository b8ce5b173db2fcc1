"""The op catalogue, one module per family (:mod:`~circuits.ops.basic`,
:mod:`~circuits.ops.signals`, :mod:`~circuits.ops.dynamics`), re-exported here.
Each op holds buffer names and constants, never arrays.

Every docstring opens with the math the op implements; the NumPy kernels in
:mod:`circuits.backends.numpy_backend` are the living definition of that math. Batched
buffers have the batch as their first dimension, so activity is ``(batch, n)`` and a weight
of projection A→B is ``(n_A, n_B)``.
"""

from __future__ import annotations

from circuits.ops.basic import (AdamStep, Accumulate, Activate, ActivationDeriv, AddBias, ColSumUpdate, Copy,
                                Dropout, GaussianNoise, MatMul, MeanSquaredError, MomentumStep, Multiply,
                                OuterUpdate, SgdStep, SoftmaxCrossEntropy)
from circuits.ops.conv import Conv, ConvGemm, ConvGeometry, ConvTranspose, ConvWeightGrad, Im2Col, Pool, Sign
from circuits.ops.dynamics import Fill, LeakyIntegrate, Nudge, RandomSign, ResidualNorm
from circuits.ops.plasticity import PlasticCombination, PlasticGram, PowerProduct
from circuits.ops.spikes import PoissonSample
from circuits.ops.signals import ExampleLoss, LinearCombination, Modulate, Offset, RunningMean

__all__ = [
    "MatMul",
    "OuterUpdate",
    "ColSumUpdate",
    "AddBias",
    "Activate",
    "ActivationDeriv",
    "Multiply",
    "Dropout",
    "GaussianNoise",
    "SoftmaxCrossEntropy",
    "MeanSquaredError",
    "Accumulate",
    "Copy",
    "SgdStep",
    "MomentumStep",
    "AdamStep",
    "LinearCombination",
    "ExampleLoss",
    "Offset",
    "RunningMean",
    "Modulate",
    "Fill",
    "Nudge",
    "LeakyIntegrate",
    "ResidualNorm",
    "RandomSign",
    "ConvGeometry",
    "Im2Col",
    "ConvGemm",
    "Conv",
    "Pool",
    "ConvTranspose",
    "ConvWeightGrad",
    "Sign",
    "PoissonSample",
    "PowerProduct",
    "PlasticGram",
    "PlasticCombination",
]
