"""Checkpoints that survive kills: atomic writes, weights-only loads, fallback to good ones."""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from parrot_lm.errors import ParrotError
from parrot_lm.model.config import GPTConfig

log = logging.getLogger(__name__)

STEP_RE = re.compile(r"step(\d+)\.ckpt$")


class CheckpointError(ParrotError):
    pass


class PeriodicCheckpoint(ModelCheckpoint):
    """Step files (and last.ckpt) every N optimizer steps, saved inside the training loop.

    Lightning's own save at train end comes after the loop has marked the epoch complete, so a
    resume from it would skip to the next epoch; GracefulStop saves the final step instead.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise to memory, write a temporary file, fsync, rename: a kill at any moment of a
    save leaves the previous file at `path` intact."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self._write(tmp, buffer.getbuffer())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _write(self, tmp: Path, data: memoryview) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location or "cpu")


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """torch.load with weights_only=True; unreadable or foreign files become CheckpointError.

    mmap=True maps the tensors instead of reading them: cheap when only the metadata (step,
    hyperparameters, callback state) is wanted, e.g. to list checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, pickle garbage, disallowed globals, ...
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"Checkpoint {path} is unreadable or corrupt ({first_line}).") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt.get("hyper_parameters", {}):
        raise CheckpointError(f"{path} is not a ParrotLM training checkpoint.")
    return ckpt


def candidate_checkpoints(ckpt_dir: Path) -> list[Path]:
    """last.ckpt first, then step checkpoints from newest to oldest."""
    steps = sorted(
        (p for p in ckpt_dir.glob("step*.ckpt") if STEP_RE.search(p.name)),
        key=lambda p: int(STEP_RE.search(p.name).group(1)),
        reverse=True,
    )
    last = ckpt_dir / "last.ckpt"
    return ([last] if last.is_file() else []) + steps


def step_of(path: Path) -> int | None:
    match = STEP_RE.search(path.name)
    return int(match.group(1)) if match else None


def newest_good_checkpoint(ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, warning about each bad one skipped; None if none exist.

    last.ckpt is normally the newest; a kill between writing stepN.ckpt and last.ckpt can
    leave a step file one save ahead of it, so newer step files win.
    """
    candidates = candidate_checkpoints(ckpt_dir)
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


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Half-written files left by a kill mid-save; never loaded, safe to delete."""
    for tmp in ckpt_dir.glob(".*.ckpt.tmp-*"):
        tmp.unlink(missing_ok=True)
