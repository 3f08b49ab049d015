"""An emulator of Luma's Dream Machine API (``/dream-machine/v1``), as the ``lumaai``
SDK (1.21) speaks it::

    python -m tests.emulators.luma --port 8102 --api-key luma-test

* ``POST /dream-machine/v1/generations/video`` (and ``/generations``) → **201** with a
  Generation object (``state: queued``); ``model``, ``aspect_ratio``, ``resolution``,
  ``duration`` and ``keyframes`` are checked against the SDK's values;
* ``GET /dream-machine/v1/generations/{id}``: ``queued`` → ``dreaming`` →
  ``completed`` with ``assets.video`` or ``failed`` with ``failure_reason``
  (``fail_jobs_with`` is the reason text); no numeric progress, as on Luma;
* ``DELETE /dream-machine/v1/generations/{id}`` → 204;
* ``GET /_cdn/{id}.mp4``: the video, a real MP4, unauthenticated like a signed link;
* errors as Luma's ``{"detail": "…"}``;
* ``callback_url``: the Generation object is POSTed there when the generation starts
  dreaming and when it completes or fails (Reference §3a: "a POST of the Generation
  object on dreaming, completed and failed"; unsigned, as no signature header is
  documented), counted in ``LumaEmulator.callbacks_sent``; ``drop_callbacks`` loses
  them.

Fault switches and counters are :mod:`tests.emulators.vendor_common`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

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

__all__ = ["CREATE_ROUTES", "GET_ROUTE", "LumaEmulator", "create_luma", "running_luma"]

PREFIX = "/dream-machine/v1"
CREATE_ROUTES = (f"POST {PREFIX}/generations/video", f"POST {PREFIX}/generations")
GET_ROUTE = f"GET {PREFIX}/generations/{{generation_id}}"
MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
ASPECT_RATIOS = {
    "1:1": (1, 1),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "21:9": (21, 9),
    "9:21": (9, 21),
}
RESOLUTIONS = {"540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}
DURATIONS = ("5s", "9s")
_QUEUED_FRACTION = 0.25


def _error(status: int, message: str, reason: str) -> VendorError:
    if reason == "unauthorized":
        message = "Invalid API key is provided"
    return VendorError(status, {"detail": message})


def _context(request: Request) -> VendorContext:
    ctx: VendorContext = request.app.state.emulator
    return ctx


ContextDep = Annotated[VendorContext, Depends(_context)]


async def _guard(request: Request, ctx: ContextDep) -> None:
    await guard(request, ctx)


router = APIRouter(prefix=PREFIX, dependencies=[Depends(_guard)])


def _invalid(message: str) -> VendorError:
    return _error(400, message, "invalid")


def _size(aspect_ratio: str, resolution: str) -> str:
    w, h = ASPECT_RATIOS[aspect_ratio]
    short = RESOLUTIONS[resolution]
    # The short side is the resolution; the long one follows the ratio (even pixels).
    if w >= h:
        return f"{round(short * w / h / 2) * 2}x{short}"
    return f"{short}x{round(short * h / w / 2) * 2}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _generation(ctx: VendorContext, job: VendorJob, base_url: str) -> dict[str, Any]:
    elapsed = ctx.now() - job.created
    assets: dict[str, Any] | None = None
    failure_reason = None
    if elapsed >= job.duration:
        if job.fail_with:
            state, failure_reason = "failed", job.fail_with
        else:
            state = "completed"
            assets = {"video": f"{base_url}_cdn/{job.id}.mp4?sig={uuid.uuid4().hex}"}
    else:
        state = "queued" if elapsed < job.duration * _QUEUED_FRACTION else "dreaming"
    return {
        "id": job.id,
        "generation_type": "video",
        "state": state,
        "failure_reason": failure_reason,
        "created_at": _iso(job.created),
        "assets": assets,
        "model": job.model,
        "request": {"generation_type": "video", **job.body},
    }


async def _create(request: Request, ctx: VendorContext) -> Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    model = body.get("model")
    if model not in MODELS:
        raise _invalid(f"Invalid model {model!r}; expected one of {list(MODELS)}")
    prompt = body.get("prompt")
    keyframes = body.get("keyframes")
    if not isinstance(prompt, str) and keyframes is None:
        raise _invalid("prompt is required")
    aspect_ratio = body.get("aspect_ratio", "16:9")
    if aspect_ratio not in ASPECT_RATIOS:
        raise _invalid(f"Invalid aspect_ratio {aspect_ratio!r}")
    resolution = body.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        raise _invalid(f"Invalid resolution {resolution!r}")
    duration = body.get("duration", "5s")
    if duration not in DURATIONS:
        raise _invalid(f"Invalid duration {duration!r}; expected one of {list(DURATIONS)}")
    callback_url = body.get("callback_url")
    if callback_url is not None and not (
        isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
    ):
        raise _invalid("callback_url must be an http(s) URL")
    if keyframes is not None:
        frame = keyframes.get("frame0") if isinstance(keyframes, dict) else None
        if not (
            isinstance(frame, dict)
            and (
                (frame.get("type") == "image" and isinstance(frame.get("url"), str))
                or (frame.get("type") == "generation" and isinstance(frame.get("id"), str))
            )
        ):
            raise _invalid("keyframes.frame0 must be {type: image, url} or {type: generation, id}")
    job = ctx.new_job(
        id=str(uuid.uuid4()),
        model=model,
        prompt=prompt or "",
        size=_size(aspect_ratio, resolution),
        seconds=duration.removesuffix("s"),
        body=body,
    )
    base_url = str(request.base_url)
    if callback_url is not None and not ctx.config.drop_callbacks:
        _schedule_callbacks(ctx, job, callback_url, base_url)
    return JSONResponse(_generation(ctx, job, base_url), status_code=201)


def _schedule_callbacks(ctx: VendorContext, job: VendorJob, url: str, base_url: str) -> None:
    """POST the Generation when it starts dreaming and when it ends (a moment after
    each state begins, so the body shows it)."""

    def generation() -> tuple[bytes, dict[str, str]] | None:
        if ctx.state.jobs.get(job.id) is not job:  # deleted: Luma calls no more
            return None
        content = json.dumps(_generation(ctx, job, base_url)).encode()
        return content, {"content-type": "application/json"}

    age = ctx.now() - job.created
    for moment in (job.duration * _QUEUED_FRACTION, job.duration):
        ctx.callbacks.send_in(moment - age + 0.02, job.id, url, generation)


@router.post("/generations/video")
async def create_video(request: Request, ctx: ContextDep) -> Response:
    return await _create(request, ctx)


@router.post("/generations")
async def create_generation(request: Request, ctx: ContextDep) -> Response:
    return await _create(request, ctx)


@router.get("/generations/{generation_id}")
async def get_generation(generation_id: str, request: Request, ctx: ContextDep) -> Response:
    return JSONResponse(_generation(ctx, _job(ctx, generation_id), str(request.base_url)))


def _job(ctx: VendorContext, generation_id: str) -> VendorJob:
    job = ctx.state.jobs.get(generation_id)
    if not isinstance(job, VendorJob) or job.vanished_at(ctx.now()):
        raise _error(404, "Generation not found", "not_found")
    return job


@router.delete("/generations/{generation_id}")
async def delete_generation(generation_id: str, request: Request, ctx: ContextDep) -> Response:
    job = _job(ctx, generation_id)
    ctx.state.deleted[generation_id] = _generation(ctx, job, str(request.base_url))["state"]
    del ctx.state.jobs[generation_id]
    return Response(status_code=204)


cdn = APIRouter()


@cdn.get("/_cdn/{generation_id}.mp4")
async def generation_video(generation_id: str, request: Request, ctx: ContextDep) -> Response:
    job = ctx.state.jobs.get(generation_id)
    if not isinstance(job, VendorJob):
        return Response(status_code=404)
    return await content_response(ctx, job, request)


def create_luma(
    config: VendorConfig, *, state: EmulatorState | None = None, media: MediaCache | None = None
) -> FastAPI:
    app = FastAPI(title="Luma Dream Machine emulator", openapi_url=None, docs_url=None)
    app.state.emulator = VendorContext(
        config=config,
        state=state or EmulatorState(),
        media=media or MediaCache(config.media_dir, fps=config.fps),
        error=_error,
        authenticated=bearer_matches,
    )
    app.include_router(router)
    app.include_router(cdn)
    install_error_handler(app)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": "Not Found"}, 404)

    app.add_exception_handler(404, not_found)
    return app


@dataclass
class LumaEmulator:
    base_url: str
    """``http://127.0.0.1:<port>/dream-machine/v1``: what ``LumaAI(base_url=…)`` takes."""
    config: VendorConfig
    state: EmulatorState
    context: VendorContext

    @property
    def callbacks_sent(self) -> Counter[str]:
        """Callbacks the receiver answered 2xx, per generation id."""
        return self.context.callbacks.sent

    @property
    def submits(self) -> int:
        return sum(self.state.submits_by_prompt.values())

    @property
    def cancels(self) -> int:
        return sum(1 for s in self.state.deleted.values() if s in ("queued", "dreaming"))


@contextlib.asynccontextmanager
async def running_luma(
    config: VendorConfig | None = None,
    *,
    clock: Callable[[], float] | None = None,
    media: MediaCache | None = None,
) -> AsyncIterator[LumaEmulator]:
    config = config or VendorConfig()
    state = EmulatorState() if clock is None else EmulatorState(clock=clock)
    app = create_luma(config, state=state, media=media)
    context: VendorContext = app.state.emulator
    try:
        async with serve(app) as url:
            yield LumaEmulator(url + PREFIX, config, state, context)
    finally:
        await context.callbacks.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.luma")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--fail-jobs-with", metavar="REASON", help="the failure_reason text")
    parser.add_argument("--rate-limit-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    parser.add_argument("--drop-callbacks", action="store_true")
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    print(f"Luma emulator: base URL http://{host}:{port}{PREFIX}")
    uvicorn.run(create_luma(VendorConfig(**args)), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
