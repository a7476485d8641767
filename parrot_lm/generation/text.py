"""Text from prompts: each prompt's continuation, decoded (training samples, scripts, tests)."""

from __future__ import annotations

import torch

from parrot_lm.data.tokenizer import Tokenizer
from parrot_lm.generation.decoding import generate_tokens
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
