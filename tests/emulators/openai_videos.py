"""An emulator of an OpenAI-compatible video server: the OpenAI Videos API shape.

OpenAI's own Sora API is gone, but LiteLLM, SGLang, Azure and others still serve
``/v1/videos`` in its shape, and reelforge's ``openai`` provider talks to them. This
module is a faithful stand-in for such a server, for tests and for manual runs::

    python -m tests.emulators.openai_videos --port 8100 --api-key sk-test

What it owns:

* the routes of ``tests/reference/openai-videos-openapi.yaml`` that the provider
  uses (create, list, retrieve, delete, content, remix), with OpenAI's request
  validation and its error body ``{"error": {"message", "type", "param", "code"}}``;
* the job life cycle ``queued`` → ``in_progress`` (rising ``progress``) →
  ``completed`` or ``failed``, computed from the clock on every read, so no
  background task runs; every video object carries ``openai-poll-after-ms``;
* real media: an H.264/AAC MP4 of the requested size and length (rendered once per
  size and length with the bundled ffmpeg, then cached on disk), JPEG stills for
  the thumbnail and spritesheet variants;
* fault injection (:class:`EmulatorConfig`), switchable while the server runs;
* counters (:class:`EmulatorState`) for tests to assert what reached the server.

:func:`running_emulator` serves it under uvicorn in the current event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge.media.ffmpeg import atomic_output, run_ffmpeg
from tests.emulators.loopback import serve_on_loopback

__all__ = [
    "SECONDS",
    "SIZES",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "Job",
    "MediaCache",
    "RecordedRequest",
    "ReferenceUpload",
    "create_emulator",
    "main",
    "running_emulator",
]

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SECONDS = ("4", "8", "12")
VARIANTS = ("video", "thumbnail", "spritesheet")
DEFAULT_MODEL = "sora-2"
DEFAULT_SIZE = "720x1280"
DEFAULT_SECONDS = "4"
PROMPT_MAX_LENGTH = 32000
CREATE_FIELDS = frozenset({"model", "prompt", "input_reference", "seconds", "size"})
REFERENCE_FIELDS = frozenset({"image_url", "file_id"})

# Routes as the counters name them: "METHOD <path template>".
CREATE_ROUTE = "POST /v1/videos"
LIST_ROUTE = "GET /v1/videos"
RETRIEVE_ROUTE = "GET /v1/videos/{video_id}"
DELETE_ROUTE = "DELETE /v1/videos/{video_id}"
CONTENT_ROUTE = "GET /v1/videos/{video_id}/content"
REMIX_ROUTE = "POST /v1/videos/{video_id}/remix"

# The first quarter of a job's time is spent queued, the rest in progress.
_QUEUED_FRACTION = 0.25
_ASSET_TTL_SECONDS = 24 * 3600
# Bumped whenever the ffmpeg arguments change, so stale cached renders are not served.
_RENDER_VERSION = 1

Status = Literal["queued", "in_progress", "completed", "failed"]
Variant = Literal["video", "thumbnail", "spritesheet"]


@dataclass
class EmulatorConfig:
    """How the emulator behaves. The live object: tests may change it while serving.

    The ``*_next`` counters are consumed by the server (decremented per request).
    ``job_seconds``, ``fail_jobs_with`` and ``vanish_jobs`` apply to jobs created while
    they are set; ``media_dir`` and ``fps`` are read once, when the app is created.
    Faults apply in this order: ``slow_seconds``, auth (``unauthorized``, ``api_key``),
    ``forbidden``, ``rate_limit_next``, ``fail_next``; the request is recorded first.
    """

    api_key: str | None = None
    """When set, requests need ``Authorization: Bearer <api_key>``."""
    job_seconds: float = 2.0
    """Wall time from create to ``completed`` (or ``failed``)."""
    poll_after_ms: int = 200
    """Sent as ``openai-poll-after-ms`` with every video object."""
    retry_after_seconds: int = 1
    """Sent as ``Retry-After`` with injected 429s."""
    media_dir: Path | None = None
    """Where rendered clips are cached; a per-user temporary folder when unset."""
    fps: int = 8
    """Frame rate of rendered clips: low, so that long, large clips render quickly."""

    rate_limit_next: int = 0
    """The next N requests get 429 ``rate_limit_exceeded`` with ``Retry-After``."""
    fail_next: int = 0
    """The next N requests get 500 ``server_error``."""
    slow_seconds: float = 0.0
    """Every response is delayed this long."""
    fail_jobs_with: str | None = None
    """New jobs end ``failed`` with this error code (e.g. ``moderation_blocked``)."""
    vanish_jobs: bool = False
    """New jobs disappear once they start: reads answer 404 from ``in_progress`` on."""
    corrupt_content: bool = False
    """The ``video`` variant is garbage bytes, still labelled ``video/mp4``."""
    truncate_content: bool = False
    """The ``video`` variant is the first half of the MP4 (a consistent, short body)."""
    cut_content: bool = False
    """The ``video`` variant announces its full length, then the connection drops half way."""
    unauthorized: bool = False
    """Every request gets 401, whatever its key."""
    forbidden: bool = False
    """Every authenticated request gets 403."""


@dataclass(frozen=True)
class ReferenceUpload:
    """An ``input_reference`` file sent as multipart/form-data."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Job:
    """One video job. Its status is derived from the clock, never stored."""

    id: str
    model: str
    prompt: str
    size: str
    seconds: str
    created: float
    duration: float
    input_reference: ReferenceUpload | dict[str, str] | None = None
    remixed_from_video_id: str | None = None
    fail_with: str | None = None
    vanishes: bool = False

    def status_at(self, now: float) -> tuple[Status, int]:
        """The status and progress percentage at wall time ``now``."""
        elapsed = now - self.created
        if elapsed >= self.duration:
            return ("failed", 0) if self.fail_with else ("completed", 100)
        queued_for = self.duration * _QUEUED_FRACTION
        if elapsed < queued_for:
            return "queued", 0
        running = (elapsed - queued_for) / (self.duration - queued_for)
        return "in_progress", min(99, int(running * 100))

    def vanished_at(self, now: float) -> bool:
        return self.vanishes and self.status_at(now)[0] != "queued"

    def resource(self, now: float) -> dict[str, Any]:
        """The ``VideoResource`` as of ``now``: every required field, null where unset."""
        status, progress = self.status_at(now)
        completed_at = int(self.created + self.duration) if status == "completed" else None
        error = None
        if status == "failed" and self.fail_with:
            error = {"code": self.fail_with, "message": _failure_message(self.fail_with)}
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": status,
            "progress": progress,
            "created_at": int(self.created),
            "completed_at": completed_at,
            "expires_at": completed_at + _ASSET_TTL_SECONDS if completed_at else None,
            "prompt": self.prompt,
            "size": self.size,
            "seconds": self.seconds,
            "remixed_from_video_id": self.remixed_from_video_id,
            "error": error,
        }


