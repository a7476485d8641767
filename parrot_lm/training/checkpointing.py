"""Checkpoints that survive kills: step files saved inside the loop, written atomically."""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from parrot_lm.core.io import atomic_file
from parrot_lm.runs.checkpoints import load_checkpoint


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
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_file(path) as f:
            self._write(f, buffer.getbuffer())

    def _write(self, f: BinaryIO, data: memoryview) -> None:
        """Write the serialised checkpoint into the open temporary file (a test seam)."""
        f.write(data)

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Weights-only, whatever Lightning loads: the checkpoint a run resumes from (already
        checked to be this run's by training/run.py select_checkpoint), or the state dict the
        spawn launcher passes from the trained rank back to the main process."""
        return load_checkpoint(path, map_location=map_location or "cpu", of_run=False)
