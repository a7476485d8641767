"""What a training config costs, counted without training: parameters, FLOPs, tokens, memory.

Sources of the formulas:
- FLOPs per token: Kaplan et al. 2020 (6N for forward + backward) plus the attention term
  6 * n_layers * context * d_model; the figure is parrot_lm/training/flops.py's
  `flops_per_token`, the same one the run's MFU uses.
- Compute-optimal data: Hoffmann et al. 2022 (Chinchilla), about 20 training tokens per
  parameter.
- Memory: weights, gradients and optimizer state from the parameter count (AdamW keeps two
  states per parameter in the parameter's dtype, fp32 under mixed precision; Muon keeps one
  momentum buffer for the blocks' matrices, AdamW's two for the rest); activations from
  Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
  eq. 1: s*b*h*(34 + 5*a*s/h) bytes per layer at 16-bit activations, and 2*s*b*h per layer when
  only each block's input is kept (full recomputation, their section 4), plus the logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from parrot_lm.core.errors import ConfigError, DataError
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.optim.muon import muon_params
from parrot_lm.training.flops import flops_per_token

GPT2_VOCAB = 50257  # tiktoken's gpt2 encoding: 50,000 merges + 256 bytes + <|endoftext|>
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022, compute-optimal


def resolve_vocab(cfg: DictConfig) -> tuple[int, str]:
    """The vocab the run will train with, and where the figure comes from.

    model.vocab_size when set; else the prepared data's meta.json, when training would use
    that corpus (`prepared_corpus_meta`); else, before `prepare` or when training would rebuild
    the corpus, the tokenizer's known size (gpt2) or the BPE's configured size, which is an upper
    bound (a BPE trained on a small corpus may stop with fewer merges).

    Raises DataError (one sentence) when data.data_dir holds a corpus prepared with another
    config, as training does; ConfigError when the vocab cannot be known before `prepare`.
    """
    prepared = prepared_corpus_meta(cfg)  # first: train.py refuses a mismatch either way
    if cfg.model.vocab_size is not None:
        return int(cfg.model.vocab_size), "model.vocab_size"
    meta = Path(cfg.data.data_dir) / "meta.json"
    if prepared is not None:
        try:
            return int(prepared["vocab_size"]), f"prepared data ({meta})"
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{meta} has no readable vocab_size ({e}); prepare again.") from e
    spec = OmegaConf.to_container(cfg.data.tokenizer, resolve=True) or {}
    if spec.get("kind") == "gpt2":
        return GPT2_VOCAB, "GPT-2 tokenizer (data not prepared yet)"
    if spec.get("kind") == "byte":
        return 257, "byte tokenizer (data not prepared yet)"
    if spec.get("kind") == "bpe" and spec.get("vocab_size"):
        return int(spec["vocab_size"]), "data.tokenizer.vocab_size, an upper bound (not prepared)"
    raise ConfigError(
        f"The vocab of tokenizer kind {spec.get('kind')!r} is known only once the data is "
        "prepared; run scripts/prepare.py with the same overrides, or set model.vocab_size."
    )


def prepared_corpus_meta(cfg: DictConfig) -> dict | None:
    """The meta.json of the corpus in data.data_dir when training would use it as it is;
    None when there is none, or when training would rebuild it (an unreadable meta.json).

    With data.source set, training (data/prepare.py prepare_corpus) uses an existing corpus
    only when its meta.json records the config_hash of the requested source, tokenizer,
    val_fraction, filters and val_source, and refuses the run otherwise; this applies that
    comparison, with the same hash, so that plan.py never describes a corpus training would
    not use. Raises DataError with prepare_corpus's sentence on a mismatch.
    """
    from parrot_lm.data.prepare import check_same_corpus, config_hash
    from parrot_lm.data.shards import META_FILE, read_meta

    data = OmegaConf.to_container(cfg.data, resolve=True)
    data_dir = Path(data["data_dir"])
    if not (data_dir / META_FILE).is_file():
        return None
    try:
        meta = read_meta(data_dir)
    except DataError:
        # Training would rebuild it (prepare_corpus) or refuse it (no source: read_meta).
        if data.get("source") is None:
            raise
        return None
    if data.get("source") is None:  # no source to compare with: training uses what is there
        return meta
    # The arguments training's data module passes to prepare_corpus (data/datamodule.py).
    digest = config_hash(
        data["source"],
        data["tokenizer"],
        data["val_fraction"],  # validate_config fills the default
        data.get("filters"),
        data.get("val_source"),
    )
    check_same_corpus(data_dir, meta, digest)  # prepare_corpus's own check
    return meta


def model_config(cfg: DictConfig, vocab: int) -> GPTConfig:
    """The GPTConfig train.py would build (GPTConfig pads the vocab to vocab_multiple)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model["vocab_size"] = model.get("vocab_size") or vocab
    try:
        return GPTConfig(**model)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


