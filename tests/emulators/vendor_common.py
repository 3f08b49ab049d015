"""What the vendor emulators (Runway, Luma, Veo) share with the OpenAI one and each other.

The OpenAI emulator (``openai_videos``) is the template: its :class:`EmulatorConfig`
fault switches, :class:`EmulatorState` counters, :class:`Job` clock and
:class:`MediaCache` are reused as they are. This module adds what a vendor emulator
needs on top:

* :class:`VendorConfig`: two one-shot download faults (``expire_downloads_next``,
  ``cut_downloads_next``) so that a test can show a retried download succeeding;
* :class:`VendorError`, a vendor's error answer (each vendor renders its own body);
* :func:`guard`: records the request, then applies ``slow_seconds``, auth,
  ``forbidden``, ``rate_limit_next`` and ``fail_next`` in the OpenAI emulator's order;
* :func:`content_response`: the MP4 of a job with the content faults applied;
* :func:`serve`: the app under uvicorn on a port bound before it starts;
* :class:`CallbackSender`: a vendor calling a client back when a job changes state
  (Luma's ``callback_url``, Veo's ``webhookConfig``), counted per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.emulators.loopback import serve_on_loopback
from tests.emulators.openai_videos import (
    EmulatorConfig,
    EmulatorState,
    Job,
    MediaCache,
    RecordedRequest,
    _cut_short,
    _HideInjectedCuts,
)

__all__ = [
    "CallbackSender",
    "ErrorFactory",
    "VendorConfig",
    "VendorContext",
    "VendorError",
    "VendorJob",
    "content_response",
    "guard",
    "install_error_handler",
    "serve",
]


@dataclass
class VendorConfig(EmulatorConfig):
    """:class:`EmulatorConfig` plus one-shot download faults and Runway's throttling."""

    expire_downloads_next: int = 0
    """The next N output downloads answer 403, as an expired signed URL does."""
    cut_downloads_next: int = 0
    """The next N output downloads announce their length, then drop half way."""
    throttle_jobs: bool = False
    """New jobs report the vendor's "waiting for capacity" state while queued."""
    drop_callbacks: bool = False
    """Callbacks (Luma's ``callback_url``, Veo's ``webhookConfig``) are never sent."""


@dataclass
class VendorJob(Job):
    """A :class:`Job` plus what the vendor echoes back and whether it was cancelled."""

    body: dict[str, Any] = field(default_factory=dict)
    cancelled_at: float | None = None
    throttled: bool = False


