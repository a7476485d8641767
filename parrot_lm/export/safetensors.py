"""Export as plain safetensors: our parameter names and GPTConfig, for every model (ablation
switches included) and for tools that want the raw weights without pickle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from parrot_lm.core.errors import ExportError
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.loading import LoadedModel

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
EXPORT_TOKENIZER_DIR = "tokenizer"


def write_safetensors(
    loaded: LoadedModel, tokenizer_dir: Path, dest: Path, dtype: torch.dtype
) -> None:
    """Our names and GPTConfig, the tied head stored once, the run's tokenizer dir beside them."""
    from safetensors.torch import save_file

    model = loaded.model
    state = model.state_dict()
    if model.cfg.tie_embeddings:
        del state["lm_head.weight"]  # the same tensor as tok_emb.weight
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    save_file(tensors, dest / WEIGHTS_FILE, metadata={"format": "pt", "step": str(loaded.step)})
    (dest / CONFIG_FILE).write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")
    shutil.copytree(tokenizer_dir, dest / EXPORT_TOKENIZER_DIR)


def load_safetensors_export(path: str | Path) -> GPT:
    """A `format=safetensors` export -> GPT (float32, eval mode); its tokenizer is in
    `<path>/tokenizer/` (read it with `parrot_lm.data.tokenizer.load_tokenizer_dir`)."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise ExportError(f"{path} is not a ParrotLM safetensors export ({name} is missing).")
    model = GPT(GPTConfig(**json.loads((path / CONFIG_FILE).read_text())))
    state = load_file(path / WEIGHTS_FILE)
    if model.cfg.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"{path / WEIGHTS_FILE} does not match {path / CONFIG_FILE}.") from e
    return model.eval()
