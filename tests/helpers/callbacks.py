"""Test-only callbacks and plugins, injected through the config like a user's own would be
(`+callbacks.<name>._target_=tests.helpers.callbacks.<Class>`)."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L

from parrot_lm.training.checkpointing import AtomicCheckpointIO
from parrot_lm.training.lit_module import latest_val_loss


class LossRecorder(L.Callback):
    """Appends `epoch batch_idx global_step loss.hex()` per training batch: exact floats."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = float(outputs["loss"]) if outputs is not None else float("nan")
        with open(self.path, "a") as f:
            f.write(f"{trainer.current_epoch} {batch_idx} {trainer.global_step} {loss.hex()}\n")


class BatchRecorder(L.Callback):
    """Per rank (`<path>.rank<r>`): `train step loss.hex() row-hashes` per batch and
    `val step loss.hex()` per validation, to compare runs across world sizes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, trainer: L.Trainer, line: str) -> None:
        with open(f"{self.path}.rank{trainer.global_rank}", "a") as f:
            f.write(line + "\n")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        rows = ",".join(hashlib.md5(row.numpy().tobytes()).hexdigest()[:12] for row in batch[0])
        loss = float(outputs["loss"]) if outputs else float("nan")  # None: a skipped batch
        self._write(trainer, f"train {trainer.global_step} {loss.hex()} {rows}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        loss = latest_val_loss(trainer)  # val/loss, or val/loss_partial when limited
        if loss is not None and not trainer.sanity_checking:
            self._write(trainer, f"val {trainer.global_step} {float(loss).hex()}")


class SignalAt(L.Callback):
    """Sends `signal` to this process at the start of a batch once `global_step` has reached
    `step`, after letting `skip_batches` more batches run (orphan work, mid-accumulation).
    With `rank`, only that DDP rank is signalled; with `once_file`, only the first process
    that gets there (a requeued job that resumes past `step` is left alone)."""

    def __init__(
        self,
        step: int,
        signal_name: str = "SIGKILL",
        skip_batches: int = 0,
        rank: int | None = None,
        once_file: str | None = None,
    ) -> None:
        self.step = step
        self.signum = getattr(signal, signal_name)
        self.skip = skip_batches
        self.rank = rank
        self.once_file = Path(once_file) if once_file else None
        self.sent = False

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.sent or trainer.global_step < self.step:
            return
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if self.once_file is not None:
            if self.once_file.exists():
                return
            self.once_file.touch()
        if self.skip:
            self.skip -= 1
            return
        self.sent = True
        os.kill(os.getpid(), self.signum)


class PoisonWeightsAt(L.Callback):
    """Sets the final norm's weight to NaN at the first batch of `step`, so that batch's loss is
    non-finite; with `restore`, puts the weight back after that one batch. `rank`: only in that
    DDP rank (the others see a finite loss)."""

    def __init__(self, step: int, restore: bool = False, rank: int | None = None) -> None:
        self.step = step
        self.restore = restore
        self.rank = rank
        self.saved = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if trainer.global_step == self.step and self.saved is None:
            self.saved = pl_module.model.norm.weight.detach().clone()
            pl_module.model.norm.weight.data.fill_(float("nan"))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.restore and self.saved is not None:
            pl_module.model.norm.weight.data.copy_(self.saved)
            self.restore = False


class DyingCheckpointIO(AtomicCheckpointIO):
    """Dies by SIGKILL half-way through writing its `die_on_save`-th checkpoint file."""

    def __init__(self, die_on_save: int) -> None:
        super().__init__()
        self.die_on_save = die_on_save
        self.saves = 0

    def _write(self, f, data: memoryview) -> None:
        self.saves += 1
        if self.saves < self.die_on_save:
            return super()._write(f, data)
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


# The overrides that add the callbacks above to a run (later overrides of the same keys win; on
# a resume they apply on top of the run's saved config, which holds them).
def loss_recorder(path: Path | str) -> list[str]:
    return [
        "+callbacks.recorder._target_=tests.helpers.callbacks.LossRecorder",
        f"+callbacks.recorder.path={path}",
    ]


def batch_recorder(path: Path | str) -> list[str]:
    return [
        "+callbacks.recorder._target_=tests.helpers.callbacks.BatchRecorder",
        f"+callbacks.recorder.path={path}",
    ]


def signal_at(
    step: int,
    signal_name: str = "SIGKILL",
    skip_batches: int | None = None,
    rank: int | None = None,
    once_file: Path | str | None = None,
) -> list[str]:
    args = {"signal_name": signal_name, "skip_batches": skip_batches, "rank": rank}
    args["once_file"] = once_file
    return [
        "+callbacks.kill._target_=tests.helpers.callbacks.SignalAt",
        f"+callbacks.kill.step={step}",
        *(f"+callbacks.kill.{k}={v}" for k, v in args.items() if v is not None),
    ]


# A resumed run keeps the saved kill callback: this moves its step out of reach.
DISARM_SIGNAL = "+callbacks.kill.step=1000000000"


def poison_at(step: int | str, restore: bool = False, rank: int | None = None) -> list[str]:
    return [
        "+callbacks.poison._target_=tests.helpers.callbacks.PoisonWeightsAt",
        f"+callbacks.poison.step={step}",
        *(["+callbacks.poison.restore=true"] if restore else []),
        *([f"+callbacks.poison.rank={rank}"] if rank is not None else []),
    ]


class RaiseAt(L.Callback):
    """Raises RuntimeError at the first batch of `step`: a run that crashes mid-training."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"test crash at step {self.step}")


class BlindValidation(L.Callback):
    """Zeroes the final norm's weight for each validation (restored right after), so every
    validation scores uniform logits, ln(vocab): worse than any trained model. The weights
    training continues from, and any checkpoint saved after validation, are untouched."""

    def __init__(self) -> None:
        self.saved = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.saved = pl_module.model.norm.weight.detach().clone()
        pl_module.model.norm.weight.data.zero_()

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.saved is not None:
            pl_module.model.norm.weight.data.copy_(self.saved)
            self.saved = None
