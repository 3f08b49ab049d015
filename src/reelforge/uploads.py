"""Input reference images: stored once by the API, read by whichever process needs them.

The API re-encodes an uploaded image to a PNG and puts it in storage under
``uploads/<name>``; a request carries only the name. Providers read the bytes
(vendors take them inline or as an upload) and renderers that need a file (the
``local`` renderer, the GPU worker) get a local path: the stored file itself with
``local`` storage, else a copy in this process's scratch directory. No process ever
reads another process's local files.

An upload is shared by the videos made from it (a regenerate or remix takes its
source's image), so it is reference-counted: a Redis set of its users, and the
object is removed when its last user is deleted.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path

from redis.asyncio import Redis

from reelforge.keys import Keys
from reelforge.settings import Settings
from reelforge.storage import LocalStorage, Storage, build_storage, join_key

__all__ = ["Uploads", "upload_key"]


# KEYS: the upload's users. ARGV: the video. 1 when no user is left (remove it).
# KEYS: the upload's users. ARGV: the video it is shared with, the new video.
# 1 when the new video now uses it; 0 when the video it was shared with is no
# longer a user (deleted meanwhile: the upload may be gone with it).
_SHARE_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
return 1
"""

_RELEASE_LUA = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


def upload_key(name: str) -> str:
    return join_key("uploads", name)


class Uploads:
    """The uploads in this process's storage (built on first use, closed with it)."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage | None = None,
        *,
        redis: Redis | None = None,
        keys: Keys | None = None,
    ):
        self._settings = settings
        self._storage = storage
        self._owned = storage is None
        self._redis = redis
        self._keys = keys

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = build_storage(self._settings)
        return self._storage

    async def put(self, name: str, data: bytes) -> None:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await self.storage.put_bytes(upload_key(name), data, content_type=content_type)

    async def read(self, name: str) -> bytes:
        """The image's bytes; NotFoundError (``file_missing``) when it is gone."""
        return await self.storage.get_bytes(upload_key(name))

    async def data_uri(self, name: str) -> str:
        """The image as a ``data:`` URI (what Runway, Luma, fal and Replicate take inline)."""
        mime = mimetypes.guess_type(name)[0] or "image/png"
        return f"data:{mime};base64,{base64.b64encode(await self.read(name)).decode()}"

    async def local_path(self, name: str) -> Path:
        """A file with the image, for code that reads paths."""
        storage = self.storage
        if isinstance(storage, LocalStorage):
            return storage.path_of(upload_key(name))
        dest = self._settings.work_dir / "uploads" / name
        if not dest.is_file():  # uploads never change: a complete copy is current
            await storage.get_file(upload_key(name), dest)
        return dest

    async def retain(self, name: str, video_id: str, *, shared_with: str | None = None) -> bool:
        """Record that the video uses the upload. ``shared_with``: the video it comes
        from (a regenerate), which must still use it: ``False`` (nothing recorded)
        when that video was deleted meanwhile, since its last release removes the
        upload. A video's own new upload always succeeds."""
        redis, keys = self._refs()
        if shared_with is None:
            await redis.sadd(keys.upload_users(name), video_id)
            return True
        shared = await redis.eval(_SHARE_LUA, 1, keys.upload_users(name), shared_with, video_id)
        return bool(shared)

    async def release(self, name: str, video_id: str) -> bool:
        """A video that used the upload is gone; the upload goes too when it was the
        last user. Returns whether it was removed."""
        redis, keys = self._refs()
        if not await redis.eval(_RELEASE_LUA, 1, keys.upload_users(name), video_id):
            return False
        await self.delete(name)
        return True

    def _refs(self) -> tuple[Redis, Keys]:
        if self._redis is None or self._keys is None:
            raise RuntimeError("reference counts need the runtime's Redis")
        return self._redis, self._keys

    async def delete(self, name: str) -> None:
        await self.storage.delete(upload_key(name))

    async def aclose(self) -> None:
        if self._owned and self._storage is not None:
            await self._storage.aclose()
            self._storage = None
