"""What TensorBoard shows: no `epoch` scalar.

Lightning adds `epoch` to every batch of training metrics it hands the loggers (LoggerConnector
.log_metrics, when no `step` is logged). ParrotLM trains by optimizer steps and a run rarely
ends an epoch, so the plot is a flat line at 0 among the run's real curves.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

DROPPED = frozenset({"epoch"})


def _without_epoch(log_metrics: Any) -> Any:
    """`log_metrics` of a logger, minus the DROPPED keys."""

    def log(metrics: dict[str, Any], step: int | None = None) -> Any:
        return log_metrics({k: v for k, v in metrics.items() if k not in DROPPED}, step)

    log.drops_epoch = True  # marks a logger already wrapped (setup runs per fit and validate)
    return log


class NoEpochScalar(L.Callback):
    """Wraps each TensorBoardLogger's `log_metrics` so `epoch` never reaches its events."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and not getattr(
                logger.log_metrics, "drops_epoch", False
            ):
                logger.log_metrics = _without_epoch(logger.log_metrics)


# TensorBoard's Text tab renders Markdown: an indented code block keeps a sample's spaces and
# quotes as generated, but it does not wrap (a long sample scrolled off to the side) and it
# ends at the sample's first line that is not indented (the rest became a paragraph).
WRAP_COLUMNS = 100


def sample_markdown(samples: list[str], width: int = WRAP_COLUMNS) -> str:
    """Text samples as one Markdown code block per sample, every line indented and wrapped at
    `width` columns (the sample's own line breaks kept)."""
    blocks = []
    for sample in samples:
        lines = []
        for line in sample.splitlines() or [""]:
            lines += [line[i : i + width] for i in range(0, len(line), width)] or [""]
        blocks.append("\n".join(f"    {line}" for line in lines))
    return "\n\n".join(blocks)
