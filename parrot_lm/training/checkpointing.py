"""Checkpoints that survive kills: step files saved inside the loop (the oldest pruned past
`ckpt_keep_last_k`), best.ckpt at each improving validation, all written atomically."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from parrot_lm.core.errors import CheckpointError, ConfigError
from parrot_lm.core.io import atomic_file
from parrot_lm.runs.checkpoints import load_checkpoint
from parrot_lm.runs.run_dir import BEST, checkpoint_candidates, step_of
from parrot_lm.training.lit_module import val_metric_names

log = logging.getLogger(__name__)

# BestCheckpoint's key among a checkpoint's callback states. Fixed, not Lightning's default
# (which spells out the monitor), because the monitor follows the run's validation (val/loss or
# val/loss_partial) and a resume must find the state under the same key either way. Not named
# ModelCheckpoint: serve/checkpoints.py would take its score (the best so far, saved before the
# validation at a step file's step) as the val loss of every checkpoint.
BEST_STATE_KEY = "BestCheckpoint"


class PeriodicCheckpoint(ModelCheckpoint):
    """Step files (and last.ckpt) every N optimizer steps, saved inside the training loop.

    Lightning's own save at train end comes after the loop has marked the epoch complete, so a
    resume from it would skip to the next epoch; GracefulStop saves the final step instead.

    keep_last_k: after each step file is saved, the step files older than it beyond the
    `keep_last_k` newest (the new one counted) are deleted; None keeps them all.
    """

    def __init__(self, *args: Any, keep_last_k: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if keep_last_k is not None and (isinstance(keep_last_k, bool) or keep_last_k < 1):
            raise ConfigError(
                f"ckpt_keep_last_k={keep_last_k} would keep no step checkpoint; give an integer "
                ">= 1, or null to keep them all."
            )
        self.keep_last_k = keep_last_k

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        # Pruned only once the new file is safely in place (a failed save raised above), so
        # the run always keeps at least one good step file.
        saved_step = step_of(Path(filepath))
        if self.keep_last_k is not None and saved_step is not None:
            self._prune_older_than(trainer, saved_step)

    def _prune_older_than(self, trainer: L.Trainer, saved_step: int) -> None:
        """Delete the step files older than `saved_step` beyond the keep_last_k newest.

        Step files newer than the one just saved (left by a killed run this one resumed
        before) are not counted or touched: the run overwrites them as it gets there.
        """
        older = [
            path
            for path in checkpoint_candidates(Path(self.dirpath or "."))
            if (step := step_of(path)) is not None and step < saved_step
        ]
        assert self.keep_last_k is not None  # checked by the caller
        for path in older[self.keep_last_k - 1 :]:
            self._remove_checkpoint(trainer, str(path))


class BestCheckpoint(ModelCheckpoint):
    """`best.ckpt`: rewritten after each validation whose loss is the lowest of the run so far.

    The monitored metric is the one the run's validation logs (`val/loss` over the whole split,
    `val/loss_partial` when limit_val_batches cuts it: training/lit_module.py
    val_metric_names), settled at each validation. The best score travels in every checkpoint
    (the callback state), and on a resume it is also read back from best.ckpt itself: step
    files and last.ckpt are saved before the validation at their step, so their state can miss
    the improvement best.ckpt holds. Saved through the trainer, hence the run's
    AtomicCheckpointIO. best.ckpt is never a resume candidate (runs/run_dir.py
    checkpoint_candidates lists last.ckpt and step files only).
    """

    def __init__(self, dirpath: str) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=Path(BEST).stem,
            monitor="val/loss",  # replaced by the run's own name at its first validation
            mode="min",
            save_top_k=1,
            save_last=False,
            auto_insert_metric_name=False,
            save_on_train_epoch_end=False,  # after validation, where the metric is
            enable_version_counter=False,  # one best.ckpt, replaced atomically
        )

    @property
    def state_key(self) -> str:
        return BEST_STATE_KEY

    @property
    def best_path(self) -> Path:
        return Path(self.dirpath or ".") / BEST

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # Lightning keeps the monitor given to __init__; the saved score is of the saved one.
        monitor = state_dict.get("monitor")
        if isinstance(monitor, str):
            self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._follow(val_metric_names(trainer)[0])
        super().on_validation_end(trainer, pl_module)

    def _follow(self, monitor: str) -> None:
        """Monitor `monitor`; a best score of another metric (a resume that changed
        limit_val_batches) cannot be compared with it, so the next validation starts afresh."""
        if monitor == self.monitor:
            return
        if self.best_model_score is not None:
            log.warning(
                "best.ckpt was chosen by %s and validation now logs %s; the next validation "
                "replaces it.",
                self.monitor,
                monitor,
            )
        self.monitor = monitor
        self._forget_best()

    def _forget_best(self) -> None:
        self.best_k_models = {}
        self.best_model_score = None
        self.best_model_path = ""
        self.kth_best_model_path = ""
        self.kth_value = torch.tensor(float("inf"))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After the resumed state is loaded: take best.ckpt's own score when it is better
        than the state's (see the class docstring), so no earlier best is forgotten."""
        if trainer.fast_dev_run or not self.best_path.is_file():
            return
        found = self._score_on_disk()
        if found is None:
            return
        monitor, score = found
        better = self.best_model_score is None or score < float(self.best_model_score)
        if monitor == self.monitor and not better:
            return
        if monitor != self.monitor and self.best_model_score is not None:
            return  # the state's own metric wins; _follow settles it at the next validation
        path = str(self.best_path)
        value = torch.tensor(score)
        self.monitor = monitor
        self.best_k_models = {path: value}
        self.best_model_score = value
        self.best_model_path = path
        self.kth_best_model_path = path
        self.kth_value = value

    def _score_on_disk(self) -> tuple[str, float] | None:
        """(monitor, score) saved in best.ckpt; None, with a warning, when it cannot be read
        (the next validation then replaces it)."""
        try:
            ckpt = load_checkpoint(self.best_path, mmap=True)  # metadata only
        except CheckpointError as e:
            log.warning("%s The next validation replaces it.", e)
            return None
        state = (ckpt.get("callbacks") or {}).get(BEST_STATE_KEY) or {}
        score, monitor = state.get("best_model_score"), state.get("monitor")
        if score is None or not isinstance(monitor, str):
            return None
        return monitor, float(score)


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
