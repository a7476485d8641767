"""The server's errors: every refusal is a 4xx (or 5xx) with OpenAI's error body,
`{"error": {"message": <one sentence>, "type", "param", "code"}}`, which clients (the openai
package among them) know how to show."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """FastAPI's list of pydantic errors -> one sentence naming the first bad field, and the
    field (None when the body as a whole is wrong)."""
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


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(
        error_body(exc.message, exc.kind, exc.param, exc.code), exc.status, headers=headers
    )


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = validation_message(list(exc.errors()))
    return JSONResponse(error_body(message, param=param), 400)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}; see GET /v1/models."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    return JSONResponse(error_body(message), exc.status_code, headers=exc.headers)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises it after this response, so uvicorn logs the traceback.
    return JSONResponse(
        error_body(f"Internal server error ({type(exc).__name__}: {exc}).", "server_error"),
        500,
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every error `app` answers, in OpenAI's error shape: refusals (APIError), bodies that do
    not validate (400), unknown routes and methods (404, 405), and anything unexpected (500)."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal)
