"""The two saq queues and how jobs are put on them.

``generate`` (I/O bound: submit, poll, download), ``process`` (CPU bound: probe,
transcode, validate) and ``webhooks`` (deliveries to users, see webhooks.py). A
job's key is derived from the video id, so enqueueing the
same video twice while its job is queued or running is a no-op: the API, a worker
and the sweeper may all enqueue without coordinating.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from saq import Queue
from saq.job import TERMINAL_STATUSES
from saq.queue.redis import RedisQueue

from reelforge.keys import Keys
from reelforge.models import Stage
from reelforge.redis_client import open_redis
from reelforge.settings import Settings

__all__ = ["GENERATE_STAGES", "Queues", "SweepingRedisQueue", "job_key"]

GENERATE_STAGES = frozenset({Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING, Stage.DOWNLOADING})
PROCESS_STAGES = frozenset({Stage.PROCESSING, Stage.VALIDATING})
# saq's own job timeout is a hard kill; our deadlines live in the state machine.
_JOB_TIMEOUT_SECONDS = 6 * 3600
# A job is retried by saq's sweep each time its worker vanished; give it room.
_JOB_RETRIES = 1000


class SweepingRedisQueue(RedisQueue):
    """saq's Redis queue, sweeping stuck jobs on our interval instead of once a minute."""

    sweep_lock_seconds: int = 1

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        # A short abort wait: a swept job's worker is gone, nobody will acknowledge.
        return await super().sweep(lock=min(lock, self.sweep_lock_seconds), abort=min(abort, 0.5))


def job_key(stage_queue: str, video_id: str) -> str:
    return f"{stage_queue}:{video_id}"


@dataclass(slots=True)
class Queues:
    generate: Queue
    process: Queue
    webhooks: Queue
    heartbeat: int

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> Queues:
        keys = Keys(settings.redis_prefix)

        def build(name: str, concurrency: int) -> Queue:
            # saq parks each idle worker slot in a blocking dequeue on its own
            # connection: the pool must hold one per slot, plus upkeep.
            client = open_redis(redis_url, max_connections=concurrency + 20, timeout=30)
            queue = SweepingRedisQueue(client, name=keys.queue(name))
            queue.sweep_lock_seconds = max(1, int(settings.sweep_interval_seconds))
            return queue

        return cls(
            generate=build("generate", settings.generate_concurrency),
            process=build("process", settings.process_concurrency),
            webhooks=build("webhooks", settings.webhook_concurrency),
            heartbeat=settings.job_heartbeat_seconds,
        )

    async def connect(self) -> None:
        await self.generate.connect()
        await self.process.connect()
        await self.webhooks.connect()

    async def disconnect(self) -> None:
        await self.generate.disconnect()
        await self.process.disconnect()
        await self.webhooks.disconnect()

    def _queue_for(self, stage: Stage) -> tuple[Queue, str]:
        if stage in PROCESS_STAGES:
            return self.process, "process_video"
        return self.generate, "generate_video"

    async def enqueue_for_stage(self, video_id: str, stage: Stage) -> bool:
        """Put the job that continues ``video_id`` from ``stage``; False if already there."""
        queue, function = self._queue_for(stage)
        job = await queue.enqueue(
            function,
            key=job_key(function, video_id),
            video_id=video_id,
            timeout=_JOB_TIMEOUT_SECONDS,
            heartbeat=self.heartbeat,
            retries=_JOB_RETRIES,
            retry_delay=0.5,
        )
        return job is not None

    async def live_jobs(self, video_ids: list[str]) -> set[str]:
        """Which of these videos have a saq job queued or running, in one round trip."""
        checks: list[tuple[str, Queue, str]] = [
            (video_id, queue, queue.job_id(job_key(function, video_id)))
            for video_id in video_ids
            for queue, function in (
                (self.generate, "generate_video"),
                (self.process, "process_video"),
            )
        ]
        if not checks:
            return set()
        redis = self.generate.redis  # type: ignore[attr-defined]
        async with redis.pipeline(transaction=False) as pipe:
            for _, queue, job_id in checks:
                pipe.zscore(queue.namespace("incomplete"), job_id)  # type: ignore[attr-defined]
            scores = await pipe.execute()
        return {
            video_id
            for (video_id, _, _), score in zip(checks, scores, strict=True)
            if score is not None
        }

    async def abort(self, video_id: str) -> None:
        """Ask whichever worker runs the video's job to stop it now."""
        for queue, function in ((self.generate, "generate_video"), (self.process, "process_video")):
            job = await queue.job(job_key(function, video_id))
            if job is not None and job.status not in TERMINAL_STATUSES:
                await queue.abort(job, error="cancelled by user")

    def _jobs_of(self, video_id: str) -> list[tuple[Queue, str]]:
        return [
            (self.generate, job_key("generate_video", video_id)),
            (self.process, job_key("process_video", video_id)),
        ]

    async def wait_stopped(self, video_id: str, *, within: float) -> bool:
        """Wait until no job of the video is queued or running (True), at most ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            jobs = [await queue.job(key) for queue, key in self._jobs_of(video_id)]
            if all(job is None or job.status in TERMINAL_STATUSES for job in jobs):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def forget(self, video_id: str) -> None:
        """Remove what saq keeps of the video's jobs (a deleted video leaves nothing)."""
        for queue, key in self._jobs_of(video_id):
            job_id = queue.job_id(key)
            redis = queue.redis  # type: ignore[attr-defined]
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(job_id, f"saq:abort:{key}")
                pipe.zrem(queue.namespace("incomplete"), job_id)  # type: ignore[attr-defined]
                pipe.lrem(queue.namespace("queued"), 0, job_id)  # type: ignore[attr-defined]
                await pipe.execute()

    async def depth(self) -> dict[str, Any]:
        return {
            "generate": await self.generate.count("queued"),
            "process": await self.process.count("queued"),
        }