def _failure_message(code: str) -> str:
    if code == "moderation_blocked":
        return "Your request was blocked by our moderation system."
    return f"Video generation failed ({code})."


@dataclass(frozen=True)
class RecordedRequest:
    """A request as it reached the emulator (before any injected fault)."""

    route: str
    path: str
    query: str
    """The raw query string (``limit=2&after=video_…``)."""
    at: float
    """``time.monotonic()`` on arrival."""
    headers: Mapping[str, str]
    """Lower-case names; ``authorization`` is redacted."""


@dataclass
class EmulatorState:
    """What the emulator holds and has seen; tests read it to assert on the wire."""

    clock: Callable[[], float] = time.time
    """Wall clock for job timing; tests may inject a fake one."""
    jobs: dict[str, Job] = field(default_factory=dict)
    """Live jobs in creation order."""
    deleted: dict[str, str] = field(default_factory=dict)
    """Deleted job id → its status when deleted (``queued``/``in_progress``: a cancel)."""
    requests: Counter[str] = field(default_factory=Counter)
    """Every request per route (``"GET /v1/videos/{video_id}"``), faulted ones included."""
    log: list[RecordedRequest] = field(default_factory=list)
    """Every request in arrival order, faulted ones included."""
    submits_by_key: Counter[str] = field(default_factory=Counter)
    """Accepted creates (200) per ``Idempotency-Key``, repeats of a key included."""
    submits_by_prompt: Counter[str] = field(default_factory=Counter)
    """Accepted creates (200) per prompt, with or without a key."""
    idempotency: dict[tuple[str, str], str] = field(default_factory=dict)
    """(route, Idempotency-Key) → the job it created."""

    @property
    def create_attempts(self) -> list[float]:
        """Arrival times (monotonic) of every create request, faulted ones included."""
        return [r.at for r in self.log if r.route == CREATE_ROUTE]

    def create_attempts_within(self, seconds: float, *, now: float | None = None) -> int:
        """How many create requests arrived in the last ``seconds`` (e.g. 60 for RPM)."""
        end = time.monotonic() if now is None else now
        return sum(1 for at in self.create_attempts if end - seconds <= at <= end)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.log if r.route == route]


