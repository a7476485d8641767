"""What a training run prints: Lightning's start-up noise filtered out, and at the end where the
run's files are and the commands that come next."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from parrot_lm.runs.run_dir import RunDir, is_scratch_dir

# Lightning's info lines that say nothing about this run: the accelerators it did not find
# (every CPU run lists GPU and TPU as absent), an advertisement, and the end of fit, which
# ParrotLM's own end-of-run lines replace. Warnings go through `warnings`, not these loggers,
# so none is hidden.
NOISE_PREFIXES = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "`Trainer.fit` stopped:",
)
RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
# `lightning/__init__.py` gives these loggers their own "INFO: ..." stream handler, so every
# Lightning line was printed twice under Hydra's logging (once by each handler).
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class DropLightningNoise(logging.Filter):
    """Drops the records of NOISE_PREFIXES; passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE_PREFIXES)


def quiet_lightning() -> None:
    """Filter Lightning's noise lines and print each of its other lines once, through the
    handlers Hydra configured (console and `<run dir>/train.log`). Idempotent."""
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropLightningNoise) for f in logger.filters):
            logger.addFilter(DropLightningNoise())
    # "Seed set to N": the seed is in run_config.yaml; the line is the first of every run.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    if not logging.getLogger().handlers:  # nobody configured logging: keep Lightning's own
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # Lightning's own, not a file handler
                logger.removeHandler(handler)
        logger.propagate = True


def _shown(path: Path) -> str:
    """A path as the user can paste it: relative to the current dir when inside it."""
    path = path.resolve()
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def best_checkpoint(trainer: Any) -> Path | None:
    """The best checkpoint of a ModelCheckpoint that monitors a metric; None when none does
    (ParrotLM's periodic checkpoints monitor nothing: their 'best' is only the newest)."""
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        path = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", None) and path and Path(path).is_file():
            return Path(path)
    return None


def next_steps(run_dir: RunDir, max_steps: int, best: Path | None = None) -> str:
    """The end-of-run lines: where the run's files are and the commands that come next; for a
    run dir removed at exit (debug=fdr), one line saying so, since every command would fail."""
    run = _shown(run_dir.path)
    if is_scratch_dir(run_dir.path):
        return (
            f"Run dir:     {run} is temporary (a fast dev run keeps nothing) and is removed "
            "as this process exits, so there is nothing to evaluate or resume."
        )
    lines = [f"Run dir:     {run}"]
    if run_dir.last_checkpoint.is_file():
        lines.append(f"Checkpoint:  {_shown(run_dir.last_checkpoint)}")
    if best is not None:
        lines.append(f"Best:        {_shown(best)}")
    if run_dir.tensorboard.is_dir():
        lines.append(f"TensorBoard: tensorboard --logdir {_shown(run_dir.tensorboard)}")
    if run_dir.last_checkpoint.is_file() or best is not None:
        lines += [
            f"Evaluate:    python scripts/evaluate.py ckpt={run}",
            f'Generate:    python scripts/generate.py ckpt={run} prompt="Once upon a time"',
            f"Chat:        python scripts/chat.py outputs_dir={run}",
        ]
    lines.append(f"Train more:  python train.py resume={run} trainer.max_steps={2 * max_steps}")
    return "\n".join(lines)
