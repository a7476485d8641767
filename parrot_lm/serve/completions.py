"""Answering a completion: find the checkpoint, take a generation slot, load the model, then
reply whole (JSON) or as server-sent events, freeing the slot however the reply ends.

Generation runs in worker threads (one token per hop for streams), so the event loop keeps
answering while models compute. A client that leaves stops its generation either way: the
event loop sees the disconnect and `TextStream.cancel()` ends the token loop after its
current token, so the slot comes back in a decoding step, not when max_tokens is reached.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import Receive, Scope, Send

from parrot_lm.generation.params import SamplingParams
from parrot_lm.runs.loading import LoadedModel
from parrot_lm.serve.checkpoints import CheckpointCatalog, CheckpointInfo
from parrot_lm.serve.errors import APIError, error_body
from parrot_lm.serve.pool import GenerationSlots, Lease, ModelPool
from parrot_lm.serve.settings import Settings
from parrot_lm.serve.streaming import TextStream

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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


@dataclass
class Reply:
    """One response under way: its id, object names and the stream of text it sends."""

    kind: str  # "completion" | "chat": for the log line
    model_id: str
    chat: bool
    stream: TextStream
    rid: str = field(init=False)
    created: int = field(init=False)

    def __post_init__(self) -> None:
        self.rid = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    @property
    def chunk_object(self) -> str:
        """The `object` of each streamed event."""
        return "chat.completion.chunk" if self.chat else "text_completion"

    def usage(self) -> dict[str, int]:
        """Token counts, OpenAI's `usage` object."""
        s = self.stream
        return {
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "total_tokens": s.prompt_tokens + s.completion_tokens,
        }

    def body(self, text: str) -> dict[str, Any]:
        """The whole (non-streamed) response carrying `text`."""
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choice.update(logprobs=None, finish_reason=self.stream.finish_reason)
        return {
            "id": self.rid,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model_id,
            "choices": [choice],
            "usage": self.usage(),
        }

    def chunk(
        self, piece: str | None, finish: str | None = None, role: bool = False
    ) -> dict[str, Any]:
        """One streamed event's object: a text piece, or the finish reason at the end."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if piece is not None:
                delta["content"] = piece
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
        return self.header() | {"choices": [choice]}

    def header(self) -> dict[str, Any]:
        """The fields every streamed event starts with."""
        return {
            "id": self.rid,
            "object": self.chunk_object,
            "created": self.created,
            "model": self.model_id,
        }

    def log_done(self) -> None:
        """One log line: tokens in and out, time, speed, finish reason."""
        s = self.stream
        elapsed = s.elapsed_s or 0.0
        log.info(
            "%s %s: %d prompt + %d new tokens in %.2f s (first token %.3f s, %.0f tokens/s), %s",
            self.kind,
            self.model_id,
            s.prompt_tokens,
            s.completion_tokens,
            elapsed,
            s.first_token_s or 0.0,
            s.completion_tokens / elapsed if elapsed > 0 else 0.0,
            s.finish_reason,
        )


# nginx's "client closed request": never received, but says why no answer was made.
CLIENT_GONE = 499


async def wait_for_disconnect(request: Request) -> None:
    """Return once the client has closed the connection.

    The request body is read already, so the next ASGI message is `http.disconnect`; this
    is how Starlette's StreamingResponse notices a client leaving (`listen_for_disconnect`),
    and it waits on the connection instead of polling it.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def whole_reply(reply: Reply, lease: Lease, request: Request) -> dict[str, Any] | Response:
    """Generate all of it in a worker thread, then answer once; if the client leaves first,
    stop generating within a token and free the slot."""

    async def cancel_on_disconnect() -> None:
        await wait_for_disconnect(request)
        reply.stream.cancel()

    text, failure = "", None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(cancel_on_disconnect)
            # One thread for the whole reply: the flag stops it, so no per-token hops needed.
            try:
                text = await run_in_threadpool(reply.stream.collect)
            except Exception as e:  # raised below: a task group would wrap it in a group
                failure = e
            group.cancel_scope.cancel()
    finally:
        lease.release()
    if failure is not None:
        raise failure
    if reply.stream.finish_reason is None:  # cancelled: nobody is left to answer
        log.info(
            "%s %s: client left; stopped after %d new tokens",
            reply.kind,
            reply.model_id,
            reply.stream.completion_tokens,
        )
        return Response(status_code=CLIENT_GONE)
    reply.log_done()
    return reply.body(text)


