"""An emulator of Runway's developer API, as the ``runwayml`` SDK (5.24) speaks it::

    python -m tests.emulators.runway --port 8101 --api-key key_test

* ``POST /v1/text_to_video`` and ``/v1/image_to_video`` → ``{"id": uuid}``; the
  ``X-Runway-Version`` header is required, as Runway requires it; the model, ratio,
  duration and prompt length are checked per model;
* ``GET /v1/tasks/{id}``: ``PENDING`` (or ``THROTTLED`` with ``throttle_jobs``) →
  ``RUNNING`` with ``progress`` 0-1 → ``SUCCEEDED`` with ``output: [url]``, or
  ``FAILED`` with ``failure`` and ``failureCode`` (``fail_jobs_with``, e.g.
  ``SAFETY.INPUT.TEXT``); ``estimatedCost`` while running, ``cost`` once ended;
* ``DELETE /v1/tasks/{id}`` → 204: cancels an unfinished task, deletes a finished one;
* ``GET /_cdn/{id}.mp4``: the output, a real MP4, unauthenticated like a signed link;
* errors as Runway's ``{"error": "…"}`` with 400/401/404/429 (Retry-After)/500.

Fault switches and counters are :mod:`tests.emulators.vendor_common`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
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

__all__ = ["CANCEL_ROUTE", "CREATE_ROUTES", "RunwayEmulator", "create_runway", "running_runway"]

API_VERSION = "2024-11-06"
CREATE_ROUTES = ("POST /v1/text_to_video", "POST /v1/image_to_video")
TASK_ROUTE = "GET /v1/tasks/{task_id}"
CANCEL_ROUTE = "DELETE /v1/tasks/{task_id}"
CONTENT_ROUTE = "GET /_cdn/{task_id}.mp4"

_T2V_RATIOS = ("1280:720", "720:1280")
_I2V_RATIOS = (*_T2V_RATIOS, "1104:832", "960:960", "832:1104", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")
# model -> (text-to-video ratios, image-to-video ratios, durations); None: not offered.
MODELS: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...], tuple[int, ...]]] = {
    "gen4.5": (_T2V_RATIOS, _I2V_RATIOS, tuple(range(2, 11))),
    "gen4_turbo": (None, _I2V_RATIOS, (5, 10)),
    "veo3.1": (_VEO_RATIOS, _VEO_RATIOS, (4, 6, 8)),
    "veo3.1_fast": (_VEO_RATIOS, _VEO_RATIOS, (4, 6, 8)),
}
CREDITS_PER_SECOND = {"gen4.5": 12, "gen4_turbo": 5, "veo3.1": 40, "veo3.1_fast": 15}
PROMPT_MAX_LENGTH = 1000
_QUEUED_FRACTION = 0.25


def _error(status: int, message: str, reason: str) -> VendorError:
    return VendorError(status, {"error": message})


def _context(request: Request) -> VendorContext:
    ctx: VendorContext = request.app.state.emulator
    return ctx


ContextDep = Annotated[VendorContext, Depends(_context)]


async def _guard(request: Request, ctx: ContextDep) -> None:
    await guard(request, ctx)
    if request.headers.get("x-runway-version") is None:
        raise _error(400, "You must provide the X-Runway-Version header", "invalid")


router = APIRouter(dependencies=[Depends(_guard)])


def _invalid(message: str) -> VendorError:
    return _error(400, message, "invalid")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    return body


def _create(ctx: VendorContext, body: dict[str, Any], *, image: bool) -> Response:
    model = body.get("model")
    if model not in MODELS:
        raise _invalid(f"Invalid model: {model!r}")
    t2v_ratios, i2v_ratios, durations = MODELS[model]
    ratios = i2v_ratios if image else t2v_ratios
    if ratios is None:
        raise _invalid(f"{model} is image-to-video only")
    prompt = body.get("promptText")
    if not image and not isinstance(prompt, str):
        raise _invalid("promptText is required")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > PROMPT_MAX_LENGTH):
        raise _invalid(f"promptText must be a string of at most {PROMPT_MAX_LENGTH} characters")
    if image:
        prompt_image = body.get("promptImage")
        if not isinstance(prompt_image, str | list) or not prompt_image:
            raise _invalid("promptImage is required")
    ratio = body.get("ratio")
    if ratio not in ratios:
        raise _invalid(f"Invalid ratio {ratio!r} for {model}; expected one of {list(ratios)}")
    duration = body.get("duration", durations[-1] if model == "gen4_turbo" else None)
    if not isinstance(duration, int) or duration not in durations:
        raise _invalid(f"Invalid duration {duration!r} for {model}")
    width, height = str(ratio).split(":")
    job = ctx.new_job(
        id=str(uuid.uuid4()),
        model=model,
        prompt=prompt or "",
        size=f"{width}x{height}",
        seconds=str(duration),
        body=body,
    )
    return JSONResponse({"id": job.id})


@router.post("/v1/text_to_video")
async def text_to_video(request: Request, ctx: ContextDep) -> Response:
    return _create(ctx, await _body(request), image=False)


@router.post("/v1/image_to_video")
async def image_to_video(request: Request, ctx: ContextDep) -> Response:
    return _create(ctx, await _body(request), image=True)


def _task(ctx: VendorContext, job: VendorJob, base_url: str) -> dict[str, Any]:
    now = ctx.now()
    task: dict[str, Any] = {"id": job.id, "createdAt": _iso(job.created)}
    credits = CREDITS_PER_SECOND.get(job.model, 10) * int(job.seconds)
    elapsed = now - job.created
    if job.cancelled_at is not None:
        return {**task, "status": "CANCELLED", "cost": {"credits": 0}}
    if elapsed >= job.duration:
        if job.fail_with:
            return {
                **task,
                "status": "FAILED",
                "failure": f"The task failed ({job.fail_with})",
                "failureCode": job.fail_with,
                "cost": {"credits": 0},
            }
        return {
            **task,
            "status": "SUCCEEDED",
            "output": [f"{base_url}_cdn/{job.id}.mp4?_jwt={uuid.uuid4().hex}"],
            "cost": {"credits": credits},
        }
    queued_for = job.duration * _QUEUED_FRACTION
    estimated = {"estimatedCost": {"credits": credits}}
    if elapsed < queued_for:
        return {**task, **estimated, "status": "THROTTLED" if job.throttled else "PENDING"}
    progress = (elapsed - queued_for) / (job.duration - queued_for)
    return {**task, **estimated, "status": "RUNNING", "progress": round(min(0.99, progress), 3)}


def _iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@router.get("/v1/tasks/{task_id}")
async def get_task(task_id: str, request: Request, ctx: ContextDep) -> Response:
    return JSONResponse(_task(ctx, ctx.job(task_id), str(request.base_url)))


@router.delete("/v1/tasks/{task_id}")
async def delete_task(task_id: str, request: Request, ctx: ContextDep) -> Response:
    job = ctx.job(task_id)
    status = _task(ctx, job, str(request.base_url))["status"]
    ctx.state.deleted[task_id] = status
    if status in ("PENDING", "THROTTLED", "RUNNING"):
        job.cancelled_at = ctx.now()
    else:
        del ctx.state.jobs[task_id]
    return Response(status_code=204)


cdn = APIRouter()


@cdn.get("/_cdn/{task_id}.mp4")
async def task_output(task_id: str, request: Request, ctx: ContextDep) -> Response:
    job = ctx.state.jobs.get(task_id)
    if not isinstance(job, VendorJob):
        return Response(status_code=404)
    return await content_response(ctx, job, request)


def create_runway(
    config: VendorConfig, *, state: EmulatorState | None = None, media: MediaCache | None = None
) -> FastAPI:
    app = FastAPI(title="Runway emulator", openapi_url=None, docs_url=None)
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
        return JSONResponse({"error": "Not found"}, 404)

    app.add_exception_handler(404, not_found)
    return app


@dataclass
class RunwayEmulator:
    base_url: str
    """``http://127.0.0.1:<port>``: what ``RunwayML(base_url=…)`` takes."""
    config: VendorConfig
    state: EmulatorState

    @property
    def submits(self) -> int:
        """Accepted creates (each one a task Runway would bill)."""
        return sum(self.state.submits_by_prompt.values())

    @property
    def cancels(self) -> int:
        return sum(
            1 for s in self.state.deleted.values() if s in ("PENDING", "THROTTLED", "RUNNING")
        )


@contextlib.asynccontextmanager
async def running_runway(
    config: VendorConfig | None = None,
    *,
    clock: Callable[[], float] | None = None,
    media: MediaCache | None = None,
) -> AsyncIterator[RunwayEmulator]:
    config = config or VendorConfig()
    state = EmulatorState() if clock is None else EmulatorState(clock=clock)
    async with serve(create_runway(config, state=state, media=media)) as url:
        yield RunwayEmulator(url, config, state)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.runway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--fail-jobs-with", metavar="CODE", help="e.g. SAFETY.INPUT.TEXT")
    parser.add_argument("--throttle-jobs", action="store_true")
    parser.add_argument("--rate-limit-next", type=int, default=0, metavar="N")
    parser.add_argument("--fail-next", type=int, default=0, metavar="N")
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    print(f"Runway emulator: base URL http://{host}:{port}")
    uvicorn.run(create_runway(VendorConfig(**args)), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
