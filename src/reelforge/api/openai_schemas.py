"""Shapes of the OpenAI-compatible ``/v1/videos`` API, and how a record is shown in them.

The models follow ``shared/reference/openai-videos-openapi.yaml`` field for field
(``VideoResource``, ``VideoListResource``, ``DeletedVideoResource``, the create and
remix bodies). Request bodies forbid unknown fields because OpenAI answers an unknown
parameter with ``400 unknown_parameter``; a silently ignored typo would render the
wrong video. :func:`openai_error_type` gives the ``error.type`` OpenAI clients
expect beside our ``code``; it lives here, free of FastAPI, so the app's error
handlers can import it without an import cycle.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelforge.models import VideoStatus
from reelforge.store import VideoRecord

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "OPENAI_MODEL_METADATA_KEY",
    "OPENAI_SIZES",
    "CreateVideoBody",
    "ImageReference",
    "OpenAIDeletedVideo",
    "OpenAIError",
    "OpenAIErrorBody",
    "OpenAIVideo",
    "OpenAIVideoError",
    "OpenAIVideoList",
    "RemixVideoBody",
    "openai_error_type",
    "present_openai_video",
]

# What a video made through the native API (which has no model) reports.
DEFAULT_OPENAI_MODEL: Final = "sora-2"
# GenerationRequest.metadata key holding the model the client named.
OPENAI_MODEL_METADATA_KEY: Final = "openai_model"
OPENAI_SIZES: Final = ("720x1280", "1280x720", "1024x1792", "1792x1024")
_MAX_PROMPT_CHARS: Final = 32_000
# The spec's ImageRefParam.image_url maxLength (a base64 data URL of ~15 MiB).
_MAX_IMAGE_URL_CHARS: Final = 20_971_520

VideoSeconds = Literal["4", "8", "12"]
VideoSize = Literal["720x1280", "1280x720", "1024x1792", "1792x1024"]
OpenAIStatus = Literal["queued", "in_progress", "completed", "failed"]


def openai_error_type(status: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status.

    OpenAI itself uses ``invalid_request_error`` for every client error, 401 and
    404 included; only rate limits and server faults have types of their own.
    """
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


# -- requests ---------------------------------------------------------------------


class ImageReference(BaseModel):
    """``ImageRefParam``: exactly one of ``image_url`` (a data URL here) or ``file_id``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_url: str | None = Field(default=None, max_length=_MAX_IMAGE_URL_CHARS)
    file_id: str | None = Field(default=None, max_length=256)


class CreateVideoBody(BaseModel):
    """``CreateVideoJsonBody`` / ``CreateVideoMultipartBody`` without the file part.

    An uploaded file is taken out of the form before validation; what remains of
    ``input_reference`` is the JSON object form.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=_MAX_PROMPT_CHARS)
    model: str = Field(default=DEFAULT_OPENAI_MODEL, max_length=128)
    seconds: VideoSeconds = "4"
    size: VideoSize = "720x1280"
    input_reference: ImageReference | None = None


class RemixVideoBody(BaseModel):
    """``CreateVideoRemixBody``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=_MAX_PROMPT_CHARS)


# -- responses --------------------------------------------------------------------


class OpenAIVideoError(BaseModel):
    """``Error-2``: why a video failed."""

    code: str
    message: str


class OpenAIVideo(BaseModel):
    """``VideoResource``."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: OpenAIStatus
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    # The spec's VideoSize enum; a native-API video may have any other size, and we
    # still report it truthfully as WIDTHxHEIGHT rather than invent one.
    size: str
    seconds: str
    remixed_from_video_id: str | None
    error: OpenAIVideoError | None


class OpenAIVideoList(BaseModel):
    """``VideoListResource``."""

    object: Literal["list"] = "list"
    data: list[OpenAIVideo]
    first_id: str | None
    last_id: str | None
    has_more: bool


class OpenAIDeletedVideo(BaseModel):
    """``DeletedVideoResource``."""

    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """Every error answer of ``/v1``: ``{"error": {message, type, param, code}}``."""

    error: OpenAIErrorBody


# -- presenting records -----------------------------------------------------------

_STATUS: Final[dict[VideoStatus, OpenAIStatus]] = {
    VideoStatus.QUEUED: "queued",
    VideoStatus.IN_PROGRESS: "in_progress",
    VideoStatus.COMPLETED: "completed",
    VideoStatus.FAILED: "failed",
    # The spec has no cancelled status: a cancelled job is a failed one, and its
    # error code says why.
    VideoStatus.CANCELLED: "failed",
}


def _error_of(rec: VideoRecord) -> OpenAIVideoError | None:
    if rec.status is VideoStatus.CANCELLED:
        message = (rec.error or {}).get("message") or "the video was cancelled"
        return OpenAIVideoError(code="cancelled", message=str(message))
    if rec.status is not VideoStatus.FAILED:
        return None
    error = rec.error or {}
    return OpenAIVideoError(
        code=str(error.get("code") or "generation_failed"),
        message=str(error.get("message") or "the video could not be generated"),
    )


def _seconds(duration: float) -> str:
    # "4" for 4.0; a native-API clip of 2.5 s stays "2.5" instead of rounding to a lie.
    return f"{duration:g}"


def present_openai_video(rec: VideoRecord, *, retention_seconds: int) -> OpenAIVideo:
    """A record as a ``VideoResource``; ``retention_seconds`` (0 = forever) sets ``expires_at``."""
    completed_at = None if rec.completed_at is None else int(rec.completed_at)
    expires_at = (
        completed_at + retention_seconds
        if completed_at is not None and retention_seconds > 0
        else None
    )
    return OpenAIVideo(
        id=rec.id,
        model=rec.request.metadata.get(OPENAI_MODEL_METADATA_KEY, DEFAULT_OPENAI_MODEL),
        status=_STATUS[rec.status],
        progress=rec.progress,
        created_at=int(rec.created_at),
        completed_at=completed_at,
        expires_at=expires_at,
        prompt=rec.request.prompt,
        size=rec.request.size or "1280x720",
        seconds=_seconds(rec.request.duration_seconds),
        remixed_from_video_id=rec.regenerated_from,
        error=_error_of(rec),
    )