async def _events(reply: Reply, pieces: Any, include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of a streamed reply, ending with `[DONE]`."""
    try:
        if reply.chat:
            yield _sse(reply.chunk("", role=True))
        async for piece in iterate_in_threadpool(pieces):
            yield _sse(reply.chunk(piece))
        yield _sse(reply.chunk(None if reply.chat else "", reply.stream.finish_reason))
        if include_usage:
            yield _sse({**reply.header(), "choices": [], "usage": reply.usage()})
        reply.log_done()
    except Exception as e:  # the status is sent already: say it in the stream
        log.exception("Generation failed for %s", reply.model_id)
        yield _sse(error_body(f"Generation failed ({type(e).__name__}: {e}).", "server_error"))
    yield _sse("[DONE]")


def streamed_reply(reply: Reply, lease: Lease, include_usage: bool) -> LeasedStreamingResponse:
    """Server-sent events, one per text piece as the model makes it."""
    pieces = iter(reply.stream)

    def cleanup() -> None:
        """Free the slot and stop the generator."""
        lease.release()
        reply.stream.cancel()  # a token loop running in its thread ends after this token
        try:
            pieces.close()  # stops the model if the client left mid-stream
        except ValueError:  # still running in its thread: the cancel above stops it
            pass

    return LeasedStreamingResponse(_events(reply, pieces, include_usage), cleanup)


class Completions:
    """The server's state (settings, checkpoint catalog, loaded models, slots) and the steps
    of answering a completion request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = CheckpointCatalog(settings.outputs_dir)
        self.pool = ModelPool(settings.device, settings.max_loaded_models)
        self.slots = GenerationSlots(settings.max_concurrent)

    def find(self, model_id: str) -> CheckpointInfo:
        """The checkpoint called `model_id` (its id, a run name or `latest`, as the scripts'
        ckpt=), or a 404 (blocking: scans the disk)."""
        info = self.catalog.get(model_id) or self.catalog.by_run(model_id)
        if info is None:
            raise APIError(
                404,
                f"Model {model_id!r} is not a checkpoint under {self.settings.outputs_dir} "
                "(GET /v1/models lists them).",
                "model",
                "model_not_found",
            )
        return info

    async def start(self, model_id: str) -> tuple[CheckpointInfo, LoadedModel, Lease]:
        """Find the checkpoint, take a slot, load the model: every refusal comes here, before
        a stream starts, so it can still be an HTTP status."""
        info = await run_in_threadpool(self.find, model_id)
        lease = self.slots.try_acquire()
        if lease is None:
            raise APIError(
                429,
                f"The server is busy: {self.slots.limit} generation(s) are already running "
                "(max_concurrent); retry in a moment.",
                code="server_busy",
                kind="rate_limit_error",
            )
        try:
            loaded = await run_in_threadpool(self.pool.get, info)
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

    async def respond(
        self,
        kind: str,
        model_id: str,
        prompt: str,
        params: SamplingParams,
        stream_fields: dict[str, Any] | None,
        chat: bool,
        request: Request,
    ) -> dict[str, Any] | Response:
        """The reply to one checked request: whole when stream_fields is None, else streamed
        (stream_fields: the request's stream_options). `request` is watched for the client
        leaving, which stops the generation."""
        info, loaded, lease = await self.start(model_id)
        try:
            ids = loaded.tokenizer.encode_ordinary(prompt)
            if not ids:
                raise APIError(400, "The prompt encodes to no tokens.", "prompt")
            stream = TextStream(loaded.model, loaded.tokenizer, ids, params, chat)
        except BaseException:
            lease.release()
            raise
        reply = Reply(kind, info.id, chat, stream)
        if stream_fields is None:
            return await whole_reply(reply, lease, request)
        return streamed_reply(reply, lease, bool(stream_fields.get("include_usage")))
