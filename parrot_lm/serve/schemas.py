"""Request bodies of the OpenAI-compatible endpoints, and the checks that turn one into a
prompt and a SamplingParams (or an APIError naming the first bad field)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict

from parrot_lm.core.errors import SamplingError
from parrot_lm.generation.params import SamplingParams
from parrot_lm.serve.errors import APIError
from parrot_lm.serve.settings import Settings

MAX_STOP_STRINGS = 16
# SamplingParams' field -> the request field that sets it.
REQUEST_FIELD = {"max_new_tokens": "max_tokens"}


class SamplingRequest(BaseModel):
    """The fields both endpoints share; unknown extra fields (user, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # not in OpenAI's API: pass it as an extra body field
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logprobs: Any = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class CompletionRequest(SamplingRequest):
    """POST /v1/completions."""

    prompt: str | list[str]
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class ChatMessage(BaseModel):
    """One message of a chat transcript."""

    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(SamplingRequest):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None


def sampling_params(
    req: SamplingRequest, settings: Settings, max_tokens: int | None
) -> SamplingParams:
    """The request's sampling fields over the server's defaults (settings.sampling), or an
    APIError naming the first one refused.

    The server's own limits (max_new_tokens_limit, MAX_STOP_STRINGS, unsupported fields) are
    checked here; value ranges are SamplingParams' to check, and its ConfigError sentence
    becomes the 400's message.
    """
    limit = settings.max_new_tokens_limit
    if req.n is not None and req.n != 1:
        raise APIError(400, f"n must be 1 (one choice per request); got {req.n}.", "n")
    if req.logprobs not in (None, False, 0):
        raise APIError(400, "logprobs are not supported by this server.", "logprobs")
    for key in ("frequency_penalty", "presence_penalty"):
        if getattr(req, key):
            raise APIError(400, f"{key} is not supported by this server; leave it at 0.", key)
    defaults = settings.sampling
    max_tokens = defaults.max_new_tokens if max_tokens is None else max_tokens
    if not 1 <= max_tokens <= limit:
        raise APIError(
            400,
            f"max_tokens must be between 1 and {limit} (the server's max_new_tokens_limit); "
            f"got {max_tokens}.",
            "max_tokens",
        )
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    stops = [s for s in stops if s]
    if len(stops) > MAX_STOP_STRINGS:
        raise APIError(400, f"stop takes at most {MAX_STOP_STRINGS} strings.", "stop")
    given = {k: getattr(req, k) for k in ("temperature", "top_k", "top_p")}
    seed = None if req.seed is None else req.seed % 2**63  # any int, as OpenAI takes
    try:
        return dataclasses.replace(
            defaults,
            max_new_tokens=max_tokens,
            seed=seed,
            stop=tuple(stops),
            **{k: v for k, v in given.items() if v is not None},
        )
    except SamplingError as e:
        raise APIError(400, str(e), REQUEST_FIELD.get(e.field, e.field)) from None


def check_prompt(prompt: str, settings: Settings, param: str) -> None:
    """An APIError (400) for an empty prompt or one longer than settings.max_prompt_chars
    (characters); `param` is the request field it came from."""
    if not prompt.strip():
        raise APIError(400, f"{param} is empty; send some text to continue.", param)
    if len(prompt) > settings.max_prompt_chars:
        raise APIError(
            400,
            f"The prompt is {len(prompt):,} characters long; the limit is "
            f"{settings.max_prompt_chars:,} (the server's max_prompt_chars).",
            param,
        )
