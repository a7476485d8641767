"""Text samples after each validation, in every logger that shows text: the quick look that a
loss cannot give."""

from __future__ import annotations

from typing import Any

import lightning as L

from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import sample_text
from parrot_lm.training.loggers import log_text_samples


class TextSamples(L.Callback):
    """Writes a generated sample of each prompt after each validation: TensorBoard's Text tab, a
    W&B table, an MLflow text artifact (`log_text_samples`).

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
            log_text_samples(logger, self.prompts, self.last_samples, trainer.global_step)