@dataclass(frozen=True)
class Params:
    """Parameter counts of the model, each tensor counted once (a tied head is the table)."""

    total: int
    embedding: int  # token table (+ learned position table)
    muon_matrices: int  # the blocks' 2-D matrices: what optim=muon updates with Muon
    tied: bool

    @property
    def non_embedding(self) -> int:
        """Kaplan et al.'s N: every parameter but the embedding tables."""
        return self.total - self.embedding


def count_params(gpt_cfg: GPTConfig) -> Params:
    """Build the model on the meta device (shapes only, no memory) and count its tensors, so
    the counts are the model's own `num_params()`."""
    with torch.device("meta"):
        model = GPT(gpt_cfg)
    embedding = model.tok_emb.weight.numel()
    if getattr(model, "pos_emb", None) is not None:
        embedding += model.pos_emb.weight.numel()
    hidden, _ = muon_params(model)
    muon = sum(p.numel() for p in hidden)
    return Params(model.num_params(), embedding, muon, gpt_cfg.tie_embeddings)


def world_size(trainer: DictConfig) -> int:
    """Processes that train: devices per node x nodes ('auto'/-1: every visible GPU, or 1)."""
    devices = trainer.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        n = len(devices)
    elif isinstance(devices, int) and devices > 0:
        n = devices
    else:  # "auto" or -1
        n = max(torch.cuda.device_count(), 1) if torch.cuda.is_available() else 1
    return n * int(trainer.num_nodes)


@dataclass(frozen=True)
class Tokens:
    """Tokens of one micro-batch, one optimizer step and the whole run."""

    micro_batch: int  # batch_size x context
    per_step: int  # micro_batch x accumulation x processes
    total: int  # per_step x max_steps
    flops_per_token: float  # training FLOPs (forward + backward), flops.py
    params: int

    @property
    def flops_per_step(self) -> float:
        return self.flops_per_token * self.per_step

    @property
    def tokens_per_param(self) -> float:
        return self.total / self.params


def count_tokens(cfg: DictConfig, gpt_cfg: GPTConfig, params: Params) -> Tokens:
    """Token and FLOP arithmetic of the run (sequences are data.context_length long)."""
    micro = int(cfg.data.batch_size) * int(cfg.data.context_length)
    per_step = micro * int(cfg.trainer.accumulate_grad_batches) * world_size(cfg.trainer)
    return Tokens(
        micro,
        per_step,
        per_step * int(cfg.trainer.max_steps),
        flops_per_token(gpt_cfg, int(cfg.data.context_length)),
        params.total,
    )


@dataclass(frozen=True)
class Memory:
    """Bytes one process holds while training, by part (estimates; see the module doc)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # without activation checkpointing
    activations_checkpointed: int
    checkpointing: bool  # speed.activation_checkpointing: which activation figure applies

    @property
    def total(self) -> int:
        chosen = self.activations_checkpointed if self.checkpointing else self.activations
        return self.weights + self.gradients + self.optimizer + chosen


def param_bytes(precision: str) -> int:
    """Bytes per stored parameter: 2 under `*-true` half precision, else fp32 (mixed precision
    keeps fp32 weights and autocasts the matmuls)."""
    return 2 if str(precision) in ("bf16-true", "16-true") else 4


def activation_bytes(gpt_cfg: GPTConfig, batch: int, seq: int, precision: str) -> tuple[int, int]:
    """Activation bytes of one micro-batch, (stored, with full recomputation).

    Korthikanti et al. 2022 eq. 1 per layer: s*b*h*(34 + 5*a*s/h) at 16-bit activations (doubled
    for fp32 ones); with recomputation, 2*s*b*h per layer (the blocks' inputs) plus one layer's
    full set, recomputed in backward. Both add the logits: b*s*V in the activation dtype, an
    fp32 copy for the loss and its fp32 gradient (training/lit_module.py casts to float).
    """
    s, b, h, a, n = seq, batch, gpt_cfg.d_model, gpt_cfg.n_heads, gpt_cfg.n_layers
    scale = 1 if "16" in str(precision) else 2  # the paper's figures are for 2-byte values
    layer = s * b * h * (34 + 5 * a * s / h) * scale
    logits = b * s * gpt_cfg.vocab_size * (2 * scale + 4 + 4)
    stored = n * layer + logits
    checkpointed = n * 2 * s * b * h * scale + layer + logits
    return int(stored), int(checkpointed)


def estimate_memory(cfg: DictConfig, gpt_cfg: GPTConfig, params: Params) -> Memory:
    """Training memory of one process at the configured micro-batch and precision."""
    per = param_bytes(cfg.trainer.precision)
    if cfg.optim.name == "muon":  # one momentum buffer on the matrices, AdamW's two elsewhere
        states = params.muon_matrices + 2 * (params.total - params.muon_matrices)
    else:
        states = 2 * params.total
    stored, checkpointed = activation_bytes(
        gpt_cfg, int(cfg.data.batch_size), int(cfg.data.context_length), cfg.trainer.precision
    )
    return Memory(
        params.total * per,
        params.total * per,
        states * per,
        stored,
        checkpointed,
        bool(cfg.speed.activation_checkpointing),
    )