class MediaCache:
    """The bytes the content endpoint serves, rendered once per (size, seconds).

    Renders go to ``directory`` (shared between emulators and runs: the output only
    depends on the arguments) and are kept in memory once read.
    """

    def __init__(self, directory: Path | None = None, *, fps: int = 8) -> None:
        self.directory = directory or Path(tempfile.gettempdir()) / (
            f"reelforge-openai-emulator-{getpass.getuser()}"
        )
        self.fps = fps
        self._bytes: dict[tuple[Variant, str, str], bytes] = {}
        self._lock = asyncio.Lock()

    async def get(self, variant: Variant, size: str, seconds: str) -> bytes:
        key = (variant, size, seconds)
        if key not in self._bytes:
            # One render at a time: concurrent downloads of a new size wait for the
            # first instead of starting duplicate ffmpeg runs.
            async with self._lock:
                if key not in self._bytes:
                    path = await self._render(variant, size, seconds)
                    self._bytes[key] = await asyncio.to_thread(path.read_bytes)
        return self._bytes[key]

    def _path(self, variant: Variant, size: str, seconds: str) -> Path:
        suffix = "mp4" if variant == "video" else "jpg"
        name = f"v{_RENDER_VERSION}-{variant}-{size}-{seconds}s-{self.fps}fps.{suffix}"
        return self.directory / name

    async def _render(self, variant: Variant, size: str, seconds: str) -> Path:
        dest = self._path(variant, size, seconds)
        if dest.exists():
            return dest
        if variant == "video":
            args = [
                *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={self.fps}:duration={seconds}"),
                *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-b:a", "32k", "-shortest"),
            ]
            # No faststart: the index (moov) stays at the end, where ffmpeg writes it,
            # so a truncated download is plainly unreadable rather than subtly short.
        else:
            clip = await self._render("video", size, seconds)
            # The thumbnail is the first frame at full size; the spritesheet one frame
            # a second, 256 px wide, four to a row.
            vf = (
                "null"
                if variant == "thumbnail"
                else f"fps=1,scale=256:-2,tile=4x{int(seconds) // 4}"
            )
            args = ["-i", str(clip), "-vf", vf, "-frames:v", "1", "-q:v", "4", "-update", "1"]
        async with atomic_output(dest) as partial:
            await run_ffmpeg([*args, str(partial)], what=f"render emulator {variant}")
        return dest


