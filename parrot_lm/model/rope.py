"""Rotary position embedding (RoFormer, Su et al. 2021) as one complex multiply.

The weights keep HF Llama's rotate-half layout, which pairs dimension i of a head with
i + head_dim/2 (so checkpoints and the Hugging Face export are the same as ever). At compute
time the query/key projection's rows are gathered in `pair_order`, so that each pair lies side
by side; RoPE is then a complex multiply of those pairs (one pass forward, one backward, where
slicing, negating and concatenating the halves took several, plus zero fills and copies in
backward). Attention scores are dot products of q and k over the head dimension, which any
order shared by q and k leaves unchanged, so q and k stay in the paired order.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


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


def pair_order(n_heads: int, head_dim: int, rows: int) -> torch.Tensor:
    """Row indices (rows,) that take a projection weight (rows, in) from rotate-half to pairs:
    within each of the first n_heads heads, rows [0, ..., h-1, h, ..., 2h-1] become
    [0, h, 1, h+1, ...], h = head_dim/2; the rows after them (values) keep their order.
    `weight.index_select(0, order)` gathers them: one pass forward, a zero fill and a
    scatter-add backward (slicing, transposing and concatenating took more of each)."""
    rotated = n_heads * head_dim
    pairs = torch.arange(rotated).view(n_heads, 2, head_dim // 2).transpose(1, 2).flatten()
    return torch.cat((pairs, torch.arange(rotated, rows)))


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., head_dim), its pairs side by side (`pair_order`), by `rotation`
    (..., head_dim/2, 2), each pair's (cos, sin) from `rope_cache`, broadcast against x's
    pairs: e.g. x (B, n_heads, T, hd) with rotation (T, hd/2, 2). Computed in at least
    float32; returns x's dtype.

    Real arithmetic, the form torch.compile fuses into one kernel (inductor generates no code
    for complex ops); eager training takes `rotate_qkv`'s complex multiply instead.
    """
    pairs = x.to(torch.promote_types(x.dtype, torch.float32)).unflatten(-1, (-1, 2))
    (x0, x1), (cos, sin) = pairs.unbind(-1), rotation.unbind(-1)
    rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


def rotate_qkv(
    qkv: torch.Tensor, rotation: torch.Tensor, n_heads: int, n_kv_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The attention inputs from the qkv projection's output (B, T, heads, hd), heads =
    n_heads + 2 n_kv_heads, its q and k heads in pair order: q (B, n_heads, T, hd) and
    k (B, n_kv_heads, T, hd) rotated by `rotation` ((T, hd/2, 2) or (B, 1, T, hd/2, 2) as
    GPT._rope makes it: each (cos, sin) pair adjacent in memory), and v (B, n_kv_heads, T, hd)
    as it is. Rotated in at least float32; q, k, v have qkv's dtype.

    Eagerly one autograd function (`_RotateQKV`): a complex multiply each way, whose backward
    writes the gradients of q, k and v straight into one (B, T, heads, hd) buffer, the layout
    the projection's backward reads. Through autograd's split the same gradients took two
    concatenations and a copy to that layout. q, k, v are views (of one new tensor, and of
    qkv): modifying them in place raises an error. Differentiable once (no double backward,
    forward-mode AD or vmap). Under torch.compile, `apply_rope` in autograd's composition.
    """
    if torch.compiler.is_compiling():
        qk, v = qkv.transpose(1, 2).split([n_heads + n_kv_heads, n_kv_heads], dim=1)
        q, k = apply_rope(qk, rotation).split([n_heads, n_kv_heads], dim=1)
        return q, k, v
    return _RotateQKV.apply(qkv, rotation, n_heads, n_kv_heads)


def _complex(x: torch.Tensor) -> torch.Tensor:
    """A real tensor (..., hd) with its pairs side by side, viewed as complex (..., hd/2)."""
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)))


def _rotate_into(out: torch.Tensor, x: torch.Tensor, rotation: torch.Tensor) -> None:
    """out (..., hd) = x (..., hd) with each pair multiplied by `rotation` (complex, ..., hd/2),
    written in place (out may be a strided view, its pairs side by side in memory)."""
    if x.stride(-1) != 1 or x.storage_offset() % 2 or any(s % 2 for s in x.stride()[:-1]):
        # Pairs not side by side in memory, e.g. the gradient of k from SDPA's math backend
        # (dropout, masks), which comes transposed: a complex view needs them adjacent.
        x = x.contiguous()
    if x.dtype in (torch.float32, torch.float64):
        torch.mul(_complex(x), rotation, out=_complex(out))
    else:  # no complex bfloat16: rotate in float32
        out.copy_(torch.view_as_real(_complex(x.float()) * rotation).flatten(-2))


class _RotateQKV(torch.autograd.Function):
    """rotate_qkv's eager path. The rotation is orthogonal, so the backward of a rotation by
    (cos, sin) is the rotation by (cos, -sin)."""

    @staticmethod
    def forward(ctx, qkv, rotation, n_heads, n_kv_heads):  # shapes: rotate_qkv
        B, T, heads, hd = qkv.shape
        n_rotated = n_heads + n_kv_heads
        # Allocated (B, T, n_rotated, hd) and handed out transposed, as the projection lays
        # out q, k, v: attention's output then comes in the (B, T, d_model) order it is read in.
        qk = qkv.new_empty(B, T, n_rotated, hd).transpose(1, 2)  # (B, n_rotated, T, hd)
        _rotate_into(qk, qkv[:, :, :n_rotated].transpose(1, 2), torch.view_as_complex(rotation))
        ctx.save_for_backward(rotation)
        ctx.shape, ctx.n_heads, ctx.n_kv_heads = qkv.shape, n_heads, n_kv_heads
        v = qkv[:, :, n_rotated:].transpose(1, 2)  # (B, n_kv_heads, T, hd), a view
        return qk[:, :n_heads], qk[:, n_heads:], v

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_q, grad_k, grad_v):
        (rotation,) = ctx.saved_tensors
        n_heads, n_rotated = ctx.n_heads, ctx.n_heads + ctx.n_kv_heads
        inverse = torch.view_as_complex(rotation).conj()  # (cos, -sin); no host-to-device copy
        grad = grad_q.new_empty(ctx.shape)  # (B, T, heads, hd), the projection's layout
        heads_first = grad.transpose(1, 2)  # (B, heads, T, hd) view
        _rotate_into(heads_first[:, :n_heads], grad_q, inverse)
        _rotate_into(heads_first[:, n_heads:n_rotated], grad_k, inverse)
        heads_first[:, n_rotated:].copy_(grad_v)
        return grad, None, None, None
