"""Deleting a video while its worker is at any stage leaves nothing behind.

Through both APIs (native ``DELETE /api/videos/{id}`` and OpenAI's ``DELETE
/v1/videos/{id}``), at every stage of the state machine: afterwards GET is 404,
nothing of the video is left in Redis (record, events, indexes, active set, leases,
anything that would run its job again) or on disk, the provider's job was stopped,
and neither the worker nor the API logged an error. The worker runs in the test's
process, so ``FakeGatedProvider`` holds the video exactly at the stage under test
and logs of both sides are captured.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import structlog.testing

from reelforge.models import Stage
from reelforge.settings import ProviderConfig, Settings
from reelforge.storage.layout import scratch_outputs
from tests.clips import lavfi_clip
from tests.fakes import FakeGatedProvider
from tests.service import Service, running_service, wait_until

pytestmark = pytest.mark.timeout(120)

SIZE = "720x1280"  # one of OpenAI's sizes, so both APIs ask for the same video
SECONDS = 4
# The call the gate holds for each stage (None: the stage is reached another way).
GATES: dict[Stage, str | None] = {
    Stage.QUEUED: None,  # waiting for a concurrency slot the test holds
    Stage.SUBMITTING: "submit",
    Stage.GENERATING: "poll",
    Stage.DOWNLOADING: "download",
    Stage.PROCESSING: None,  # mid-transcode of our own pipeline
    Stage.VALIDATING: None,
}
ERROR_LEVELS = frozenset({"error", "critical", "exception"})


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return lavfi_clip(path, f"testsrc2=size={SIZE}:rate=24:duration={SECONDS}", seconds=SECONDS)


def _settings(service_settings: Settings, clip: Path, stage: Stage) -> Settings:
    gate = ProviderConfig(
        kind="tests.fakes:FakeGatedProvider",
        poll_interval_seconds=0.05,
        max_concurrent_jobs=1,
        options={"clip": str(clip), "block_at": GATES[stage] or ""},
    )
    return service_settings.model_copy(
        update={
            "providers": {**service_settings.providers, "gate": gate},
            "default_provider": "gate",
        }
    )


@pytest.fixture
async def service(
    request: pytest.FixtureRequest, service_settings: Settings, clip: Path
) -> AsyncIterator[Service]:
    stage: Stage = request.param
    async with running_service(_settings(service_settings, clip, stage)) as svc:
        yield svc


async def _create(svc: Service, api: str) -> str:
    if api == "native":
        body = {
            "prompt": "a video deleted mid-way",
            "duration_seconds": SECONDS,
            "size": SIZE,
            "formats": ["mp4", "webm"],
        }
        response = await svc.client.post("/api/videos/generate", json=body)
    else:
        body = {"prompt": "a video deleted mid-way", "seconds": str(SECONDS), "size": SIZE}
        response = await svc.client.post("/v1/videos", json=body)
    assert response.status_code in (200, 202), response.text
    return cast(str, response.json()["id"])


async def _reach(svc: Service, video_id: str, stage: Stage) -> None:
    """Hold the video at ``stage``, with its worker busy on it."""
    rt = svc.runtime
    gate = cast(FakeGatedProvider, rt.provider("gate"))

    async def at(check_stage: Stage, extra: bool = True) -> bool:
        return (await rt.store.get(video_id)).stage is check_stage and extra

    if GATES[stage] is not None:
        await wait_until(_event_set(gate), timeout=60, interval=0.02)
    elif stage is Stage.QUEUED:

        async def waiting() -> bool:
            return (await rt.store.get(video_id)).waiting_for == "concurrency"

        await wait_until(waiting, timeout=60, interval=0.02)
    elif stage is Stage.PROCESSING:

        async def transcoding() -> bool:
            started = scratch_outputs(rt.settings, video_id).exists()  # transcoding
            return await at(Stage.PROCESSING, started)

        await wait_until(transcoding, timeout=60, interval=0.01)
    else:
        await wait_until(lambda: at(Stage.VALIDATING), timeout=60, interval=0.01)
    assert (await rt.store.get(video_id)).stage is stage


def _event_set(gate: FakeGatedProvider) -> Any:
    async def check() -> bool:
        return gate.reached.is_set()

    return check


async def _delete(svc: Service, api: str, video_id: str) -> None:
    path = f"/api/videos/{video_id}" if api == "native" else f"/v1/videos/{video_id}"
    response = await svc.client.delete(path)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": video_id, "object": "video.deleted", "deleted": True}


async def _redis_leftovers(svc: Service, video_id: str) -> dict[str, str]:
    """Every key of this test's prefix (ours and saq's) that names or holds the id."""
    redis = svc.runtime.redis
    prefix = svc.runtime.settings.redis_prefix
    found: dict[str, str] = {}
    for pattern in (f"{prefix}:*", f"saq:{prefix}:*", f"saq:job:{prefix}:*", "saq:abort:*"):
        async for key in redis.scan_iter(match=pattern, count=1000):
            kind = await redis.type(key)
            if kind == "none":
                continue  # expired between the scan and the read
            if kind == "set":
                content = " ".join(sorted(await redis.smembers(key)))
            elif kind == "zset":
                content = " ".join(await redis.zrange(key, 0, -1))
            elif kind == "list":
                content = " ".join(await redis.lrange(key, 0, -1))
            elif kind == "hash":
                content = " ".join(f"{k}={v}" for k, v in (await redis.hgetall(key)).items())
            elif kind == "stream":
                content = " ".join(str(e) for e in await redis.xrange(key))
            else:
                content = str(await redis.get(key))
            if video_id in key or video_id in content:
                found[key] = f"{kind}: {content[:200]}"
    return found


def _finished_saq_jobs(leftovers: dict[str, str]) -> dict[str, str]:
    """saq's record of a job that already ended (kept by saq for its ``ttl``)."""
    return {
        key: value
        for key, value in leftovers.items()
        if key.startswith("saq:job:") and any(f'"status": "{s}"' in value for s in ("aborted",))
    }


