"""One turn of a worker on one video: the base every stage run shares (claims,
terminal states, cancellation, errors), and the rules for what counts as whose failure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.exceptions
import structlog
from saq.job import Job
from saq.types import Context

from reelforge.errors import (
    JobCancelledError,
    NotFoundError,
    ProviderError,
    ProviderRejectedError,
    ReelforgeError,
    StorageFullError,
    StorageUnavailableError,
    WorkerLostError,
)
from reelforge.loops import start_loop, stop_loop
from reelforge.models import Stage
from reelforge.retry import RetryPolicy
from reelforge.runtime import Runtime
from reelforge.storage.layout import (
    raw_key,
    remove_video_files,
    scratch_raw,
)
from reelforge.store import Attempt, VideoRecord
from reelforge.videos import video_finished

__all__ = [
    "PROGRESS",
    "WORKER_LOST",
    "Cancelled",
    "Gone",
    "JobContext",
    "Run",
    "Superseded",
    "falls_over",
    "heartbeat",
    "lost_to_worker",
]

log = structlog.get_logger("reelforge.worker")

# Overall progress given to each stage: providers report 0..100 inside GENERATING.
PROGRESS = {
    Stage.SUBMITTING: 2,
    Stage.GENERATING: 5,
    Stage.DOWNLOADING: 75,
    Stage.PROCESSING: 80,
    Stage.VALIDATING: 95,
    Stage.COMPLETED: 100,
}


class JobContext(Context, total=False):
    runtime: Runtime


class Cancelled(Exception):
    """The user cancelled while we were working."""


class Gone(Exception):
    """The record was deleted (or cannot be read) while we worked."""


# The error of an attempt ended because its worker died: not the provider's fault.
WORKER_LOST = "worker_lost"


def lost_to_worker(attempt: Attempt) -> bool:
    return (attempt.error or {}).get("code") == WORKER_LOST


@contextlib.asynccontextmanager
async def heartbeat(job: Job | None, interval: float) -> AsyncIterator[None]:
    """Touch the saq job while we work, so only a dead worker's job is swept."""
    if job is None:
        yield
        return

    async def beat() -> None:
        with contextlib.suppress(Exception):
            await job.update()

    loop = start_loop(beat, interval, first_wait=True)
    try:
        yield
    finally:
        await asyncio.shield(stop_loop(loop))


