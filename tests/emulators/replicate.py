"""An emulator of Replicate's predictions API, as the ``replicate`` SDK (1.0.7) uses it.

Run it on its own::

    python -m tests.emulators.replicate --port 8101 --api-key r8_test

What it owns (shapes from replicate.com/docs/reference/http and the SDK's
``prediction.py``, ``client.py``, ``webhook.py``; see docs/providers.md):

* ``POST /v1/models/{owner}/{name}/predictions`` (201, a Prediction; ``Prefer: wait``
  holds the answer until the prediction ends or the wait runs out, when it reads
  ``starting``, as the SDK's ``run()`` expects), ``POST /v1/predictions`` with a
  ``version``, ``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``,
  ``GET /v1/webhooks/default/secret``;
* the life cycle ``starting`` → ``processing`` (tqdm-style ``NN%|…| a/b`` lines in
  ``logs``, which the SDK parses as progress) → ``succeeded`` (``output`` is the URL
  of a real MP4 under ``/delivery/``) | ``failed`` (``error`` a string) | ``canceled``;
  never ``aborted``, which SDK 1.0.7 cannot parse;
* errors as RFC 7807 bodies (``{"title", "detail", "status"}``), 429 with
  ``Retry-After``;
* webhooks: a prediction created with ``webhook`` is POSTed there when it ends
  (``webhook_events_filter`` honoured for ``start`` and ``completed``), signed the
  Standard Webhooks way (``webhook-id``, ``webhook-timestamp``, ``webhook-signature:
  v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed by the ``whsec_`` secret);
* the fault switches of :class:`ReplicateConfig` (those of the OpenAI emulator plus
  one-shot download faults and ``drop_webhooks``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.emulators.openai_videos import EmulatorState, MediaCache
from tests.emulators.vendor_common import (
    VendorConfig,
    VendorContext,
    VendorError,
    VendorJob,
    bearer_matches,
    content_response,
    guard,
    install_error_handler,
    serve,
)

__all__ = [
    "MODERATION_ERROR",
    "ReplicateConfig",
    "ReplicateEmulator",
    "create_emulator",
    "main",
    "running_emulator",
    "sign_webhook",
]

CREATE_ROUTE = "POST /v1/models/{owner}/{name}/predictions"
VERSION_CREATE_ROUTE = "POST /v1/predictions"
GET_ROUTE = "GET /v1/predictions/{prediction_id}"
CANCEL_ROUTE = "POST /v1/predictions/{prediction_id}/cancel"
DELIVERY_ROUTE = "GET /delivery/{prediction_id}/output.mp4"
# What Replicate says when its safety checker flags a prediction (error E005).
MODERATION_ERROR = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
_MAX_WAIT_SECONDS = 60


@dataclass
class ReplicateConfig(VendorConfig):
    """The OpenAI emulator's switches (:class:`VendorConfig`) plus webhook control."""

    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    """The signing secret (``GET /v1/webhooks/default/secret``)."""
    drop_webhooks: bool = False
    """Webhooks are never delivered (a lost callback)."""


@dataclass
class ReplicateState(EmulatorState):
    webhooks_sent: Counter[str] = field(default_factory=Counter)
    """Webhook deliveries per prediction id (successful POSTs)."""
    cancels: Counter[str] = field(default_factory=Counter)
    """Cancel requests per prediction id."""


