"""Shapes of the native API's responses, and how a record is shown to clients."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelforge.links import LinkSigner
from reelforge.models import Seed, VideoStatus
from reelforge.store import VideoRecord

__all__ = [
    "VIDEO_ID_PATTERN",
    "DeletedVideo",
    "ErrorBody",
    "ErrorResponse",
    "RegenerateRequest",
    "UsageReport",
    "VideoList",
    "VideoObject",
    "VideoStatusObject",
    "error_responses",
    "present_status",
    "present_video",
]


# What :func:`reelforge.store.is_valid_video_id` accepts, for the OpenAPI document.
VIDEO_ID_PATTERN: Final = "^video_[0-9a-f]{24}$"


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable: switch on this, not on the message")
    message: str
    param: str | None = Field(description="the field or parameter at fault, if one is")
    type: str = Field(description="OpenAI-style class: invalid_request_error, server_error…")
    rule: str | None = None  # prompt_rejected: the id of the policy rule that matched


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "param", "type"}}``."""

    error: ErrorBody


_ERROR_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "Malformed request; `error.code` names the problem (e.g. `invalid_id`)",
    401: "An API key is needed (`missing_api_key`) or it is not valid (`invalid_api_key`)",
    402: "The tenant's monthly budget cannot cover the estimate (`budget_exceeded`)",
    403: "A signed link that was tampered with or has expired (`invalid_link`, `link_expired`)",
    404: "No such video (or cursor) for this tenant",
    409: "The video's state forbids it (e.g. `video_not_ready`), or an "
    "`Idempotency-Key` was reused with another body",
    413: "Request body too large (`body_too_large`)",
    416: "Range not satisfiable",
    429: "A quota or the API key's create rate limit; retry after `Retry-After` seconds",
    503: "The job store (Redis) is unreachable; retry after `Retry-After` seconds",
}


def error_responses(
    *statuses: int, model: type[BaseModel] = ErrorResponse
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for the error statuses it can answer; every such
    route also answers 401 once API keys exist."""
    return {
        status: {"model": model, "description": _ERROR_DESCRIPTIONS[status]}
        for status in sorted({401, *statuses})
    }


class VideoFile(BaseModel):
    format: str
    url: str
    bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    grid: dict[str, Any] | None = None


_SEQ_DOC: Final = (
    "seq of the video's latest event: subscribe with ?after=seq to get only newer events"
)


class VideoStatusObject(BaseModel):
    id: str
    object: Literal["video.status"] = "video.status"
    status: VideoStatus
    stage: str
    progress: int
    waiting_for: str | None = None
    error: dict[str, Any] | None = None
    updated_at: str
    seq: int = Field(description=_SEQ_DOC)


class VideoObject(BaseModel):
    id: str
    object: Literal["video"] = "video"
    status: VideoStatus
    stage: str
    progress: int
    prompt: str
    # What reelforge.prompts made of it: the text the provider receives, the
    # negative prompt it receives (None: none, or folded in or dropped), and how.
    processed_prompt: str
    negative_prompt: str | None
    prompt_steps: list[dict[str, Any]]
    provider: str
    route: list[str]
    waiting_for: str | None
    seed: int | None
    request: dict[str, Any]
    created_at: str
    updated_at: str
    completed_at: str | None
    error: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    cost: float
    files: list[VideoFile]
    validation: dict[str, Any] | None
    regenerated_from: str | None
    metadata: dict[str, str]
    stage_durations: dict[str, float]
    timings: dict[str, float]
    links: dict[str, str]
    webhook_url: str | None = None
    webhook_deliveries: list[dict[str, Any]] = Field(default_factory=list)
    worker_restarts: int = Field(
        default=0,
        description="Times a worker died while it held this video (not provider attempts)",
    )
    seq: int = Field(description=_SEQ_DOC)


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VideoObject]
    has_more: bool
    next_cursor: str | None


class DeletedVideo(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class RegenerateRequest(BaseModel):
    """Optional overrides for a regenerate; everything else comes from the original."""

    # Strict: the body is JSON, so a seed is a number, never "7".
    model_config = ConfigDict(extra="forbid", strict=True)

    seed: Seed | None = None
    prompt: str | None = None
    provider: str | None = Field(default=None, min_length=1, max_length=64)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def present_status(rec: VideoRecord) -> VideoStatusObject:
    return VideoStatusObject(
        id=rec.id,
        status=rec.status,
        stage=rec.stage.value,
        progress=rec.progress,
        waiting_for=rec.waiting_for,
        error=rec.error,
        updated_at=_iso(rec.updated_at) or "",
        seq=rec.seq,
    )


def present_video(rec: VideoRecord, links: LinkSigner) -> VideoObject:
    """The video as clients see it; its file and event links are signed (they open
    without an API key, for ``<video src>``, downloads and ``EventSource``)."""
    base = f"/api/videos/{rec.id}"
    processing = rec.prompt_processing or {}
    signed_events = links.query(rec.id, "events", rec.owner)
    files = [
        VideoFile(
            url=(
                f"{base}/content?format={entry['format']}&"
                + links.query(rec.id, entry["format"], rec.owner)
            ),
            **{k: v for k, v in entry.items() if k in VideoFile.model_fields and k != "url"},
        )
        for entry in rec.files
    ]
    return VideoObject(
        id=rec.id,
        status=rec.status,
        stage=rec.stage.value,
        progress=rec.progress,
        prompt=rec.request.prompt,
        processed_prompt=processing.get("processed_prompt", rec.request.prompt),
        negative_prompt=processing.get("negative_prompt", rec.request.negative_prompt),
        prompt_steps=processing.get("steps", []),
        provider=rec.provider,
        route=rec.route,
        waiting_for=rec.waiting_for,
        seed=rec.request.seed,
        request=rec.request.model_dump(mode="json"),
        created_at=_iso(rec.created_at) or "",
        updated_at=_iso(rec.updated_at) or "",
        completed_at=_iso(rec.completed_at),
        error=rec.error,
        attempts=[a.to_dict() for a in rec.attempts],
        cost=rec.cost,
        files=files,
        validation=rec.validation,
        regenerated_from=rec.regenerated_from,
        metadata=rec.request.metadata,
        stage_durations=rec.stage_durations,
        timings=rec.timings,
        links={
            "self": base,
            "status": f"/api/videos/status/{rec.id}",
            "events": f"{base}/events?{signed_events}",
            "ws": f"{base}/ws?{signed_events}",
        },
        webhook_url=rec.request.webhook_url,
        webhook_deliveries=rec.webhook_deliveries,
        worker_restarts=rec.worker_restarts,
        seq=rec.seq,
    )


class UsageReport(BaseModel):
    """A tenant's finished videos, seconds and spend, per UTC day and provider."""

    object: Literal["usage"] = "usage"
    tenant: str
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")
    days: list[dict[str, Any]]
    totals: dict[str, dict[str, float]]
