"""The chat server: a web page and OpenAI-compatible endpoints over the checkpoints in outputs/.

    GET  /                      the chat page (static/index.html)
    GET  /api/checkpoints       every *.ckpt with run, step, val loss; defaults and limits
    GET  /v1/models             the loadable checkpoints, by id (path under outputs_dir)
    POST /v1/completions        {"model", "prompt", "max_tokens", "temperature", "top_p",
                                 "top_k", "stop", "seed", "stream"}
    POST /v1/chat/completions   {"model", "messages": [{"role", "content"}], same fields}

Generation runs in worker threads (one token per hop for streams), so the event loop keeps
answering while models compute; at most `max_concurrent` generations run at once and the next
one gets 429 at once instead of waiting. A client that hangs up, streamed or not, stops its
generation within a token and frees its slot. Every bad request gets a 4xx with an
OpenAI-style body, `{"error": {"message": <one sentence>, "type", "param", "code"}}`.

The pieces: request bodies and their checks in `schemas`, errors in `errors`, loaded models
and slots in `pool`, answering in `completions`, the endpoints in `routes`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from parrot_lm.serve.completions import Completions
from parrot_lm.serve.errors import add_error_handlers, error_body
from parrot_lm.serve.routes import router
from parrot_lm.serve.settings import Settings


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


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app serving the page and the API over `settings.outputs_dir`.

    Its state: `completions` (a `Completions`), and its parts as `settings`, `catalog`, `pool`
    and `slots`.
    """
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
    add_error_handlers(app)
    server = Completions(settings)
    app.state.completions = server
    app.state.settings, app.state.catalog = server.settings, server.catalog
    app.state.pool, app.state.slots = server.pool, server.slots
    app.include_router(router)
    return app