def sign_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for ``body`` (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _problem(status: int, message: str, reason: str) -> VendorError:
    titles = {
        "unauthorized": "Unauthenticated",
        "forbidden": "Forbidden",
        "rate_limited": "Too Many Requests",
        "server_error": "Internal Server Error",
        "not_found": "Not found",
        "invalid": "Input validation failed",
    }
    details = {
        "unauthorized": "You did not pass a valid authentication token",
        "rate_limited": "Request was throttled. Your rate limit resets in ~30s.",
    }
    body = {"title": titles.get(reason, "Error"), "detail": details.get(reason, message)}
    body["status"] = status  # type: ignore[assignment]
    return VendorError(status, body, {"content-type": "application/problem+json"})


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ReplicateJob(VendorJob):
    """A prediction; ``body`` holds the create request (input, webhook, filter)."""

    version: str = "hidden"
    webhook_task: asyncio.Task[None] | None = field(default=None, repr=False)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.created + self.duration - now)

    async def wait_until_done(self, now: float, limit: float) -> None:
        """Until the job's end (or its cancel), ``limit`` seconds at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.cancelled.wait(), min(limit, self.seconds_left(now)))

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "canceled"
        state, _ = self.status_at(now)
        return {
            "queued": "starting",
            "in_progress": "processing",
            "completed": "succeeded",
            "failed": "failed",
        }[state]


class ReplicateContext(VendorContext):
    base_url: str = ""

    def prediction(self, job: ReplicateJob, *, status: str | None = None) -> dict[str, Any]:
        """The Prediction as of now (``status`` overrides, for ``Prefer: wait``)."""
        now = self.now()
        status = status or job.status(now)
        _, progress = job.status_at(now)
        started = job.created + job.duration * 0.25 if status != "starting" else None
        done = status in ("succeeded", "failed", "canceled")
        ended = (job.cancelled_at or job.created + job.duration) if done else None
        logs = ""
        if status != "starting":
            percent = 100 if status == "succeeded" else progress
            logs = f"{percent:3d}%|{'#' * (percent // 10):<10}| {percent}/100 [00:01<00:01]\n"
        base = self.base_url
        return {
            "id": job.id,
            "model": job.model,
            "version": job.version,
            "status": status,
            "input": job.body.get("input", {}),
            "output": f"{base}/delivery/{job.id}/output.mp4" if status == "succeeded" else None,
            "logs": logs,
            "error": MODERATION_ERROR
            if status == "failed" and job.fail_with and "moderation" in job.fail_with
            else (f"Prediction failed ({job.fail_with})" if status == "failed" else None),
            "metrics": {"predict_time": round(job.duration * 0.75, 3)} if done else {},
            "data_removed": False,
            "created_at": _iso(job.created),
            "started_at": _iso(started),
            "completed_at": _iso(ended),
            "urls": {
                "get": f"{base}/v1/predictions/{job.id}",
                "cancel": f"{base}/v1/predictions/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }


def _context(request: Request) -> ReplicateContext:
    context: ReplicateContext = request.app.state.emulator
    return context


ContextDep = Annotated[ReplicateContext, Depends(_context)]


async def _guard(request: Request, ctx: ContextDep) -> None:
    await guard(request, ctx)


router = APIRouter(prefix="/v1", dependencies=[Depends(_guard)])


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _problem(400, "The request body is not a JSON object", "invalid")
    return body


def _input(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("input")
    if not isinstance(value, dict):
        raise _problem(422, "- input: Invalid type. Expected: object", "invalid")
    prompt = value.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _problem(422, "- input: prompt is required", "invalid")
    duration = value.get("duration", 5)
    if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= 20:
        raise _problem(422, "- input.duration: Must be an integer from 1 to 20", "invalid")
    image = value.get("image") or value.get("first_frame_image")
    if image is not None and not (
        isinstance(image, str) and image.startswith(("https://", "http://", "data:"))
    ):
        raise _problem(422, "- input.image: Does not match format 'uri'", "invalid")
    return value


def clip_size(value: dict[str, Any]) -> str:
    """The clip size for a model input: ``aspect_ratio`` and ``resolution`` (``720p``)."""
    resolution = str(value.get("resolution", "720p")).lower().rstrip("p")
    short = int(resolution) if resolution.isdigit() else 720
    ratio = str(value.get("aspect_ratio", "16:9"))
    w, _, h = ratio.partition(":")
    wide, tall = (int(w), int(h)) if w.isdigit() and h.isdigit() else (16, 9)
    long = round(short * max(wide, tall) / min(wide, tall) / 2) * 2
    return f"{long}x{short}" if wide >= tall else f"{short}x{long}"


async def _create(
    ctx: ReplicateContext,
    body: dict[str, Any],
    prefer: str | None,
    model: str,
    version: str = "hidden",
) -> Response:
    value = _input(body)
    webhook = body.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith("http")):
        raise _problem(422, "- webhook: Does not match format 'uri'", "invalid")
    prediction_job = ReplicateJob(
        id=secrets.token_hex(13),
        model=model,
        prompt=value["prompt"],
        size=clip_size(value),
        seconds=str(value.get("duration", 5)),
        created=ctx.now(),
        duration=max(0.0, ctx.config.job_seconds),
        fail_with=ctx.config.fail_jobs_with,
        vanishes=ctx.config.vanish_jobs,
        body=body,
        version=version,
    )
    ctx.state.jobs[prediction_job.id] = prediction_job
    ctx.state.submits_by_prompt[prediction_job.prompt] += 1
    if webhook is not None:
        prediction_job.webhook_task = asyncio.create_task(_deliver(ctx, prediction_job, webhook))
    wait = _prefer_wait(prefer)
    status = None
    if wait:
        await prediction_job.wait_until_done(ctx.now(), wait)
        if prediction_job.status(ctx.now()) not in ("succeeded", "failed", "canceled"):
            status = "starting"  # what Replicate answers when the wait runs out
    return JSONResponse(ctx.prediction(prediction_job, status=status), status_code=201)


def _prefer_wait(prefer: str | None) -> float:
    if not prefer:
        return 0.0
    name, _, seconds = prefer.strip().partition("=")
    if name.strip() != "wait":
        return 0.0
    if not seconds:
        return _MAX_WAIT_SECONDS
    if not seconds.isdigit() or not 1 <= int(seconds) <= _MAX_WAIT_SECONDS:
        raise _problem(400, "Prefer: wait=N needs N from 1 to 60", "invalid")
    return float(seconds)


@router.post("/models/{owner}/{name}/predictions")
async def create_model_prediction(
    owner: str, name: str, request: Request, ctx: ContextDep
) -> Response:
    body = await _json_body(request)
    return await _create(ctx, body, request.headers.get("prefer"), f"{owner}/{name}")


@router.post("/predictions")
async def create_version_prediction(request: Request, ctx: ContextDep) -> Response:
    body = await _json_body(request)
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise _problem(422, "- version: version is required", "invalid")
    model, _, version_id = version.rpartition(":")
    prefer = request.headers.get("prefer")
    return await _create(ctx, body, prefer, model or "replicate/model", version_id or version)


def _job(ctx: ReplicateContext, prediction_id: str) -> ReplicateJob:
    job = ctx.job(prediction_id)
    assert isinstance(job, ReplicateJob)
    return job


@router.get("/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, ctx: ContextDep) -> Response:
    return JSONResponse(ctx.prediction(_job(ctx, prediction_id)))


@router.post("/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, ctx: ContextDep) -> Response:
    job = _job(ctx, prediction_id)
    assert isinstance(ctx.state, ReplicateState)
    ctx.state.cancels[prediction_id] += 1
    if job.status(ctx.now()) in ("starting", "processing"):
        job.cancelled_at = ctx.now()
        job.cancelled.set()
        ctx.state.deleted[prediction_id] = "canceled"
    return JSONResponse(ctx.prediction(job))


@router.get("/webhooks/default/secret")
async def webhook_secret(ctx: ContextDep) -> Response:
    config = ctx.config
    assert isinstance(config, ReplicateConfig)
    return JSONResponse({"key": config.webhook_secret})


delivery = APIRouter()


@delivery.get("/delivery/{prediction_id}/output.mp4")
async def download_output(prediction_id: str, request: Request, ctx: ContextDep) -> Response:
    job = ctx.state.jobs.get(prediction_id)
    if not isinstance(job, ReplicateJob) or job.status(ctx.now()) != "succeeded":
        return Response(b"Not Found", status_code=404, media_type="text/plain")
    return await content_response(ctx, job, request)


async def _deliver(ctx: ReplicateContext, job: ReplicateJob, url: str) -> None:
    """POST the prediction to its webhook when it starts (if asked) and when it ends."""
    events = job.body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
    config = ctx.config
    assert isinstance(config, ReplicateConfig)
    assert isinstance(ctx.state, ReplicateState)
    async with httpx.AsyncClient(timeout=10) as client:
        if "start" in events:
            await _post_webhook(ctx, client, job, url)
        while job.status(ctx.now()) not in ("succeeded", "failed", "canceled"):
            await job.wait_until_done(ctx.now(), 60.0)
        if "completed" in events:
            await _post_webhook(ctx, client, job, url)


async def _post_webhook(
    ctx: ReplicateContext, client: httpx.AsyncClient, job: ReplicateJob, url: str
) -> None:
    config = ctx.config
    assert isinstance(config, ReplicateConfig)
    assert isinstance(ctx.state, ReplicateState)
    if config.drop_webhooks:
        return
    body = json.dumps(ctx.prediction(job)).encode()
    webhook_id = f"msg_{secrets.token_hex(12)}"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(config.webhook_secret, webhook_id, timestamp, body),
    }
    with contextlib.suppress(httpx.HTTPError):
        response = await client.post(url, content=body, headers=headers)
        if response.status_code < 300:
            ctx.state.webhooks_sent[job.id] += 1


def create_emulator(
    config: ReplicateConfig,
    *,
    state: ReplicateState | None = None,
    media: MediaCache | None = None,
    base_url: str = "",
) -> FastAPI:
    """The emulator app; ``config`` and ``state`` stay live."""
    app = FastAPI(title="Replicate emulator", openapi_url=None, docs_url=None)
    context = ReplicateContext(
        config=config,
        state=state or ReplicateState(),
        media=media or MediaCache(config.media_dir, fps=config.fps),
        error=_problem,
        authenticated=bearer_matches,
    )
    context.base_url = base_url
    app.state.emulator = context
    app.include_router(router)
    app.include_router(delivery)
    install_error_handler(app)

    async def unknown_route(request: Request, exc: Exception) -> Response:
        problem = _problem(404, "The requested resource could not be found.", "not_found")
        return JSONResponse(problem.body, 404, problem.headers)

    app.add_exception_handler(404, unknown_route)
    return app


@dataclass
class ReplicateEmulator:
    base_url: str
    """``http://127.0.0.1:<port>``: what ``replicate.Client(base_url=…)`` takes."""
    config: ReplicateConfig
    state: ReplicateState
    app: FastAPI

    @property
    def webhooks_sent(self) -> Counter[str]:
        return self.state.webhooks_sent


