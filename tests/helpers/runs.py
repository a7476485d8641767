"""Tiny random models and the run dirs training leaves (checkpoints/last.ckpt, tokenizer/),
made directly: for export and loading tests that need no training."""

from __future__ import annotations

from pathlib import Path

import torch

from parrot_lm.data.tokenizer import (
    RANKS_FILE,
    encoding_from_ranks,
    save_ranks,
    save_tokenizer_dir,
    train_bpe,
)
from parrot_lm.model import GPT, GPTConfig

TEXTS = [
    "Once upon a time there was a little fox who liked to run in the park.",
    "The quick brown fox jumps over the lazy dog, and the dog didn't mind.",
    "She said: 'It's 2024!'  Then they ran,\tand ran\n\nand ran again.",
    "Café, naïve, Straße: a few accents; 日本語 and 🙂 too.",
] * 3


def bpe_tokenizer():
    """(ranks, encoding) of a 300-token BPE trained on TEXTS."""
    ranks = train_bpe(TEXTS, 300)
    return ranks, encoding_from_ranks("bpe300", ranks)


def tiny_config(vocab_size: int, tie: bool) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size,
        context_length=32,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,  # grouped-query attention
        d_ff=64,
        rope_theta=5000.0,
        tie_embeddings=tie,
    )


def random_model(cfg: GPTConfig, seed: int = 0) -> GPT:
    """Random weights with norm gains away from 1, so a swapped or dropped weight shows."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.2)
    return model.eval()


def make_run(root: Path, model: GPT, spec: dict, data_dir: Path) -> Path:
    """A run dir as training leaves it: checkpoints/last.ckpt and tokenizer/."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {
        "state_dict": {"model." + k: v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model": model.cfg.to_dict(), "optim": {}, "total_steps": 1},
        "global_step": 7,
    }
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    save_tokenizer_dir(spec, data_dir, run / "tokenizer")
    return run


def make_bpe_run(root: Path, bpe, tie: bool = True, pad_vocab: int = 0) -> tuple[Path, GPT]:
    ranks, enc = bpe
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    save_ranks(ranks, data_dir / RANKS_FILE)
    model = random_model(tiny_config(enc.n_vocab + pad_vocab, tie))
    spec = {"kind": "bpe", "file": RANKS_FILE, "name": "bpe300"}
    return make_run(root, model, spec, data_dir), model