class ApiError(Exception):
    """An answer in OpenAI's error shape; raised anywhere, rendered by one handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _request_id() -> str:
    return f"req_{secrets.token_hex(16)}"


def _json(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(dict(body), headers={"x-request-id": _request_id(), **(headers or {})})


@dataclass
class EmulatorContext:
    """What a route handler works with; one per app."""

    config: EmulatorConfig
    state: EmulatorState
    media: MediaCache

    def now(self) -> float:
        return self.state.clock()

    def visible_job(self, video_id: str) -> Job:
        job = self.state.jobs.get(video_id)
        if job is None or job.vanished_at(self.now()):
            raise ApiError(
                404,
                f"Video with id '{video_id}' not found.",
                param="video_id",
                code="not_found",
            )
        return job

    def video_response(self, job: Job) -> JSONResponse:
        return _json(
            job.resource(self.now()),
            {"openai-poll-after-ms": str(self.config.poll_after_ms)},
        )


def _context(request: Request) -> EmulatorContext:
    context: EmulatorContext = request.app.state.emulator
    return context


ContextDep = Annotated[EmulatorContext, Depends(_context)]


async def _guard(request: Request, ctx: ContextDep) -> None:
    """Runs before every route: records the request, then applies auth and faults."""
    route = f"{request.method} {request.scope['route'].path}"
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "authorization" in headers:
        headers["authorization"] = "<redacted>"
    ctx.state.requests[route] += 1
    ctx.state.log.append(
        RecordedRequest(route, request.url.path, request.url.query, time.monotonic(), headers)
    )

    config = ctx.config
    if config.slow_seconds > 0:
        await asyncio.sleep(config.slow_seconds)
    _authenticate(request, config)
    if config.forbidden:
        raise ApiError(
            403,
            "Your project does not have access to the Videos API.",
            code="permission_denied",
        )
    if config.rate_limit_next > 0:
        config.rate_limit_next -= 1
        raise ApiError(
            429,
            "Rate limit reached for requests. Please try again later.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={
                "retry-after": str(config.retry_after_seconds),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{config.retry_after_seconds}s",
            },
        )
    if config.fail_next > 0:
        config.fail_next -= 1
        raise ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )


def _authenticate(request: Request, config: EmulatorConfig) -> None:
    if not config.unauthorized and config.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    elif config.unauthorized or not secrets.compare_digest(
        token.strip().encode(), (config.api_key or "").encode()
    ):
        message = f"Incorrect API key provided: {_mask(token.strip())}."
    else:
        return
    raise ApiError(401, message, code="invalid_api_key")


def _mask(key: str) -> str:
    # OpenAI echoes a masked key; never the whole secret.
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"


# --- request parsing -------------------------------------------------------------


async def _read_fields(request: Request) -> dict[str, Any]:
    """The body as a dict, from JSON or multipart/form-data (files as ReferenceUpload)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields: dict[str, Any] = {}
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    fields[name] = ReferenceUpload(
                        filename=value.filename,
                        content_type=value.content_type,
                        data=await value.read(),
                    )
                else:
                    _put_form_field(fields, name, value)
        return fields
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON.)",
        )
    return body


def _put_form_field(fields: dict[str, Any], name: str, value: str) -> None:
    # The SDK flattens nested objects as ``input_reference[image_url]``.
    outer, bracket, rest = name.partition("[")
    if bracket and rest.endswith("]"):
        nested = fields.setdefault(outer, {})
        if isinstance(nested, dict):
            nested[rest[:-1]] = value
            return
    fields[name] = value


def _reject_unknown(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in fields:
        if name not in allowed:
            raise ApiError(
                400,
                f"Unrecognized request argument supplied: {name}",
                param=name,
                code="unknown_parameter",
            )


def _prompt(fields: Mapping[str, Any]) -> str:
    if "prompt" not in fields or fields["prompt"] is None:
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    prompt = fields["prompt"]
    if not isinstance(prompt, str):
        raise ApiError(
            400,
            f"Invalid type for 'prompt': expected a string, but got {_json_type(prompt)} instead.",
            param="prompt",
            code="invalid_type",
        )
    if not prompt:
        raise ApiError(
            400,
            "Invalid 'prompt': empty string. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param="prompt",
            code="empty_string",
        )
    if len(prompt) > PROMPT_MAX_LENGTH:
        raise ApiError(
            400,
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{PROMPT_MAX_LENGTH}, but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    return prompt


def _choice(fields: Mapping[str, Any], name: str, allowed: Sequence[str], default: str) -> str:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"Invalid type for '{name}': expected one of {_quoted(allowed)}, "
            f"but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {_quoted(allowed)}.",
            param=name,
            code="invalid_value",
        )
    return value


def _model(fields: Mapping[str, Any]) -> str:
    model = fields.get("model")
    if model is None:
        return DEFAULT_MODEL
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "Invalid 'model': expected a model name.", param="model", code="invalid_value"
        )
    return model


def _input_reference(fields: Mapping[str, Any]) -> ReferenceUpload | dict[str, str] | None:
    reference = fields.get("input_reference")
    if reference is None or isinstance(reference, ReferenceUpload):
        return reference
    if (
        isinstance(reference, dict)
        and len(reference) == 1
        and set(reference) <= REFERENCE_FIELDS
        and all(isinstance(v, str) and v for v in reference.values())
    ):
        return {str(k): str(v) for k, v in reference.items()}
    raise ApiError(
        400,
        "Invalid 'input_reference': upload a file, or provide exactly one of "
        "'image_url' or 'file_id'.",
        param="input_reference",
        code="invalid_value",
    )


