"""A decoder-only transformer in plain torch.

The defaults are the LLaMA recipe: pre-norm blocks (RMSNorm), rotary positions, causal attention
through SDPA (with optional grouped-query attention), SwiGLU feed-forward, no biases, tied
input/output embeddings. The config's switches exist for ablations: `norm` (rmsnorm, layernorm,
none), `norm_position` (pre, post) and `pos_encoding` (rope, learned, none); `n_kv_heads`,
`tie_embeddings` and `dropout` cover the rest.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from parrot_lm.model.config import GPTConfig
from parrot_lm.model.norm import RMSNorm
from parrot_lm.model.rope import pair_order, rope_cache, rotate_qkv


class KVCache:
    """Keys and values of every layer for B sequences, filled slot by slot during generation.

    Slot order is time order; `valid` marks real tokens (False: left padding of a shorter
    prompt in the batch), and `next_pos` is each row's next position (RoPE or learned table).
    """

    def __init__(self, cfg: GPTConfig, batch_size: int, max_len: int, device, dtype) -> None:
        shape = (cfg.n_layers, batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.next_pos = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.max_len = max_len
        self.length = 0  # slots filled
        self.padded = False  # any left padding: then positions and masks are per row


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        qkv_dim = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, qkv_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout
        if cfg.pos_encoding == "rope":  # derived from the shape, not state: kept out of checkpoints
            order = pair_order(cfg.n_heads + cfg.n_kv_heads, cfg.head_dim, qkv_dim)
            self.register_buffer("qkv_pair_order", order, persistent=False)
        self.frozen_paired_weight: torch.Tensor | None = None  # GPT.frozen_for_decoding

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        heads = self.n_heads + 2 * self.n_kv_heads
        if rotation is None:  # learned positions or none
            qkv = self.qkv(x).view(B, T, heads, self.head_dim).transpose(1, 2)  # (B, heads, T, hd)
            q, k, v = qkv.split([self.n_heads, self.n_kv_heads, self.n_kv_heads], dim=1)
        else:  # q and k come out with their RoPE pairs side by side (rope.py)
            qkv = F.linear(x, self.paired_qkv_weight()).view(B, T, heads, self.head_dim)
            q, k, v = rotate_qkv(qkv, rotation, self.n_heads, self.n_kv_heads)
        # q (B, n_heads, T, hd); k, v (B, n_kv, T, hd)
        if cache is not None:  # append this step's keys/values, attend over all filled slots
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k, v = cache.k[layer, :, :, : start + T], cache.v[layer, :, :, : start + T]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,  # (B, 1, T, S) bool with a cache; None: plain causal
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and T > 1,  # one query with a cache sees every slot
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # (B, n_heads, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, d_model)
        return self.proj(y)

    def paired_qkv_weight(self) -> torch.Tensor:
        """The qkv weight with each q/k head's RoPE pairs side by side (rope.pair_order):
        gathered on every call, or the copy GPT.frozen_for_decoding made for its duration."""
        if self.frozen_paired_weight is not None:
            return self.frozen_paired_weight
        return self.qkv.weight.index_select(0, self.qkv_pair_order)


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # (B, T, d_model)


def make_norm(cfg: GPTConfig) -> nn.Module:
    """RMSNorm (weight only), LayerNorm (weight and bias, as GPT-2) or nothing."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.Identity()


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.attn_norm = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.mlp_norm = make_norm(cfg)
        self.mlp = SwiGLU(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.post_norm:  # original Transformer: normalise the residual stream after each add
            x = self.attn_norm(x + self.dropout(self.attn(x, rotation, cache, layer, mask)))
            return self.mlp_norm(x + self.dropout(self.mlp(x)))  # (B, T, d_model)
        x = x + self.dropout(self.attn(self.attn_norm(x), rotation, cache, layer, mask))
        x = x + self.dropout(self.mlp(self.mlp_norm(x)))
        return x  # (B, T, d_model)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # Learned absolute positions (GPT-2); RoPE and NoPE have no position parameters.
        self.pos_emb = (
            nn.Embedding(cfg.context_length, cfg.d_model) if cfg.pos_encoding == "learned" else None
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        # Post-norm blocks already end normalised: no final norm then.
        self.norm = make_norm(cfg) if cfg.norm_position == "pre" else nn.Identity()
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        if cfg.pos_encoding == "rope":
            cos, sin = rope_cache(cfg.context_length, cfg.head_dim, cfg.rope_theta)
            # Derived tables, not state: kept out of checkpoints.
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.activation_checkpointing = False  # a speed switch (training/speed.py), not state
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 style: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layers); norms
        start as the identity map (weight 1, bias 0)."""
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.n_layers)
        nn.init.normal_(self.tok_emb.weight, mean=0.0, std=std)
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb.weight, mean=0.0, std=std)
        if not self.cfg.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=std)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, mean=0.0, std=std)
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.gate.weight, mean=0.0, std=std)
            nn.init.normal_(block.mlp.up.weight, mean=0.0, std=std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)
        for module in self.modules():
            if isinstance(module, nn.RMSNorm | nn.LayerNorm):
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Parameters counted once each (tied embeddings are one tensor)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab_size).

        With a cache (generation), idx continues the cached slots, and `valid` (B, T) marks
        left padding (False) so that rows of different lengths share one batch.
        """
        B, T = idx.shape
        if cache is None:
            if T > self.cfg.context_length:
                raise ValueError(
                    f"Sequence length {T} exceeds the model's context length "
                    f"{self.cfg.context_length}."
                )
            positions, mask = torch.arange(T, device=idx.device), None  # (T,)
        else:
            positions, mask = self._cache_step(cache, T, valid)  # (B, T) or (T,); mask or None
        x = self.tok_emb(idx)  # (B, T, d_model)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)  # (T, d_model) or (B, T, d_model), broadcast
        x = self.drop(x)
        rotation = self._rope(positions)
        for i, block in enumerate(self.blocks):
            if self.activation_checkpointing and self.training and cache is None:
                # Keep only each block's input; recompute its activations in backward.
                x = checkpoint(block, x, rotation, None, i, mask, use_reentrant=False)
            else:
                x = block(x, rotation, cache, i, mask)
        if cache is not None:
            cache.length += T
        return self.lm_head(self.norm(x))  # (B, T, vocab_size)

    @contextlib.contextmanager
    def frozen_for_decoding(self) -> Iterator[None]:
        """Inside, the attention layers reuse one paired copy of their qkv weights instead of
        pairing them on every forward (decoding runs one forward per token). The weights must
        not change inside; leaving drops the copies, even on an error."""
        attentions = (
            [block.attn for block in self.blocks] if self.cfg.pos_encoding == "rope" else []
        )
        with torch.no_grad():
            for attn in attentions:
                attn.frozen_paired_weight = attn.paired_qkv_weight()
        try:
            yield
        finally:
            for attn in attentions:
                attn.frozen_paired_weight = None

    def _rope(self, positions: torch.Tensor) -> torch.Tensor | None:
        """The RoPE rotation (cos, sin) at `positions`, shaped to broadcast over the heads'
        pairs (B, heads, T, hd/2, 2): (T,) -> (T, hd/2, 2); (B, T) -> (B, 1, T, hd/2, 2).
        None without RoPE."""
        if self.cfg.pos_encoding != "rope":
            return None
        cos, sin = self.rope_cos[positions].float(), self.rope_sin[positions].float()
        rotation = torch.stack((cos, sin), dim=-1)  # (T, hd/2, 2) or (B, T, hd/2, 2)
        return rotation if positions.dim() == 1 else rotation[:, None]

    def _cache_step(
        self, cache: KVCache, T: int, valid: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each row's own positions (B, T), and the attention mask over cached slots (B, 1, T, S).

        A cache without left padding needs neither: positions are the slots (T,), and the mask is
        None (plain causal for a first chunk, everything for a single new token).
        """
        start, device = cache.length, cache.valid.device
        if start + T > cache.max_len:
            raise ValueError(f"The KV cache holds {cache.max_len} slots; {start + T} needed.")
        if valid is not None and not cache.padded:
            cache.padded = not bool(valid.all())
        cache.valid[:, start : start + T] = True if valid is None else valid
        if not cache.padded and (start == 0 or T == 1):
            cache.next_pos += T
            return torch.arange(start, start + T, device=device), None
        if valid is None:
            valid = torch.ones(cache.valid.shape[0], T, dtype=torch.bool, device=device)
        positions = cache.next_pos[:, None] + valid.long().cumsum(dim=1) - 1  # (B, T)
        positions = positions.clamp(0, self.cfg.context_length - 1)
        cache.next_pos += valid.sum(dim=1)
        slots = torch.arange(start + T, device=device)  # (S,)
        query_slots = torch.arange(start, start + T, device=device)[:, None]  # (T, 1)
        causal = slots[None, :] <= query_slots  # (T, S)
        mask = cache.valid[:, None, None, : start + T] & causal  # (B, 1, T, S)
        mask |= slots[None, None, None, :] == query_slots  # padding attends to itself: no NaN
        return positions, mask
