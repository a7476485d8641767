"""Rotary position embedding (RoFormer, Su et al. 2021) as one complex multiply.

The weights keep HF Llama's rotate-half layout, which pairs dimension i of a head with
i + head_dim/2 (so checkpoints and the Hugging Face export are the same as ever). At compute
time `interleave_heads` reorders the query/key projection's rows so that each pair lies side
by side; RoPE is then a complex multiply of those pairs (one pass forward, one backward, where
slicing, negating and concatenating the halves took several, plus zero fills and copies in
backward). Attention scores are dot products of q and k over the head dimension, which any
order shared by q and k leaves unchanged, so q and k stay in the paired order.
"""

from __future__ import annotations

import torch


def rope_cache(
    context_length: int, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position's angles, each (context_length, head_dim/2), float32.

    Angle of pair i at position p: p * theta^(-2i/head_dim) (RoFormer, eq. 15).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    positions = torch.arange(context_length, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)  # (T, head_dim/2)
    return angles.cos(), angles.sin()


def interleave_heads(weight: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """The first n_heads * head_dim rows of a projection weight (out, in), each head's rows
    reordered from rotate-half [0, ..., h-1, h, ..., 2h-1] to pairs [0, h, 1, h+1, ...],
    h = head_dim/2; the rows after them (values) are left as they are. Differentiable."""
    rotated = n_heads * head_dim
    pairs = weight[:rotated].unflatten(0, (n_heads, 2, head_dim // 2)).transpose(1, 2)
    return torch.cat((pairs.flatten(0, 2), weight[rotated:]))  # (out, in)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., head_dim), its pairs side by side (`interleave_heads`), by `rotation`
    (..., head_dim/2, 2), each pair's (cos, sin) from `rope_cache`, broadcast against x's
    pairs: e.g. x (B, n_heads, T, hd) with rotation (T, hd/2, 2). Computed in at least
    float32; returns x's dtype.

    Eagerly a complex multiply (one kernel each way). Under torch.compile the same product in
    real arithmetic: inductor generates no code for complex ops (it would fall back to eager
    kernels around them), and fuses these into one.
    """
    pairs = x.to(torch.promote_types(x.dtype, torch.float32)).unflatten(-1, (-1, 2))
    if torch.compiler.is_compiling():
        (x0, x1), (cos, sin) = pairs.unbind(-1), rotation.unbind(-1)
        rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    else:
        rotated = torch.view_as_real(torch.view_as_complex(pairs) * torch.view_as_complex(rotation))
    return rotated.flatten(-2).type_as(x)
