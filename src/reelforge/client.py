"""A small client of a running reelforge server, used by the CLI.

Submits a request, follows the video's SSE events with a live progress bar, then
downloads the files. HTTP failures become our errors with the server's code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from reelforge.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    GenerationFailedError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    ReelforgeError,
    ServiceUnavailableError,
)
from reelforge.models import GenerationRequest

__all__ = ["fetch_video", "generate_via_server"]

_BY_STATUS: dict[int, type[ReelforgeError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: BudgetExceededError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: QuotaExceededError,
    409: ConflictError,
    503: ServiceUnavailableError,
}


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message, param = error["code"], error["message"], error.get("param")
    except (ValueError, KeyError, TypeError):
        code, message, param = "http_error", f"HTTP {response.status_code}", None
    cls = _BY_STATUS.get(response.status_code, ReelforgeError)
    raise cls(message, code=code, param=param)


@asynccontextmanager
async def _client(server: str, api_key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    try:
        async with httpx.AsyncClient(
            base_url=server, timeout=httpx.Timeout(30, read=60), headers=headers
        ) as client:
            yield client
    except httpx.TransportError as exc:
        raise ServiceUnavailableError(f"cannot reach reelforge at {server}: {exc}") from None


async def fetch_video(server: str, video_id: str, *, api_key: str | None = None) -> dict[str, Any]:
    async with _client(server, api_key) as client:
        response = await client.get(f"/api/videos/{video_id}")
        _raise_for(response)
        video: dict[str, Any] = response.json()
        return video


async def _events(client: httpx.AsyncClient, video_id: str) -> AsyncIterator[dict[str, Any]]:
    """The video's events over SSE, reconnecting with Last-Event-ID if cut."""
    last = 0
    for _ in range(20):
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            async with client.stream("GET", f"/api/videos/{video_id}/events", headers=headers) as r:
                _raise_for(r)
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        last = int(event["seq"])
                        yield event
                        if event["status"] in ("completed", "failed", "cancelled"):
                            return
        except httpx.TransportError:
            continue
    raise ServiceUnavailableError("lost the event stream too many times")


async def generate_via_server(
    server: str,
    req: GenerationRequest,
    out: Path,
    *,
    console: Console,
    api_key: str | None = None,
) -> dict[str, Path]:
    body = req.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    async with _client(server, api_key) as client:
        response = await client.post("/api/videos/generate", json=body)
        _raise_for(response)
        video_id = response.json()["id"]
        columns = (
            TextColumn("[bold]{task.description:<11}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        final: dict[str, Any] = {}
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("queued", total=100)
            async for event in _events(client, video_id):
                bar.update(task, completed=event["progress"], description=event["stage"])
                final = event
        if final.get("status") != "completed":
            error = final.get("error") or {}
            raise GenerationFailedError(
                error.get("message", f"video {video_id} ended {final.get('status')}"),
                remote_code=error.get("code", final.get("status", "failed")),
            )
        video = (await client.get(f"/api/videos/{video_id}")).json()
        out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (CLI: nothing else on this loop)
        paths: dict[str, Path] = {}
        for entry in video["files"]:
            suffix = {"thumbnail": "thumb.jpg", "spritesheet": "sprites.jpg"}.get(
                entry["format"], entry["format"]
            )
            dest = out / f"{video_id}.{suffix}"
            async with client.stream("GET", entry["url"]) as r:
                _raise_for(r)
                with dest.open("wb") as fh:
                    async for chunk in r.aiter_bytes():
                        fh.write(chunk)
            paths[entry["format"]] = dest
        return paths
