"""Retention, shared uploads, scratch sweeps and a full disk, on the real service."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reelforge.errors import NotFoundError, StorageFullError, StorageUnavailableError
from reelforge.models import parse_generation_request
from reelforge.retention import sweep_expired, sweep_raw, sweep_scratch, sweep_unremoved
from reelforge.settings import Settings
from reelforge.storage import LocalStorage
from reelforge.store import new_video_id
from reelforge.tenants import TenantLimits
from reelforge.videos import create_video
from tests.service import Service, running_service, wait_until

SMALL = {"prompt": "a paper boat", "duration_seconds": 1, "size": "160x90", "fps": 12}


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings) as svc:
        yield svc


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (96, 64), (20, 120, 235)).save(out, format="PNG")
    return out.getvalue()


async def _create_with_image(svc: Service, headers: dict[str, str] | None = None) -> str:
    """A /v1 video with an uploaded reference image; its id."""
    created = await svc.client.post(
        "/v1/videos",
        data={"prompt": "a ball on a blue wall", "seconds": "4", "size": "720x1280"},
        files={"input_reference": ("ref.png", _png(), "image/png")},
        headers=headers,
    )
    assert created.status_code == 200, created.text
    video_id: str = created.json()["id"]
    return video_id


async def _completed(svc: Service, body: dict[str, Any] | None = None) -> dict[str, Any]:
    created = await svc.client.post("/api/videos/generate", json=body or SMALL)
    assert created.status_code == 202, created.text
    final = await svc.wait_terminal(created.json()["id"])
    assert final["status"] == "completed", final.get("error")
    return final


def _stored(svc: Service, video_id: str) -> list[str]:
    storage = svc.runtime.storage
    assert isinstance(storage, LocalStorage)
    return sorted(p.name for p in storage.path_of(f"videos/{video_id}").glob("*"))


async def test_ended_videos_go_after_their_tenants_retention(service: Service) -> None:
    rt = service.runtime
    alice = {"Authorization": f"Bearer {(await rt.tenants.create_key('alice')).secret}"}
    brief_key = await rt.tenants.create_key("brief", limits=TenantLimits(retention_seconds=60))
    brief = {"Authorization": f"Bearer {brief_key.secret}"}
    ids = {}
    for name, headers in (("alice", alice), ("brief", brief)):
        created = await service.client.post("/api/videos/generate", json=SMALL, headers=headers)
        assert created.status_code == 202, created.text
        ids[name] = created.json()["id"]
    for name, headers in (("alice", alice), ("brief", brief)):

        async def done(video_id: str = ids[name], headers: dict[str, str] = headers) -> bool:
            answer = await service.client.get(f"/api/videos/{video_id}", headers=headers)
            return bool(answer.json()["status"] == "completed")

        await wait_until(done, timeout=60)
        assert _stored(service, ids[name])

    assert await sweep_expired(rt, now=time.time() + 30) == 0  # not yet
    # alice keeps the service's retention_seconds = 0: forever.
    assert await sweep_expired(rt, now=time.time() + 61) == 1
    gone = await service.client.get(f"/api/videos/{ids['brief']}", headers=brief)
    assert gone.status_code == 404
    assert _stored(service, ids["brief"]) == []
    assert (
        await service.client.get(f"/api/videos/{ids['alice']}", headers=alice)
    ).status_code == 200
    assert _stored(service, ids["alice"])
    assert await rt.redis.exists(rt.keys.ended("brief")) == 0


async def test_the_worker_runs_retention_by_itself(service_settings: Settings) -> None:
    settings = service_settings.model_copy(
        update={"retention_seconds": 1, "retention_sweep_seconds": 0.2}
    )
    async with running_service(settings) as svc:
        video = await _completed(svc)

        async def expired() -> bool:
            return (await svc.client.get(f"/api/videos/{video['id']}")).status_code == 404

        await wait_until(expired, timeout=30)
        assert _stored(svc, video["id"]) == []


async def test_an_upload_shared_by_a_regenerated_video_goes_with_its_last_user(
    service: Service,
) -> None:
    rt = service.runtime
    first = await service.wait_terminal(await _create_with_image(service), timeout=120)
    image = first["request"]["image"]
    again = await service.client.post(f"/api/videos/{first['id']}/regenerate", json={})
    assert again.status_code == 202, again.text
    second = await service.wait_terminal(again.json()["id"], timeout=120)
    assert second["request"]["image"] == image  # shared, not copied
    assert (first["status"], second["status"]) == ("completed", "completed")

    assert (await service.client.delete(f"/api/videos/{first['id']}")).status_code == 200
    assert await rt.storage.stat(f"uploads/{image}") is not None  # still used
    assert (await service.client.delete(f"/v1/videos/{second['id']}")).status_code == 200
    assert await rt.storage.stat(f"uploads/{image}") is None
    assert await rt.redis.exists(rt.keys.upload_users(image)) == 0


async def _uploads(svc: Service) -> list[str]:
    storage = svc.runtime.storage
    assert isinstance(storage, LocalStorage)
    folder = storage.path_of("uploads")
    return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


async def test_a_regenerate_racing_the_delete_of_its_source_is_refused_and_leaves_nothing(
    service: Service,
) -> None:
    rt = service.runtime
    first = await service.wait_terminal(await _create_with_image(service), timeout=120)
    image = first["request"]["image"]
    # What regenerate_video does, with the source's DELETE landing between its read
    # of the source and the new video's create.
    source = await rt.store.get(first["id"], owner=None)
    assert (await service.client.delete(f"/api/videos/{first['id']}")).status_code == 200
    request = parse_generation_request(source.request.model_dump())
    with pytest.raises(NotFoundError):
        await create_video(rt, request, owner=source.owner, regenerated_from=source.id)
    listed = (await service.client.get("/api/videos")).json()
    assert listed["data"] == []  # no video that points at the removed image
    assert await rt.storage.stat(f"uploads/{image}") is None
    assert await rt.redis.exists(rt.keys.upload_users(image)) == 0


async def test_a_retried_create_keeps_no_second_copy_of_its_image(service: Service) -> None:
    retry = {"Idempotency-Key": "retry-with-image"}
    answers = [await _create_with_image(service, headers=retry) for _ in range(2)]
    assert answers[0] == answers[1]
    video = await service.wait_terminal(answers[0], timeout=120)
    assert await _uploads(service) == [video["request"]["image"]]


async def test_scratch_of_ended_or_unknown_videos_is_swept(service: Service) -> None:
    rt = service.runtime
    work = rt.settings.work_dir
    done = await _completed(service)
    orphan = work / new_video_id()  # a video this Redis never heard of
    (orphan / "out").mkdir(parents=True)
    (orphan / "out" / "video.mp4").write_bytes(b"left by a killed worker")
    ended = work / done["id"]
    ended.mkdir(parents=True, exist_ok=True)
    (ended / "raw-1.mp4").write_bytes(b"x")
    half = work / "local" / ".render.mp4.1234.part"
    half.parent.mkdir(parents=True, exist_ok=True)
    half.write_bytes(b"half")
    long_ago = time.time() - rt.settings.job_deadline_seconds - 60
    os.utime(half, (long_ago, long_ago))
    fresh = work / "local" / ".other.mp4.5678.part"  # may be a render in progress
    fresh.write_bytes(b"busy")

    assert await sweep_scratch(rt) == 2
    assert not orphan.exists() and not ended.exists()
    assert not half.exists() and fresh.exists()


async def test_a_full_disk_retries_the_job_and_leaves_no_half_file(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = service.runtime
    storage = rt.storage
    real_put = storage.put_file
    failures: list[str] = []

    async def full_once(key: str, source: Path, *, content_type: str | None = None) -> None:
        if key.startswith("videos/") and not failures:
            failures.append(key)
            raise StorageFullError(f"no space left to store {key!r}")
        await real_put(key, source, content_type=content_type)

    monkeypatch.setattr(storage, "put_file", full_once)
    video = await _completed(service)
    assert failures  # the disk was full once, and the job went on after it
    assert "video.mp4" in _stored(service, video["id"])
    assert isinstance(storage, LocalStorage)
    assert list(storage.root.rglob("*.part")) == []


async def test_raw_results_of_ended_or_unknown_videos_are_swept_from_storage(
    service_settings: Settings,
) -> None:
    async with running_service(service_settings, workers=0) as svc:  # nothing runs
        rt = svc.runtime
        created = await svc.client.post("/api/videos/generate", json=SMALL)
        waiting = created.json()["id"]  # queued: its result may still be handed over
        cancelled = (await svc.client.post("/api/videos/generate", json=SMALL)).json()["id"]
        assert (await svc.client.post(f"/api/videos/{cancelled}/cancel")).status_code == 200
        unknown = new_video_id()
        for video_id in (waiting, cancelled, unknown):
            await rt.storage.put_bytes(f"raw/{video_id}/1.mp4", b"raw result")

        assert await sweep_raw(rt) == 2
        assert await rt.storage.list_keys("raw") == [f"raw/{waiting}/1.mp4"]


async def test_files_of_a_video_deleted_while_the_store_was_down_go_in_a_later_round(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = service.runtime
    video = await _completed(service)
    storage = rt.storage
    real = storage.delete_prefix

    async def down(prefix: str) -> int:
        if prefix.startswith("videos/"):
            raise StorageUnavailableError(f"the object store failed on {prefix!r}")
        return await real(prefix)

    monkeypatch.setattr(storage, "delete_prefix", down)
    assert (await service.client.delete(f"/api/videos/{video['id']}")).status_code == 200
    assert (await service.client.get(f"/api/videos/{video['id']}")).status_code == 404
    assert _stored(service, video["id"])  # the store was down: the files are still there
    assert await sweep_unremoved(rt) == 0  # still down: tried, kept for the next round

    monkeypatch.setattr(storage, "delete_prefix", real)  # the store is back
    assert await sweep_unremoved(rt) == 1
    assert _stored(service, video["id"]) == []
    assert await rt.redis.scard(rt.keys.unremoved_files) == 0
