"""Sampling from a GPT: batched prompts of different lengths, a KV cache, greedy / temperature /
top-k / top-p, stopping at end-of-text.

With the cache each new token runs the model on one position; without it (`use_cache=False`,
kept for benchmarks and tests) every step recomputes the whole prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from parrot_lm.model.gpt import GPT, KVCache


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Logits (B, V) with everything outside the top-k and the top-p nucleus set to -inf.

    The nucleus is the smallest set of most likely tokens whose probability reaches top_p;
    the most likely token is always kept.
    """
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)  # (B, V)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - F.softmax(sorted_logits, dim=-1) >= top_p  # mass before >= p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next ids (B,) from last-position logits (B, V); temperature 0 is greedy."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


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
    logits = model(ids, cache=cache, valid=valid)  # (B, T, V): left padding puts it last
    return cache, logits[:, -1]


@torch.no_grad()
def generate_tokens(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    vocab_limit: int | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New tokens for each prompt (ids), at most max_new_tokens, cut before eot_id if given.

    Prompts longer than the context keep their last tokens. When a sequence outgrows the
    context, the cache restarts from its last half-context tokens (a sliding window).
    vocab_limit: ids at or above it are never produced (a model vocab padded beyond its
    tokenizer's).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every prompt needs at least one token.")
    ctx = model.cfg.context_length
    rows = [list(p[-(ctx - 1) :]) if ctx > 1 else list(p[-1:]) for p in prompts]
    new: list[list[int]] = [[] for _ in rows]
    done = torch.zeros(len(rows), dtype=torch.bool)
    cache, logits = _prefill(model, rows, ctx) if use_cache else (None, None)
    for _ in range(max_new_tokens):
        if not use_cache:
            _, logits = _prefill(model, [r[-ctx:] for r in rows], ctx)
        if vocab_limit is not None:
            logits[:, vocab_limit:] = float("-inf")
        next_ids = sample_next(logits, temperature, top_k, top_p, generator).cpu()
        for i, token in enumerate(next_ids.tolist()):
            if done[i]:
                continue
            if eot_id is not None and token == eot_id:
                done[i] = True
                continue
            new[i].append(token)
        if bool(done.all()):
            break
        for row, token in zip(rows, next_ids.tolist(), strict=True):
            row.append(token)
        if use_cache:
            if cache.length == cache.max_len:  # slide: re-read the last half context
                cache, logits = _prefill(model, [r[-(ctx // 2 or 1) :] for r in rows], ctx)
            else:
                step = next_ids.to(cache.valid.device)[:, None]  # (B, 1)
                logits = model(step, cache=cache)[:, -1]
    return new
