"""Reading a run's checkpoints: weights-only loads, the newest good one, compatibility checks."""

from __future__ import annotations

import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from parrot_lm.core.errors import CheckpointError
from parrot_lm.model.config import GPTConfig
from parrot_lm.runs.run_dir import checkpoint_candidates, step_of

log = logging.getLogger(__name__)


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False, of_run: bool = True
) -> dict[str, Any]:
    """torch.load with weights_only=True; unreadable or foreign files become CheckpointError.

    mmap=True maps the tensors instead of reading them: cheap when only the metadata (step,
    hyperparameters, callback state) is wanted, e.g. to list checkpoints.
    of_run=False also accepts a file that is not a training checkpoint (Lightning's spawn
    launcher hands the trained weights back to the main process as a bare state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, pickle garbage, disallowed globals, ...
        # torch's own message is a paragraph (and may suggest weights_only=False, which
        # ParrotLM never does): its first sentence is what the user needs.
        first = str(e).strip().splitlines()[0].split(". ")[0].rstrip(".") if str(e).strip() else ""
        why = f"{type(e).__name__}: {first[:160]}" if first else type(e).__name__
        raise CheckpointError(f"Checkpoint {path} is unreadable or corrupt ({why}).") from e
    if not isinstance(ckpt, dict) or (of_run and "model" not in ckpt.get("hyper_parameters", {})):
        raise CheckpointError(f"{path} is not a ParrotLM training checkpoint.")
    return ckpt


def newest_good_checkpoint(ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, warning about each bad one skipped; None if none exist.

    last.ckpt is normally the newest; a kill between writing stepN.ckpt and last.ckpt can
    leave a step file one save ahead of it, so newer step files win.
    """
    candidates = checkpoint_candidates(ckpt_dir)
    if not candidates:
        return None
    good: tuple[Path, dict[str, Any]] | None = None
    for path in candidates:
        step = step_of(path)
        if good is not None and (step is None or step <= good[1]["global_step"]):
            break
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("%s Falling back to an older checkpoint.", e)
            continue
        if good is None or ckpt["global_step"] > good[1]["global_step"]:
            good = (path, ckpt)
    if good is None:
        raise CheckpointError(
            f"No loadable checkpoint in {ckpt_dir} ({len(candidates)} found, all unreadable)."
        )
    return good


def check_compatible(ckpt: dict[str, Any], model_cfg: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint of another architecture or vocab, naming the first mismatch.

    A key the checkpoint lacks (saved before that option existed) counts as its default.
    """
    saved = ckpt["hyper_parameters"]["model"]
    defaults = {f.name: f.default for f in fields(GPTConfig)}
    for key, want in model_cfg.items():
        have = saved[key] if key in saved else defaults.get(key)
        if have != want:
            raise CheckpointError(
                f"Checkpoint {path} has model.{key}={have}, but this run's config has "
                f"model.{key}={want}; use a matching model config or start a new run."
            )
