"""``reelforge gpu-worker``: one process, one device, one warm pipeline.

The worker loads its provider's pipeline once, then takes jobs from the provider's
GPU queue (:mod:`reelforge.gpu.jobs`) one at a time: it runs the denoising loop in a
thread, reports every step to Redis from the event loop (the GPU never waits on
Redis), encodes the frames with our media pipeline and writes the MP4 where the
provider's ``download`` finds it. Several GPUs: start one worker per device.

Stopping (SIGTERM/SIGINT) interrupts a running job at its next step and gives it
back to the queue for another worker; a SIGKILLed worker's job goes back once its
heartbeat is stale (any worker or poll reaps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from reelforge.errors import (
    JobCancelledError,
    ProviderRejectedError,
    ReelforgeError,
)
from reelforge.gpu.catalogue import GenerationPlan, spec_for
from reelforge.gpu.jobs import GpuJobs, gpu_worker_window, job_output_key
from reelforge.keys import Keys
from reelforge.loops import spawn_loop, stop_loop
from reelforge.media.frames import encode_frames_to_mp4
from reelforge.redis_client import open_redis
from reelforge.runtime import redis_url_of
from reelforge.settings import Settings
from reelforge.storage import build_storage
from reelforge.uploads import Uploads

__all__ = ["GpuWorker", "default_device"]

_log = structlog.get_logger(__name__)
_CANCEL_CHECK_SECONDS = 0.2  # a denoising step on a GPU takes longer


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class _Running:
    """What the generation thread and the event loop share about the current job."""

    job_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    steps_done: int = 0
    cancel_seen_step: int | None = None


class GpuWorker:
    """Serves one ``diffusers`` provider on one device."""

    def __init__(
        self, settings: Settings, provider: str, *, device: str, worker_id: str | None = None
    ):
        config = settings.providers.get(provider)
        if config is None or config.kind != "diffusers":
            raise ProviderRejectedError(
                f"{provider!r} is not a configured diffusers provider "
                f'(providers.{provider}.kind = "diffusers")',
                code="provider_misconfigured",
            )
        self.settings = settings
        self.provider = provider
        self.device = device
        self.options: dict[str, Any] = dict(config.options)
        self.spec = spec_for(self.options, provider=provider)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.log = _log.bind(provider=provider, worker=self.worker_id, device=device)
        self._running: _Running | None = None
        self.loaded: Any = None
        self.storage: Any = None

    async def run(self, stop: asyncio.Event, *, on_ready: Any = None) -> None:
        """Load the pipeline, then serve jobs until ``stop`` is set."""
        from reelforge.gpu.runner import load_pipeline

        self.loaded = await asyncio.to_thread(
            load_pipeline, self.options, device=self.device, model=self.spec.key
        )
        redis = open_redis(redis_url_of(self.settings), max_connections=8, decode_responses=True)
        self.storage = build_storage(self.settings)
        jobs = GpuJobs(
            redis,
            Keys(self.settings.redis_prefix),
            self.provider,
            window=gpu_worker_window(self.settings),
        )
        await jobs.beat(self.worker_id, device=self.device)
        await jobs.reap()
        beats = spawn_loop(lambda stopping: self._beat(jobs, stop, stopping), name="gpu-beat")
        self.log.info("gpu_worker_ready", model=self.spec.key)
        if on_ready is not None:
            on_ready(self)
        try:
            while not stop.is_set():
                job_id = await jobs.take(self.worker_id, wait_seconds=0.5)
                if job_id is None:
                    continue
                if await jobs.start(job_id, self.worker_id) != "run":
                    continue
                await self._serve(jobs, job_id, stop)
        finally:
            await stop_loop(beats)
            with contextlib.suppress(Exception):
                await jobs.leave(self.worker_id)  # a job we still hold goes back
            await redis.aclose()
            await self.storage.aclose()

    async def _beat(self, jobs: GpuJobs, stop: asyncio.Event, stopping: asyncio.Event) -> None:
        interval = self.settings.worker_heartbeat_seconds
        while not (stop.is_set() or stopping.is_set()):
            running = self._running
            try:
                await jobs.beat(
                    self.worker_id, device=self.device, job=running.job_id if running else ""
                )
                await jobs.reap()
            except Exception:  # Redis blips: the next beat tries again
                self.log.warning("gpu_heartbeat_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _serve(self, jobs: GpuJobs, job_id: str, stop: asyncio.Event) -> None:
        job = await jobs.get(job_id)
        if job is None:
            return
        log = self.log.bind(job=job_id)
        plan = GenerationPlan.from_dict(job.plan)
        running = _Running(job_id)
        self._running = running
        loop = asyncio.get_running_loop()
        steps: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        def on_step(done: int, total: int) -> None:  # generation thread
            running.steps_done = done
            loop.call_soon_threadsafe(steps.put_nowait, (done, total))

        # Loops that go on through Redis errors: stopped with stop_loop, so a cancel
        # swallowed inside redis-py cannot leave this job (and the next) waiting.
        writer = spawn_loop(lambda stopping: self._write_steps(jobs, job_id, steps, stopping))
        watcher = spawn_loop(lambda stopping: self._watch_cancel(jobs, running, stop, stopping))
        image = (
            await Uploads(self.settings, self.storage).local_path(plan.image)
            if plan.image
            else None
        )
        log.info("gpu_job_started", steps=plan.steps, frames=plan.frames)
        started = time.perf_counter()
        timings: dict[str, str] = {}
        try:
            video = await asyncio.to_thread(
                self.loaded.generate,
                plan,
                on_step=on_step,
                should_stop=running.stop.is_set,
                image_path=image,
            )
            await steps.join()
            generated = time.perf_counter()
            timings["generate_seconds"] = f"{generated - started:.6f}"
            output = self.settings.work_dir / "gpu" / f"{job_id}.mp4"
            await encode_frames_to_mp4(
                video.frames,
                output,
                fps=video.fps,
                width=plan.output_width,
                height=plan.output_height,
                audio=video.audio,
                sample_rate=video.sample_rate,
            )
            timings["encode_seconds"] = f"{time.perf_counter() - generated:.6f}"
            key = job_output_key(self.provider, job_id)
            try:
                await self.storage.put_file(key, output, content_type="video/mp4")
            finally:
                output.unlink(missing_ok=True)
        except JobCancelledError:
            await steps.join()
            if running.cancelled:
                await jobs.finish(
                    job_id,
                    self.worker_id,
                    "cancelled",
                    stopped_step=str(running.steps_done),
                    cancel_seen_step=str(running.cancel_seen_step or 0),
                )
                log.info("gpu_job_cancelled", step=running.steps_done)
            # else: shutting down; leaving gives the job back to the queue
        except ReelforgeError as exc:
            await jobs.finish(
                job_id, self.worker_id, "failed", error_code=exc.code, error_message=exc.message
            )
            log.warning("gpu_job_failed", error_code=exc.code, error=exc.message)
        else:
            await jobs.finish(job_id, self.worker_id, "succeeded", output=key, **timings)
            log.info("gpu_job_succeeded")
        finally:
            self._running = None
            for side in (writer, watcher):
                await stop_loop(side)

    async def _write_steps(
        self,
        jobs: GpuJobs,
        job_id: str,
        steps: asyncio.Queue[tuple[int, int]],
        stopping: asyncio.Event,
    ) -> None:
        while not stopping.is_set():
            done, total = await steps.get()
            try:
                await jobs.record_step(job_id, self.worker_id, step=done, steps=total)
            except Exception:
                self.log.warning("gpu_step_write_failed", exc_info=True)
            finally:
                steps.task_done()

    async def _watch_cancel(
        self, jobs: GpuJobs, running: _Running, stop: asyncio.Event, stopping: asyncio.Event
    ) -> None:
        """Turn a cancel request in Redis (or our own shutdown) into the thread's flag;
        the pipeline stops at its next step."""
        while not (running.stop.is_set() or stopping.is_set()):
            if stop.is_set():
                running.stop.set()
                return
            try:
                if await jobs.cancel_requested(running.job_id):
                    running.cancelled = True
                    running.cancel_seen_step = running.steps_done
                    running.stop.set()
                    return
            except Exception:
                self.log.warning("gpu_cancel_check_failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _CANCEL_CHECK_SECONDS)
