"""An emulator of Google Veo's long-running video API, on the Gemini API or on Vertex,
as the ``google-genai`` SDK (2.x; 3.x refuses Gemini-API video) speaks it::

    python -m tests.emulators.veo --port 8103 --api-key AIza-test [--vertex]

Gemini API (``surface="gemini"``; ``/v1beta`` and ``/v1`` both served):

* ``POST /{ver}/models/{model}:predictLongRunning`` → ``{"name":
  "models/{model}/operations/{id}"}``; ``instances[0].prompt``/``image`` and the
  ``parameters`` the SDK sends on this surface are checked (``seed`` and
  ``generateAudio`` are refused here, as the SDK refuses them);
* ``GET /{ver}/models/{model}/operations/{id}``: no ``done`` while running, then
  ``done: true`` with ``response.generateVideoResponse.generatedSamples[0].video.uri``
  = ``https://generativelanguage.googleapis.com/v1beta/files/{id}:download?alt=media``
  (the SDK parses the file id from that form and downloads from its own base URL);
* ``GET /{ver}/files/{id}:download``: the MP4, behind the key;
* key in ``x-goog-api-key`` (or ``?key=``); a wrong key answers 400
  ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``.

Vertex (``surface="vertex"``, ``/v1beta1``, optionally under
``projects/{p}/locations/{l}/``): create as above under ``publishers/google/models``;
``POST …/{model}:fetchPredictOperation`` with ``{"operationName"}`` polls; the video
comes inline (``response.videos[0].bytesBase64Encoded``); a wrong key answers 401.

Push completion (Gemini API only; the SDK refuses ``webhook_config`` on Vertex, and so
does this emulator): a create with ``webhookConfig: {"uris": [URL]}`` (what SDK 2.34
sends, with snake_case ``user_metadata``) gets a POST to each URI when the video is
generated: ``{"type": "video.generated", "version": "v1", "timestamp", "data": {"id":
operation name, "video_uri"}}`` with Standard Webhooks ``webhook-id`` and
``webhook-timestamp`` headers. Google signs these per-request webhooks with an RS256
JWT checked against its JWKS (third-party guides; UNCONFIRMED in detail), which this
emulator does not make: reelforge does not check it (docs/providers.md). Whether a
failed or filtered operation calls back is not known; the emulator does not.
``drop_callbacks`` loses them; ``VeoEmulator.callbacks_sent`` counts them.

Both: ``fail_jobs_with="RAI"`` ends jobs safety-filtered (``raiMediaFilteredCount``
1, no video); any other value ends them with ``error.status`` = that value;
``POST {operation}:cancel`` cancels (``error.status`` CANCELLED). Errors are Google's
``{"error": {"code", "message", "status", "details"}}``; 429s carry
``google.rpc.RetryInfo``. Other faults: :mod:`tests.emulators.vendor_common`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.emulators.openai_videos import EmulatorState, MediaCache
from tests.emulators.vendor_common import (
    VendorConfig,
    VendorContext,
    VendorError,
    VendorJob,
    content_response,
    guard,
    install_error_handler,
    serve,
)

__all__ = ["CREATE_ROUTE", "VeoEmulator", "create_veo", "running_veo"]

Surface = Literal["gemini", "vertex"]
CREATE_ROUTE = "POST {model}:predictLongRunning"
POLL_ROUTE = "GET/POST operation"
CANCEL_ROUTE = "POST {operation}:cancel"
DOWNLOAD_ROUTE = "GET /{ver}/files/{file_id}:download"
GEMINI_VERSIONS = ("v1beta", "v1")
FILES_HOST = "https://generativelanguage.googleapis.com"
_GL_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
_COMMON_PARAMETERS = frozenset(
    {
        "sampleCount",
        "durationSeconds",
        "aspectRatio",
        "resolution",
        "personGeneration",
        "negativePrompt",
        "enhancePrompt",
    }
)
_VERTEX_PARAMETERS = _COMMON_PARAMETERS | {
    "seed",
    "generateAudio",
    "fps",
    "storageUri",
    "pubsubTopic",
    "compressionQuality",
    "resizeMode",
}
_SIZES = {
    ("16:9", "720p"): "1280x720",
    ("9:16", "720p"): "720x1280",
    ("16:9", "1080p"): "1920x1080",
    ("9:16", "1080p"): "1080x1920",
}


def _google_error(status: int, message: str, reason: str) -> VendorError:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if reason == "rate_limited":
        error["message"] = "Resource has been exhausted (e.g. check quota)."
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
        ]
    return VendorError(status, {"error": error})


def _gemini_error(status: int, message: str, reason: str) -> VendorError:
    if reason == "unauthorized":
        return VendorError(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            },
        )
    return _google_error(status, message, reason)


def _vertex_error(status: int, message: str, reason: str) -> VendorError:
    if reason == "unauthorized":
        message = "Request had invalid authentication credentials."
    return _google_error(status, message, reason)


def _key_matches(request: Request, config: VendorConfig) -> bool:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    return key is not None and secrets.compare_digest(key.encode(), (config.api_key or "").encode())


def _context(request: Request) -> VendorContext:
    ctx: VendorContext = request.app.state.emulator
    return ctx


ContextDep = Annotated[VendorContext, Depends(_context)]


def _invalid(ctx: VendorContext, message: str) -> VendorError:
    return ctx.error(400, message, "invalid")


def _job_for(ctx: VendorContext, name: str) -> VendorJob:
    job_id = name.rpartition("/operations/")[2]
    job = ctx.state.jobs.get(job_id)
    if (
        not isinstance(job, VendorJob)
        or job.vanished_at(ctx.now())
        or job.body.get("_name") != name
    ):
        raise ctx.error(404, f"Operation {name} not found", "not_found")
    return job


async def _create(
    request: Request, ctx: VendorContext, model: str, surface: Surface, prefix: str
) -> Response:
    await guard(request, ctx, route=CREATE_ROUTE)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _invalid(ctx, "Invalid JSON payload received.")
    if not model.startswith("veo-"):
        raise ctx.error(
            404, f"models/{model} is not found or does not support predictLongRunning", "not_found"
        )
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise _invalid(ctx, "instances must hold exactly one instance")
    instance = instances[0]
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) and "image" not in instance:
        raise _invalid(ctx, "instances[0].prompt is required")
    image = instance.get("image")
    if image is not None and not (
        isinstance(image, dict)
        and isinstance(image.get("bytesBase64Encoded"), str)
        and image.get("mimeType")
    ):
        raise _invalid(ctx, "instances[0].image needs bytesBase64Encoded and mimeType")
    parameters = body.get("parameters") or {}
    allowed = _VERTEX_PARAMETERS if surface == "vertex" else _COMMON_PARAMETERS
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise _invalid(ctx, f"{unknown[0]} parameter is not supported in this API")
    duration = parameters.get("durationSeconds", 8)
    if duration not in (4, 6, 8):
        raise _invalid(ctx, f"durationSeconds must be 4, 6 or 8, got {duration!r}")
    size = _SIZES.get((parameters.get("aspectRatio", "16:9"), parameters.get("resolution", "720p")))
    if size is None:
        raise _invalid(ctx, "unsupported aspectRatio/resolution")
    uris = _webhook_uris(ctx, body.get("webhookConfig"), surface)
    job_id = uuid.uuid4().hex
    name = f"{prefix}models/{model}/operations/{job_id}"
    job = ctx.new_job(
        id=job_id,
        model=model,
        prompt=prompt or "",
        size=size,
        seconds=str(duration),
        body={**body, "_name": name},
    )
    if not ctx.config.drop_callbacks:
        for uri in uris:
            _schedule_webhook(ctx, job, uri)
    return JSONResponse({"name": name})


def _webhook_uris(ctx: VendorContext, config: object, surface: Surface) -> list[str]:
    if config is None:
        return []
    if surface == "vertex":
        raise _invalid(ctx, "webhookConfig is not supported in Vertex AI")
    uris = config.get("uris") if isinstance(config, dict) else None
    if not (
        isinstance(uris, list)
        and uris
        and all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in uris)
    ):
        raise _invalid(ctx, "webhookConfig.uris must list http(s) URLs")
    return list(uris)


def _schedule_webhook(ctx: VendorContext, job: VendorJob, uri: str) -> None:
    def event() -> tuple[bytes, dict[str, str]] | None:
        if job.cancelled_at is not None or job.fail_with or ctx.state.jobs.get(job.id) is not job:
            return None  # only a generated video is known to call back
        name = job.body["_name"]
        body = {
            "type": "video.generated",
            "version": "v1",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {
                "id": name,
                "video_uri": f"{FILES_HOST}/v1beta/files/{job.id}:download?alt=media",
            },
        }
        headers = {
            "content-type": "application/json",
            "webhook-id": f"msg_{secrets.token_hex(12)}",
            "webhook-timestamp": str(int(time.time())),
        }
        return json.dumps(body).encode(), headers

    delay = job.created + job.duration - ctx.now() + 0.02
    ctx.callbacks.send_in(delay, job.id, uri, event)


async def _operation(
    ctx: VendorContext, job: VendorJob, surface: Surface, version: str
) -> dict[str, Any]:
    name = job.body["_name"]
    elapsed = ctx.now() - job.created
    if job.cancelled_at is not None:
        return {
            "name": name,
            "done": True,
            "error": {"code": 1, "message": "Operation was cancelled.", "status": "CANCELLED"},
        }
    if elapsed < job.duration:
        return {
            "name": name,
            "metadata": {"@type": _GL_TYPE + "PredictLongRunningMetadata"},
        }
    done: dict[str, Any] = {"name": name, "done": True}
    if job.fail_with and job.fail_with != "RAI":
        return {
            **done,
            "error": {
                "code": 13,
                "message": f"Video generation failed ({job.fail_with}).",
                "status": job.fail_with,
            },
        }
    filtered = job.fail_with == "RAI"
    reasons = ["Your prompt was blocked by our safety filters."] if filtered else []
    if surface == "vertex":
        videos = []
        if not filtered:
            data = await ctx.media.get("video", job.size, job.seconds)
            if ctx.config.corrupt_content:
                data = secrets.token_bytes(len(data))
            videos = [
                {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"}
            ]
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
            "videos": videos,
            "raiMediaFilteredCount": int(filtered),
            "raiMediaFilteredReasons": reasons,
        }
        return {**done, "response": response}
    samples = (
        []
        if filtered
        else [{"video": {"uri": f"{FILES_HOST}/{version}/files/{job.id}:download?alt=media"}}]
    )
    generate: dict[str, Any] = {
        "generatedSamples": samples,
        "raiMediaFilteredCount": int(filtered),
        "raiMediaFilteredReasons": reasons,
    }
    if not samples:
        del generate["generatedSamples"]
    return {
        **done,
        "response": {
            "@type": _GL_TYPE + "PredictLongRunningResponse",
            "generateVideoResponse": generate,
        },
    }


async def _cancel(request: Request, ctx: VendorContext, name: str) -> Response:
    await guard(request, ctx, route=CANCEL_ROUTE)
    job = _job_for(ctx, name)
    if job.cancelled_at is None and ctx.now() - job.created < job.duration:
        job.cancelled_at = ctx.now()
        ctx.state.deleted[job.id] = "running"
    return JSONResponse({})


# --- Gemini API ------------------------------------------------------------------

gemini = APIRouter()


def _version(ctx: VendorContext, ver: str) -> str:
    if ver not in GEMINI_VERSIONS:
        raise ctx.error(404, f"Unknown API version {ver}", "not_found")
    return ver


@gemini.post("/{ver}/models/{model}:predictLongRunning")
async def gemini_create(ver: str, model: str, request: Request, ctx: ContextDep) -> Response:
    _version(ctx, ver)
    return await _create(request, ctx, model, "gemini", "")


@gemini.get("/{ver}/models/{model}/operations/{op}")
async def gemini_operation(
    ver: str, model: str, op: str, request: Request, ctx: ContextDep
) -> Response:
    await guard(request, ctx, route=POLL_ROUTE)
    job = _job_for(ctx, f"models/{model}/operations/{op}")
    return JSONResponse(await _operation(ctx, job, "gemini", _version(ctx, ver)))


@gemini.post("/{ver}/models/{model}/operations/{op}:cancel")
async def gemini_cancel(
    ver: str, model: str, op: str, request: Request, ctx: ContextDep
) -> Response:
    _version(ctx, ver)
    return await _cancel(request, ctx, f"models/{model}/operations/{op}")


@gemini.get("/{ver}/files/{file_id}:download")
async def gemini_download(ver: str, file_id: str, request: Request, ctx: ContextDep) -> Response:
    await guard(request, ctx, route=DOWNLOAD_ROUTE)
    job = ctx.state.jobs.get(file_id)
    if not isinstance(job, VendorJob) or ctx.now() - job.created < job.duration:
        raise ctx.error(404, f"File {file_id} not found", "not_found")
    return await content_response(ctx, job, request, count=False)


# --- Vertex ----------------------------------------------------------------------

vertex = APIRouter()
_PUBLISHER = "/v1beta1/publishers/google/models/{model}"
_SCOPED = "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}"


def _scope(project: str | None, location: str | None) -> str:
    return f"projects/{project}/locations/{location}/" if project and location else ""


@vertex.post(_PUBLISHER + ":predictLongRunning")
@vertex.post(_SCOPED + ":predictLongRunning")
async def vertex_create(
    model: str,
    request: Request,
    ctx: ContextDep,
    project: str | None = None,
    location: str | None = None,
) -> Response:
    return await _create(
        request, ctx, model, "vertex", _scope(project, location) + "publishers/google/"
    )


@vertex.post(_PUBLISHER + ":fetchPredictOperation")
@vertex.post(_SCOPED + ":fetchPredictOperation")
async def vertex_fetch(
    model: str,
    request: Request,
    ctx: ContextDep,
    project: str | None = None,
    location: str | None = None,
) -> Response:
    await guard(request, ctx, route=POLL_ROUTE)
    try:
        body = await request.json()
    except ValueError:
        body = None
    name = body.get("operationName") if isinstance(body, dict) else None
    resource = f"{_scope(project, location)}publishers/google/models/{model}"
    if not isinstance(name, str) or not name.startswith(resource + "/operations/"):
        raise _invalid(ctx, "operationName must name an operation of this model")
    return JSONResponse(await _operation(ctx, _job_for(ctx, name), "vertex", "v1beta1"))


@vertex.post(_PUBLISHER + "/operations/{op}:cancel")
@vertex.post(_SCOPED + "/operations/{op}:cancel")
async def vertex_cancel(
    model: str,
    op: str,
    request: Request,
    ctx: ContextDep,
    project: str | None = None,
    location: str | None = None,
) -> Response:
    resource = f"{_scope(project, location)}publishers/google/models/{model}"
    return await _cancel(request, ctx, f"{resource}/operations/{op}")


def create_veo(
    config: VendorConfig,
    *,
    surface: Surface = "gemini",
    state: EmulatorState | None = None,
    media: MediaCache | None = None,
) -> FastAPI:
    app = FastAPI(title=f"Veo emulator ({surface})", openapi_url=None, docs_url=None)
    error = _vertex_error if surface == "vertex" else _gemini_error
    app.state.emulator = VendorContext(
        config=config,
        state=state or EmulatorState(),
        media=media or MediaCache(config.media_dir, fps=config.fps),
        error=error,
        authenticated=_key_matches,
    )
    app.include_router(vertex if surface == "vertex" else gemini)
    install_error_handler(app)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(error(404, f"Not found: {request.url.path}", "not_found").body, 404)

    app.add_exception_handler(404, not_found)
    return app


@dataclass
class VeoEmulator:
    base_url: str
    """``http://127.0.0.1:<port>``: what ``HttpOptions(base_url=…)`` takes."""
    config: VendorConfig
    state: EmulatorState
    context: VendorContext

    @property
    def callbacks_sent(self) -> Counter[str]:
        """Webhooks the receiver answered 2xx, per operation id."""
        return self.context.callbacks.sent

    @property
    def submits(self) -> int:
        return sum(self.state.submits_by_prompt.values())

    @property
    def cancels(self) -> int:
        return len(self.state.deleted)


@contextlib.asynccontextmanager
async def running_veo(
    config: VendorConfig | None = None,
    *,
    surface: Surface = "gemini",
    clock: Callable[[], float] | None = None,
    media: MediaCache | None = None,
) -> AsyncIterator[VeoEmulator]:
    config = config or VendorConfig()
    state = EmulatorState() if clock is None else EmulatorState(clock=clock)
    app = create_veo(config, surface=surface, state=state, media=media)
    context: VendorContext = app.state.emulator
    try:
        async with serve(app) as url:
            yield VeoEmulator(url, config, state, context)
    finally:
        await context.callbacks.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.veo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--api-key", help="require x-goog-api-key: KEY")
    parser.add_argument("--vertex", action="store_true", help="serve the Vertex surface")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--fail-jobs-with", metavar="STATUS", help="RAI, or a google.rpc status")
    parser.add_argument("--rate-limit-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    parser.add_argument("--drop-callbacks", action="store_true")
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    surface: Surface = "vertex" if args.pop("vertex") else "gemini"
    print(f"Veo emulator ({surface}): base URL http://{host}:{port}")
    app = create_veo(VendorConfig(**args), surface=surface)
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
