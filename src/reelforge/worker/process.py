"""A worker process: the saq workers of both queues and webhooks, its heartbeat,
the sweeper that re-enqueues orphans, and the periodic retention and scratch rounds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from saq import Queue, Worker

from reelforge.errors import (
    ReelforgeError,
)
from reelforge.loops import Loop, start_loop, stop_loop
from reelforge.retention import shared_round, sweep_scratch
from reelforge.runtime import Runtime
from reelforge.webhooks import webhook_worker
from reelforge.worker.generation import GenerationRun
from reelforge.worker.processing import ProcessingRun
from reelforge.worker.run import JobContext, heartbeat

__all__ = ["WorkerProcess", "generate_video", "process_video"]

log = structlog.get_logger("reelforge.worker")


async def generate_video(ctx: JobContext, *, video_id: str) -> None:
    rt = ctx["runtime"]
    run = GenerationRun(rt, video_id)
    async with heartbeat(ctx.get("job"), rt.settings.job_heartbeat_seconds / 3):
        await run.guarded(run.drive)


async def process_video(ctx: JobContext, *, video_id: str) -> None:
    rt = ctx["runtime"]
    run = ProcessingRun(rt, video_id)
    async with heartbeat(ctx.get("job"), rt.settings.job_heartbeat_seconds / 3):
        await run.guarded(run.drive)


class WorkerProcess:
    """The workers of one process: both queues, a heartbeat, and the sweeper."""

    def __init__(self, rt: Runtime, *, worker_id: str | None = None):
        self.rt = rt
        self.id = worker_id or f"worker-{secrets.token_hex(4)}"
        settings = rt.settings

        async def startup(ctx: JobContext) -> None:
            ctx["runtime"] = rt

        timers = {"sweep": max(1, int(settings.sweep_interval_seconds)), "abort": 1}

        def stage_worker(
            queue: Queue, function: Callable[..., Awaitable[None]], concurrency: int
        ) -> Worker[Any]:
            return Worker(
                queue,
                functions=[function],
                concurrency=concurrency,
                startup=startup,
                timers=timers,  # type: ignore[arg-type]
                shutdown_grace_period_s=0,
            )

        self.workers = [
            stage_worker(rt.queues.generate, generate_video, settings.generate_concurrency),
            stage_worker(rt.queues.process, process_video, settings.process_concurrency),
        ]
        self.workers.append(webhook_worker(rt, rt.queues.webhooks, startup, timers))
        for worker in self.workers:
            # The process owns SIGINT/SIGTERM (uvicorn in `serve`, ours in `worker`);
            # saq's own handlers would replace theirs and stop only the workers.
            worker.SIGNALS = []
        self._tasks: list[asyncio.Task[None]] = []
        self._upkeep: Loop | None = None
        self._hygiene_due = 0.0

    async def beat(self) -> None:
        await self.rt.redis.zadd(self.rt.keys.workers, {self.id: time.time()})

    async def sweep_once(self) -> int:
        """Re-enqueue live videos whose job is gone (API died before enqueue, a
        Redis restart, ...). Jobs still queued or running are left alone, found in
        one round trip, so a sweep stays cheap with thousands of videos in flight."""
        idle = await self.rt.store.active_ids(idle_for=self.rt.settings.job_heartbeat_seconds)
        orphans = set(idle) - await self.rt.queues.live_jobs(idle)
        requeued = 0
        for video_id in orphans:
            try:
                rec = await self.rt.store.get(video_id)
            except ReelforgeError:
                await self.rt.redis.zrem(self.rt.keys.active, video_id)
                continue
            if await self.rt.queues.enqueue_for_stage(video_id, rec.stage):
                requeued += 1
                log.info("requeued", video_id=video_id, stage=rec.stage.value)
        return requeued

    async def _periodic(self) -> None:
        """One round of the process's upkeep: heartbeat, orphan sweep and, every
        ``retention_sweep_seconds``, retention and scratch hygiene."""
        settings = self.rt.settings
        with contextlib.suppress(Exception):
            await self.beat()
            await self.sweep_once()
        if time.monotonic() >= self._hygiene_due:
            self._hygiene_due = time.monotonic() + settings.retention_sweep_seconds
            with contextlib.suppress(Exception):
                await shared_round(self.rt)
            with contextlib.suppress(Exception):
                await sweep_scratch(self.rt)

    async def start(self) -> None:
        # What killed processes left in our scratch goes before new work arrives.
        with contextlib.suppress(Exception):
            await sweep_scratch(self.rt)
        await self.beat()
        self._tasks = [asyncio.create_task(w.start()) for w in self.workers]
        self._hygiene_due = time.monotonic() + self.rt.settings.retention_sweep_seconds
        self._upkeep = start_loop(
            self._periodic, self.rt.settings.worker_heartbeat_seconds, first_wait=False
        )
        log.info("worker started", worker=self.id)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop()
        if self._upkeep is not None:
            await stop_loop(self._upkeep)
            self._upkeep = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.rt.redis.zrem(self.rt.keys.workers, self.id)

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
