"""The ``local`` provider: the offline procedural renderer behind the provider protocol.

It behaves like a remote job service that happens to live in this process:
``submit`` starts an asyncio task rendering into ``<work_dir>/local/<remote id>.mp4``
and returns at once; ``poll`` reads the task's state and progress. The remote id is
derived from the idempotency key, so a repeated submit finds the same job (or its
finished file) instead of rendering twice. Jobs do not survive the process: an id
whose file never appeared is reported lost, so the caller resubmits. A failed or
cancelled job may be submitted again under the same key; it renders afresh.

A request's input reference image (``req.image``) is an upload the API stored in
storage (:mod:`reelforge.uploads`); the renderer shows it as the clip's background and takes
its colours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from reelforge.errors import (
    GenerationFailedError,
    JobCancelledError,
    ProviderError,
    ProviderUnavailableError,
    ReelforgeError,
    RemoteJobLostError,
)
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.render import render_video
from reelforge.models import MAX_DURATION_SECONDS, MAX_FPS, GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads

__all__ = ["LocalProvider", "local_remote_id"]

_REMOTE_ID_PATTERN: Final = re.compile(r"loc_[0-9a-f]{20}")
# A job that ended this way may be submitted again under its key: idempotency
# guards against paying twice for one video, not against trying again.
_RETRYABLE_STATES: Final = frozenset({RemoteState.FAILED, RemoteState.CANCELLED})

_log = structlog.get_logger(__name__)


def local_remote_id(idempotency_key: str) -> str:
    """The remote id a submit with ``idempotency_key`` gets, always the same one."""
    return "loc_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def _seed_from_key(idempotency_key: str) -> int:
    digest = hashlib.sha256(b"seed:" + idempotency_key.encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(slots=True)
class _LocalJob:
    remote_id: str
    output: Path
    seed: int
    faulty: bool = False  # fails half way (fault injection)
    state: RemoteState = RemoteState.QUEUED
    progress: int = 0
    error: ReelforgeError | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def record_progress(self, percent: int) -> None:
        self.progress = max(self.progress, percent)


class LocalProvider:
    """Renders in-process with :func:`~reelforge.media.render.render_video`.

    ``config.options`` may set ``preset`` and ``crf`` (x264) and ``max_concurrent``
    (renders at once; default half the CPU cores, at least one — more would only
    slow each render down). Jobs beyond that wait in ``queued``.

    Slow and faulty modes, to see and test resilience without any remote service:
    ``delay_seconds`` holds every job in ``running`` that long before it renders;
    ``fault_rate`` (0..1) picks jobs, deterministically by idempotency key, that fail
    the way a flaky back-end does: at ``fault = "submit"`` (the submit call errors,
    retryable) or ``"midway"`` (the job fails half way with code ``local_fault``).
    """

    def __init__(self, *, name: str, config: ProviderConfig, settings: Settings) -> None:
        self.name = name
        self._config = config
        self._output_dir = settings.work_dir / "local"
        self._uploads = Uploads(settings)
        self._preset = str(config.options.get("preset", "veryfast"))
        self._crf = int(config.options.get("crf", 20))
        default_concurrency = max(1, (os.cpu_count() or 2) // 2)
        self._slots = asyncio.Semaphore(
            max(1, int(config.options.get("max_concurrent", default_concurrency)))
        )
        self._jobs: dict[str, _LocalJob] = {}
        self._delay = float(config.options.get("delay_seconds", 0.0))
        self._fault_rate = float(config.options.get("fault_rate", 0.0))
        self._fault = str(config.options.get("fault", "midway"))

    def _faulty(self, idempotency_key: str) -> bool:
        digest = hashlib.sha256(b"fault:" + idempotency_key.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self._fault_rate

    def capabilities(self) -> Capabilities:
        return Capabilities(
            max_duration_seconds=MAX_DURATION_SECONDS,
            max_fps=MAX_FPS,
            audio=True,
            image_input=True,
            cost_per_second=self._config.price_per_second,
            # The renderer reads only the prompt (render_video never sees the
            # negative prompt) and takes any length.
            max_prompt_length=None,
            negative_prompt=False,
            in_process=True,
        )

    def _output_path(self, remote_id: str) -> Path:
        if not _REMOTE_ID_PATTERN.fullmatch(remote_id):
            # Also keeps a crafted id from naming a path outside our directory.
            raise RemoteJobLostError(f"{remote_id!r} is not a local job id")
        return self._output_dir / f"{remote_id}.mp4"

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        faulty = self._faulty(idempotency_key)
        if faulty and self._fault == "submit":
            raise ProviderUnavailableError(f"{self.name}: injected fault at submit")
        remote_id = local_remote_id(idempotency_key)
        output = self._output_path(remote_id)
        existing = self._jobs.get(remote_id)
        retrying = existing is not None and existing.state in _RETRYABLE_STATES
        if (existing is not None and not retrying) or (existing is None and output.exists()):
            return remote_id  # same key: the job is under way or already finished
        seed = req.seed if req.seed is not None else _seed_from_key(idempotency_key)
        job = _LocalJob(
            remote_id=remote_id, output=output, seed=seed, faulty=faulty and self._fault == "midway"
        )
        self._jobs[remote_id] = job
        job.task = asyncio.create_task(self._render(job, req), name=f"local-render-{remote_id}")
        return remote_id

    async def _render(self, job: _LocalJob, req: GenerationRequest) -> None:
        log = _log.bind(provider=self.name, remote_id=job.remote_id)
        try:
            async with self._slots:
                job.state = RemoteState.RUNNING
                if self._delay:
                    await asyncio.sleep(self._delay)  # slow mode: a back-end taking its time
                if job.faulty:
                    job.record_progress(50)
                    raise ProviderError(f"{self.name}: injected fault half way", code="local_fault")
                reference = await self._uploads.local_path(req.image) if req.image else None
                await render_video(
                    req,
                    job.output,
                    seed=job.seed,
                    on_progress=job.record_progress,
                    preset=self._preset,
                    crf=self._crf,
                    # The name matched GenerationRequest's pattern (no separators),
                    # so it cannot point outside the uploads.
                    reference_image=reference,
                )
        except asyncio.CancelledError:
            job.state = RemoteState.CANCELLED
            raise
        except ReelforgeError as exc:
            log.warning("local_render_failed", error_code=exc.code, error=exc.message)
            job.state, job.error = RemoteState.FAILED, exc
        except Exception as exc:
            # A renderer bug must end as a failed job the caller can see, not a dead task.
            log.exception("local_render_crashed")
            job.state, job.error = RemoteState.FAILED, ReelforgeError(f"render crashed: {exc!r}")
        else:
            job.state, job.progress = RemoteState.SUCCEEDED, 100

    async def poll(self, remote_id: str) -> RemoteStatus:
        output = self._output_path(remote_id)
        job = self._jobs.get(remote_id)
        if job is None:
            if output.exists():
                return RemoteStatus(RemoteState.SUCCEEDED, progress=100)
            raise RemoteJobLostError(
                f"local job {remote_id} is unknown to this process and left no output"
            )
        extra = {"seed": str(job.seed)}
        if job.state is RemoteState.FAILED and job.error is not None:
            return RemoteStatus(
                job.state,
                progress=job.progress,
                error_code=job.error.code,
                error_message=job.error.message,
                extra=extra,
            )
        return RemoteStatus(job.state, progress=job.progress, extra=extra)

    async def download(self, remote_id: str, dest: Path) -> Path:
        output = self._output_path(remote_id)
        job = self._jobs.get(remote_id)
        state = job.state if job is not None else RemoteState.SUCCEEDED
        if state is RemoteState.FAILED:
            error = job.error if job is not None else None
            raise GenerationFailedError(
                error.message if error else "local render failed",
                remote_code=error.code if error else None,
            )
        if state is RemoteState.CANCELLED:
            raise JobCancelledError(f"local job {remote_id} was cancelled")
        if state is not RemoteState.SUCCEEDED:
            raise ProviderError(f"local job {remote_id} is not finished yet ({state})")
        if not output.exists():
            if dest.exists():  # noqa: ASYNC240 -- handed over already, by a racing turn
                return dest
            raise RemoteJobLostError(f"the output of local job {remote_id} is gone")
        async with atomic_output(dest) as partial:
            await asyncio.to_thread(_link_or_copy, output, partial)
        # Handed over: the render is the caller's now, so the work dir does not grow
        # forever. (The worker skips a download whose complete file it already has.)
        output.unlink(missing_ok=True)
        return dest

    async def cancel(self, remote_id: str) -> None:
        output = self._output_path(remote_id)  # validates the id
        job = self._jobs.get(remote_id)
        if job is not None and job.task is not None and not job.state.is_terminal:
            job.task.cancel()
            # Return only once ffmpeg is dead and the partial output removed.
            await asyncio.wait([job.task])
            job.state = RemoteState.CANCELLED
        # A cancelled job's result is discarded, also one rendered by a process that
        # has since died: nothing of a cancelled or deleted video stays on disk.
        if job is None or job.state is RemoteState.CANCELLED:
            output.unlink(missing_ok=True)

    async def aclose(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for job in self._jobs.values():
            if not job.state.is_terminal:
                job.state = RemoteState.CANCELLED
        await self._uploads.aclose()


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link costs nothing on the same filesystem; copy across filesystems."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