class Run:
    """One worker's turn at one video."""

    queue: str  # the turn's queue: "generate" or "process"

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
        self.last: VideoRecord | None = None  # the latest record read, for clean-up
        settings = rt.settings
        self.policy = RetryPolicy(
            attempts=settings.retry_tries,
            initial=settings.retry_initial_seconds,
            maximum=settings.retry_max_seconds,
            total_seconds=settings.retry_total_seconds,
        )

    async def record(self) -> VideoRecord:
        try:
            self.last = await self.rt.store.get(self.video_id)
        except NotFoundError:
            raise Gone from None
        return self.last

    async def cancel_requested(self) -> bool:
        flag = await self.rt.redis.hget(self.rt.keys.video(self.video_id), "cancel_requested")
        return bool(flag == "1")

    async def move(self, rec: VideoRecord, stage: Stage, **kw: Any) -> VideoRecord:
        result = await self.rt.store.transition(
            self.video_id,
            stage=stage,
            progress=PROGRESS.get(stage),
            expect_stage=rec.stage,
            expect_attempts=len(rec.attempts),
            **kw,
        )
        if not result.applied:
            if result.status is None:
                raise Gone
            raise Superseded(f"{self.video_id} moved on to {result.stage}")
        self.log.info("stage", stage=stage.value, provider=rec.provider)
        return await self.record()

    async def cancel_remote(self, rec: VideoRecord) -> None:
        """Stop the current attempt's remote job, if one may be running."""
        attempt = rec.current_attempt
        if attempt is not None and attempt.remote_id and attempt.ended_at is None:
            with contextlib.suppress(ReelforgeError):
                await self.rt.provider(attempt.provider).cancel(attempt.remote_id)

    async def fail(self, rec: VideoRecord, exc: ReelforgeError) -> None:
        error = {"code": exc.code, "message": exc.message}
        attempt = rec.current_attempt
        if attempt is not None:
            await self.rt.capacity.release(attempt.provider, self.video_id)
        if isinstance(exc, WorkerLostError) and attempt is not None and attempt.ended_at is None:
            await self.cancel_remote(rec)
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
        # A failed video delivers nothing: files made before the failure go too.
        await remove_video_files(self.rt.storage, self.rt.settings, self.video_id)
        self.log.warning("failed", code=exc.code, provider=rec.provider)

    async def cancelled(self, rec: VideoRecord) -> None:
        attempt = rec.current_attempt
        if rec.stage in (Stage.SUBMITTING, Stage.GENERATING):
            await self.cancel_remote(rec)
        if attempt is not None:
            # The slot is free the moment the user cancels, not when a lease expires.
            await self.rt.capacity.release(attempt.provider, self.video_id)
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
        # A cancelled video delivers nothing: partial outputs go too.
        await self.remove_files()
        self.log.info("cancelled")

    async def remove_files(self) -> None:
        await remove_video_files(self.rt.storage, self.rt.settings, self.video_id)

    def _attempt(self, rec: VideoRecord) -> Attempt:
        attempt = rec.current_attempt
        if attempt is None:  # SUBMITTING and later always have one
            raise ReelforgeError(f"{self.video_id} has no attempt in {rec.stage}")
        return attempt

    async def local_raw(self, rec: VideoRecord) -> Path:
        """This attempt's raw result in our scratch, fetched from storage if another
        process downloaded it."""
        number = self._attempt(rec).number
        path = scratch_raw(self.rt.settings, self.video_id, number)
        if not path.exists():  # written atomically: present means complete
            async with self.timed("storage"):
                await self.rt.storage.get_file(raw_key(self.video_id, number), path)
        return path

    async def abandon(self) -> None:
        """The record is gone: stop the provider's job, free the slot, leave no files."""
        rec = self.last
        attempt = rec.current_attempt if rec is not None else None
        if rec is not None and attempt is not None:
            if rec.stage in (Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING):
                await self.cancel_remote(rec)
            await self.rt.capacity.release(attempt.provider, self.video_id)
        await self.remove_files()
        self.log.info("video deleted while running; stopped")

    async def finished(self, provider: str, status: str) -> None:
        await self.rt.metrics.job_finished(provider, status)
        rec = await self.record()
        await self.rt.metrics.stage_durations(rec.stage_durations)
        await video_finished(self.rt, rec)

    async def guarded(self, body: Any) -> None:
        """Run a stage body; turn cancellation and errors into terminal states.

        The turn's claim is cleared when the turn ends here, also by an outage that
        saq retries; a worker that dies (or is stopped) leaves it, and the next turn
        counts a worker restart."""
        try:
            await self._guarded(body)
        except Gone:
            await self.abandon()
        except asyncio.CancelledError:
            raise  # the claim stays: whoever resumes the video counts a restart
        except Exception:
            # Redis or the store failed this turn in a live process; saq retries the
            # job, maybe on another worker, which must not take it for a dead one.
            # Redis may be failing over: release the claim once it answers again.
            await self.release_turn(patience=self.rt.settings.redis_wait_seconds)
            raise
        await self.release_turn(patience=0.0)

    async def release_turn(self, *, patience: float) -> None:
        """Clear this process's claim on the turn, trying again for up to
        ``patience`` seconds while Redis cannot be reached."""
        give_up = time.monotonic() + patience
        while True:
            try:
                await self.rt.store.release_turn(self.video_id, self.queue, self.rt.instance_id)
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                if time.monotonic() >= give_up:
                    return  # the claim stays: the next turn counts a worker restart
            except Exception:
                return  # e.g. the record is gone
            await asyncio.sleep(0.2)  # backoff while Redis fails over

    async def _guarded(self, body: Any) -> None:
        try:
            claim = await self.rt.store.claim_turn(self.video_id, self.queue, self.rt.instance_id)
            if claim is None:
                raise Gone
            rec = await self.record()
            if rec.status.is_terminal:
                return
            if rec.cancel_requested:
                await self.cancelled(rec)
                return
            if claim.orphaned:
                rec = await self.resume_after_worker_loss(rec, claim.worker_restarts)
            await body(rec)
        except Gone:
            raise  # the caller stops quietly
        except Superseded as exc:
            self.log.info("superseded", reason=str(exc))
        except (Cancelled, JobCancelledError):
            await self.cancelled(await self.record())
        except asyncio.CancelledError:
            # Aborted by the user (saq abort, also a delete), or the worker is shutting
            # down: only the first ends the video; otherwise the job is swept and
            # resumed elsewhere.
            await asyncio.shield(self._after_abort())
            raise
        except (StorageUnavailableError, StorageFullError) as exc:
            # The store (or this machine's scratch disk) failing is an outage, not
            # the video's fault: saq retries the job later, maybe on another worker,
            # and it resumes from the stored stage.
            self.log.warning("storage unavailable; the job will be retried", error=exc.message)
            raise
        except ReelforgeError as exc:
            await self.fail(await self.record(), exc)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # Redis restarting is an outage, not the video's fault: let saq retry the
            # job, which resumes from the stored stage once Redis answers again.
            self.log.warning("redis unavailable; the job will be retried")
            raise
        except Exception as exc:
            if not await self.rt.store.exists(self.video_id):
                raise Gone from None  # e.g. a file vanished with the deleted video
            # A bug, not a provider's or user's fault: end the video with a clear code
            # rather than leaving it to be swept and retried forever.
            self.log.exception("unexpected error", error_type=type(exc).__name__)
            await self.fail(
                await self.record(),
                ReelforgeError(f"internal error ({type(exc).__name__})", code="internal_error"),
            )

    async def _after_abort(self) -> None:
        try:
            if await self.cancel_requested():
                await self.cancelled(await self.record())
            elif not await self.rt.store.exists(self.video_id):
                raise Gone
        except Gone:
            await self.abandon()

    def check_worker_restarts(self, restarts: int) -> None:
        """A worker died on this video: fail it once that happened too often."""
        self.log.warning("worker lost mid-turn; resuming", worker_restarts=restarts)
        if restarts > self.rt.settings.max_worker_restarts:
            raise WorkerLostError(f"the video's worker stopped {restarts} times before it finished")

    async def resume_after_worker_loss(self, rec: VideoRecord, restarts: int) -> VideoRecord:
        """The previous turn's worker died; this turn carries on from the record."""
        self.check_worker_restarts(restarts)
        return rec


class Superseded(Exception):
    """Another worker moved this video on; this turn stops quietly."""


# Remote failure codes that are about the request itself: another provider would
# refuse it too, so they never fall over.
_USER_ERROR_MARKERS = ("moderation", "policy", "invalid", "unsafe")


def falls_over(exc: ReelforgeError) -> bool:
    """Whether another attempt (maybe at the next provider) could succeed."""
    if isinstance(exc, ProviderRejectedError):
        return False  # the provider refused the request itself
    if not isinstance(exc, ProviderError):
        return False
    return not any(marker in exc.code for marker in _USER_ERROR_MARKERS)
