"""A record that is not whole (a partial hash, as an unguarded write after a delete
used to leave) reads as absent everywhere: 404 from both APIs, never a 500, the
key is logged, and a job for it ends at once instead of being retried."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import structlog.testing
from saq.job import Status

from reelforge.models import Stage
from reelforge.queue import job_key
from reelforge.settings import Settings
from reelforge.store import new_video_id
from tests.service import Service, running_service, wait_until


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings) as svc:
        yield svc


async def _partial_record(svc: Service) -> str:
    video_id = new_video_id()
    await svc.runtime.redis.hset(svc.runtime.keys.video(video_id), "time_media", "0.25")
    return video_id


@pytest.mark.parametrize(
    "path",
    ["/api/videos/{id}", "/api/videos/status/{id}", "/v1/videos/{id}"],
)
async def test_reading_a_partial_record_is_a_404_and_the_key_is_logged(
    service: Service, path: str
) -> None:
    video_id = await _partial_record(service)
    with structlog.testing.capture_logs() as logs:
        response = await service.client.get(path.format(id=video_id))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert [e["key"] for e in logs if e["event"] == "malformed video record"] == [
        service.runtime.keys.video(video_id)
    ]


@pytest.mark.parametrize("path", ["/api/videos/{id}", "/v1/videos/{id}"])
async def test_deleting_a_partial_record_removes_it_and_is_a_404(
    service: Service, path: str
) -> None:
    video_id = await _partial_record(service)
    response = await service.client.delete(path.format(id=video_id))
    assert response.status_code == 404
    assert not await service.runtime.redis.exists(service.runtime.keys.video(video_id))


async def test_a_job_whose_record_is_partial_ends_at_once_without_errors(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    rt = service.runtime
    video_id = await _partial_record(service)
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as logs:
        await rt.queues.enqueue_for_stage(video_id, Stage.GENERATING)
        key = job_key("generate_video", video_id)

        async def finished() -> bool:
            job = await rt.queues.generate.job(key)
            return job is not None and job.status is Status.COMPLETE

        await wait_until(finished, timeout=30)
        job = await rt.queues.generate.job(key)
    assert job is not None and job.attempts == 1  # not retried
    # Nothing was written to it.
    assert await rt.redis.hgetall(rt.keys.video(video_id)) == {"time_media": "0.25"}
    assert [e for e in logs if e.get("log_level") in ("error", "critical")] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
