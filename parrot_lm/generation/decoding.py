"""Sampling from a GPT: batched prompts of different lengths, a KV cache, greedy / temperature /
top-k / top-p (one `SamplingParams`), stopping at end-of-text.

With the cache each new token runs the model on one position; without it (`use_cache=False`,
kept for benchmarks and tests) every step recomputes the whole prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from parrot_lm.generation.params import SamplingParams
from parrot_lm.model.gpt import GPT, KVCache


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Logits (B, V) with everything outside the top-k and the top-p nucleus set to -inf.

    The nucleus is the smallest set of most likely tokens whose probability reaches top_p;
    the most likely token is always kept, however small top_p is. top_k None or 0: off.
    """
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)  # (B, V)
        probs = F.softmax(sorted_logits, dim=-1)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # the mass before reaches p
        drop_sorted[:, 0] = False  # the most likely token stays, even for top_p -> 0
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Next ids (B,) from last-position logits (B, V) with params' temperature, top_k, top_p;
    temperature 0 is greedy.

    The logits are shifted so each row's largest is 0 before dividing by the temperature, so
    a tiny temperature gives -inf and 0 (never inf - inf), and masked (-inf) logits stay -inf
    for any temperature: no NaN reaches the softmax while a row has one finite logit.
    """
    logits = logits.float()
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    masked = logits == float("-inf")
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    scaled = (shifted / params.temperature).masked_fill(masked, float("-inf"))
    probs = F.softmax(filter_logits(scaled, params.top_k, params.top_p), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def seeded_generator(device: torch.device | str, seed: int | None) -> torch.Generator | None:
    """A generator on `device` seeded with `seed` (modulo 2**64, as torch wraps negatives);
    None for no seed (torch's global random state)."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed % 2**64)


def _left_pad(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T) left-padded with 0, and the mask of real tokens (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    valid = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row)
            valid[i, width - len(row) :] = True
    return ids.to(device), valid.to(device)


def _prefill(model: GPT, rows: list[list[int]], max_len: int) -> tuple[KVCache, torch.Tensor]:
    """A fresh cache holding `rows`, and the logits after each row's last token (B, V)."""
    param = next(model.parameters())
    cache = KVCache(model.cfg, len(rows), max_len, param.device, param.dtype)
    ids, valid = _left_pad(rows, param.device)
    # forward, not __call__: a model compiled in place for training (speed.compile) would
    # recompile for every prompt and cache length; decoding runs eagerly.
    logits = model.forward(ids, cache=cache, valid=valid)  # (B, T, V): left padding puts it last
    return cache, logits[:, -1]


def _fit_context(prompt: list[int], ctx: int) -> list[int]:
    """The prompt's last tokens that leave room for one new token in the context."""
    return list(prompt[-(ctx - 1) :]) if ctx > 1 else list(prompt[-1:])


def _sample_steps(
    model: GPT,
    rows: list[list[int]],
    params: SamplingParams,
    generator: torch.Generator | None,
    vocab_limit: int | None,
    use_cache: bool,
) -> Iterator[torch.Tensor]:
    """Next ids (B,) on the CPU, one step per `next()`, without end: the caller decides when to
    stop. Each step appends its ids to `rows`. Lazy, so the model runs only for the steps the
    caller asks for (a stopped stream costs nothing more).

    With the cache each step runs the model on one position; when a sequence outgrows the
    context, the cache restarts from its last half-context tokens (a sliding window).
    """
    ctx = model.cfg.context_length
    with model.frozen_for_decoding():  # one paired qkv copy per layer, not one per token
        cache, logits = _prefill(model, rows, ctx) if use_cache else (None, None)
        while True:
            if not use_cache:
                _, logits = _prefill(model, [r[-ctx:] for r in rows], ctx)
            if vocab_limit is not None:
                logits[:, vocab_limit:] = float("-inf")
            next_ids = sample_next(logits, params, generator).cpu()
            yield next_ids
            for row, token in zip(rows, next_ids.tolist(), strict=True):
                row.append(token)
            if use_cache:
                if cache.length == cache.max_len:  # slide: re-read the last half context
                    cache, logits = _prefill(model, [r[-(ctx // 2 or 1) :] for r in rows], ctx)
                else:
                    step = next_ids.to(cache.valid.device)[:, None]  # (B, 1)
                    logits = model.forward(step, cache=cache)[:, -1]  # eagerly, as in _prefill


def _generator(model: GPT, params: SamplingParams, generator: torch.Generator | None):
    """The generator given, else one seeded with params.seed on the model's device."""
    if generator is not None:
        return generator
    return seeded_generator(next(model.parameters()).device, params.seed)


@torch.no_grad()
def generate_tokens(
    model: GPT,
    prompts: list[list[int]],
    params: SamplingParams,
    *,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    vocab_limit: int | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New tokens (ids) for each prompt (ids), at most params.max_new_tokens, cut before eot_id
    if given.

    Sampling follows `params` (temperature, top_k, top_p); `generator` wins over params.seed.
    params.stop (strings) is for the text layers, not applied here. Prompts longer than the
    context keep their last tokens. When a sequence outgrows the context, the cache restarts
    from its last half-context tokens (a sliding window). vocab_limit: ids at or above it are
    never produced (a model vocab padded beyond its tokenizer's).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every prompt needs at least one token.")
    rows = [_fit_context(p, model.cfg.context_length) for p in prompts]
    new: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    generator = _generator(model, params, generator)
    steps = _sample_steps(model, rows, params, generator, vocab_limit, use_cache)
    for _ in range(params.max_new_tokens):
        for i, token in enumerate(next(steps).tolist()):
            if done[i]:
                continue
            if eot_id is not None and token == eot_id:
                done[i] = True
                continue
            new[i].append(token)
        if all(done):
            break
    return new


@torch.no_grad()
def iter_tokens(
    model: GPT,
    prompt: list[int],
    params: SamplingParams,
    *,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    vocab_limit: int | None = None,
) -> Iterator[int]:
    """The new tokens (ids) of ONE prompt, yielded as each is sampled (for streaming).

    Same sampling as `generate_tokens` (KV cache, sliding window, `params`, vocab_limit):
    `list(iter_tokens(m, p, params)) == generate_tokens(m, [p], params)[0]` for the same
    generator state. Ends before eot_id, after params.max_new_tokens, or when the caller stops
    iterating (e.g. on a stop string); the model never runs ahead of the consumer.
    """
    if len(prompt) == 0:
        raise ValueError("The prompt needs at least one token.")
    rows = [_fit_context(prompt, model.cfg.context_length)]
    steps = _sample_steps(
        model, rows, params, _generator(model, params, generator), vocab_limit, True
    )
    for _ in range(params.max_new_tokens):
        token = int(next(steps)[0])
        if eot_id is not None and token == eot_id:
            return
        yield token
