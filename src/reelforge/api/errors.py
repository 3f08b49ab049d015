"""Our errors and the framework's, as HTTP answers: one table, one shape.

Every error body is ``{"error": {"code", "message", "param"}}``. Domain code raises
:mod:`reelforge.errors` classes; only this module knows their status codes. A
malformed request is always a 4xx, never a 5xx.
"""

from __future__ import annotations

import math
import re
from typing import Any

import redis.exceptions
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge.api.openai_schemas import openai_error_type
from reelforge.errors import (
    AuthenticationError,
    BudgetExceededError,
    CallbackRejectedError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PromptRejectedError,
    QuotaExceededError,
    ReelforgeError,
    ServiceUnavailableError,
)
from reelforge.models import invalid_request_from_errors

__all__ = [
    "PayloadTooLargeError",
    "allowed_methods",
    "error_response",
    "install_error_handlers",
    "status_for",
]

log = structlog.get_logger("reelforge.api")


class PayloadTooLargeError(InvalidRequestError):
    code = "body_too_large"


# Most specific class first.
_STATUS: list[tuple[type[ReelforgeError], int]] = [
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (AuthenticationError, 401),
    (BudgetExceededError, 402),
    (PermissionDeniedError, 403),
    (CallbackRejectedError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (QuotaExceededError, 429),
    (ServiceUnavailableError, 503),
]


def status_for(exc: ReelforgeError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def error_response(
    status: int, code: str, message: str, param: str | None = None, **headers: str
) -> JSONResponse:
    # `type` makes every error OpenAI-shaped too (the SDK and /v1 clients read it).
    body = {
        "error": {
            "code": code,
            "message": message,
            "param": param,
            "type": openai_error_type(status),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers or None)


_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI document lists for this path (``Allow`` of a 405).

    Starlette's own 405 names only the first route that matched the path, and one
    path here is often several routes (``GET`` and ``DELETE /api/videos/{id}``).
    Where templates overlap (``/api/videos/generate`` and ``/api/videos/{id}``), the
    one with the fewest parameters is the one routed to. None: not a documented path.
    """
    path = request.url.path
    matches: list[tuple[int, set[str]]] = []
    for template, operations in request.app.openapi().get("paths", {}).items():
        parts = re.split(r"\{[^/{}]+\}", template)
        pattern = "[^/]+".join(re.escape(part) for part in parts)
        if re.fullmatch(pattern, path):
            matches.append((len(parts), {method.upper() for method in operations}))
    if not matches:
        return None
    fewest = min(count for count, _ in matches)
    methods = set().union(*(found for count, found in matches if count == fewest))
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    async def on_ours(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReelforgeError)  # noqa: S101
        status = status_for(exc)
        headers = {"Retry-After": "1"} if status == 503 else {}
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = 'Bearer realm="reelforge"'
        if isinstance(exc, QuotaExceededError):
            headers.update(exc.headers)
            if exc.retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if isinstance(exc, PromptRejectedError):
            # Machine-readable: which policy rule refused the prompt.
            body = {"error": {**exc.to_dict(), "type": openai_error_type(status)}}
            return JSONResponse(body, status_code=status)
        return error_response(status, exc.code, exc.message, exc.param, **headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        err = invalid_request_from_errors(list(exc.errors()))
        return error_response(400, err.code, err.message, err.param)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message: Any = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers or {})
        allow = allowed_methods(request) if exc.status_code == 405 else None
        if allow is not None:
            headers["Allow"] = allow
        return error_response(exc.status_code, code, message, **headers)

    async def on_redis_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable", error=str(exc))
        return error_response(
            503,
            "service_unavailable",
            "the job store (Redis) is unreachable; retry shortly",
            **{"Retry-After": "2"},
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal server error")

    app.add_exception_handler(ReelforgeError, on_ours)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(redis.exceptions.ConnectionError, on_redis_down)
    app.add_exception_handler(redis.exceptions.TimeoutError, on_redis_down)
    app.add_exception_handler(Exception, on_unexpected)
