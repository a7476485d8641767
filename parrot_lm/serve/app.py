"""The chat server: a web page and OpenAI-compatible endpoints over the checkpoints in outputs/.

    GET  /                      the chat page (static/index.html)
    GET  /api/checkpoints       every *.ckpt with run, step, val loss; defaults and limits
    GET  /v1/models             the loadable checkpoints, by id (path under outputs_dir)
    POST /v1/completions        {"model", "prompt", "max_tokens", "temperature", "top_p",
                                 "top_k", "stop", "seed", "stream"}
    POST /v1/chat/completions   {"model", "messages": [{"role", "content"}], same fields}

Generation runs in worker threads (one token per hop for streams), so the event loop keeps
answering while models compute; at most `max_concurrent` generations run at once and the next
one gets 429 at once instead of waiting. Every bad request gets a 4xx with an OpenAI-style body,
`{"error": {"message": <one sentence>, "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from parrot_lm.runs.loading import LoadedModel, load_model
from parrot_lm.serve.checkpoints import CheckpointCatalog, CheckpointInfo
from parrot_lm.serve.settings import Settings
from parrot_lm.serve.streaming import SamplingParams, TextStream
from parrot_lm.serve.templates import CHAT_STOP, TemplateError, render_chat

log = logging.getLogger(__name__)

MAX_STOP_STRINGS = 16
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- errors ----------------------------------------------------------------------------------
class APIError(Exception):
    """A request the server refuses: HTTP status and one sentence for the client."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )


