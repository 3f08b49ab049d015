"""An emulator of fal's queue API (``queue.fal.run``), as ``fal-client`` (1.0.3) uses it.

fal-client only speaks ``https://`` to the queue host (``FAL_QUEUE_RUN_HOST`` is a
host, the scheme is fixed), so this emulator serves TLS, with a certificate for
127.0.0.1 from a test CA (``trustme``); clients trust it through ``SSL_CERT_FILE``.
Run it on its own (writes the CA to ``--ca-file``)::

    python -m tests.emulators.fal --port 8443 --api-key fal-test --ca-file /tmp/fal-ca.pem

What it owns (shapes from fal-client's ``client.py`` and fal's queue docs; see
docs/providers.md):

* ``POST /{owner}/{alias}[/{path}][?fal_webhook=URL]``: the model input as the body;
  the answer carries ``request_id``, ``gateway_request_id``, ``queue_position`` and the
  ``status_url``, ``response_url`` and ``cancel_url`` (which drop the endpoint path,
  as fal's do);
* ``GET …/requests/{id}/status[?logs=1]``: ``IN_QUEUE`` (``queue_position``),
  ``IN_PROGRESS`` (``logs``; a ``NN%`` message as the job moves), ``COMPLETED``
  (``logs``, ``metrics``, and ``error``/``error_type`` when it failed); no other
  status string, which the SDK could not parse;
* ``GET …/requests/{id}``: the model output ``{"video": {"url", "content_type",
  "file_name", "file_size"}, "seed"}``, or a 422 ``{"detail": [{loc, msg, type}]}``
  for a failed request, 400 while it is not done;
* ``PUT …/requests/{id}/cancel``: 202 ``CANCELLATION_REQUESTED``, 400
  ``ALREADY_COMPLETED``, 404 ``NOT_FOUND``;
* the webhook: ``{"request_id", "gateway_request_id", "status": "OK"|"ERROR",
  "payload", "error"}`` POSTed to ``fal_webhook`` when the request ends, signed as fal
  signs them (ED25519; :mod:`tests.emulators.fal_signing`), the public keys served at
  ``GET /.well-known/jwks.json`` (fetches counted in ``FalState.jwks_fetches``);
* errors as ``{"detail": …}`` with ``x-fal-request-id``; ``Authorization: Key …``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.emulators.fal_signing import JWKS_PATH, WebhookSigner
from tests.emulators.openai_videos import EmulatorState, MediaCache
from tests.emulators.replicate import clip_size
from tests.emulators.tls import issue_certificates, serve_tls
from tests.emulators.vendor_common import (
    VendorConfig,
    VendorContext,
    VendorError,
    VendorJob,
    content_response,
    guard,
    install_error_handler,
)

__all__ = [
    "MODERATION_MESSAGE",
    "FalConfig",
    "FalEmulator",
    "create_emulator",
    "issue_certificates",
    "main",
    "running_emulator",
]

SUBMIT_ROUTE = "POST /{owner}/{alias}"
SUBMIT_PATH_ROUTE = "POST /{owner}/{alias}/{path:path}"
STATUS_ROUTE = "GET /{owner}/{alias}/requests/{request_id}/status"
RESULT_ROUTE = "GET /{owner}/{alias}/requests/{request_id}"
CANCEL_ROUTE = "PUT /{owner}/{alias}/requests/{request_id}/cancel"
FILE_ROUTE = "GET /files/{request_id}/output.mp4"
# What fal's content checker answers (error_type content_policy_violation).
MODERATION_MESSAGE = (
    "The content could not be processed because it contained material flagged by a content checker."
)
_DURATION = re.compile(r"^(\d{1,2})s?$")


@dataclass
class FalConfig(VendorConfig):
    drop_webhooks: bool = False
    """Webhooks are never delivered (a lost callback)."""


@dataclass
class FalState(EmulatorState):
    webhooks_sent: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    signer: WebhookSigner = field(default_factory=WebhookSigner)
    """The webhook signing keys (a fresh one per emulator)."""
    jwks_fetches: int = 0


@dataclass
class FalJob(VendorJob):
    app: str = ""  # owner/alias: what the status, result and cancel URLs use
    webhook: str | None = None
    webhook_task: asyncio.Task[None] | None = field(default=None, repr=False)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def state(self, now: float) -> tuple[str, int]:
        if self.cancelled_at is not None:
            return "COMPLETED", 0
        status, progress = self.status_at(now)
        return {
            "queued": "IN_QUEUE",
            "in_progress": "IN_PROGRESS",
            "completed": "COMPLETED",
            "failed": "COMPLETED",
        }[status], progress

    def error(self, now: float) -> tuple[str, str] | None:
        """(message, error_type) of a request that ended badly, else None."""
        if self.cancelled_at is not None:
            return "Request was cancelled", "request_cancelled"
        status, _ = self.status_at(now)
        if status != "failed":
            return None
        if self.fail_with and "moderation" in self.fail_with:
            return MODERATION_MESSAGE, "content_policy_violation"
        return f"Internal error ({self.fail_with})", "internal_server_error"


def _problem(status: int, message: str, reason: str) -> VendorError:
    details = {
        "unauthorized": "Authentication is required to access this application.",
        "forbidden": "Access denied: this key may not use this application.",
        "rate_limited": "Too many concurrent requests; please retry later.",
        "server_error": "Internal Server Error",
    }
    headers = {"x-fal-request-id": str(uuid.uuid4())}
    return VendorError(status, {"detail": details.get(reason, message)}, headers)


class FalContext(VendorContext):
    base_url: str = ""

    def urls(self, job: FalJob) -> dict[str, str]:
        base = f"{self.base_url}/{job.app}/requests/{job.id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def fal_job(self, app: str, request_id: str) -> FalJob:
        job = self.job(request_id)
        if not isinstance(job, FalJob) or job.app != app:
            raise _problem(404, f"Request {request_id} not found", "not_found")
        return job

    def result(self, job: FalJob) -> dict[str, Any]:
        data_url = f"{self.base_url}/files/{job.id}/output.mp4"
        return {
            "video": {
                "url": data_url,
                "content_type": "video/mp4",
                "file_name": "output.mp4",
                "file_size": None,
            },
            "seed": int(job.body.get("seed", 42)),
        }


def _context(request: Request) -> FalContext:
    context: FalContext = request.app.state.emulator
    return context


ContextDep = Annotated[FalContext, Depends(_context)]


def _key_matches(request: Request, config: VendorConfig) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return scheme == "Key" and secrets.compare_digest(
        key.strip().encode(), (config.api_key or "").encode()
    )


async def _guard(request: Request, ctx: ContextDep) -> None:
    await guard(request, ctx)


router = APIRouter(dependencies=[Depends(_guard)])


def _invalid(loc: str, msg: str, kind: str) -> VendorError:
    return VendorError(
        422,
        {"detail": [{"loc": ["body", loc], "msg": msg, "type": kind}]},
        {"x-fal-request-id": str(uuid.uuid4())},
    )


def _input(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("__root__", "value is not a valid dict", "type_error.dict")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _invalid("prompt", "field required", "value_error.missing")
    duration = body.get("duration", "5")
    if not isinstance(duration, str) or not _DURATION.match(duration):
        raise _invalid("duration", "unexpected value; permitted: '4s', '6s', '8s'", "literal_error")
    return body


async def _submit(request: Request, ctx: FalContext, app: str) -> Response:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    value = _input(body)
    match = _DURATION.match(str(value.get("duration", "5")))
    seconds = match.group(1) if match else "5"
    webhook = request.query_params.get("fal_webhook")
    job = FalJob(
        id=str(uuid.uuid4()),
        model=app,
        prompt=value["prompt"],
        size=clip_size(value),
        seconds=seconds,
        created=ctx.now(),
        duration=max(0.0, ctx.config.job_seconds),
        fail_with=ctx.config.fail_jobs_with,
        vanishes=ctx.config.vanish_jobs,
        body=value,
        app="/".join(app.split("/")[:2]),
        webhook=webhook,
    )
    ctx.state.jobs[job.id] = job
    ctx.state.submits_by_prompt[job.prompt] += 1
    if webhook:
        job.webhook_task = asyncio.create_task(_deliver(ctx, job, webhook))
    queued = sum(1 for j in ctx.state.jobs.values() if isinstance(j, FalJob))
    return JSONResponse(
        {
            "request_id": job.id,
            "gateway_request_id": job.id,
            "queue_position": max(0, queued - 1),
            **ctx.urls(job),
        },
        headers={"x-fal-request-id": job.id},
    )


@router.get("/{owner}/{alias}/requests/{request_id}/status")
async def request_status(
    owner: str, alias: str, request_id: str, request: Request, ctx: ContextDep
) -> Response:
    job = ctx.fal_job(f"{owner}/{alias}", request_id)
    now = ctx.now()
    status, progress = job.state(now)
    with_logs = request.query_params.get("logs", "0").lower() in ("1", "true")
    logs: list[dict[str, Any]] | None = None
    if with_logs:
        logs = []
        if status != "IN_QUEUE":
            logs.append(_log("Starting generation"))
            logs.append(_log(f"{100 if status == 'COMPLETED' else progress}%"))
    body: dict[str, Any] = {"status": status, "request_id": job.id, **ctx.urls(job)}
    if status == "IN_QUEUE":
        body["queue_position"] = 0
    else:
        body["logs"] = logs
    if status == "COMPLETED":
        body["metrics"] = {"inference_time": round(job.duration * 0.75, 3)}
        error = job.error(now)
        if error is not None:
            body["error"], body["error_type"] = error
    return JSONResponse(body)


def _log(message: str) -> dict[str, Any]:
    return {
        "message": message,
        "level": "INFO",
        "source": "USER",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    }


@router.get("/{owner}/{alias}/requests/{request_id}")
async def request_result(owner: str, alias: str, request_id: str, ctx: ContextDep) -> Response:
    job = ctx.fal_job(f"{owner}/{alias}", request_id)
    now = ctx.now()
    status, _ = job.state(now)
    if status != "COMPLETED":
        return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
    error = job.error(now)
    if error is not None:
        message, kind = error
        if kind == "content_policy_violation":
            raise _invalid("prompt", message, kind)
        return JSONResponse(
            {"detail": message, "error_type": kind},
            status_code=500 if kind == "internal_server_error" else 400,
            headers={"x-fal-request-id": job.id, "x-fal-error-type": kind},
        )
    return JSONResponse(ctx.result(job), headers={"x-fal-request-id": job.id})


@router.put("/{owner}/{alias}/requests/{request_id}/cancel")
async def cancel_request(owner: str, alias: str, request_id: str, ctx: ContextDep) -> Response:
    job = ctx.fal_job(f"{owner}/{alias}", request_id)
    assert isinstance(ctx.state, FalState)
    ctx.state.cancels[request_id] += 1
    status, _ = job.state(ctx.now())
    if status == "COMPLETED":
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
    job.cancelled_at = ctx.now()
    job.done.set()
    ctx.state.deleted[request_id] = status
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)


# Submits last: their catch-all path would otherwise shadow nothing (other routes are
# GET/PUT), but keeping them apart makes the route table read like fal's.
@router.post("/{owner}/{alias}")
async def submit(owner: str, alias: str, request: Request, ctx: ContextDep) -> Response:
    return await _submit(request, ctx, f"{owner}/{alias}")


@router.post("/{owner}/{alias}/{path:path}")
async def submit_path(
    owner: str, alias: str, path: str, request: Request, ctx: ContextDep
) -> Response:
    return await _submit(request, ctx, f"{owner}/{alias}/{path}")


files = APIRouter()


@files.get(JWKS_PATH)
async def webhook_keys(ctx: ContextDep) -> Response:
    """The public keys webhooks are signed with (no auth, as fal's)."""
    assert isinstance(ctx.state, FalState)
    ctx.state.jwks_fetches += 1
    return JSONResponse(ctx.state.signer.jwks())


@files.get("/files/{request_id}/output.mp4")
async def output_file(request_id: str, request: Request, ctx: ContextDep) -> Response:
    job = ctx.state.jobs.get(request_id)
    if (
        not isinstance(job, FalJob)
        or job.state(ctx.now())[0] != "COMPLETED"
        or job.error(ctx.now())
    ):
        return Response(b"Not Found", status_code=404, media_type="text/plain")
    return await content_response(ctx, job, request)


async def _deliver(ctx: FalContext, job: FalJob, url: str) -> None:
    config = ctx.config
    assert isinstance(config, FalConfig)
    assert isinstance(ctx.state, FalState)
    while job.state(ctx.now())[0] != "COMPLETED":
        left = max(0.0, job.created + job.duration - ctx.now())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.done.wait(), left)
    if config.drop_webhooks:
        return
    error = job.error(ctx.now())
    body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
    if error is None:
        body.update(status="OK", payload=ctx.result(job))
    else:
        body.update(
            status="ERROR",
            error=error[0],
            payload={"detail": [{"loc": ["body"], "msg": error[0], "type": error[1]}]},
        )
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json", **ctx.state.signer.headers(job.id, content)}
    async with httpx.AsyncClient(timeout=10) as client:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.post(url, content=content, headers=headers)
            if response.status_code < 300:
                ctx.state.webhooks_sent[job.id] += 1


