"""Text samples from a model during and after training (the quick look that a loss cannot give)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from parrot_lm.data.tokenizer import Tokenizer
from parrot_lm.generate import generate_tokens
from parrot_lm.model import GPT


def sample_text(
    model: GPT,
    enc: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
) -> str:
    """Prompt + continuation, cut at the first end-of-text token."""
    return (
        prompt
        + complete_texts(model, enc, [prompt], max_new_tokens, temperature, top_k, seed=seed)[0]
    )


def complete_texts(
    model: GPT,
    enc: Tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    stop_at_eot: bool = True,
    use_cache: bool = True,
) -> list[str]:
    """The continuation of each prompt (batched; prompts may differ in length).

    An empty prompt starts from end-of-text, i.e. a new document.
    """
    device = next(model.parameters()).device
    ids = [enc.encode_ordinary(p) or [enc.eot_token] for p in prompts]
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        new = generate_tokens(
            model,
            ids,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            eot_id=enc.eot_token if stop_at_eot else None,
            generator=generator,
            vocab_limit=enc.n_vocab,
            use_cache=use_cache,
        )
    finally:
        model.train(was_training)
    return [enc.decode(tokens, errors="replace") for tokens in new]


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
