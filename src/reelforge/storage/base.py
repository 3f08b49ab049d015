"""The storage interface: where finished files and uploads live, shared by every process.

Keys are ``/``-separated names (``videos/<id>/video.mp4``, ``uploads/<name>``) under
the configured prefix. Writes are atomic: an object either is there whole or is not
there at all, so a reader never sees half a file (local: written to a temporary name
and renamed; S3: a PUT or a multipart upload becomes visible only when complete).
Workers render and transcode in their own scratch directory and upload the results;
no process ever reads another process's local files.

Failures translate at this boundary into two errors of our tree:
:class:`~reelforge.errors.StorageUnavailableError` (the store cannot be reached;
retryable) and :class:`~reelforge.errors.StorageFullError` (no space left).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ObjectInfo", "Storage", "join_key"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified_at: float  # seconds since the epoch


def join_key(*parts: str) -> str:
    """``join_key("videos", id, "video.mp4")``; refuses empty and traversing parts."""
    for part in parts:
        if not part or part in (".", "..") or part.startswith("/") or "\\" in part:
            raise ValueError(f"bad storage key part {part!r}")
    return "/".join(p.strip("/") for p in parts)


@runtime_checkable
class Storage(Protocol):
    kind: str

    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        """Upload a local file (multipart when large); visible only once complete."""
        ...

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None
    ) -> None: ...

    async def get_file(self, key: str, dest: Path) -> Path:
        """Download to ``dest`` atomically; NotFoundError when there is no such object."""
        ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive), streamed in chunks."""
        ...

    async def delete(self, key: str) -> None:
        """Remove one object; absent objects are fine."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix/``; returns how many."""
        ...

    async def list_keys(self, prefix: str) -> list[str]: ...

    async def presigned_url(self, key: str, *, expires_seconds: int) -> str | None:
        """A URL clients can GET directly, or None when this store has none (local)."""
        ...

    async def check(self) -> None:
        """Raise StorageUnavailableError unless the store answers (readiness)."""
        ...

    async def aclose(self) -> None: ...
