"""Model hyperparameters, validated where they are born so a bad value fails at start."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class GPTConfig:
    """Shape of a LLaMA-style decoder: RMSNorm pre-norm, RoPE, SwiGLU, no biases."""

    vocab_size: int = 50257
    context_length: int = 1024
    d_model: int = 320
    n_layers: int = 16
    n_heads: int = 8
    n_kv_heads: int | None = None  # None = n_heads (multi-head); fewer = grouped-query attention
    d_ff: int | None = None  # None = SwiGLU's 8/3 * d_model, rounded up to a multiple of 64
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}.")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"model.n_heads ({self.n_heads}) must divide model.d_model ({self.d_model})."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(
                f"RoPE needs an even head dimension, but d_model/n_heads = {self.head_dim}."
            )
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.n_kv_heads <= 0 or self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"model.n_kv_heads ({self.n_kv_heads}) must be positive and divide "
                f"model.n_heads ({self.n_heads})."
            )
        if self.d_ff is None:
            self.d_ff = 64 * -(-(8 * self.d_model // 3) // 64)
        if self.d_ff <= 0:
            raise ValueError(f"model.d_ff must be a positive integer, got {self.d_ff}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}.")
        if self.rope_theta <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("model.rope_theta, model.norm_eps and model.init_std must be > 0.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)
