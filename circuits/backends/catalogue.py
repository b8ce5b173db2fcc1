"""The default kernel table: every op type's kernel, registered by explicit lines in one place."""

from __future__ import annotations

from circuits import ops
from circuits.backends.conv_kernels import conv, conv_gemm, conv_transpose, conv_weight_grad, im2col, pool, sign
from circuits.backends.dynamics_kernels import fill, leaky_integrate, nudge, random_sign, residual_norm
from circuits.backends.kernels import (KernelTable, accumulate, activate, activation_deriv, adam_step, add_bias,
                                       colsum_update, copy, dropout, gaussian_noise, matmul, mean_squared_error,
                                       multiply, outer_update, sgd_step, softmax_cross_entropy)
from circuits.backends.spike_kernels import poisson_sample
from circuits.backends.plasticity_kernels import plastic_combination, plastic_gram, power_product
from circuits.backends.signal_kernels import example_loss, linear_combination, modulate, offset, running_mean

__all__ = ["default_kernels"]


def default_kernels() -> KernelTable:
    """The kernel table every backend starts from, filled by explicit lines."""
    table = KernelTable()
    table.register(ops.MatMul, matmul)
    table.register(ops.OuterUpdate, outer_update)
    table.register(ops.ColSumUpdate, colsum_update)
    table.register(ops.AddBias, add_bias)
    table.register(ops.Multiply, multiply)
    table.register(ops.Accumulate, accumulate)
    table.register(ops.Copy, copy)
    table.register(ops.Activate, activate)
    table.register(ops.ActivationDeriv, activation_deriv)
    table.register(ops.Dropout, dropout)
    table.register(ops.GaussianNoise, gaussian_noise)
    table.register(ops.SoftmaxCrossEntropy, softmax_cross_entropy)
    table.register(ops.MeanSquaredError, mean_squared_error)
    table.register(ops.SgdStep, sgd_step)
    table.register(ops.AdamStep, adam_step)
    table.register(ops.LinearCombination, linear_combination)
    table.register(ops.ExampleLoss, example_loss)
    table.register(ops.Offset, offset)
    table.register(ops.RunningMean, running_mean)
    table.register(ops.Modulate, modulate)
    table.register(ops.Fill, fill)
    table.register(ops.Nudge, nudge)
    table.register(ops.LeakyIntegrate, leaky_integrate)
    table.register(ops.ResidualNorm, residual_norm)
    table.register(ops.RandomSign, random_sign)
    table.register(ops.PowerProduct, power_product)
    table.register(ops.PlasticGram, plastic_gram)
    table.register(ops.PlasticCombination, plastic_combination)
    table.register(ops.PoissonSample, poisson_sample)
    table.register(ops.Im2Col, im2col)
    table.register(ops.ConvGemm, conv_gemm)
    table.register(ops.Conv, conv)
    table.register(ops.Pool, pool)
    table.register(ops.ConvTranspose, conv_transpose)
    table.register(ops.ConvWeightGrad, conv_weight_grad)
    table.register(ops.Sign, sign)
    return table
