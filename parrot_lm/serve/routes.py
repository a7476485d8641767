"""The endpoints (see `parrot_lm.serve.app`), on one APIRouter; each reads the server's
state (`Completions`) from `app.state.completions`."""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from parrot_lm.serve.checkpoints import CheckpointInfo, default_checkpoint
from parrot_lm.serve.completions import Completions
from parrot_lm.serve.errors import APIError
from parrot_lm.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    check_prompt,
    sampling_params,
)
from parrot_lm.serve.templates import CHAT_STOP, TemplateError, render_chat

router = APIRouter()


def _completions(request: Request) -> Completions:
    return request.app.state.completions


Server = Annotated[Completions, Depends(_completions)]


# -- page and listings ---------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The chat page (static/index.html)."""
    html = resources.files("parrot_lm.serve").joinpath("static/index.html").read_text("utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/health")
async def health(server: Server) -> dict[str, Any]:
    """Generations running now and the models in memory."""
    return {
        "status": "ok",
        "active_generations": server.slots.active,
        "loaded": server.pool.loaded_ids(),
    }


@router.get("/api/checkpoints")
async def checkpoints(server: Server) -> dict[str, Any]:
    """Every checkpoint found (unreadable ones with their error), the sampling defaults and
    the limits, for the chat page."""
    settings, defaults = server.settings, server.settings.sampling
    found = await run_in_threadpool(server.catalog.scan)
    best = default_checkpoint(found)
    return {
        "outputs_dir": str(settings.outputs_dir),
        "checkpoints": [info.to_json() for info in found],
        "default": best.id if best else None,  # the page selects it unless the user chose one
        "defaults": {
            "temperature": defaults.temperature,
            "top_k": defaults.top_k,
            "top_p": defaults.top_p,
            "max_tokens": defaults.max_new_tokens,
        },
        "limits": {
            "max_tokens": settings.max_new_tokens_limit,
            "max_prompt_chars": settings.max_prompt_chars,
            "max_concurrent": settings.max_concurrent,
        },
    }


def model_object(info: CheckpointInfo, default: bool = False) -> dict[str, Any]:
    """A checkpoint as OpenAI's model object, plus its run, step, val loss, whether its run
    failed and whether it is the default (serve/checkpoints.py default_checkpoint)."""
    return {
        "id": info.id,
        "object": "model",
        "created": int(info.modified),
        "owned_by": "parrot_lm",
        "run": info.run,
        "step": info.step,
        "val_loss": info.val_loss,
        "failed": info.failed,
        "default": default,
    }


@router.get("/v1/models")
async def models(server: Server) -> dict[str, Any]:
    """The loadable checkpoints, the default first (clients that take `data[0]` get the
    lowest val loss), then newest first."""
    found = [i for i in await run_in_threadpool(server.catalog.scan) if i.error is None]
    best = default_checkpoint(found)
    ordered = sorted(found, key=lambda i: i is not best)  # stable: the rest stay newest first
    return {"object": "list", "data": [model_object(i, i is best) for i in ordered]}


@router.get("/v1/models/{model_id:path}")
async def model(model_id: str, server: Server) -> dict[str, Any]:
    """One checkpoint, by id (its path under outputs_dir, or a run name: Completions.find)."""
    return model_object(await run_in_threadpool(server.find, model_id))


# -- generation ----------------------------------------------------------------------------
@router.post("/v1/completions")
async def completions(req: CompletionRequest, server: Server, request: Request) -> Any:
    """Continue a prompt."""
    if req.echo:
        raise APIError(400, "echo is not supported by this server.", "echo")
    if req.suffix:
        raise APIError(400, "suffix is not supported by this server.", "suffix")
    if req.best_of not in (None, 1):
        raise APIError(400, "best_of must be 1.", "best_of")
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise APIError(400, "prompt must be one string (one completion per request).")
        prompt = prompt[0]
    params = sampling_params(req, server.settings, req.max_tokens)
    check_prompt(prompt, server.settings, "prompt")
    stream_fields = (req.stream_options or {}) if req.stream else None
    return await server.respond(
        "completion", req.model, prompt, params, stream_fields, chat=False, request=request
    )


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest, server: Server, request: Request) -> Any:
    """Reply to a chat transcript (rendered as plain text for these base models)."""
    for key in ("tools", "functions"):
        if getattr(req, key):
            raise APIError(400, f"{key} are not supported: these are base models.", key)
    if (req.response_format or {}).get("type", "text") != "text":
        raise APIError(400, "Only the text response_format is supported.", "response_format")
    max_tokens = req.max_completion_tokens if req.max_tokens is None else req.max_tokens
    params = sampling_params(req, server.settings, max_tokens)
    try:
        prompt = render_chat([m.model_dump() for m in req.messages])
    except TemplateError as e:
        raise APIError(400, str(e), "messages") from None
    check_prompt(prompt, server.settings, "messages")
    params = dataclasses.replace(params, stop=(*CHAT_STOP, *params.stop))
    stream_fields = (req.stream_options or {}) if req.stream else None
    return await server.respond(
        "chat", req.model, prompt, params, stream_fields, chat=True, request=request
    )
