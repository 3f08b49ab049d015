"""The native video API: ``/api/videos``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge.api.deps import (
    CreateRateLimit,
    CurrentOwner,
    IdempotencyKey,
    RuntimeDep,
    StoreDep,
    VideoId,
    record_by_link_or_key,
)
from reelforge.api.files import FILE_RESPONSES, serve_file
from reelforge.api.openapi import generation_request_schema, json_body
from reelforge.api.schemas import (
    VIDEO_ID_PATTERN,
    DeletedVideo,
    RegenerateRequest,
    VideoList,
    VideoObject,
    VideoStatusObject,
    error_responses,
    present_status,
    present_video,
)
from reelforge.errors import ConflictError, InvalidRequestError, NotFoundError
from reelforge.models import VideoStatus, parse_generation_request
from reelforge.store import is_valid_video_id
from reelforge.videos import cancel_video, create_video, delete_video, regenerate_video

__all__ = ["router"]

router = APIRouter(prefix="/api/videos", tags=["videos"])

_FILE_TYPES: dict[str, Any] = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("video/mp4", "video/webm", "image/jpeg", "image/webp")
}
_LOCATION = {
    "Location": {"description": "the new video's URL", "schema": {"type": "string"}},
}

_CREATE_REFUSALS = error_responses(402, 429)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"malformed JSON: {exc}", code="invalid_json") from None


@router.post(
    "/generate",
    status_code=202,
    response_model=VideoObject,
    dependencies=[CreateRateLimit],
    response_description="Queued (or, for a repeated Idempotency-Key, the first video)",
    responses={
        202: {"headers": _LOCATION},
        **error_responses(400, 409, 413, 503),
        **_CREATE_REFUSALS,
    },
    openapi_extra=json_body(generation_request_schema()),
)
async def generate_video(
    request: Request,
    response: Response,
    rt: RuntimeDep,
    owner: CurrentOwner,
    idempotency_key: IdempotencyKey = None,
) -> VideoObject:
    """Queue a new video. Answers 202 with the video and its ``Location``."""
    body = await _json_body(request)
    req = parse_generation_request(body, strict=True)
    record, created = await create_video(
        rt, req, owner=owner, idempotency_key=idempotency_key, client_body=body
    )
    response.headers["Location"] = f"/api/videos/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return present_video(record, rt.links)


@router.api_route(
    "/generate",
    methods=["GET", "DELETE"],
    include_in_schema=False,
)
async def generate_with_another_method() -> None:
    """A 405, not ``/{video_id}`` taking "generate" for a malformed id (a 400)."""
    raise StarletteHTTPException(405)


@router.get("", response_model=VideoList, responses=error_responses(400, 404, 503))
async def list_videos(
    rt: RuntimeDep,
    owner: CurrentOwner,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            description="the `next_cursor` of the previous page (a video id); "
            "404 `cursor_not_found` once that video is gone",
            json_schema_extra={"pattern": VIDEO_ID_PATTERN},
        ),
    ] = None,
    status: VideoStatus | None = None,
) -> VideoList:
    """Newest first; pass ``next_cursor`` as ``after`` for the next page."""
    if after is not None and not is_valid_video_id(after):
        raise InvalidRequestError(
            f"after must be a video id (a next_cursor), not {after!r}",
            code="invalid_cursor",
            param="after",
        )
    records, has_more = await rt.store.page(owner, limit=limit, after=after, status=status)
    return VideoList(
        data=[present_video(r, rt.links) for r in records],
        has_more=has_more,
        next_cursor=records[-1].id if has_more and records else None,
    )


@router.get(
    "/status/{video_id}",
    response_model=VideoStatusObject,
    responses=error_responses(400, 404, 503),
)
async def video_status(
    video_id: VideoId, store: StoreDep, owner: CurrentOwner
) -> VideoStatusObject:
    return present_status(await store.get(video_id, owner=owner))


@router.get("/{video_id}", response_model=VideoObject, responses=error_responses(400, 404, 503))
async def get_video(video_id: VideoId, rt: RuntimeDep, owner: CurrentOwner) -> VideoObject:
    return present_video(await rt.store.get(video_id, owner=owner), rt.links)


@router.post(
    "/{video_id}/regenerate",
    status_code=202,
    response_model=VideoObject,
    dependencies=[CreateRateLimit],
    responses={
        202: {"headers": _LOCATION},
        **error_responses(400, 404, 413, 503),
        **_CREATE_REFUSALS,
    },
)
async def regenerate(
    video_id: VideoId,
    response: Response,
    rt: RuntimeDep,
    owner: CurrentOwner,
    overrides: Annotated[RegenerateRequest | None, Body()] = None,
) -> VideoObject:
    """A new job from the same request (new seed unless given), linked by ``regenerated_from``."""
    o = overrides or RegenerateRequest()
    record = await regenerate_video(
        rt, video_id, owner=owner, seed=o.seed, prompt=o.prompt, provider=o.provider
    )
    response.headers["Location"] = f"/api/videos/{record.id}"
    return present_video(record, rt.links)


@router.post(
    "/{video_id}/cancel",
    response_model=VideoObject,
    response_description="Cancelled (or it already was)",
    responses={
        202: {"model": VideoObject, "description": "Cancel requested; its worker stops it"},
        **error_responses(400, 404, 409, 503),
    },
)
async def cancel(
    video_id: VideoId, rt: RuntimeDep, owner: CurrentOwner, response: Response
) -> VideoObject:
    """Stop a queued or running video; 202 while its worker winds it down."""
    record = await cancel_video(rt, video_id, owner=owner)
    if not record.status.is_terminal:
        response.status_code = 202
    return present_video(record, rt.links)


@router.delete("/{video_id}", response_model=DeletedVideo, responses=error_responses(400, 404, 503))
async def delete(video_id: VideoId, rt: RuntimeDep, owner: CurrentOwner) -> DeletedVideo:
    await delete_video(rt, video_id, owner=owner)
    return DeletedVideo(id=video_id)


@router.get(
    "/{video_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": _FILE_TYPES, "description": "The file"},
        206: {"content": _FILE_TYPES, "description": "Partial content (Range)"},
        **FILE_RESPONSES,
        **error_responses(400, 403, 404, 409, 416, 503),
    },
)
async def content(
    request: Request,
    video_id: VideoId,
    rt: RuntimeDep,
    format: Literal["mp4", "webm", "thumbnail", "spritesheet"] = "mp4",
    expires: Annotated[str | None, Query(max_length=16)] = None,
    sig: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The file, with HTTP Range (206), ``Accept-Ranges``, ``ETag`` and 416.

    Opens with an API key, or without one through the signed ``url`` of a file in
    the video object (``expires`` and ``sig``)."""
    record = await record_by_link_or_key(request, rt, video_id, format, expires, sig)
    if record.status is not VideoStatus.COMPLETED:
        raise ConflictError(
            f"video {video_id} is {record.status.value}; files exist once it is completed",
            code="video_not_ready",
        )
    missing = NotFoundError(
        f"video {video_id} has no {format} file; ask for it in formats",
        code="format_not_available",
        param="format",
    )
    return await serve_file(request, rt, record, format, not_available=missing)