def _quoted(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a file" if isinstance(value, ReferenceUpload) else "a string"


def _new_id() -> str:
    return f"video_{secrets.token_hex(24)}"


# --- routes ----------------------------------------------------------------------

router = APIRouter(prefix="/v1", dependencies=[Depends(_guard)])


@router.post("/videos")
async def create_video(request: Request, ctx: ContextDep) -> Response:
    fields = await _read_fields(request)
    _reject_unknown(fields, CREATE_FIELDS)
    prompt = _prompt(fields)
    model = _model(fields)
    seconds = _choice(fields, "seconds", SECONDS, DEFAULT_SECONDS)
    size = _choice(fields, "size", SIZES, DEFAULT_SIZE)
    reference = _input_reference(fields)

    key = request.headers.get("idempotency-key")
    ctx.state.submits_by_prompt[prompt] += 1
    if key is not None:
        ctx.state.submits_by_key[key] += 1
    existing = _replayed(ctx, CREATE_ROUTE, key)
    if existing is not None:
        return ctx.video_response(existing)
    job = _add_job(
        ctx,
        key,
        CREATE_ROUTE,
        model=model,
        prompt=prompt,
        size=size,
        seconds=seconds,
        input_reference=reference,
    )
    return ctx.video_response(job)


def _replayed(ctx: EmulatorContext, route: str, key: str | None) -> Job | None:
    """The job an earlier request with this Idempotency-Key created, if still there."""
    if key is None:
        return None
    video_id = ctx.state.idempotency.get((route, key))
    return ctx.state.jobs.get(video_id) if video_id else None


def _add_job(ctx: EmulatorContext, key: str | None, route: str, **fields: Any) -> Job:
    job = Job(
        id=_new_id(),
        created=ctx.now(),
        duration=max(0.0, ctx.config.job_seconds),
        fail_with=ctx.config.fail_jobs_with,
        vanishes=ctx.config.vanish_jobs,
        **fields,
    )
    ctx.state.jobs[job.id] = job
    if key is not None:
        ctx.state.idempotency[(route, key)] = job.id
    return job


@router.get("/videos")
async def list_videos(request: Request, ctx: ContextDep) -> Response:
    query = request.query_params
    limit_text = query.get("limit", "20")
    try:
        limit = int(limit_text)
    except ValueError:
        limit = -1
    if not 0 <= limit <= 100:
        raise ApiError(
            400,
            f"Invalid 'limit': expected an integer between 0 and 100, got '{limit_text}'.",
            param="limit",
            code="invalid_value",
        )
    order = _choice(dict(query), "order", ("asc", "desc"), "desc")
    now = ctx.now()
    jobs = [job for job in ctx.state.jobs.values() if not job.vanished_at(now)]
    if order == "desc":
        jobs.reverse()
    after = query.get("after")
    if after is not None:
        ids = [job.id for job in jobs]
        if after not in ids:
            raise ApiError(
                400,
                f"Invalid 'after': no video with id '{after}'.",
                param="after",
                code="invalid_value",
            )
        jobs = jobs[ids.index(after) + 1 :]
    page = jobs[:limit]
    return _json(
        {
            "object": "list",
            "data": [job.resource(now) for job in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(jobs) > len(page),
        }
    )


@router.get("/videos/{video_id}")
async def retrieve_video(video_id: str, ctx: ContextDep) -> Response:
    return ctx.video_response(ctx.visible_job(video_id))


@router.delete("/videos/{video_id}")
async def delete_video(video_id: str, ctx: ContextDep) -> Response:
    job = ctx.visible_job(video_id)
    # Deleting an unfinished job cancels it: it is gone, whatever its stage.
    ctx.state.deleted[video_id] = job.status_at(ctx.now())[0]
    del ctx.state.jobs[video_id]
    return _json({"id": video_id, "object": "video.deleted", "deleted": True})


@router.get("/videos/{video_id}/content")
async def video_content(video_id: str, request: Request, ctx: ContextDep) -> Response:
    variant = cast(Variant, _choice(dict(request.query_params), "variant", VARIANTS, "video"))
    job = ctx.visible_job(video_id)
    status, _ = job.status_at(ctx.now())
    if status != "completed":
        # What OpenAI answers while a job is queued or running (a 404, not a 409).
        message = (
            "Video is not ready yet, use GET /v1/videos/{video_id} to check status."
            if status != "failed"
            else "Video generation failed; there is no content to download."
        )
        raise ApiError(404, message.replace("{video_id}", video_id), param="video_id")
    data = await ctx.media.get(variant, job.size, job.seconds)
    media_type = "video/mp4" if variant == "video" else "image/jpeg"
    headers = {"x-request-id": _request_id()}
    if variant == "video":
        if ctx.config.corrupt_content:
            data = secrets.token_bytes(len(data))
        elif ctx.config.truncate_content:
            data = data[: len(data) // 2]
        elif ctx.config.cut_content:
            headers["content-length"] = str(len(data))
            return StreamingResponse(_cut_short(data), media_type=media_type, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


class _ConnectionCut(Exception):
    """Raised mid-body so that the server drops the connection (``cut_content``)."""


async def _cut_short(data: bytes) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    raise _ConnectionCut("emulated connection drop half way through the body")


class _HideInjectedCuts(logging.Filter):
    """Drops uvicorn's traceback for a :class:`_ConnectionCut`: it is the fault asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _ConnectionCut))


@router.post("/videos/{video_id}/remix")
async def remix_video(video_id: str, request: Request, ctx: ContextDep) -> Response:
    source = ctx.visible_job(video_id)
    fields = await _read_fields(request)
    _reject_unknown(fields, frozenset({"prompt"}))
    prompt = _prompt(fields)
    status, _ = source.status_at(ctx.now())
    if status != "completed":
        raise ApiError(
            400,
            f"Video '{video_id}' is {status}; only completed videos can be remixed.",
            param="video_id",
            code="invalid_video_state",
        )
    key = request.headers.get("idempotency-key")
    existing = _replayed(ctx, REMIX_ROUTE, key)
    if existing is not None:
        return ctx.video_response(existing)
    job = _add_job(
        ctx,
        key,
        REMIX_ROUTE,
        model=source.model,
        prompt=prompt,
        size=source.size,
        seconds=source.seconds,
        remixed_from_video_id=source.id,
    )
    return ctx.video_response(job)


# --- app -------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), exc.status, {"x-request-id": _request_id(), **exc.headers})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # Unknown routes and methods answer in OpenAI's shape too.
    message = (
        f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return await _api_error(request, ApiError(exc.status_code, message))


async def _validation_error(request: Request, exc: Exception) -> Response:
    return await _api_error(request, ApiError(400, str(exc)))


def create_emulator(
    config: EmulatorConfig,
    *,
    state: EmulatorState | None = None,
    media: MediaCache | None = None,
) -> FastAPI:
    """The emulator app. ``config`` and ``state`` stay live: change or read them at will."""
    app = FastAPI(title="OpenAI Videos emulator", openapi_url=None, docs_url=None)
    app.state.emulator = EmulatorContext(
        config=config,
        state=state or EmulatorState(),
        media=media or MediaCache(config.media_dir, fps=config.fps),
    )
    app.include_router(router)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideInjectedCuts) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_HideInjectedCuts())
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app


@dataclass
class Emulator:
    """A running emulator, as :func:`running_emulator` yields it."""

    base_url: str
    """``http://127.0.0.1:<port>/v1``: what an OpenAI client takes as its base URL."""
    config: EmulatorConfig
    state: EmulatorState
    app: FastAPI


@contextlib.asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    media: MediaCache | None = None,
) -> AsyncIterator[Emulator]:
    """Serve the emulator under uvicorn on 127.0.0.1, in the current event loop."""
    config = config or EmulatorConfig()
    state = EmulatorState(clock=clock)
    app = create_emulator(config, state=state, media=media)
    async with serve_on_loopback(app) as port:
        yield Emulator(f"http://127.0.0.1:{port}/v1", config, state, app)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.emulators.openai_videos",
        description="Serve an emulated OpenAI-compatible /v1/videos API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--poll-after-ms", type=int, default=200)
    parser.add_argument("--retry-after", type=int, default=1, dest="retry_after_seconds")
    parser.add_argument("--media-dir", type=Path, help="cache for rendered clips")
    parser.add_argument("--fps", type=int, default=8)
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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    app = create_emulator(EmulatorConfig(**args))
    print(f"OpenAI videos emulator: base URL http://{host}:{port}/v1")
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
