"""The training progress line: optimizer steps out of max_steps, loss, tokens/s and ETA.

Lightning's bars count the batches of an epoch (`Epoch 0/-2 ... 800/596` for a run that
trains by steps and never finishes an epoch); ParrotLM's unit is the optimizer step.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

# On a terminal the line is redrawn in place at most this often (seconds).
REDRAW_S = 0.2
# Elsewhere (a log file, SLURM's output) it is printed as its own line about this many times.
LINES_PER_RUN = 20


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds))) if math.isfinite(seconds) else "?"


class StepProgress(ProgressBar):
    """One line, `step 30/800 | loss 4.910 | val 4.823 | 2,997 tokens/s | 0:00:03 | ETA 0:01:20`,
    redrawn in place on a terminal and printed every ~5% of the run otherwise. Loss and
    tokens/s are the values last logged (every `trainer.log_every_n_steps` steps); the ETA is
    the wall time per step so far in this process, validations included. Prints nothing
    during validation (LitLM logs each validation's result as a line)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._enabled = True
        self._start: tuple[float, int] | None = None  # (time, step) when training started
        self._last_draw = 0.0
        self._last_step = -1
        self._drawn = 0  # characters of the line now on the terminal (0: none)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def line(self, trainer: L.Trainer) -> str:
        """The progress line of this moment."""
        step, total = trainer.global_step, trainer.max_steps
        metrics = trainer.progress_bar_metrics
        parts = [f"step {step}/{total}" if total and total > 0 else f"step {step}"]
        if "train/loss" in metrics:
            parts.append(f"loss {float(metrics['train/loss']):.3f}")
        for name in ("val/loss", "val/loss_partial"):
            if name in metrics:
                parts.append(f"val {float(metrics[name]):.3f}")
                break
        if "train/tokens_per_sec" in metrics:
            parts.append(f"{float(metrics['train/tokens_per_sec']):,.0f} tokens/s")
        if self._start is not None:
            elapsed = time.perf_counter() - self._start[0]
            done = step - self._start[1]
            parts.append(_duration(elapsed))
            if total and total > 0 and done > 0:
                parts.append(f"ETA {_duration(elapsed / done * max(total - step, 0))}")
        return " | ".join(parts)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if not self._enabled or step == self._last_step:  # a micro-batch inside a step
            return
        self._last_step = step
        last = trainer.max_steps > 0 and step >= trainer.max_steps
        if self.stream.isatty():
            now = time.perf_counter()
            if last or now - self._last_draw >= REDRAW_S:
                self._last_draw = now
                text = self.line(trainer)
                self.stream.write("\r" + text.ljust(self._drawn))
                self.stream.flush()
                self._drawn = len(text)
        else:
            every = max(1, math.ceil(trainer.max_steps / LINES_PER_RUN))
            if last or step % every == 0:
                self.stream.write(self.line(trainer) + "\n")
                self.stream.flush()

    def _end_line(self) -> None:
        """Move off the redrawn line, so that a log line does not land on it."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_line()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_line()

    def on_exception(self, trainer: L.Trainer, *args: Any) -> None:
        self._end_line()
