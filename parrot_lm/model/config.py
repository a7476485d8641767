"""Model hyperparameters, validated where they are born so a bad value fails at start."""

from __future__ import annotations

from dataclasses import asdict, dataclass

NORMS = ("rmsnorm", "layernorm", "none")
NORM_POSITIONS = ("pre", "post")
POS_ENCODINGS = ("rope", "learned", "none")


@dataclass
class GPTConfig:
    """Shape of a decoder. The defaults are the LLaMA recipe (RMSNorm pre-norm, RoPE, SwiGLU, no
    biases); `norm`, `norm_position` and `pos_encoding` switch parts of it off for ablations."""

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
    norm: str = "rmsnorm"  # rmsnorm | layernorm (with bias, as GPT-2) | none
    norm_position: str = "pre"  # pre: x + f(norm(x)); post: norm(x + f(x)), no final norm
    pos_encoding: str = "rope"  # rope | learned (absolute table, as GPT-2) | none (NoPE)
    # Rounds vocab_size up to a multiple (64: GPT-2's 50,257 -> 50,304) for aligned, faster
    # embedding and head matmuls; the extra ids never occur in data and are never sampled.
    vocab_multiple: int = 1

    def __post_init__(self) -> None:
        positive = (
            "vocab_size",
            "vocab_multiple",
            "context_length",
            "d_model",
            "n_layers",
            "n_heads",
        )
        for name in positive:
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}.")
        self.vocab_size = -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple
        for name, choices in (
            ("norm", NORMS),
            ("norm_position", NORM_POSITIONS),
            ("pos_encoding", POS_ENCODINGS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"model.{name} must be one of {', '.join(choices)}; "
                    f"got {getattr(self, name)!r}."
                )
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"model.n_heads ({self.n_heads}) must divide model.d_model ({self.d_model})."
            )
        if self.pos_encoding == "rope" and self.head_dim % 2 != 0:
            raise ValueError(
                f"RoPE needs an even head dimension, but d_model/n_heads = {self.head_dim}."
            )
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if not _is_int(self.n_kv_heads) or self.n_kv_heads <= 0 or self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"model.n_kv_heads ({self.n_kv_heads!r}) must be a positive integer that divides "
                f"model.n_heads ({self.n_heads})."
            )
        if self.d_ff is None:
            self.d_ff = 64 * -(-(8 * self.d_model // 3) // 64)
        if not _is_int(self.d_ff) or self.d_ff <= 0:
            raise ValueError(f"model.d_ff must be a positive integer, got {self.d_ff!r}.")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(
                f"model.tie_embeddings must be true or false, got {self.tie_embeddings!r}."
            )
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}.")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise ValueError(f"model.{name} must be a number > 0, got {value!r}.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
