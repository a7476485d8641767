"""How to sample a continuation, as one value checked once: `SamplingParams`.

Every place that samples (the decoding loop, text helpers, training samples, `generate.py`,
the chat server) takes a SamplingParams, so a setting is range-checked in one place, here.
Callers with limits of their own (the server's `max_new_tokens_limit`) check those on top.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parrot_lm.core.errors import SamplingError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    """`value` as a finite float; None for anything else (NaN, inf, 10**400, text)."""
    try:
        number = float(value) if _is_number(value) else math.nan
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class SamplingParams:
    """The settings of one sampled continuation; built only from values in range.

    max_new_tokens: the most new tokens (>= 1); end-of-text may stop it sooner.
    temperature: logits are divided by it before the softmax (>= 0, finite); 0 is greedy.
    top_k: sample among the k most likely tokens; None or 0 turns it off (stored as None).
    top_p: sample among the smallest set of most likely tokens whose probability reaches
        top_p, in (0, 1]; None or 1 turns it off. The most likely token is always kept.
    seed: seeds the sampler (any integer; torch takes it modulo 2**64); None: fresh randomness.
    stop: strings that end a continuation, cut before the first one; a single string is one
        stop string, empty strings are dropped. Applied to text (`complete_texts`, the
        server's streams), not by the token loop.
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through object.__setattr__
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise SamplingError(
                "max_new_tokens",
                f"max_new_tokens must be an integer >= 1; got {self.max_new_tokens!r}.",
            )
        set_(self, "max_new_tokens", int(self.max_new_tokens))
        t = self.temperature
        if _finite(t) is None:
            raise SamplingError(
                "temperature", f"temperature must be a finite number >= 0 (0 is greedy); got {t!r}."
            )
        if t < 0:
            raise SamplingError(
                "temperature", f"temperature must be >= 0 (0 is greedy); got {t!r}."
            )
        set_(self, "temperature", _finite(t))
        set_(self, "top_k", _checked_top_k(self.top_k))
        set_(self, "top_p", _checked_top_p(self.top_p))
        if self.seed is not None and not _is_int(self.seed):
            raise SamplingError("seed", f"seed must be an integer or null; got {self.seed!r}.")
        set_(self, "seed", None if self.seed is None else int(self.seed))
        set_(self, "stop", _checked_stop(self.stop))


def _checked_top_k(top_k: Any) -> int | None:
    if top_k is None:
        return None
    if not _is_int(top_k):
        raise SamplingError("top_k", f"top_k must be an integer or null; got {top_k!r}.")
    if top_k < 0:
        raise SamplingError("top_k", f"top_k must be >= 0 (0 turns it off); got {top_k!r}.")
    return int(top_k) or None


def _checked_top_p(top_p: Any) -> float | None:
    if top_p is None:
        return None
    if not _is_number(top_p):
        raise SamplingError("top_p", f"top_p must be a number in (0, 1] or null; got {top_p!r}.")
    if not 0 < top_p <= 1:  # NaN fails this too
        raise SamplingError("top_p", f"top_p must be in (0, 1]; got {top_p!r}.")
    return float(top_p)


def _checked_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
        raise SamplingError("stop", f"stop must be a string or a list of strings; got {stop!r}.")
    return tuple(s for s in stop if s)
