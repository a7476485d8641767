"""Text samples in TensorBoard after each validation: the quick look that a loss cannot give."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from parrot_lm.generation.text import sample_text


class TextSamples(L.Callback):
    """Writes a generated sample to TensorBoard's Text tab after each validation."""

    def __init__(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int | None = 40,
    ) -> None:
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.last_samples: list[str] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        enc = trainer.datamodule.load_tokenizer()
        self.last_samples = [
            sample_text(pl_module.model, enc, p, self.max_new_tokens, self.temperature, self.top_k)
            for p in self.prompts
        ]
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                text = "\n\n".join(f"    {s}" for s in self.last_samples)  # markdown code block
                logger.experiment.add_text("samples", text, global_step=trainer.global_step)
