"""Model FLOPs per token and the hardware's measured peak, for MFU.

MFU = achieved model FLOP/s / peak FLOP/s, where the model's FLOPs per trained token are
6N (forward and backward through the weights, the embedding lookup excluded) plus the
attention scores and mixing, 6 * n_layers * context * d_model (PaLM, appendix B, with the
causal half not discounted). The peak is measured, not taken from a spec sheet: a dense
matmul at the model's width, in the dtype training computes in.
"""

from __future__ import annotations

import time

import torch

from parrot_lm.model.config import GPTConfig


def non_embedding_params(cfg: GPTConfig) -> int:
    """Parameters that take part in matmuls: blocks and the output head."""
    kv_dim = cfg.n_kv_heads * cfg.head_dim
    attn = cfg.d_model * (cfg.d_model + 2 * kv_dim) + cfg.d_model * cfg.d_model
    mlp = 3 * cfg.d_model * cfg.d_ff
    return cfg.n_layers * (attn + mlp) + cfg.d_model * cfg.vocab_size


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward)."""
    t = seq_len or cfg.context_length
    return 6.0 * non_embedding_params(cfg) + 6.0 * cfg.n_layers * t * cfg.d_model


def measure_peak_flops(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    size: int = 1024,
    repeats: int = 5,
) -> float:
    """Dense (size x size) @ (size x size) matmul FLOP/s: the median of `repeats` timings."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    n = 4 if device.type == "cpu" else 50  # matmuls per timing

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            a @ b
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return n * 2.0 * size**3 / times[len(times) // 2]