def error_body(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error shape, which clients (the openai package among them) know how to show."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """FastAPI's list of pydantic errors -> one sentence naming the first bad field."""
    if not errors:
        return "The request is invalid.", None
    err = errors[0]
    # ("body", "prompt", "str"): drop "body" and the union member pydantic tried ("str").
    loc = [
        str(x)
        for x in err.get("loc", ())
        if x != "body" and x not in ("str", "int", "float", "bool") and "[" not in str(x)
    ]
    field = ".".join(loc) or None
    kind = err.get("type", "")
    if kind == "json_invalid":
        why = (err.get("ctx") or {}).get("error", "")
        return f"The request body is not valid JSON{f' ({why})' if why else ''}.", None
    if field is None:
        if kind == "missing":
            return "The request has no body; send a JSON object.", None
        return "The request body must be a JSON object (Content-Type: application/json).", None
    if kind == "missing":
        return f"'{field}' is required.", field
    if kind == "extra_forbidden":
        return f"'{field}' is not a known field.", field
    return f"Invalid '{field}': {str(err.get('msg', 'bad value')).rstrip('.')}.", field


# -- request bodies --------------------------------------------------------------------------
class _Sampling(BaseModel):
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


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None


# -- limits ----------------------------------------------------------------------------------
class Lease:
    """One of the max_concurrent generation slots; release() is idempotent."""

    def __init__(self, slots: GenerationSlots) -> None:
        self._slots = slots
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._slots._release()

    def __del__(self) -> None:  # a response that was never sent still frees its slot
        self.release()


class GenerationSlots:
    """A non-blocking counter: a request either gets a slot now or is told the server is
    busy (429); nothing ever waits on it, so the event loop never blocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> Lease | None:
        with self._lock:
            if self.active >= self.limit:
                return None
            self.active += 1
        return Lease(self)

    def _release(self) -> None:
        with self._lock:
            self.active -= 1


class ModelPool:
    """Loaded models, least recently used dropped beyond `capacity`; a checkpoint rewritten
    since it was loaded (a training run refreshing last.ckpt) is loaded again."""

    def __init__(self, device: str, capacity: int) -> None:
        self.device = device
        self.capacity = capacity
        self._loaded: OrderedDict[str, tuple[tuple[float, int], LoadedModel]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, info: CheckpointInfo) -> LoadedModel:
        """The model of `info`, loading it if needed (blocking: call from a worker thread)."""
        key = (info.modified, info.size)
        with self._lock:
            load_lock = self._loading.setdefault(info.id, threading.Lock())
        with load_lock:  # two requests for one checkpoint load it once
            with self._lock:
                hit = self._loaded.get(info.id)
                if hit is not None and hit[0] == key:
                    self._loaded.move_to_end(info.id)
                    return hit[1]
            from parrot_lm.core.hardware import pick_device

            started = time.perf_counter()
            loaded = load_model(info.path, pick_device(self.device))
            log.info(
                "Loaded %s (step %d) in %.1f s", info.id, loaded.step, time.perf_counter() - started
            )
            with self._lock:
                self._loaded[info.id] = (key, loaded)
                self._loaded.move_to_end(info.id)
                while len(self._loaded) > self.capacity:
                    dropped, _ = self._loaded.popitem(last=False)
                    log.info("Unloaded %s (max_loaded_models=%d)", dropped, self.capacity)
            return loaded

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)


# -- checking a request ----------------------------------------------------------------------
def sampling_params(req: _Sampling, settings: Settings, max_tokens: int | None) -> SamplingParams:
    """The request's sampling fields with the server's defaults, or an APIError naming the
    first one out of bounds."""
    limit = settings.max_new_tokens_limit
    if req.n is not None and req.n != 1:
        raise APIError(400, f"n must be 1 (one choice per request); got {req.n}.", "n")
    if req.logprobs not in (None, False, 0):
        raise APIError(400, "logprobs are not supported by this server.", "logprobs")
    for key in ("frequency_penalty", "presence_penalty"):
        if getattr(req, key):
            raise APIError(400, f"{key} is not supported by this server; leave it at 0.", key)
    max_tokens = settings.max_tokens if max_tokens is None else max_tokens
    if not 1 <= max_tokens <= limit:
        raise APIError(
            400,
            f"max_tokens must be between 1 and {limit} (the server's max_new_tokens_limit); "
            f"got {max_tokens}.",
            "max_tokens",
        )
    temperature = settings.temperature if req.temperature is None else req.temperature
    if not (math.isfinite(temperature) and temperature >= 0):
        raise APIError(
            400, f"temperature must be >= 0 (0 is greedy); got {temperature}.", "temperature"
        )
    top_p = settings.top_p if req.top_p is None else req.top_p
    if top_p is not None and not (0 < top_p <= 1):
        raise APIError(400, f"top_p must be in (0, 1]; got {top_p}.", "top_p")
    top_k = settings.top_k if req.top_k is None else req.top_k
    if top_k is not None and top_k < 0:
        raise APIError(400, f"top_k must be >= 0 (0 turns it off); got {top_k}.", "top_k")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    stops = [s for s in stops if s]
    if len(stops) > MAX_STOP_STRINGS:
        raise APIError(400, f"stop takes at most {MAX_STOP_STRINGS} strings.", "stop")
    seed = None if req.seed is None else req.seed % 2**63  # any int, as OpenAI takes
    return SamplingParams(max_tokens, temperature, top_k or None, top_p, seed, stops)


def check_prompt(prompt: str, settings: Settings, param: str) -> None:
    if not prompt.strip():
        raise APIError(400, f"{param} is empty; send some text to continue.", param)
    if len(prompt) > settings.max_prompt_chars:
        raise APIError(
            400,
            f"The prompt is {len(prompt):,} characters long; the limit is "
            f"{settings.max_prompt_chars:,} (the server's max_prompt_chars).",
            param,
        )


class BodyLimit:
    """Refuses a request body declared larger than `limit` bytes (413) before reading it, so
    an oversized prompt never has to fit in memory to be refused."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                message = (
                    f"The request body is {int(length):,} bytes; the limit is {self.limit:,} "
                    "(it follows the server's max_prompt_chars)."
                )
                await JSONResponse(error_body(message), 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- responses -------------------------------------------------------------------------------
class LeasedStreamingResponse(StreamingResponse):
    """A stream that frees its generation slot (and stops its generator) however it ends:
    finished, failed, or the client went away."""

    def __init__(self, content: AsyncIterator[str], cleanup: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cleanup()


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _usage(stream: TextStream) -> dict[str, int]:
    return {
        "prompt_tokens": stream.prompt_tokens,
        "completion_tokens": stream.completion_tokens,
        "total_tokens": stream.prompt_tokens + stream.completion_tokens,
    }


def _log_done(kind: str, model_id: str, stream: TextStream) -> None:
    elapsed = stream.elapsed_s or 0.0
    log.info(
        "%s %s: %d prompt + %d new tokens in %.2f s (first token %.3f s, %.0f tokens/s), %s",
        kind,
        model_id,
        stream.prompt_tokens,
        stream.completion_tokens,
        elapsed,
        stream.first_token_s or 0.0,
        stream.completion_tokens / elapsed if elapsed > 0 else 0.0,
        stream.finish_reason,
    )


# -- the app ---------------------------------------------------------------------------------
def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app serving the page and the API over `settings.outputs_dir`."""
    app = FastAPI(
        title="ParrotLM chat",
        summary="Chat with ParrotLM checkpoints; OpenAI-compatible completions.",
        version="1",
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: offline they are
        # blank, and online they fetch third-party code. The schema stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    # JSON may spend up to 6 bytes on a character (\uXXXX), plus room for the other fields.
    app.add_middleware(BodyLimit, limit=6 * settings.max_prompt_chars + (1 << 20))
    catalog = CheckpointCatalog(settings.outputs_dir)
    pool = ModelPool(settings.device, settings.max_loaded_models)
    slots = GenerationSlots(settings.max_concurrent)
    app.state.settings, app.state.catalog, app.state.pool, app.state.slots = (
        settings,
        catalog,
        pool,
        slots,
    )

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return JSONResponse(
            error_body(exc.message, exc.kind, exc.param, exc.code), exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(list(exc.errors()))
        return JSONResponse(error_body(message, param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see GET /v1/models."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        return JSONResponse(error_body(message), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises it after this response, so uvicorn logs the traceback.
        return JSONResponse(
            error_body(f"Internal server error ({type(exc).__name__}: {exc}).", "server_error"),
            500,
        )

    # -- page and listings --------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("parrot_lm.serve").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "active_generations": slots.active, "loaded": pool.loaded_ids()}

    @app.get("/api/checkpoints")
    async def checkpoints() -> dict[str, Any]:
        found = await run_in_threadpool(catalog.scan)
        return {
            "outputs_dir": str(settings.outputs_dir),
            "checkpoints": [info.to_json() for info in found],
            "defaults": {
                "temperature": settings.temperature,
                "top_k": settings.top_k,
                "top_p": settings.top_p,
                "max_tokens": settings.max_tokens,
            },
            "limits": {
                "max_tokens": settings.max_new_tokens_limit,
                "max_prompt_chars": settings.max_prompt_chars,
                "max_concurrent": settings.max_concurrent,
            },
        }

    def model_object(info: CheckpointInfo) -> dict[str, Any]:
        return {
            "id": info.id,
            "object": "model",
            "created": int(info.modified),
            "owned_by": "parrot_lm",
            "run": info.run,
            "step": info.step,
            "val_loss": info.val_loss,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        found = await run_in_threadpool(catalog.scan)
        return {"object": "list", "data": [model_object(i) for i in found if i.error is None]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        return model_object(await run_in_threadpool(find, model_id))

    # -- generation ----------------------------------------------------------------------
    def find(model_id: str) -> CheckpointInfo:
        info = catalog.get(model_id)
        if info is None:
            raise APIError(
                404,
                f"Model {model_id!r} is not a checkpoint under {settings.outputs_dir} "
                "(GET /v1/models lists them).",
                "model",
                "model_not_found",
            )
        return info

    async def start(model_id: str) -> tuple[CheckpointInfo, LoadedModel, Lease]:
        """Find the checkpoint, take a slot, load the model: every refusal comes here, before
        a stream starts, so it can still be an HTTP status."""
        info = await run_in_threadpool(find, model_id)
        lease = slots.try_acquire()
        if lease is None:
            raise APIError(
                429,
                f"The server is busy: {slots.limit} generation(s) are already running "
                "(max_concurrent); retry in a moment.",
                code="server_busy",
                kind="rate_limit_error",
            )
        try:
            loaded = await run_in_threadpool(pool.get, info)
        except Exception as e:
            lease.release()
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("Could not load %s: %s", model_id, first)
            raise APIError(
                422,
                f"Checkpoint {model_id!r} could not be loaded: {first}",
                "model",
                "checkpoint_unloadable",
            ) from e
        return info, loaded, lease

    def encode(loaded: LoadedModel, prompt: str) -> list[int]:
        return loaded.tokenizer.encode_ordinary(prompt)

    async def respond(
        kind: str,
        model_id: str,
        prompt: str,
        params: SamplingParams,
        stream_fields: dict[str, Any] | None,
        chat: bool,
    ) -> dict[str, Any] | LeasedStreamingResponse:
        info, loaded, lease = await start(model_id)
        try:
            ids = encode(loaded, prompt)
            if not ids:
                raise APIError(400, "The prompt encodes to no tokens.", "prompt")
            stream = TextStream(loaded.model, loaded.tokenizer, ids, params, chat)
        except BaseException:
            lease.release()
            raise
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if stream_fields is None:
            try:
                text = await run_in_threadpool(stream.collect)
            finally:
                lease.release()
            _log_done(kind, info.id, stream)
            choice: dict[str, Any] = {"index": 0}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choice.update(logprobs=None, finish_reason=stream.finish_reason)
            return {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": info.id,
                "choices": [choice],
                "usage": _usage(stream),
            }
        include_usage = bool((stream_fields or {}).get("include_usage"))
        pieces = iter(stream)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(
            piece: str | None, finish: str | None = None, role: bool = False
        ) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if role else {}
                if piece is not None:
                    delta["content"] = piece
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {
                    "index": 0,
                    "text": piece or "",
                    "logprobs": None,
                    "finish_reason": finish,
                }
            return {
                "id": rid,
                "object": obj,
                "created": created,
                "model": info.id,
                "choices": [choice],
            }

        async def events() -> AsyncIterator[str]:
            try:
                if chat:
                    yield _sse(chunk("", role=True))
                async for piece in iterate_in_threadpool(pieces):
                    yield _sse(chunk(piece))
                yield _sse(chunk(None if chat else "", stream.finish_reason))
                if include_usage:
                    usage = {"id": rid, "object": obj, "created": created, "model": info.id}
                    yield _sse({**usage, "choices": [], "usage": _usage(stream)})
                _log_done(kind, info.id, stream)
            except Exception as e:  # the status is sent already: say it in the stream
                log.exception("Generation failed for %s", info.id)
                yield _sse(
                    error_body(f"Generation failed ({type(e).__name__}: {e}).", "server_error")
                )
            yield _sse("[DONE]")

        def cleanup() -> None:
            lease.release()
            try:
                pieces.close()  # stops the model if the client left mid-stream
            except ValueError:  # still running in its thread: it stops at its next token
                pass

        return LeasedStreamingResponse(events(), cleanup)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
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
        params = sampling_params(req, settings, req.max_tokens)
        check_prompt(prompt, settings, "prompt")
        stream_fields = (req.stream_options or {}) if req.stream else None
        return await respond("completion", req.model, prompt, params, stream_fields, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest) -> Any:
        for key in ("tools", "functions"):
            if getattr(req, key):
                raise APIError(400, f"{key} are not supported: these are base models.", key)
        if (req.response_format or {}).get("type", "text") != "text":
            raise APIError(400, "Only the text response_format is supported.", "response_format")
        max_tokens = req.max_completion_tokens if req.max_tokens is None else req.max_tokens
        params = sampling_params(req, settings, max_tokens)
        try:
            prompt = render_chat([m.model_dump() for m in req.messages])
        except TemplateError as e:
            raise APIError(400, str(e), "messages") from None
        check_prompt(prompt, settings, "messages")
        params.stop = [*CHAT_STOP, *params.stop]
        stream_fields = (req.stream_options or {}) if req.stream else None
        return await respond("chat", req.model, prompt, params, stream_fields, chat=True)

    return app
