"""Text samples in TensorBoard after each validation: the quick look that a loss cannot give."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import sample_text
from parrot_lm.training.callbacks.tensorboard import sample_markdown


class TextSamples(L.Callback):
    """Writes a generated sample of each prompt to TensorBoard's Text tab after each validation.

    The sampling keys are the config's (conf/callbacks/default.yaml's text_samples), checked
    here as one SamplingParams, so a bad value fails when the run starts, not at its first
    validation.
    """

    def __init__(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int | None = 40,
        top_p: float | None = None,
        seed: int | None = 0,
    ) -> None:
        self.prompts = list(prompts)
        self.params = SamplingParams(max_new_tokens, temperature, top_k, top_p, seed)
        self.last_samples: list[str] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Sample each prompt (rank 0, not during the sanity check) and log the texts."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        enc = trainer.datamodule.load_tokenizer()
        self.last_samples = [
            sample_text(pl_module.model, enc, p, self.params) for p in self.prompts
        ]
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                text = sample_markdown(self.last_samples)  # wrapped Markdown code blocks
                logger.experiment.add_text("samples", text, global_step=trainer.global_step)