def create_emulator(
    config: FalConfig,
    *,
    state: FalState | None = None,
    media: MediaCache | None = None,
    base_url: str = "",
) -> FastAPI:
    app = FastAPI(title="fal queue emulator", openapi_url=None, docs_url=None)
    context = FalContext(
        config=config,
        state=state or FalState(),
        media=media or MediaCache(config.media_dir, fps=config.fps),
        error=_problem,
        authenticated=_key_matches,
    )
    context.base_url = base_url
    app.state.emulator = context
    app.include_router(files)
    app.include_router(router)
    install_error_handler(app)
    return app


@dataclass
class FalEmulator:
    base_url: str
    """``https://127.0.0.1:<port>``: the queue host (fal-client: ``FAL_QUEUE_RUN_HOST``)."""
    host: str
    """``127.0.0.1:<port>``."""
    ca_file: Path
    """Trust this (``SSL_CERT_FILE``) to reach the emulator."""
    config: FalConfig
    state: FalState
    app: FastAPI

    @property
    def jwks_url(self) -> str:
        """Where the webhook keys are (the fal provider's ``options.webhook_jwks_url``)."""
        return self.base_url + JWKS_PATH

    @property
    def signer(self) -> WebhookSigner:
        return self.state.signer


@contextlib.asynccontextmanager
async def running_emulator(
    directory: Path,
    config: FalConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    media: MediaCache | None = None,
) -> AsyncIterator[FalEmulator]:
    """Serve the emulator over TLS on 127.0.0.1; its CA is written under ``directory``."""
    config = config or FalConfig()
    state = FalState(clock=clock)
    app = create_emulator(config, state=state, media=media)
    async with serve_tls(app, directory) as (host, ca_file):
        app.state.emulator.base_url = f"https://{host}"
        try:
            yield FalEmulator(f"https://{host}", host, ca_file, config, state, app)
        finally:
            for job in state.jobs.values():
                pending = getattr(job, "webhook_task", None)
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pending


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.emulators.fal", description="Serve an emulated fal queue API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-file", type=Path, required=True, help="where to write the CA")
    parser.add_argument("--api-key", help="require 'Authorization: Key KEY'")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--rate-limit-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    parser.add_argument("--fail-jobs-with", metavar="CODE", help="e.g. moderation_blocked")
    parser.add_argument("--vanish-jobs", action="store_true")
    parser.add_argument("--corrupt-content", action="store_true")
    parser.add_argument("--cut-content", action="store_true")
    parser.add_argument("--unauthorized", action="store_true")
    parser.add_argument("--drop-webhooks", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    host, port, ca_target = args.pop("host"), args.pop("port"), args.pop("ca_file")
    ca_target.parent.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = issue_certificates(ca_target.parent)
    if ca_file != ca_target:
        ca_target.write_bytes(ca_file.read_bytes())
    base_url = f"https://{host}:{port}"
    app = create_emulator(FalConfig(**args), base_url=base_url)
    print(f"fal queue emulator: {base_url} (trust {ca_target}; FAL_QUEUE_RUN_HOST={host}:{port})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )


if __name__ == "__main__":
    main()
