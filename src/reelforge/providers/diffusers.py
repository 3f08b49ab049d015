"""The ``diffusers`` provider: open models on your own GPUs, through GPU workers.

A remote job service like any other, except that the "remote" is the GPU job queue
in our own Redis (:mod:`reelforge.gpu.jobs`) and ``reelforge gpu-worker --provider
NAME`` processes serve it. This module never imports torch.

    submit   -> the request mapped onto the model (catalogue), queued; the job id is
                derived from the idempotency key, so a resubmit finds the same job
    poll     -> the job's state and per-step progress; a job whose worker died goes
                back to the queue (never a failure); no live worker: ``queued`` with
                ``waiting_for = gpu_worker``
    download -> the MP4 the worker put in storage, probed, moved to ``dest``
    cancel   -> a queued job is dropped; a running one stops at its next step

Worker-side failures arrive as the job's ``error_code``: ``gpu_out_of_memory``,
``model_not_found``, ``pipeline_error``.

Options (``providers.NAME.options``): ``model_path`` (a local directory or a model
id), ``pipeline`` (the diffusers class, e.g. ``WanPipeline``), optional ``model`` (a
catalogue key, e.g. ``wan2.2-ti2v-5b``; else the pipeline's family), ``dtype``,
``steps``, ``guidance_scale``, ``cpu_offload``, ``vae_tiling``,
``max_sequence_length``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any, Final

from redis.asyncio import Redis

from reelforge.errors import (
    GenerationFailedError,
    JobCancelledError,
    ProviderError,
    ProviderRejectedError,
    RemoteJobLostError,
    UnreadableMediaError,
)
from reelforge.gpu.catalogue import plan_generation, spec_for
from reelforge.gpu.jobs import GpuJobs, gpu_worker_window, job_output_key
from reelforge.keys import Keys
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.probe import probe
from reelforge.models import MAX_FPS, GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.redis_client import open_redis
from reelforge.runtime import redis_url_of
from reelforge.settings import ProviderConfig, Settings
from reelforge.storage import Storage, build_storage

__all__ = ["WAITING_FOR_GPU_WORKER", "DiffusersProvider", "gpu_job_id"]

WAITING_FOR_GPU_WORKER: Final = "gpu_worker"
_JOB_ID: Final = re.compile(r"gpu_[0-9a-f]{24}")
_STATES: Final = {
    "queued": RemoteState.QUEUED,
    "running": RemoteState.RUNNING,
    "succeeded": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
    "cancelled": RemoteState.CANCELLED,
}


def gpu_job_id(idempotency_key: str) -> str:
    return "gpu_" + hashlib.sha256(b"gpu:" + idempotency_key.encode()).hexdigest()[:24]


class DiffusersProvider:
    """Queues generations for the GPU workers of one configured model."""

    def __init__(self, *, name: str, config: ProviderConfig, settings: Settings):
        self.name = name
        self._config = config
        self._settings = settings
        self._options: dict[str, Any] = dict(config.options)
        if not self._options.get("model_path") or not self._options.get("pipeline"):
            raise ProviderRejectedError(
                f"provider {name!r} needs options.model_path and options.pipeline",
                code="provider_misconfigured",
            )
        self.spec = spec_for(self._options, provider=name)
        self._redis: Redis | None = None
        self._jobs: GpuJobs | None = None
        self._storage: Storage | None = None

    @property
    def jobs(self) -> GpuJobs:
        if self._jobs is None:
            self._redis = open_redis(
                redis_url_of(self._settings), max_connections=16, decode_responses=True
            )
            self._jobs = GpuJobs(
                self._redis,
                Keys(self._settings.redis_prefix),
                self.name,
                window=gpu_worker_window(self._settings),
            )
        return self._jobs

    def capabilities(self) -> Capabilities:
        spec = self.spec
        return Capabilities(
            max_duration_seconds=spec.max_frames / spec.fps,
            max_fps=MAX_FPS,
            audio=spec.audio,
            image_input=self._options.get("pipeline") == spec.image_pipeline,
            cost_per_second=self._config.price_per_second,
        )

    async def waiting_for(self) -> str | None:
        """Why a new job should not be submitted yet: no live GPU worker."""
        if await self.jobs.live_workers():
            return None
        return WAITING_FOR_GPU_WORKER

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        image_pipeline = self._options.get("pipeline") == self.spec.image_pipeline
        if image_pipeline and req.image is None:
            raise ProviderRejectedError(
                f"{self.name} runs {self.spec.image_pipeline}, which needs an input image",
                code="image_required",
            )
        plan = plan_generation(req, self.spec, self._options, idempotency_key=idempotency_key)
        if not image_pipeline:
            plan = dataclasses.replace(plan, image=None)
        job_id = gpu_job_id(idempotency_key)
        await self.jobs.submit(job_id, plan.to_dict())
        return job_id

    def _check_id(self, remote_id: str) -> None:
        if not _JOB_ID.fullmatch(remote_id):
            raise RemoteJobLostError(f"{remote_id!r} is not a GPU job id")

    async def poll(self, remote_id: str) -> RemoteStatus:
        self._check_id(remote_id)
        jobs = self.jobs
        await jobs.reap()
        job = await jobs.get(remote_id)
        if job is None:
            raise RemoteJobLostError(f"GPU job {remote_id} is gone")
        state = _STATES.get(job.state, RemoteState.QUEUED)
        extra = {"seed": str(job.plan.get("seed", "")), "step": f"{job.step}/{job.steps}"}
        extra.update({f"rounded_{k}": v for k, v in job.plan.get("rounding", {}).items()})
        if state is RemoteState.QUEUED and not await jobs.live_workers():
            extra["waiting_for"] = WAITING_FOR_GPU_WORKER
        if state is RemoteState.FAILED:
            return RemoteStatus(
                state,
                progress=job.progress,
                error_code=job.error_code or "generation_failed",
                error_message=job.error_message,
                extra=extra,
            )
        return RemoteStatus(state, progress=job.progress, extra=extra)

    async def download(self, remote_id: str, dest: Path) -> Path:
        self._check_id(remote_id)
        job = await self.jobs.get(remote_id)
        if job is None:
            raise RemoteJobLostError(f"GPU job {remote_id} is gone")
        if job.state == "failed":
            raise GenerationFailedError(
                job.error_message or "the GPU job failed", remote_code=job.error_code
            )
        if job.state == "cancelled":
            raise JobCancelledError(f"GPU job {remote_id} was cancelled")
        if job.state != "succeeded":
            raise ProviderError(f"GPU job {remote_id} is not finished yet ({job.state})")
        key = job.output or job_output_key(self.name, remote_id)
        if self._storage is None:
            self._storage = build_storage(self._settings)
        if await self._storage.stat(key) is None:
            raise RemoteJobLostError(f"the output of GPU job {remote_id} is gone")
        async with atomic_output(dest) as partial:
            await self._storage.get_file(key, partial)
            try:
                await probe(partial)
            except UnreadableMediaError as exc:
                raise ProviderError(
                    f"GPU job {remote_id} wrote an unreadable video ({exc.message})",
                    code="corrupt_download",
                ) from None
        # Handed over: the video is the service's now, so storage does not grow forever.
        await self._storage.delete(key)
        return dest

    async def cancel(self, remote_id: str) -> None:
        self._check_id(remote_id)
        await self.jobs.cancel(remote_id)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._storage is not None:
            await self._storage.aclose()
        self._redis = self._jobs = self._storage = None
