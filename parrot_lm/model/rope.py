"""Rotary position embedding (RoFormer), in the rotate-half layout that HF Llama uses."""

from __future__ import annotations

import torch


def rope_cache(
    context_length: int, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (context_length, head_dim), in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    positions = torch.arange(context_length, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)  # (T, head_dim/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim): pair i with i + head_dim/2
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., head_dim) by position: cos/sin (..., head_dim) broadcast against x, e.g.
    x (B, T, n_heads, hd) with cos (T, 1, hd)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x.float() * cos + rotated.float() * sin).type_as(x)
