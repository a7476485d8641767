"""Text from prompts: each prompt's continuation, decoded (training samples, scripts, tests)."""

from __future__ import annotations

from parrot_lm.data.tokenizer import Tokenizer
from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT


def sample_text(model: GPT, enc: Tokenizer, prompt: str, params: SamplingParams) -> str:
    """Prompt + continuation, cut at the first end-of-text token (and stop string)."""
    return prompt + complete_texts(model, enc, [prompt], params)[0]


def complete_texts(
    model: GPT,
    enc: Tokenizer,
    prompts: list[str],
    params: SamplingParams,
    *,
    stop_at_eot: bool = True,
    use_cache: bool = True,
) -> list[str]:
    """The continuation of each prompt (batched; prompts may differ in length), sampled with
    `params` and cut before the first of params.stop.

    An empty prompt starts from end-of-text, i.e. a new document. params.seed None samples
    from torch's global random state.
    """
    ids = [enc.encode_ordinary(p) or [enc.eot_token] for p in prompts]
    was_training = model.training
    model.eval()
    try:
        new = generate_tokens(
            model,
            ids,
            params,
            eot_id=enc.eot_token if stop_at_eot else None,
            vocab_limit=enc.n_vocab,
            use_cache=use_cache,
        )
    finally:
        model.train(was_training)
    return [cut_at_stop(enc.decode(tokens, errors="replace"), params.stop) for tokens in new]


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """`text` up to (without) the earliest of `stops` found in it; all of it if none is."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[: min(hits)] if hits else text
