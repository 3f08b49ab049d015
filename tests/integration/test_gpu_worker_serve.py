"""A GPU worker goes on to its next job even when a library swallows the cancel that
ends a job's side loops (the cancel watcher, the step writer).

Real Redis, real storage and real ffmpeg; the pipeline is a stand-in that makes
frames without torch (the tiny-model runs are in test_diffusers_e2e.py). Before the
side loops were stopped with :func:`reelforge.loops.stop_loop`, a cancel landing
inside a Redis call came out as a ``TimeoutError``, the watcher's error handling went
round again, and the worker waited for it forever: every later job of that model
stayed ``generating``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from reelforge.gpu.catalogue import GenerationPlan
from reelforge.gpu.jobs import GpuJobs, job_output_key
from reelforge.gpu.runner import GeneratedVideo
from reelforge.gpu.worker import GpuWorker
from reelforge.keys import Keys
from reelforge.settings import ProviderConfig, Settings
from reelforge.storage import build_storage
from tests.fakes import sleep_turning_cancel_into_timeout

PLAN = GenerationPlan(
    prompt="a cat",
    negative_prompt=None,
    width=32,
    height=32,
    frames=5,
    fps=8,
    steps=3,
    guidance_scale=5.0,
    seed=1,
    output_width=32,
    output_height=32,
)


class _FramesPipeline:
    """Stands in for a loaded diffusers pipeline: reports each step, makes grey frames,
    and finishes only once ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def generate(
        self,
        plan: GenerationPlan,
        *,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        image_path: Path | None,
    ) -> GeneratedVideo:
        for step in range(1, plan.steps + 1):
            on_step(step, plan.steps)
        assert self.release.wait(30)
        frames = np.full((plan.frames, plan.height, plan.width, 3), 128, dtype=np.uint8)
        return GeneratedVideo(frames=frames, fps=plan.fps)


class _SwallowingJobs(GpuJobs):
    """After the first check, ``cancel_requested`` hangs in a call that turns a cancel
    into a ``TimeoutError`` (as redis-py's pool wait or a timeout racing its deadline
    can), so the job always ends while the watcher is inside it."""

    checks = 0
    inside: threading.Event | None = None

    async def cancel_requested(self, job_id: str) -> bool:
        self.checks += 1
        if self.checks == 1:
            return await super().cancel_requested(job_id)
        if self.inside is not None:
            self.inside.set()
        await sleep_turning_cancel_into_timeout(60)
        return False


@pytest.fixture
def gpu_settings(service_settings: Settings) -> Settings:
    wan = ProviderConfig(
        kind="diffusers", options={"model_path": "/nonexistent", "pipeline": "WanPipeline"}
    )
    return service_settings.model_copy(
        update={"providers": {**service_settings.providers, "wan": wan}}
    )


async def test_jobs_after_one_whose_watcher_swallowed_the_cancel_still_run(
    gpu_settings: Settings, aredis: Redis
) -> None:
    worker = GpuWorker(gpu_settings, "wan", device="cpu", worker_id="w1")
    pipeline = _FramesPipeline()
    worker.loaded = pipeline
    worker.storage = build_storage(gpu_settings)
    jobs = _SwallowingJobs(aredis, Keys(gpu_settings.redis_prefix), "wan", window=5.0)
    # The job ends only once the watcher sits in the swallowing call.
    jobs.inside = pipeline.release
    stop = asyncio.Event()
    try:
        await jobs.beat("w1", device="cpu")
        for job_id in ("gpu_a", "gpu_b"):
            jobs.checks = 0
            pipeline.release.clear()
            await jobs.submit(job_id, PLAN.to_dict())
            assert await jobs.take("w1", wait_seconds=1) == job_id
            assert await jobs.start(job_id, "w1") == "run"
            async with asyncio.timeout(20):
                await worker._serve(jobs, job_id, stop)
            job = await jobs.get(job_id)
            assert job is not None
            assert job.state == "succeeded"
            assert await worker.storage.stat(job_output_key("wan", job_id)) is not None
    finally:
        stop.set()
        await worker.storage.aclose()
