"""The FastAPI application, built by :func:`create_app` (no work at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from reelforge import __version__
from reelforge.api.docs import mount_docs
from reelforge.api.errors import PayloadTooLargeError, error_response, install_error_handlers
from reelforge.api.openapi import install_openapi
from reelforge.api.routers import (
    callbacks,
    events,
    health,
    openai_videos,
    providers,
    styles,
    usage,
    videos,
)
from reelforge.events import EventHub
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.web import mount_web

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse bodies over ``limit`` bytes: at once when Content-Length says so,
    else as soon as the streamed body passes it (raised into the handler)."""

    def __init__(self, app: ASGIApp, limit: int, larger: Mapping[tuple[str, str], int]):
        self.app = app
        self.limit = limit
        self.larger = larger  # (method, path) -> limit, for routes that take uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get((scope["method"], scope["path"]), self.limit)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = error_response(
                413, "body_too_large", f"request body is larger than {limit} bytes"
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Connections open in the lifespan, not here.

    ``runtime`` lets a caller (``reelforge serve``) share its already-open Runtime
    with in-process workers; otherwise the app opens and closes its own.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await Runtime.open(settings)
        hub = EventHub(rt.redis, rt.keys, redis_url=settings.redis_url)
        await hub.start()
        app.state.runtime = rt
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            if runtime is None:
                await rt.close()

    app = FastAPI(
        title="reelforge",
        version=__version__,
        summary="Self-hostable AI video generation service",
        lifespan=lifespan,
        docs_url=None,  # served by mount_docs, from local files
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(videos.router)
    app.include_router(events.router)
    app.include_router(openai_videos.router)
    app.include_router(usage.router)
    app.include_router(providers.router)
    app.include_router(callbacks.router)
    app.include_router(health.router)
    app.include_router(styles.router)
    mount_web(app)
    mount_docs(app)
    install_openapi(app, settings)
    uploads = max(settings.max_body_bytes, openai_videos.MAX_CREATE_BODY_BYTES)
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, larger={("POST", "/v1/videos"): uploads}
    )
    return app