@pytest.mark.parametrize("api", ["native", "openai"])
@pytest.mark.parametrize("service", list(GATES), indirect=True, ids=[s.value for s in GATES])
async def test_deleting_a_video_at_any_stage_leaves_nothing_behind(
    service: Service, api: str, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    stage: Stage = request.node.callspec.params["service"]
    rt = service.runtime
    gate = cast(FakeGatedProvider, rt.provider("gate"))
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as logs:
        if stage is Stage.QUEUED:  # someone else holds the provider's only slot
            assert (
                await rt.capacity.acquire("gate", rt.settings.providers["gate"], "other")
            ).granted
        video_id = await _create(service, api)
        await _reach(service, video_id, stage)
        attempt = (await rt.store.get(video_id)).current_attempt
        await _delete(service, api, video_id)

        for path in (f"/api/videos/{video_id}", f"/v1/videos/{video_id}"):
            assert (await service.client.get(path)).status_code == 404
        leftovers = await _redis_leftovers(service, video_id)
        saq_finished = _finished_saq_jobs(leftovers)
        assert {k: v for k, v in leftovers.items() if k not in saq_finished} == {}
        for key in saq_finished:
            assert await rt.redis.ttl(key) > 0  # saq's own bookkeeping, expiring
        assert sorted(p.name for p in rt.settings.data_dir.rglob(f"*{video_id}*")) == []

    if stage in (Stage.SUBMITTING, Stage.DOWNLOADING):
        assert gate.interrupted == [GATES[stage]]  # the held call was stopped
    if stage is Stage.GENERATING:
        assert attempt is not None and gate.cancelled == [attempt.remote_id]
    errors = [entry for entry in logs if entry.get("log_level") in ERROR_LEVELS]
    assert errors == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
