"""Callbacks that make a run resumable bit for bit and stoppable without losing work."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from parrot_lm.runs.run_dir import LAST

log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGState(L.Callback):
    """Saves the RNG states with each checkpoint and restores them right before the first
    training batch after a resume, so whatever Lightning draws while restoring does not count."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture_rng()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None


class GracefulStop(L.Callback):
    """Owns last.ckpt: written inside the training loop at the step boundary where the run
    ends (its final step, or the step in flight when a signal came), so a resume starts
    exactly there. (Lightning's own end-of-training save comes after the loop has marked the
    epoch complete, which would resume at the next epoch.)

    SIGTERM / SIGINT (and SIGUSR1/SIGUSR2 under SLURM) finish the optimizer step in flight,
    save, and exit non-zero. SIGUSR1 also requeues the SLURM job into the same run dir;
    SIGUSR2 (submitit's timeout/preemption signal) is then handed to the handler that was
    there before (submitit's, which requeues the job). A signal seen by any DDP rank stops all
    ranks at the same step."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self, ckpt_dir: str) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.received: int | None = None
        self.saved_path: Path | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is None:
            log.warning(
                "Received %s: saving a checkpoint at the end of this step.",
                signal.Signals(signum).name,
            )
        self.received = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed after Lightning's own handlers, which would stop mid-accumulation.
        for sig in self.SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.saved_path is None and trainer.global_step > 0 and not trainer.fast_dev_run:
            # Ended some other way than max_steps (e.g. max_epochs): save what there is.
            self._save(trainer)
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_handlers()  # and save nothing: the last good checkpoint stays last

    def _save(self, trainer: L.Trainer) -> None:
        self.saved_path = self.ckpt_dir / LAST
        trainer.save_checkpoint(self.saved_path, weights_only=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.saved_path is not None:
            return
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        at_step_boundary = (
            batches % trainer.accumulate_grad_batches == 0
            or batches == trainer.num_training_batches
        )
        if not at_step_boundary:
            return
        # Ranks may get the signal at different batches: agree at each step boundary.
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
            if stop and self.received is None:
                self.received = signal.SIGTERM  # another rank was told to stop
        if self.received is None:
            if 0 < trainer.max_steps <= trainer.global_step:
                self._end_with_validation(trainer)
            return
        self._save(trainer)
        log.warning("Saved %s at step %d; stopping.", self.saved_path, trainer.global_step)
        if self.received == signal.SIGUSR1 and trainer.is_global_zero:
            requeue_slurm_job()
        trainer.should_stop = True
        # No last validation on the way out: a preempted job has seconds to spare.
        trainer.limit_val_batches = 0
        if self.received == signal.SIGUSR2:
            previous = self._previous.get(signal.SIGUSR2)
            if callable(previous):  # submitit: requeue this job into the same job dir
                self._restore_handlers()
                previous(signal.SIGUSR2, None)

    def _end_with_validation(self, trainer: L.Trainer) -> None:
        """At the final step: every run ends with a validation at its last step (the figure a
        sweep optimises), and last.ckpt is saved after it (on_validation_end) so its results
        are in the checkpoint. Lightning validates at a batch where `should_stop` is set, so
        the final step gets one even when it is not a multiple of val_every_n_steps."""
        if self._validates_now(trainer):
            return
        if trainer.enable_validation and trainer.fit_loop._can_stop_early:
            trainer.should_stop = True
            return
        self._save(trainer)  # no validation in this run: save now

    @staticmethod
    def _validates_now(trainer: L.Trainer) -> bool:
        """Whether Lightning validates right after this batch (val_check_batch counts batches
        over all epochs, as check_val_every_n_epoch=None makes it)."""
        interval = trainer.val_check_batch
        if not trainer.enable_validation or not isinstance(interval, int):
            return False
        return (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % interval == 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        final = 0 < trainer.max_steps <= trainer.global_step and self.received is None
        if final and self.saved_path is None and not trainer.sanity_checking:
            self._save(trainer)  # after the final validation, so its results are in the state

    @property
    def exit_code(self) -> int | None:
        return None if self.received is None else 128 + int(self.received)


def requeue_slurm_job() -> None:
    job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        log.warning("SIGUSR1 outside SLURM: nothing to requeue.")
        return
    if os.environ.get("SLURM_ARRAY_TASK_ID") and os.environ.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{job_id}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if result.returncode == 0:
        log.warning("Requeued SLURM job %s; it will resume from the same run dir.", job_id)
    else:
        log.warning("Requeueing SLURM job %s failed: %s", job_id, result.stderr.strip())
