"""Workers: the durable state machine that moves a video from queued to a result.

Each saq job reads the record and continues from its stage, so a job picked up
again after its worker died resumes where the record says: a stored remote id is
polled, never submitted again. Every step is written to Redis (``store.transition``)
before the next side effect starts.

    generate queue:  queued ▸ submitting ▸ generating ▸ downloading ─┐
    process queue:   processing ▸ validating ▸ completed   ◀─────────┘
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from saq import Worker
from saq.job import Job
from saq.types import Context

from reelforge.errors import (
    JobCancelledError,
    NotFoundError,
    ProviderError,
    ReelforgeError,
    RemoteJobLostError,
)
from reelforge.media.probe import probe
from reelforge.models import Stage
from reelforge.pipeline import produce_outputs
from reelforge.providers import RemoteState
from reelforge.retry import RetryPolicy, call_with_retries
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.store import Attempt, VideoRecord

__all__ = ["WorkerProcess", "generate_video", "process_video"]

log = structlog.get_logger("reelforge.worker")

# Overall progress given to each stage: providers report 0..100 inside GENERATING.
_PROGRESS = {
    Stage.SUBMITTING: 2,
    Stage.GENERATING: 5,
    Stage.DOWNLOADING: 75,
    Stage.PROCESSING: 80,
    Stage.VALIDATING: 95,
    Stage.COMPLETED: 100,
}
_MAX_ATTEMPTS = 3


class JobContext(Context, total=False):
    runtime: Runtime


class _Cancelled(Exception):
    """The user cancelled while we were working."""


def raw_path(settings: Settings, video_id: str) -> Path:
    return settings.work_dir / video_id / "raw.mp4"


def output_dir(settings: Settings, video_id: str) -> Path:
    return settings.videos_dir / video_id


@contextlib.asynccontextmanager
async def _heartbeat(job: Job | None, interval: float) -> AsyncIterator[None]:
    """Touch the saq job while we work, so only a dead worker's job is swept."""
    if job is None:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await job.update()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Run:
    """One worker's turn at one video."""

    @contextlib.asynccontextmanager
    async def timed(self, name: str) -> AsyncIterator[None]:
        """Add the block's wall time to the record's ``timings[name]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await self.rt.store.add_timing(self.video_id, name, time.perf_counter() - started)

    def __init__(self, rt: Runtime, video_id: str):
        self.rt = rt
        self.video_id = video_id
        self.log = log.bind(video_id=video_id)
        self.policy = RetryPolicy(attempts=4, initial=0.2, maximum=5.0, total_seconds=60.0)

    async def record(self) -> VideoRecord:
        return await self.rt.store.get(self.video_id)

    async def cancel_requested(self) -> bool:
        flag = await self.rt.redis.hget(self.rt.keys.video(self.video_id), "cancel_requested")
        return bool(flag == "1")

    async def move(self, rec: VideoRecord, stage: Stage, **kw: Any) -> VideoRecord:
        result = await self.rt.store.transition(
            self.video_id, stage=stage, progress=_PROGRESS.get(stage), expect_stage=rec.stage, **kw
        )
        if not result.applied:
            raise _Superseded(f"{self.video_id} moved on to {result.stage}")
        self.log.info("stage", stage=stage.value, provider=rec.provider)
        return await self.record()

    async def fail(self, rec: VideoRecord, exc: ReelforgeError) -> None:
        error = {"code": exc.code, "message": exc.message}
        attempt = rec.current_attempt
        if attempt is not None and attempt.ended_at is None:
            attempt.ended_at = time.time()
            attempt.error = error
        await self.rt.store.transition(
            self.video_id,
            stage=Stage.FAILED,
            event="failed",
            fields={"error": error, "attempts": [a.to_dict() for a in rec.attempts]},
            data={"error": error},
        )
        if isinstance(exc, ProviderError):
            await self.rt.metrics.provider_error(rec.provider, exc.code)
        await self.finished(rec.provider, "failed")
        self.log.warning("failed", code=exc.code, provider=rec.provider)

    async def cancelled(self, rec: VideoRecord) -> None:
        attempt = rec.current_attempt
        if (
            attempt is not None
            and attempt.remote_id
            and rec.stage
            in (
                Stage.SUBMITTING,
                Stage.GENERATING,
            )
        ):
            with contextlib.suppress(ReelforgeError):
                await self.rt.provider(rec.provider).cancel(attempt.remote_id)
        if attempt is not None and attempt.ended_at is None:
            attempt.ended_at = time.time()
            attempt.error = {"code": "cancelled", "message": "cancelled by user"}
        result = await self.rt.store.transition(
            self.video_id,
            stage=Stage.CANCELLED,
            event="cancelled",
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
        )
        if result.applied:
            await self.finished(rec.provider, "cancelled")
        shutil.rmtree(self.rt.settings.work_dir / self.video_id, ignore_errors=True)
        self.log.info("cancelled")

    async def finished(self, provider: str, status: str) -> None:
        await self.rt.metrics.job_finished(provider, status)
        rec = await self.record()
        await self.rt.metrics.stage_durations(rec.stage_durations)

    async def guarded(self, body: Any) -> None:
        """Run a stage body; turn cancellation and errors into terminal states."""
        try:
            rec = await self.record()
            if rec.status.is_terminal:
                return
            if rec.cancel_requested:
                await self.cancelled(rec)
                return
            await body(rec)
        except _Superseded as exc:
            self.log.info("superseded", reason=str(exc))
        except NotFoundError:
            # Deleted while we worked: leave nothing of it behind.
            self.log.info("deleted while running")
            for directory in (self.rt.settings.work_dir, self.rt.settings.videos_dir):
                shutil.rmtree(directory / self.video_id, ignore_errors=True)
        except (_Cancelled, JobCancelledError):
            await self.cancelled(await self.record())
        except asyncio.CancelledError:
            # Aborted by the user (saq abort), or the worker is shutting down: only the
            # first ends the video; otherwise the job is swept and resumed elsewhere.
            if await asyncio.shield(self.cancel_requested()):
                await asyncio.shield(self._cancel_after_abort())
            raise
        except ReelforgeError as exc:
            await self.fail(await self.record(), exc)
        except Exception as exc:
            # A bug, not a provider's or user's fault: end the video with a clear code
            # rather than leaving it to be swept and retried forever.
            self.log.exception("unexpected error", error_type=type(exc).__name__)
            await self.fail(
                await self.record(),
                ReelforgeError(f"internal error ({type(exc).__name__})", code="internal_error"),
            )

    async def _cancel_after_abort(self) -> None:
        await self.cancelled(await self.record())


class _Superseded(Exception):
    """Another worker moved this video on; this turn stops quietly."""


class _GenerationRun(_Run):
    async def drive(self, rec: VideoRecord) -> None:
        while True:
            if rec.stage is Stage.QUEUED:
                rec = await self.new_attempt(rec)
            elif rec.stage is Stage.SUBMITTING:
                rec = await self.submit(rec)
            elif rec.stage is Stage.GENERATING:
                rec = await self.wait_for_provider(rec)  # may start a new attempt
            elif rec.stage is Stage.DOWNLOADING:
                rec = await self.download(rec)
            else:
                if rec.stage is Stage.PROCESSING:
                    await self.rt.queues.enqueue_for_stage(self.video_id, Stage.PROCESSING)
                return

    async def new_attempt(self, rec: VideoRecord) -> VideoRecord:
        number = len(rec.attempts) + 1
        attempt = Attempt(
            number=number,
            provider=rec.provider,
            # Derived from the video and attempt: a resubmit after a crash reuses it,
            # so a provider that honours idempotency keys never runs (or bills) twice.
            idempotency_key=f"{self.video_id}-{number}",
            started_at=time.time(),
        )
        attempts = [*(a.to_dict() for a in rec.attempts), attempt.to_dict()]
        return await self.move(
            rec,
            Stage.SUBMITTING,
            fields={"attempts": attempts},
            data={"attempt": number, "provider": rec.provider},
        )

    async def submit(self, rec: VideoRecord) -> VideoRecord:
        attempt = rec.current_attempt
        assert attempt is not None  # SUBMITTING always has an attempt  # noqa: S101
        if attempt.remote_id is None:
            provider = self.rt.provider(rec.provider)
            async with self.timed("provider"):
                attempt.remote_id = await call_with_retries(
                    lambda: provider.submit(rec.request, idempotency_key=attempt.idempotency_key),
                    self.policy,
                    on_retry=self._note_retry(rec),
                )
        return await self.move(
            rec,
            Stage.GENERATING,
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data={"remote_id": attempt.remote_id},
        )

    def _note_retry(self, rec: VideoRecord) -> Any:
        async def note(exc: BaseException, number: int) -> None:
            code = exc.code if isinstance(exc, ReelforgeError) else type(exc).__name__
            await self.rt.metrics.provider_error(rec.provider, code)
            self.log.info("retrying provider call", code=code, try_number=number)

        return note

    async def wait_for_provider(self, rec: VideoRecord) -> VideoRecord:
        attempt = rec.current_attempt
        assert attempt is not None and attempt.remote_id is not None  # noqa: S101
        provider = self.rt.provider(rec.provider)
        interval = self.rt.settings.providers[rec.provider].poll_interval_seconds
        span = _PROGRESS[Stage.DOWNLOADING] - _PROGRESS[Stage.GENERATING]
        remote_id = attempt.remote_id
        waited_since = time.perf_counter()
        while True:
            try:
                status = await call_with_retries(
                    lambda: provider.poll(remote_id), self.policy, on_retry=self._note_retry(rec)
                )
            except RemoteJobLostError as exc:
                return await self.retry_attempt(rec, exc)
            if status.state.is_terminal:
                # Polls and the sleeps between them are time the provider is working.
                await self.rt.store.add_timing(
                    self.video_id, "provider", time.perf_counter() - waited_since
                )
            if status.state is RemoteState.SUCCEEDED:
                return await self.move(rec, Stage.DOWNLOADING)
            if status.state is RemoteState.FAILED:
                return await self.retry_attempt(
                    rec,
                    ProviderError(
                        status.error_message or "the provider failed the generation",
                        code=status.error_code or "generation_failed",
                    ),
                    retryable=False,
                )
            if status.state is RemoteState.CANCELLED:
                raise _Cancelled
            await self.rt.store.transition(
                self.video_id,
                progress=_PROGRESS[Stage.GENERATING] + span * status.progress // 100,
                event="progress",
            )
            if await self.cancel_requested():
                raise _Cancelled
            await asyncio.sleep(interval)

    async def retry_attempt(
        self, rec: VideoRecord, exc: ReelforgeError, *, retryable: bool | None = None
    ) -> VideoRecord:
        """End the current attempt; start another if the error allows, else fail."""
        attempt = rec.current_attempt
        assert attempt is not None  # noqa: S101
        attempt.ended_at = time.time()
        attempt.error = {"code": exc.code, "message": exc.message}
        await self.rt.metrics.provider_error(rec.provider, exc.code)
        can_retry = exc.retryable if retryable is None else retryable
        if not can_retry or len(rec.attempts) >= _MAX_ATTEMPTS:
            raise exc
        self.log.info("new attempt", code=exc.code, attempt=attempt.number)
        # Back to QUEUED atomically with the closed attempt; the next turn resubmits.
        await self.rt.store.set_fields(
            self.video_id, {"attempts": [a.to_dict() for a in rec.attempts]}
        )
        rec = await self.record()
        return await self.new_attempt(rec)

    async def download(self, rec: VideoRecord) -> VideoRecord:
        attempt = rec.current_attempt
        assert attempt is not None and attempt.remote_id is not None  # noqa: S101
        provider = self.rt.provider(rec.provider)
        dest = raw_path(self.rt.settings, self.video_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        remote_id = attempt.remote_id
        if not dest.exists():  # written atomically: present means complete
            try:
                async with self.timed("provider"):
                    await call_with_retries(
                        lambda: provider.download(remote_id, dest),
                        self.policy,
                        on_retry=self._note_retry(rec),
                    )
            except RemoteJobLostError as exc:
                return await self.retry_attempt(rec, exc)
        async with self.timed("media"):
            info = await probe(dest)
        attempt.ended_at = time.time()
        attempt.cost = round(provider.capabilities().cost_per_second * info.duration, 6)
        cost = sum(a.cost for a in rec.attempts)
        await self.rt.metrics.spend(rec.provider, attempt.cost)
        return await self.move(
            rec,
            Stage.PROCESSING,
            fields={"attempts": [a.to_dict() for a in rec.attempts], "cost": repr(cost)},
        )


class _ProcessingRun(_Run):
    async def drive(self, rec: VideoRecord) -> None:
        if rec.stage in (Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING, Stage.DOWNLOADING):
            return  # not ours yet: the generate job will hand it over
        if rec.stage is Stage.PROCESSING:
            if not rec.timings.get("process_queue"):
                # Time waiting for a free CPU slot: capacity, not orchestration.
                wait = max(0.0, time.time() - rec.updated_at)
                await self.rt.store.add_timing(self.video_id, "process_queue", wait)
            rec = await self.make_outputs(rec)
        if rec.stage is Stage.VALIDATING:
            await self.validate(rec)

    async def make_outputs(self, rec: VideoRecord) -> VideoRecord:
        settings = self.rt.settings
        start, end = _PROGRESS[Stage.PROCESSING], _PROGRESS[Stage.VALIDATING]
        pending: set[asyncio.Task[Any]] = set()

        def on_progress(pct: int) -> None:
            task = asyncio.ensure_future(
                self.rt.store.transition(
                    self.video_id, progress=start + (end - start) * pct // 100, event="progress"
                )
            )
            pending.add(task)
            task.add_done_callback(pending.discard)

        async with self.timed("media"):
            outputs = await produce_outputs(
                raw_path(settings, self.video_id),
                output_dir(settings, self.video_id),
                stem="video",
                formats=rec.request.formats,
                media=settings.media,
                on_progress=on_progress,
            )
        if pending:
            await asyncio.gather(*pending)
        files = []
        for output in outputs:
            entry = output.to_dict()
            entry["filename"] = output.path.name
            del entry["path"]
            files.append(entry)
        return await self.move(rec, Stage.VALIDATING, fields={"files": files})

    async def validate(self, rec: VideoRecord) -> None:
        # Output assurance (validate.py) extends this; today: every delivered video
        # file (each was probed as it was written) has the requested size.
        problems = [
            {"code": "wrong_size", "message": f"the {entry['format']} file has the wrong size"}
            for entry in rec.files
            if entry["format"] in ("mp4", "webm")
            and (entry["width"], entry["height"]) != (rec.request.width, rec.request.height)
        ]
        report = {"ok": not problems, "problems": problems}
        if problems:
            raise ReelforgeError("the result did not pass validation", code="quality_check_failed")
        await self.move(rec, Stage.COMPLETED, event="completed", fields={"validation": report})
        shutil.rmtree(self.rt.settings.work_dir / self.video_id, ignore_errors=True)
        await self.finished(rec.provider, "completed")


async def generate_video(ctx: JobContext, *, video_id: str) -> None:
    rt = ctx["runtime"]
    run = _GenerationRun(rt, video_id)
    async with _heartbeat(ctx.get("job"), rt.settings.job_heartbeat_seconds / 3):
        await run.guarded(run.drive)


async def process_video(ctx: JobContext, *, video_id: str) -> None:
    rt = ctx["runtime"]
    run = _ProcessingRun(rt, video_id)
    async with _heartbeat(ctx.get("job"), rt.settings.job_heartbeat_seconds / 3):
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
        self.workers = [
            Worker(
                rt.queues.generate,
                functions=[generate_video],
                concurrency=settings.generate_concurrency,
                startup=startup,
                timers=timers,  # type: ignore[arg-type]
                shutdown_grace_period_s=0,
            ),
            Worker(
                rt.queues.process,
                functions=[process_video],
                concurrency=settings.process_concurrency,
                startup=startup,
                timers=timers,  # type: ignore[arg-type]
                shutdown_grace_period_s=0,
            ),
        ]
        for worker in self.workers:
            # The process owns SIGINT/SIGTERM (uvicorn in `serve`, ours in `worker`);
            # saq's own handlers would replace theirs and stop only the workers.
            worker.SIGNALS = []
        self._tasks: list[asyncio.Task[None]] = []

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
        interval = self.rt.settings.worker_heartbeat_seconds
        while True:
            with contextlib.suppress(Exception):
                await self.beat()
                await self.sweep_once()
            await asyncio.sleep(interval)

    async def start(self) -> None:
        await self.beat()
        self._tasks = [asyncio.create_task(w.start()) for w in self.workers]
        self._tasks.append(asyncio.create_task(self._periodic()))
        log.info("worker started", worker=self.id)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop()
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
