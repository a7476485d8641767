"""Load a trained checkpoint for inference: the plain-torch GPT and the tokenizer it was trained
with (saved by training in `<run dir>/tokenizer/`, beside `<run dir>/checkpoints/`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from parrot_lm.core.errors import CheckpointError
from parrot_lm.data.tokenizer import SPEC_FILE, Tokenizer, load_tokenizer_dir
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.checkpoints import load_checkpoint
from parrot_lm.runs.identity import check_tokenizer
from parrot_lm.runs.run_dir import RunDir

MODEL_PREFIX = "model."  # LitLM keeps the GPT as `self.model`


@dataclass
class LoadedModel:
    model: GPT
    tokenizer: Tokenizer
    path: Path
    step: int
    model_config: dict[str, Any]


def resolve_checkpoint(path: str | Path) -> Path:
    """A .ckpt file, or a run dir / checkpoints dir (-> its newest last.ckpt or step file)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return RunDir(path).resolve_checkpoint()
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    return path


def find_tokenizer_dir(ckpt_path: Path) -> Path:
    """The run's tokenizer dir of a checkpoint (`<run>/tokenizer`), checked to hold one."""
    tok_dir = RunDir.of_checkpoint(ckpt_path).tokenizer
    if (tok_dir / SPEC_FILE).is_file():
        return tok_dir
    raise CheckpointError(
        f"No tokenizer next to {ckpt_path} (looked for {tok_dir / SPEC_FILE}); training saves one "
        "in the run dir, so copy the run's tokenizer/ folder along with the checkpoint, or pass "
        "tokenizer_dir=<path>."
    )


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The GPT's own weights from a Lightning checkpoint (LitLM's `model.` prefix removed)."""
    return {
        k[len(MODEL_PREFIX) :]: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(MODEL_PREFIX)
    }


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    tokenizer_dir: str | Path | None = None,
) -> LoadedModel:
    """Checkpoint (or run dir) -> GPT in eval mode on `device`, and its tokenizer (checked to be
    the vocabulary the checkpoint was trained with, runs/identity.py)."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else find_tokenizer_dir(ckpt_path)
    tokenizer = load_tokenizer_dir(tok_dir)
    check_tokenizer(ckpt, ckpt_path, tokenizer, tok_dir)
    model_cfg = dict(ckpt["hyper_parameters"]["model"])
    model = GPT(GPTConfig(**model_cfg))
    try:
        model.load_state_dict(model_state_dict(ckpt))
    except RuntimeError as e:
        raise CheckpointError(f"Checkpoint {ckpt_path} does not match its own model config.") from e
    if tokenizer.n_vocab > model.cfg.vocab_size:
        raise CheckpointError(
            f"The tokenizer in {tok_dir} has {tokenizer.n_vocab} tokens but the model in "
            f"{ckpt_path} only {model.cfg.vocab_size}; they do not belong together."
        )
    model.to(device).eval()
    return LoadedModel(model, tokenizer, ckpt_path, int(ckpt.get("global_step", 0)), model_cfg)
