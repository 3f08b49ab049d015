"""Serving a video's stored files (both APIs): Range, ETag and media types come
from Starlette's FileResponse."""

from __future__ import annotations

from fastapi.responses import FileResponse

from reelforge.errors import NotFoundError
from reelforge.runtime import Runtime
from reelforge.store import VideoRecord

__all__ = ["serve_file"]

_MEDIA_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "jpg": "image/jpeg",
    "webp": "image/webp",
}


def serve_file(
    rt: Runtime, record: VideoRecord, fmt: str, *, not_available: NotFoundError
) -> FileResponse:
    """The file of ``fmt`` (mp4, webm, thumbnail, spritesheet) of a completed video;
    ``not_available`` is raised when the video has no such file."""
    entry = next((f for f in record.files if f["format"] == fmt), None)
    if entry is None:
        raise not_available
    path = rt.settings.videos_dir / record.id / entry["filename"]
    if not path.is_file():
        raise NotFoundError(f"the {fmt} file of {record.id} is gone", code="file_missing")
    suffix = path.suffix.lstrip(".")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(suffix, "application/octet-stream"),
        # Videos download under a useful name; images show inline.
        filename=f"{record.id}.{suffix}" if fmt in ("mp4", "webm") else None,
        content_disposition_type="inline",
    )