class VendorError(Exception):
    """A vendor's error answer: its status, its own JSON body, extra headers."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


# (status, message, reason) -> the vendor's error; reason is one of "unauthorized",
# "forbidden", "rate_limited", "server_error", "not_found", "invalid".
ErrorFactory = Callable[[int, str, str], VendorError]


# What a callback carries, made when it is sent: (body, headers), or None to send
# nothing (the job is gone).
CallbackBody = Callable[[], tuple[bytes, dict[str, str]] | None]


class CallbackSender:
    """A vendor's callbacks to its clients: each POST is sent when its moment comes,
    tried up to ``tries`` times ``pause`` seconds apart (Luma: 3 tries, 100 ms apart,
    per a third-party summary of its changelog), and counted per job when answered 2xx.
    """

    def __init__(self, *, tries: int = 3, pause: float = 0.1) -> None:
        self.tries = tries
        self.pause = pause
        self.sent: Counter[str] = Counter()
        """Callbacks answered 2xx, per job id."""
        self.attempted: Counter[str] = Counter()
        """Callback POSTs made (retries included), per job id."""
        self._tasks: set[asyncio.Task[None]] = set()

    def send_in(self, delay: float, job_id: str, url: str, body: CallbackBody) -> None:
        task = asyncio.create_task(self._send(max(0.0, delay), job_id, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, delay: float, job_id: str, url: str, body: CallbackBody) -> None:
        await asyncio.sleep(delay)  # the vendor's own schedule: the job's next state
        made = body()
        if made is None:
            return
        content, headers = made
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(self.tries):
                self.attempted[job_id] += 1
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.post(url, content=content, headers=headers)
                    if response.status_code < 300:
                        self.sent[job_id] += 1
                        return
                await asyncio.sleep(self.pause)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class VendorContext:
    config: VendorConfig
    state: EmulatorState
    media: MediaCache
    error: ErrorFactory
    authenticated: Callable[[Request, VendorConfig], bool]
    callbacks: CallbackSender = field(default_factory=CallbackSender)

    def now(self) -> float:
        return self.state.clock()

    def new_job(self, **fields: Any) -> VendorJob:
        job = VendorJob(
            created=self.now(),
            duration=max(0.0, self.config.job_seconds),
            fail_with=self.config.fail_jobs_with,
            vanishes=self.config.vanish_jobs,
            throttled=self.config.throttle_jobs,
            **fields,
        )
        self.state.jobs[job.id] = job
        self.state.submits_by_prompt[job.prompt] += 1
        return job

    def job(self, job_id: str) -> VendorJob:
        job = self.state.jobs.get(job_id)
        if not isinstance(job, VendorJob) or job.vanished_at(self.now()):
            raise self.error(404, f"Task {job_id} not found", "not_found")
        return job


async def guard(request: Request, ctx: VendorContext, *, route: str | None = None) -> None:
    """Runs before every API route: records the request, then auth and faults.

    ``route`` names the route in the counters (default: the method and path template).
    """
    route = route or f"{request.method} {request.scope['route'].path}"
    headers = {k.lower(): v for k, v in request.headers.items()}
    for secret in ("authorization", "x-goog-api-key"):
        if secret in headers:
            headers[secret] = "<redacted>"
    ctx.state.requests[route] += 1
    ctx.state.log.append(
        RecordedRequest(route, request.url.path, request.url.query, time.monotonic(), headers)
    )
    config = ctx.config
    if config.slow_seconds > 0:
        await asyncio.sleep(config.slow_seconds)
    if config.unauthorized or (
        config.api_key is not None and not ctx.authenticated(request, config)
    ):
        raise ctx.error(401, "Invalid API key provided", "unauthorized")
    if config.forbidden:
        raise ctx.error(403, "This key may not use this API", "forbidden")
    if config.rate_limit_next > 0:
        config.rate_limit_next -= 1
        error = ctx.error(429, "Too many requests; try again later", "rate_limited")
        error.headers["retry-after"] = str(config.retry_after_seconds)
        raise error
    if config.fail_next > 0:
        config.fail_next -= 1
        raise ctx.error(500, "An internal error occurred", "server_error")


def bearer_matches(request: Request, config: VendorConfig) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), (config.api_key or "").encode()
    )


async def content_response(
    ctx: VendorContext, job: VendorJob, request: Request, *, count: bool = True
) -> Response:
    """The job's MP4 (a real render), with the content faults applied."""
    if count:
        ctx.state.requests[f"{request.method} {request.scope['route'].path}"] += 1
    config = ctx.config
    if config.expire_downloads_next > 0:
        config.expire_downloads_next -= 1
        return Response(
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            status_code=403,
            media_type="application/xml",
        )
    data = await ctx.media.get("video", job.size, job.seconds)
    if config.corrupt_content:
        data = secrets.token_bytes(len(data))
    elif config.truncate_content:
        data = data[: len(data) // 2]
    elif config.cut_content or config.cut_downloads_next > 0:
        config.cut_downloads_next = max(0, config.cut_downloads_next - 1)
        return StreamingResponse(
            _cut_short(data),
            media_type="video/mp4",
            headers={"content-length": str(len(data))},
        )
    return Response(data, media_type="video/mp4")


def install_error_handler(app: FastAPI) -> None:
    async def render(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VendorError)
        return JSONResponse(exc.body, exc.status, exc.headers)

    app.add_exception_handler(VendorError, render)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideInjectedCuts) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_HideInjectedCuts())


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 in this event loop; yields ``http://127.0.0.1:PORT``."""
    async with serve_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"
