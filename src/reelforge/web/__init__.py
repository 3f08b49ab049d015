"""The web page at ``/``: a static front-end (HTML, CSS, plain JS) for the native API.

The page talks only to this server (``/api/videos…`` over HTTP and WebSocket) and
loads nothing from elsewhere; its Content-Security-Policy says so to the browser.
Assets are package data under ``static/``; nothing is read until a request asks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "mount_web"]

STATIC_DIR: Final = Path(__file__).parent / "static"

# Same origin only: scripts, styles, media and the event WebSocket. ``ws:``/``wss:``
# are listed because older browsers do not let 'self' cover WebSocket URLs.
_CSP: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_PAGE_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    # The page may put an API key in media and WebSocket URLs: never pass them on.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Revalidate (ETag) on every load, so an upgrade never pairs new HTML with old JS.
    "Cache-Control": "no-cache",
}


class _RevalidatedStaticFiles(StaticFiles):
    """Static assets that browsers revalidate each load (cheap: ETag and 304)."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static/``."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS
        )

    app.mount("/static", _RevalidatedStaticFiles(directory=STATIC_DIR), name="static")