@contextlib.asynccontextmanager
async def running_emulator(
    config: ReplicateConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    media: MediaCache | None = None,
) -> AsyncIterator[ReplicateEmulator]:
    """Serve the emulator on 127.0.0.1 in the current event loop."""
    config = config or ReplicateConfig()
    state = ReplicateState(clock=clock)
    app = create_emulator(config, state=state, media=media)
    async with serve(app) as url:
        app.state.emulator.base_url = url
        try:
            yield ReplicateEmulator(url, config, state, app)
        finally:
            for job in state.jobs.values():
                task = getattr(job, "webhook_task", None)
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.emulators.replicate",
        description="Serve an emulated Replicate predictions API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--retry-after", type=int, default=1, dest="retry_after_seconds")
    parser.add_argument("--rate-limit-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    parser.add_argument("--fail-jobs-with", metavar="CODE", help="e.g. moderation_blocked")
    parser.add_argument("--vanish-jobs", action="store_true")
    parser.add_argument("--corrupt-content", action="store_true")
    parser.add_argument("--truncate-content", action="store_true")
    parser.add_argument("--cut-content", action="store_true")
    parser.add_argument("--unauthorized", action="store_true")
    parser.add_argument("--forbidden", action="store_true")
    parser.add_argument("--drop-webhooks", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    base_url = f"http://{host}:{port}"
    app = create_emulator(ReplicateConfig(**args), base_url=base_url)
    print(f"Replicate emulator: base URL {base_url}")
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
