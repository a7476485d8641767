"""RMSNorm (Zhang & Sennrich 2019) with a hand-written backward for the CPU.

On the CPU, torch's rms_norm is composed of elementwise ops in both directions (square, mean,
add, rsqrt, two multiplies forward; autograd through each of them backward), and a small
model's norms cost several times what LayerNorm's single native kernel does. `rms_norm_cpu` computes
the same function in fewer passes over the activations: one fused reduction and two multiplies
forward, six passes backward. On other devices torch's own kernel (fused on CUDA) runs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _RMSNormFunction(torch.autograd.Function):
    """y = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps) over the last dimension."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        d = x.shape[-1]
        # (..., 1); the L2 norm is one fused pass, where x.square().mean() takes two.
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps)
        rstd = rstd.rsqrt_()
        x_hat = x * rstd  # (..., d)
        ctx.save_for_backward(x_hat, rstd, weight)
        return x_hat * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x_hat, rstd, weight = ctx.saved_tensors
        d = x_hat.shape[-1]
        grad_times_x_hat = grad * x_hat  # (..., d)
        grad_weight = grad_times_x_hat.reshape(-1, d).sum(0)  # (d,)
        # mean over the row of grad * weight * x_hat, as one matrix-vector product: (..., 1)
        mean_dot = (grad_times_x_hat @ weight).unsqueeze(-1).div_(d)
        # dx = rstd * (grad * weight - x_hat * mean(grad * weight * x_hat))
        grad_x = (grad * weight).addcmul_(x_hat, mean_dot, value=-1).mul_(rstd)
        return grad_x, grad_weight, None


def rms_norm_cpu(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of x (..., d) with weight (d,): the value of F.rms_norm (within float rounding),
    computed in fewer passes; differentiable in x and weight (not twice)."""
    return _RMSNormFunction.apply(x, weight, eps)


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm (same parameter, same state dict) with the CPU path above when training.
    Without a backward (evaluation, decoding) torch's single call is cheaper per token."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        if x.device.type == "cpu" and self.weight is not None and torch.is_grad_enabled():
            return rms_norm_cpu(x, self.weight, eps)
        return F.rms_norm(x, self.normalized_shape, self.weight, eps)
