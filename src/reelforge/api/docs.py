"""``/docs`` (Swagger UI) and ``/redoc``, served with no network.

FastAPI's own pages load their scripts from a CDN, so they are blank offline or
behind a strict proxy. The same pages here load Swagger UI and ReDoc from the
``fastapi-offline`` package's files, mounted at ``/docs-static``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_STATIC_URL", "mount_docs"]

DOCS_STATIC_URL: Final = "/docs-static"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def mount_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/docs`` and ``/redoc``; create the app with ``docs_url=None, redoc_url=None``."""
    favicon = f"{DOCS_STATIC_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            # No "valid?" badge: it would send the document to swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{DOCS_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    app.mount(DOCS_STATIC_URL, StaticFiles(directory=_assets_dir()), name="docs-static")
