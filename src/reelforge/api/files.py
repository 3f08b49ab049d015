"""Serving a video's stored files (both APIs), wherever storage keeps them.

- ``local`` storage: Starlette's FileResponse (Range, ETag, 304, 416).
- ``s3`` with ``storage.serve = "redirect"``: 302 to a presigned URL of the object
  (``storage.presign_seconds``); the client fetches from the store, Range included.
- ``s3`` with ``storage.serve = "stream"`` (a store clients cannot reach): the API
  relays the bytes, honouring a single ``Range`` (206, ``Content-Range``, 416).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from reelforge.api.errors import error_response
from reelforge.errors import NotFoundError
from reelforge.runtime import Runtime
from reelforge.storage import LocalStorage, ObjectInfo
from reelforge.storage.layout import MEDIA_TYPES, output_key
from reelforge.store import VideoRecord

__all__ = ["FILE_RESPONSES", "serve_file"]

# What a content route may answer besides the file itself (for the OpenAPI schema).
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "Redirect to a short-lived presigned URL of the object store"}
}

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def serve_file(
    request: Request, rt: Runtime, record: VideoRecord, fmt: str, *, not_available: NotFoundError
) -> Response:
    """The file of ``fmt`` (mp4, webm, thumbnail, spritesheet) of a completed video;
    ``not_available`` is raised when the video has no such file."""
    entry = next((f for f in record.files if f["format"] == fmt), None)
    if entry is None:
        raise not_available
    filename: str = entry["filename"]
    key = output_key(record.id, filename)
    suffix = filename.rsplit(".", 1)[-1]
    media_type = MEDIA_TYPES.get(suffix, "application/octet-stream")
    # Videos download under a useful name; images show inline.
    download_name = f"{record.id}.{suffix}" if fmt in ("mp4", "webm") else None
    gone = NotFoundError(f"the {fmt} file of {record.id} is gone", code="file_missing")
    storage = rt.storage
    if isinstance(storage, LocalStorage):
        path = storage.path_of(key)
        if not path.is_file():
            raise gone
        return FileResponse(
            path,
            media_type=media_type,
            filename=download_name,
            content_disposition_type="inline",
        )
    info = await storage.stat(key)
    if info is None:
        raise gone
    settings = rt.settings.storage
    if settings.serve == "redirect":
        url = await storage.presigned_url(key, expires_seconds=settings.presign_seconds)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    return _stream(request, rt, key, info, media_type, download_name)


def _stream(
    request: Request,
    rt: Runtime,
    key: str,
    info: ObjectInfo,
    media_type: str,
    download_name: str | None,
) -> Response:
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{info.etag.strip(chr(34))}"'}
    if download_name is not None:
        headers["Content-Disposition"] = f'inline; filename="{download_name}"'
    start, end, status = 0, info.size, 200
    wanted = request.headers.get("range")
    if wanted is not None:
        try:
            bounds = _parse_range(wanted, info.size)
        except ValueError:
            return error_response(
                416,
                "range_not_satisfiable",
                f"the range {wanted!r} is outside the file ({info.size} bytes)",
                "Range",
                **{"Content-Range": f"bytes */{info.size}"},
            )
        if bounds is not None:
            start, end = bounds
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        rt.storage.read_range(key, start, end),
        status_code=status,
        media_type=media_type,
        headers=headers,
    )


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single-range header; None for a header we
    ignore (several ranges, another unit: the whole file is sent, as RFC 9110 allows);
    ValueError for a range outside the file (416)."""
    match = _RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError(value)
        return max(0, size - length), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise ValueError(value)
    return start, end
