"""Storage in a local directory: the one-machine default (``storage.kind = "local"``).

Every write goes to a temporary name in the same directory and is renamed into
place, so a reader sees a whole file or none. A file put from (or fetched to) the
same filesystem is hard-linked, not copied, so a worker's scratch copy costs no
disk or time. Blocking file work runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from reelforge.errors import NotFoundError, StorageFullError, StorageUnavailableError
from reelforge.storage.base import ObjectInfo

__all__ = ["LocalStorage"]

_CHUNK = 1 << 20
T = TypeVar("T")


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFoundError(f"no stored object {key!r}", code="file_missing") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(f"no space left to store {key!r}") from exc
        raise StorageUnavailableError(f"local storage failed on {key!r}: {exc}") from exc


def _atomic_copy(source: Path, dest: Path) -> None:
    """``dest`` becomes a whole copy of ``source``: a hard link when both are on one
    filesystem (free: files we store are never modified in place), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            os.link(source, tmp)
        except FileNotFoundError:
            raise
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write(data: bytes, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class LocalStorage:
    kind = "local"

    def __init__(self, root: Path):
        self.root = root

    def path_of(self, key: str) -> Path:
        """The file behind ``key`` (local serving uses it for Range and ETag)."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key {key!r} leaves the storage root")
        return path

    async def _run(self, key: str, fn: Callable[[], T]) -> T:
        with _translated(key):
            return await asyncio.to_thread(fn)

    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        await self._run(key, lambda: _atomic_copy(source, self.path_of(key)))

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        await self._run(key, lambda: _atomic_write(data, self.path_of(key)))

    async def get_file(self, key: str, dest: Path) -> Path:
        await self._run(key, lambda: _atomic_copy(self.path_of(key), dest))
        return dest

    async def get_bytes(self, key: str) -> bytes:
        return await self._run(key, self.path_of(key).read_bytes)

    async def stat(self, key: str) -> ObjectInfo | None:
        path = self.path_of(key)
        try:
            st = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
            modified_at=st.st_mtime,
        )

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self.path_of(key)
        with _translated(key):
            handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(_CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await self._run(key, lambda: self.path_of(key).unlink(missing_ok=True))

    async def delete_prefix(self, prefix: str) -> int:
        def remove() -> int:
            directory = self.path_of(prefix)
            if not directory.is_dir():
                return 0
            count = sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory, ignore_errors=True)
            return count

        return await self._run(prefix, remove)

    async def list_keys(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            directory = self.path_of(prefix)
            root = self.root.resolve()
            if not directory.is_dir():
                return []
            return sorted(
                p.relative_to(root).as_posix()
                for p in directory.rglob("*")
                if p.is_file() and not p.name.endswith(".part")
            )

        return await self._run(prefix, walk)

    async def presigned_url(self, key: str, *, expires_seconds: int) -> str | None:
        return None

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise PermissionError(f"{self.root} is not writable")

        await self._run(".", probe)

    async def aclose(self) -> None:
        return None
