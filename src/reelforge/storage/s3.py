"""Storage in an S3-compatible bucket (``storage.kind = "s3"``): AWS S3, R2, MinIO,
SeaweedFS, GCS interop.

The client is obstore (Rust's ``object_store`` behind an asyncio API): one small
wheel, native async, streaming ranged reads, automatic multipart uploads for large
files, and SigV4 presigning, with no aiohttp/botocore stack. A PUT or a multipart
upload only becomes visible when it completes, so a worker killed mid-upload leaves
no half object under the key (an abandoned multipart upload stays invisible; a
bucket lifecycle rule for incomplete uploads cleans those).

obstore has no bucket API; creating a missing bucket (``storage.create_bucket``) is
a presigned ``PUT /<bucket>/``, which S3 and its compatibles accept.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import obstore
import obstore.exceptions as obs_errors
from obstore.store import S3Store

from reelforge.errors import NotFoundError, StorageFullError, StorageUnavailableError
from reelforge.settings import StorageSettings
from reelforge.storage.base import ObjectInfo

__all__ = ["S3Storage"]

# Above this a file goes up in parts of this size, several at once.
_PART_BYTES = 8 * 1024 * 1024
_PARTS_AT_ONCE = 4
_CHUNK = 1 << 20


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    try:
        yield
    except (obs_errors.NotFoundError, FileNotFoundError) as exc:
        # obstore raises a FileNotFoundError subclass for a missing object.
        raise NotFoundError(f"no stored object {key!r}", code="file_missing") from exc
    except (obs_errors.PermissionDeniedError, obs_errors.UnauthenticatedError) as exc:
        raise StorageUnavailableError(
            f"the object store refused access to {key!r}: check the storage credentials"
        ) from exc
    except obs_errors.BaseError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageUnavailableError(f"the object store failed on {key!r}: {first_line}") from exc
    except OSError as exc:  # writing the local copy of a download
        if exc.errno == 28:  # ENOSPC
            raise StorageFullError(f"no space left to download {key!r}") from exc
        raise


class S3Storage:
    kind = "s3"

    def __init__(self, config: StorageSettings):
        if not config.bucket:
            raise ValueError("storage.bucket is required for storage.kind = 's3'")
        self.config = config
        self.prefix = config.prefix.strip("/")
        options: dict[str, Any] = {
            "connect_timeout": timedelta(seconds=config.connect_timeout_seconds),
            "timeout": timedelta(seconds=config.request_timeout_seconds),
        }
        if config.endpoint_url and config.endpoint_url.startswith("http://"):
            options["allow_http"] = True
        secret = config.secret_access_key.get_secret_value() if config.secret_access_key else None
        # Unset values are left out, so obstore falls back to the usual AWS_* sources.
        given = {
            "endpoint": config.endpoint_url,
            "access_key_id": config.access_key_id,
            "secret_access_key": secret,
        }
        self.store = S3Store(
            config.bucket,
            region=config.region,
            virtual_hosted_style_request=not config.path_style,
            client_options=options,  # type: ignore[arg-type]
            retry_config={
                "max_retries": config.retries,
                "retry_timeout": timedelta(seconds=config.retry_timeout_seconds),
            },
            **{k: v for k, v in given.items() if v is not None},  # type: ignore[arg-type]
        )
        self._bucket_ready = False

    def _path(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, path: str) -> str:
        return path.removeprefix(f"{self.prefix}/") if self.prefix else path

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready or not self.config.create_bucket:
            return
        # PUT /<bucket>/ is CreateBucket; 409 means it is there already.
        url = await obstore.sign_async(self.store, "PUT", "", timedelta(seconds=60))
        async with httpx.AsyncClient(timeout=self.config.request_timeout_seconds) as client:
            try:
                answer = await client.put(url)
            except httpx.HTTPError as exc:
                raise StorageUnavailableError(f"the object store is unreachable: {exc}") from exc
        if answer.status_code not in (200, 204, 409):
            raise StorageUnavailableError(
                f"creating bucket {self.config.bucket!r} failed with HTTP {answer.status_code}"
            )
        self._bucket_ready = True

    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        await self._ensure_bucket()
        attributes = {"Content-Type": content_type} if content_type else None
        with _translated(key):
            await obstore.put_async(
                self.store,
                self._path(key),
                source,
                attributes=attributes,
                # Multipart (several parts at once) when the file exceeds one part.
                chunk_size=_PART_BYTES,
                max_concurrency=_PARTS_AT_ONCE,
            )

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        await self._ensure_bucket()
        attributes = {"Content-Type": content_type} if content_type else None
        with _translated(key):
            await obstore.put_async(
                self.store,
                self._path(key),
                data,
                attributes=attributes,
                use_multipart=False,
            )

    async def get_file(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with _translated(key):
                result = await obstore.get_async(self.store, self._path(key))
                with tmp.open("wb") as out:
                    async for chunk in result.stream(min_chunk_size=_CHUNK):
                        out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    async def get_bytes(self, key: str) -> bytes:
        with _translated(key):
            result = await obstore.get_async(self.store, self._path(key))
            return bytes(await result.bytes_async())

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            with _translated(key):
                meta = await obstore.head_async(self.store, self._path(key))
        except NotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=meta["size"],
            etag=(meta["e_tag"] or "").strip('"'),
            modified_at=meta["last_modified"].timestamp(),
        )

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return
        with _translated(key):
            result = await obstore.get_async(
                self.store, self._path(key), options={"range": (start, end)}
            )
            async for chunk in result.stream(min_chunk_size=_CHUNK):
                yield bytes(chunk)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(NotFoundError), _translated(key):
            await obstore.delete_async(self.store, self._path(key))

    async def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with _translated(prefix):
            async for batch in obstore.list(self.store, self._path(prefix).rstrip("/") + "/"):
                keys.extend(self._key(meta["path"]) for meta in batch)
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list_keys(prefix)
        if keys:
            with _translated(prefix):
                await obstore.delete_async(self.store, [self._path(k) for k in keys])
        return len(keys)

    async def presigned_url(self, key: str, *, expires_seconds: int) -> str | None:
        with _translated(key):
            url = await obstore.sign_async(
                self.store, "GET", self._path(key), timedelta(seconds=expires_seconds)
            )
        return str(url)

    async def check(self) -> None:
        await self._ensure_bucket()
        with _translated("."):
            await obstore.list_with_delimiter_async(self.store, self.prefix or None)

    async def aclose(self) -> None:
        return None
