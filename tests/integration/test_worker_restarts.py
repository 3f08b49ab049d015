"""A dead worker is not a failing provider.

A worker that stops mid-turn leaves its claim on the video; the next worker to take
the job counts a ``worker_restart``. The ``local`` provider's job lived in the dead
worker, so its attempt ends as ``worker_lost`` and a fresh one runs: no provider
attempt is used up, the breaker and the provider-error metric never hear of it.
A video whose workers keep dying still ends, ``failed`` with ``worker_lost``. A turn
that Redis going away cuts short (a failover, a restart) ended in a live worker: it
leaves no claim, so the retried job counts no restart wherever it runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions

from reelforge.api.schemas import present_video
from reelforge.models import Stage, parse_generation_request
from reelforge.providers.local import local_remote_id
from reelforge.runtime import Runtime
from reelforge.settings import ProviderConfig, Settings
from reelforge.store import Attempt
from reelforge.videos import create_video
from reelforge.worker import WorkerProcess, generate_video
from tests.service import wait_until

REQUEST = {"prompt": "a blue square", "duration_seconds": 1, "size": "320x180"}


def _local(settings: Settings, **options: Any) -> Settings:
    local = ProviderConfig(kind="local", poll_interval_seconds=0.05, options=options)
    return settings.model_copy(update={"providers": {"local": local}})


async def _generating_then_worker_stops(settings: Settings) -> str:
    """Start a video on a slow local provider; stop its worker while it renders."""
    rt = await Runtime.open(_local(settings, delay_seconds=600))
    worker = WorkerProcess(rt)
    try:
        await worker.start()
        record, _ = await create_video(rt, parse_generation_request(REQUEST), owner="default")

        async def generating() -> bool:
            return (await rt.store.get(record.id)).stage is Stage.GENERATING

        await wait_until(generating, timeout=30)
    finally:
        await worker.stop()  # the turn is cut off: its claim stays, its render dies
        await rt.close()
    return record.id


async def _run_to_the_end(settings: Settings, video_id: str) -> tuple[Runtime, WorkerProcess]:
    rt = await Runtime.open(_local(settings))
    worker = WorkerProcess(rt)
    await worker.start()

    async def terminal() -> bool:
        return (await rt.store.get(video_id)).status.is_terminal

    await wait_until(terminal, timeout=60, interval=0.1)
    return rt, worker


async def test_a_local_job_lost_with_its_worker_restarts_without_a_provider_attempt(
    service_settings: Settings,
) -> None:
    settings = service_settings.model_copy(update={"max_attempts": 1})
    video_id = await _generating_then_worker_stops(settings)
    rt, worker = await _run_to_the_end(settings, video_id)
    try:
        record = await rt.store.get(video_id)
        errors = await rt.redis.hgetall(rt.keys.metric("provider_errors"))
        breaker = await rt.breakers.state("local")
    finally:
        await worker.stop()
        await rt.close()
    assert record.stage is Stage.COMPLETED, record.error
    assert record.worker_restarts == 1
    assert present_video(record, rt.links).worker_restarts == 1  # what clients see
    assert [(a.error or {}).get("code") for a in record.attempts] == ["worker_lost", None]
    assert errors == {}
    assert (breaker.state, breaker.failures) == ("closed", 0)


async def test_a_video_whose_workers_keep_dying_fails_with_worker_lost(
    service_settings: Settings,
) -> None:
    settings = service_settings.model_copy(update={"max_worker_restarts": 0})
    video_id = await _generating_then_worker_stops(settings)
    rt, worker = await _run_to_the_end(settings, video_id)
    try:
        record = await rt.store.get(video_id)
        errors = await rt.redis.hgetall(rt.keys.metric("provider_errors"))
    finally:
        await worker.stop()
        await rt.close()
    assert record.stage is Stage.FAILED
    assert record.error is not None and record.error["code"] == "worker_lost"
    assert errors == {}


async def test_a_local_job_unknown_to_the_polling_worker_restarts_without_a_provider_error(
    service_settings: Settings,
) -> None:
    """A stalled worker swept as dead leaves a turn that looks clean, while the
    local job lived in that other process: still a worker loss, not the provider's."""
    settings = _local(service_settings.model_copy(update={"max_attempts": 1}))
    rt = await Runtime.open(settings)
    worker = WorkerProcess(rt)
    try:
        record, _ = await create_video(rt, parse_generation_request(REQUEST), owner="default")
        attempt = Attempt(
            number=1,
            provider="local",
            idempotency_key=f"{record.id}-1",
            started_at=time.time(),
            remote_id=local_remote_id("rendered elsewhere"),
        )
        await rt.store.transition(
            record.id, stage=Stage.GENERATING, fields={"attempts": [attempt.to_dict()]}
        )
        await worker.start()

        async def terminal() -> bool:
            return (await rt.store.get(record.id)).status.is_terminal

        await wait_until(terminal, timeout=60, interval=0.1)
        final = await rt.store.get(record.id)
        errors = await rt.redis.hgetall(rt.keys.metric("provider_errors"))
    finally:
        await worker.stop()
        await rt.close()
    assert final.stage is Stage.COMPLETED, final.error
    assert [(a.error or {}).get("code") for a in final.attempts] == ["worker_lost", None]
    assert final.worker_restarts == 1
    assert errors == {}


async def test_a_turn_cut_short_by_a_redis_outage_leaves_no_claim_behind(
    service_settings: Settings, tmp_path: Path
) -> None:
    gate = ProviderConfig(
        kind="tests.fakes:FakeGatedProvider",
        poll_interval_seconds=0.05,
        options={"clip": str(tmp_path / "unused.mp4"), "redis_outage_at": "poll"},
    )
    settings = service_settings.model_copy(
        update={"providers": {"gate": gate}, "default_provider": "gate"}
    )
    rt = await Runtime.open(settings)
    try:
        record, _ = await create_video(rt, parse_generation_request(REQUEST), owner="default")
        # The turn ends with Redis' error, for saq to retry the job.
        with pytest.raises(redis.exceptions.ConnectionError):
            await generate_video({"runtime": rt}, video_id=record.id)
        # saq's retry may land on another worker process.
        claim = await rt.store.claim_turn(record.id, "generate", "another-worker-process")
    finally:
        await rt.close()
    assert claim is not None
    assert (claim.orphaned, claim.worker_restarts) == (False, 0)
