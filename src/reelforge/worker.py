"""Workers: the durable state machine that moves a video from queued to a result.

Each saq job reads the record and continues from its stage, so a job picked up
again after its worker died resumes where the record says: a stored remote id is
polled, never submitted again. Every step is written to Redis (``store.transition``)
before the next side effect starts.

Two ways a turn ends early that are nobody's failure:

* **The worker died.** Each turn claims the video in Redis and clears the claim
  when it ends; a claim left by another process means that process died mid-turn.
  That counts a ``worker_restart`` (capped by ``max_worker_restarts``, then the
  video fails with ``worker_lost``), never a provider attempt, a breaker failure or
  a provider error. An in-process provider's job (``local``) died with its worker,
  so its attempt is ended as ``worker_lost`` and a fresh one started; a remote
  provider's job lives on and is polled.
* **The video was deleted** (or its record is unreadable). The turn stops the
  provider's job, frees its capacity slot, removes the video's directories and
  ends quietly, without retries: nothing writes the record back.

    generate queue:  queued ▸ submitting ▸ generating ▸ downloading ─┐
    process queue:   processing ▸ validating ▸ completed   ◀─────────┘
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.exceptions
import structlog
from saq import Worker
from saq.job import Job
from saq.types import Context

from reelforge.errors import (
    JobCancelledError,
    NotFoundError,
    ProviderError,
    ProviderModerationError,
    ProviderRejectedError,
    ReelforgeError,
    RemoteJobLostError,
    StorageFullError,
    StorageUnavailableError,
    WorkerLostError,
)
from reelforge.media.compare import check_conversion
from reelforge.media.probe import probe
from reelforge.media.validate import Expectation, ValidationReport, validate_video
from reelforge.models import GenerationRequest, Stage
from reelforge.pipeline import produce_outputs
from reelforge.prompts.submit import prepare_submission
from reelforge.providers import RemoteState
from reelforge.providers.base import CallbackProvider, WaitsForWorkers, is_moderation_refusal
from reelforge.retry import RetryPolicy, call_with_retries
from reelforge.runtime import Runtime
from reelforge.storage.layout import (
    MEDIA_TYPES,
    output_key,
    raw_key,
    remove_video_files,
    remove_work_files,
    scratch_outputs,
    scratch_raw,
)
from reelforge.store import Attempt, VideoRecord
from reelforge.videos import video_finished
from reelforge.webhooks import webhook_worker

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


class JobContext(Context, total=False):
    runtime: Runtime


class _Cancelled(Exception):
    """The user cancelled while we were working."""


class _Gone(Exception):
    """The record was deleted (or cannot be read) while we worked."""


# The error of an attempt ended because its worker died: not the provider's fault.
WORKER_LOST = "worker_lost"


def lost_to_worker(attempt: Attempt) -> bool:
    return (attempt.error or {}).get("code") == WORKER_LOST


@contextlib.asynccontextmanager
async def _heartbeat(job: Job | None, interval: float) -> AsyncIterator[None]:
    """Touch the saq job while we work, so only a dead worker's job is swept.

    The loop also checks a flag: on Python 3.11 a cancel that lands as a Redis call
    inside ``job.update()`` finishes can be swallowed (``asyncio.wait_for``, which
    redis-py uses for socket timeouts), and a beat that outlived its turn would keep
    the finished job looking alive, and the turn waiting for it, forever."""
    if job is None:
        yield
        return
    done = False

    async def beat() -> None:
        while not done:
            await asyncio.sleep(interval)
            if not done:
                with contextlib.suppress(Exception):
                    await job.update()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        done = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Run:
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
            raise _Gone from None
        return self.last

    async def cancel_requested(self) -> bool:
        flag = await self.rt.redis.hget(self.rt.keys.video(self.video_id), "cancel_requested")
        return bool(flag == "1")

    async def move(self, rec: VideoRecord, stage: Stage, **kw: Any) -> VideoRecord:
        result = await self.rt.store.transition(
            self.video_id,
            stage=stage,
            progress=_PROGRESS.get(stage),
            expect_stage=rec.stage,
            expect_attempts=len(rec.attempts),
            **kw,
        )
        if not result.applied:
            if result.status is None:
                raise _Gone
            raise _Superseded(f"{self.video_id} moved on to {result.stage}")
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
        await remove_work_files(self.rt.storage, self.rt.settings, self.video_id)
        await self.finished(rec.provider, "failed")
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
        except _Gone:
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
                raise _Gone
            rec = await self.record()
            if rec.status.is_terminal:
                return
            if rec.cancel_requested:
                await self.cancelled(rec)
                return
            if claim.orphaned:
                rec = await self.resume_after_worker_loss(rec, claim.worker_restarts)
            await body(rec)
        except _Gone:
            raise  # the caller stops quietly
        except _Superseded as exc:
            self.log.info("superseded", reason=str(exc))
        except (_Cancelled, JobCancelledError):
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
                raise _Gone from None  # e.g. a file vanished with the deleted video
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
                raise _Gone
        except _Gone:
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


class _Superseded(Exception):
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


class _GenerationRun(_Run):
    queue = "generate"

    @property
    def deadline(self) -> float:
        return self._created_at + self.rt.settings.job_deadline_seconds

    async def drive(self, rec: VideoRecord) -> None:
        self._created_at = rec.created_at
        while True:
            if time.time() > self.deadline:
                await self.cancel_remote(rec)
                raise ReelforgeError(
                    "the video was not ready within the job deadline", code="deadline_exceeded"
                )
            try:
                if rec.stage is Stage.QUEUED:
                    rec = await self.start_attempt(rec)
                elif rec.stage is Stage.SUBMITTING:
                    rec = await self.submit(rec)
                elif rec.stage is Stage.GENERATING:
                    rec = await self.wait_for_provider(rec)
                elif rec.stage is Stage.DOWNLOADING:
                    rec = await self.download(rec)
                else:
                    if rec.stage is Stage.PROCESSING:
                        await self.rt.queues.enqueue_for_stage(self.video_id, Stage.PROCESSING)
                    return
            except ProviderError as exc:
                rec = await self.record()
                if self.lost_with_a_worker(rec, exc):
                    # Another turn's process (dead, or stalled and swept) held the job.
                    restarts = await self.rt.store.count_worker_restart(self.video_id)
                    self.check_worker_restarts(restarts)
                    rec = await self.restart_attempt(rec)
                else:
                    rec = await self.retry_attempt(rec, exc)

    def in_process(self, provider: str) -> bool:
        return self.rt.provider(provider).capabilities().in_process

    def lost_with_a_worker(self, rec: VideoRecord, exc: ProviderError) -> bool:
        """An in-process provider's jobs live and die with a worker process: one that
        is lost was lost with a worker, not by the provider."""
        attempt = rec.current_attempt
        return (
            isinstance(exc, RemoteJobLostError)
            and attempt is not None
            and self.in_process(attempt.provider)
        )

    async def resume_after_worker_loss(self, rec: VideoRecord, restarts: int) -> VideoRecord:
        """An in-process provider's job ended with the dead worker: end that attempt
        as ``worker_lost`` (it counts against no limit) and queue a fresh one."""
        self.check_worker_restarts(restarts)
        attempt = rec.current_attempt
        # A remote job outlives our worker: resume it by polling. So does a finished
        # render (DOWNLOADING): its file is on disk for any worker to take.
        if (
            rec.stage in (Stage.SUBMITTING, Stage.GENERATING)
            and attempt is not None
            and attempt.ended_at is None
            and self.in_process(attempt.provider)
        ):
            rec = await self.restart_attempt(rec)
        return rec

    async def restart_attempt(self, rec: VideoRecord) -> VideoRecord:
        """End the current attempt as lost with its worker; queue a fresh one."""
        attempt = self._attempt(rec)
        await self.cancel_remote(rec)  # discards what the dead worker left on disk
        await self.rt.capacity.release(attempt.provider, self.video_id)
        attempt.ended_at = time.time()
        attempt.error = {
            "code": WORKER_LOST,
            "message": "the worker running this attempt stopped; the job starts again",
        }
        self.log.info("restarting attempt", provider=attempt.provider, attempt=attempt.number)
        return await self.move(
            rec,
            Stage.QUEUED,
            event="restarting",
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data={"attempt": attempt.number, "reason": WORKER_LOST},
        )

    def choose_provider(self, rec: VideoRecord) -> list[str]:
        """Route candidates in order: after a failed provider, the next ones first;
        the failed one last (a route of one retries it)."""
        route = rec.route or [rec.provider]
        last = rec.current_attempt
        failed = last is not None and last.error is not None and not lost_to_worker(last)
        if last is not None and failed and last.provider in route:
            i = route.index(last.provider)
            route = [*route[i + 1 :], *route[:i], last.provider]
        settings = self.rt.settings
        return [
            name
            for name in route
            if name in settings.providers
            and self.rt.provider(name).capabilities().fits(rec.request)
        ]

    async def start_attempt(self, rec: VideoRecord) -> VideoRecord:
        """Pick a provider whose circuit is closed and that has capacity, waiting in
        ``queued`` (with a visible reason) while none has; then open an attempt."""
        while True:
            if await self.cancel_requested():
                raise _Cancelled
            if time.time() > self.deadline:
                raise ReelforgeError(
                    "no provider could take the video before its deadline", code="deadline_exceeded"
                )
            candidates = self.choose_provider(rec)
            if not candidates:
                raise ReelforgeError(
                    "no configured provider can make this video", code="no_provider_available"
                )
            chosen, reason, retry_after = None, "circuit_open", 1.0
            for name in candidates:
                config = self.rt.settings.providers[name]
                if not await self.rt.breakers.allow(name, config):
                    continue
                provider = self.rt.provider(name)
                if isinstance(provider, WaitsForWorkers):
                    why = await provider.waiting_for()
                    if why is not None:
                        reason = why
                        continue
                grant = await self.rt.capacity.acquire(name, config, self.video_id)
                if grant.granted:
                    chosen = name
                    break
                reason, retry_after = grant.reason, min(retry_after, grant.retry_after)
            if chosen is not None:
                break
            rec = await self.wait(rec, reason, retry_after)
        number = len(rec.attempts) + 1
        attempt = Attempt(
            number=number,
            provider=chosen,
            # Derived from the video and attempt: a resubmit after a crash reuses it,
            # so a provider that honours idempotency keys never runs (or bills) twice.
            idempotency_key=f"{self.video_id}-{number}",
            started_at=time.time(),
        )
        attempts = [*(a.to_dict() for a in rec.attempts), attempt.to_dict()]
        return await self.move(
            rec,
            Stage.SUBMITTING,
            fields={"attempts": attempts, "provider": chosen, "waiting_for": ""},
            data={"attempt": number, "provider": chosen},
        )

    async def wait(self, rec: VideoRecord, reason: str, seconds: float) -> VideoRecord:
        """Stay queued for ``reason`` (rate_limit, concurrency, circuit_open)."""
        if rec.waiting_for != reason:
            await self.rt.store.transition(
                self.video_id,
                event="waiting",
                fields={"waiting_for": reason},
                data={"waiting_for": reason},
                expect_stage=Stage.QUEUED,
            )
            self.log.info("waiting", waiting_for=reason)
            rec = await self.record()
        await asyncio.sleep(max(0.05, min(seconds, 1.0)))
        return rec

    async def submit(self, rec: VideoRecord) -> VideoRecord:
        attempt = self._attempt(rec)
        if attempt.remote_id is None:
            provider = self.rt.provider(attempt.provider)
            # The processed prompt (remote enhancement and moderation run here).
            request = await prepare_submission(self.rt, rec, attempt.provider)
            note_retry = self._note_retry(attempt.provider)
            if not provider.capabilities().idempotent_submit:
                note_retry = await self._claim_submit(attempt, note_retry)
            submit = await self._submit_call(provider, request, attempt)
            async with self.timed("provider"):
                attempt.remote_id = await call_with_retries(
                    submit, self.policy, on_retry=note_retry
                )
        return await self.move(
            rec,
            Stage.GENERATING,
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data={"remote_id": attempt.remote_id},
        )

    async def _claim_submit(self, attempt: Attempt, note_retry: Any) -> Any:
        """Let one run submit this attempt. A second run of the same job (saq retrying
        a job whose heartbeat it missed) would otherwise make, and pay for, a second
        job at a vendor that takes no idempotency key. The claim lasts a little over
        two request timeouts and is renewed at every retry, so a live submit keeps it;
        if its holder dies mid-submit, the attempt is submitted again once it lapses.
        Returns ``note_retry`` extended with the renewal."""
        config = self.rt.settings.providers[attempt.provider]
        ttl = math.ceil(2 * config.timeout_seconds + 5)
        key = self.rt.keys.submit_claim(self.video_id, attempt.number)
        if not await self.rt.redis.set(key, self.video_id, nx=True, ex=ttl):
            raise _Superseded(f"{self.video_id} attempt {attempt.number} is being submitted")

        async def renew_and_note(exc: BaseException, number: int) -> None:
            await self.rt.redis.expire(key, ttl + math.ceil(self.policy.maximum * 3))
            await note_retry(exc, number)

        return renew_and_note

    async def _submit_call(
        self, provider: Any, request: GenerationRequest, attempt: Attempt
    ) -> Any:
        """The submit to retry; with push completion, it carries a fresh callback URL."""
        key = attempt.idempotency_key
        if self.rt.callbacks.enabled and isinstance(provider, CallbackProvider):
            url = await self.rt.callbacks.register(attempt.provider, self.video_id)
            return lambda: provider.submit(request, idempotency_key=key, callback_url=url)
        return lambda: provider.submit(request, idempotency_key=key)

    def _note_retry(self, provider: str) -> Any:
        async def note(exc: BaseException, number: int) -> None:
            code = exc.code if isinstance(exc, ReelforgeError) else type(exc).__name__
            if not (isinstance(exc, RemoteJobLostError) and self.in_process(provider)):
                await self.rt.metrics.provider_error(provider, code)
            self.log.info("retrying provider call", code=code, try_number=number)

        return note

    async def wait_for_provider(self, rec: VideoRecord) -> VideoRecord:
        attempt = self._attempt(rec)
        name, remote_id = attempt.provider, attempt.remote_id or ""
        provider = self.rt.provider(name)
        interval = self.rt.settings.providers[name].poll_interval_seconds
        give_up_at = attempt.started_at + self.rt.settings.provider_deadline_seconds
        span = _PROGRESS[Stage.DOWNLOADING] - _PROGRESS[Stage.GENERATING]
        waited_since = time.perf_counter()
        # A vendor callback cuts the wait between polls short (polling stays on).
        push = self.rt.callbacks.enabled and isinstance(provider, CallbackProvider)
        while True:
            status = await call_with_retries(
                lambda: provider.poll(remote_id), self.policy, on_retry=self._note_retry(name)
            )
            if status.state.is_terminal:
                # Polls and the sleeps between them are time the provider is working.
                await self.rt.store.add_timing(
                    self.video_id, "provider", time.perf_counter() - waited_since
                )
            if status.state is RemoteState.SUCCEEDED:
                return await self.move(rec, Stage.DOWNLOADING)
            if status.state is RemoteState.FAILED and is_moderation_refusal(status.error_code):
                raise ProviderModerationError(
                    f"{name} refused the prompt: {status.error_message or status.error_code}"
                )
            if status.state is RemoteState.FAILED:
                raise ProviderError(
                    status.error_message or "the provider failed the generation",
                    code=status.error_code or "generation_failed",
                )
            if status.state is RemoteState.CANCELLED:
                raise _Cancelled
            # A vendor holding the job back for its own reasons (Runway's THROTTLED:
            # over the account's concurrency) says why; clients see it as waiting_for.
            waiting_for = status.extra.get("waiting_for", "")
            changed = waiting_for != (rec.waiting_for or "")
            await self.rt.store.transition(
                self.video_id,
                progress=_PROGRESS[Stage.GENERATING] + span * status.progress // 100,
                # A "progress" event that moves nothing is dropped: this one says why.
                event="waiting" if changed else "progress",
                fields={"waiting_for": waiting_for} if changed else None,
                data={"waiting_for": waiting_for} if changed else None,
            )
            if changed:
                rec = dataclasses.replace(rec, waiting_for=waiting_for or None)
            await self.rt.capacity.renew(name, self.video_id)
            if await self.cancel_requested():
                raise _Cancelled
            if time.time() > give_up_at or time.time() > self.deadline:
                await self.cancel_remote(rec)
                raise ProviderError(
                    f"{name} did not finish within its deadline", code="provider_deadline_exceeded"
                )
            await self.rt.callbacks.sleep_or_nudge(self.video_id, interval, push=push)

    async def retry_attempt(self, rec: VideoRecord, exc: ProviderError) -> VideoRecord:
        """End the current attempt; go back to ``queued`` for another (maybe at the
        next provider in the route) if the error allows, else fail the video."""
        attempt = self._attempt(rec)
        attempt.ended_at = time.time()
        attempt.error = {"code": exc.code, "message": exc.message}
        await self.rt.metrics.provider_error(attempt.provider, exc.code)
        await self.rt.capacity.release(attempt.provider, self.video_id)
        if falls_over(exc):
            state = await self.rt.breakers.failure(
                attempt.provider, self.rt.settings.providers[attempt.provider]
            )
            if state == "open":
                self.log.warning("circuit open", provider=attempt.provider)
        # A non-retryable provider error (bad credentials) only moves on to *another*
        # provider; the same one would answer the same.
        others = [name for name in (rec.route or []) if name != attempt.provider]
        again = falls_over(exc) and (exc.retryable or bool(others))
        tried = sum(1 for a in rec.attempts if not lost_to_worker(a))
        if not again or tried >= self.rt.settings.max_attempts:
            raise exc
        self.log.info("new attempt", code=exc.code, attempt=attempt.number)
        return await self.move(
            rec,
            Stage.QUEUED,
            event="retrying",
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data={"attempt": attempt.number, "error": attempt.error},
        )

    async def download(self, rec: VideoRecord) -> VideoRecord:
        attempt = self._attempt(rec)
        name, remote_id = attempt.provider, attempt.remote_id or ""
        provider = self.rt.provider(name)
        dest = scratch_raw(self.rt.settings, self.video_id, attempt.number)
        dest.parent.mkdir(parents=True, exist_ok=True)
        key = raw_key(self.video_id, attempt.number)
        if await self.rt.storage.stat(key) is None:  # stored atomically: present = whole
            if not dest.exists():  # written atomically too
                async with self.timed("provider"):
                    await call_with_retries(
                        lambda: provider.download(remote_id, dest),
                        self.policy,
                        on_retry=self._note_retry(name),
                    )
            async with self.timed("media"):
                info = await probe(dest)
            # The next stage may run on another machine: hand the result over there.
            async with self.timed("storage"):
                await self.rt.storage.put_file(key, dest, content_type="video/mp4")
        else:
            dest = await self.local_raw(rec)
            async with self.timed("media"):
                info = await probe(dest)
        # Handed over: whichever worker processes it takes it from storage, so this
        # scratch copy is not left behind on a machine that may never see it again.
        dest.unlink(missing_ok=True)
        await self.rt.breakers.success(name)
        await self.rt.capacity.release(name, self.video_id)
        attempt.ended_at = time.time()
        attempt.cost = round(provider.capabilities().cost_per_second * info.duration, 6)
        cost = sum(a.cost for a in rec.attempts)
        await self.rt.metrics.spend(name, attempt.cost)
        return await self.move(
            rec,
            Stage.PROCESSING,
            fields={"attempts": [a.to_dict() for a in rec.attempts], "cost": repr(cost)},
        )


class _ProcessingRun(_Run):
    """processing: check the result's quality, then make the files; validating:
    check every conversion against its source, then complete."""

    queue = "process"

    async def drive(self, rec: VideoRecord) -> None:
        if rec.stage in (Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING, Stage.DOWNLOADING):
            return  # not ours yet: the generate job will hand it over
        if rec.stage is Stage.PROCESSING:
            if not rec.timings.get("process_queue"):
                # Time waiting for a free CPU slot: capacity, not orchestration.
                wait = max(0.0, time.time() - rec.updated_at)
                await self.rt.store.add_timing(self.video_id, "process_queue", wait)
            report = await self.check_quality(rec)
            if not report.ok:
                await self.regenerate_or_fail(rec, report)
                return
            rec = await self.make_outputs(rec, report)
        if rec.stage is Stage.VALIDATING:
            await self.check_conversions(rec)

    async def check_quality(self, rec: VideoRecord) -> ValidationReport:
        attempt = rec.current_attempt
        caps = self.rt.provider(attempt.provider if attempt else rec.provider).capabilities()
        expect = Expectation.from_request(rec.request, audio=caps.audio)
        if not caps.honours_fps:
            expect = dataclasses.replace(expect, fps=None)
        raw = await self.local_raw(rec)
        async with self.timed("media"):
            report = await validate_video(raw, expect, self.rt.settings.validation)
        if attempt is not None:
            attempt.validation = report.to_dict()
        return report

    async def regenerate_or_fail(self, rec: VideoRecord, report: ValidationReport) -> None:
        """Generate again with a new seed (the route decides same or next provider),
        or, after the last allowed try, fail with the reasons."""
        reasons = "; ".join(p.message for p in report.problems)
        attempt = rec.current_attempt
        if attempt is not None:
            attempt.error = {"code": "quality_check_failed", "message": reasons}
        tries = sum(
            1 for a in rec.attempts if (a.error or {}).get("code") == "quality_check_failed"
        )
        attempts = [a.to_dict() for a in rec.attempts]
        settings = self.rt.settings
        await remove_work_files(self.rt.storage, settings, self.video_id)
        if rec.request.regenerate_on_failure and tries <= settings.max_quality_regenerations:
            request = rec.request.model_copy(update={"seed": secrets.randbelow(2**31)})
            await self.move(
                rec,
                Stage.QUEUED,
                event="regenerating",
                fields={
                    "attempts": attempts,
                    "request": request.model_dump_json(),
                    "validation": report.to_dict(),
                },
                data={"problems": report.codes},
            )
            await self.rt.queues.enqueue_for_stage(self.video_id, Stage.QUEUED)
            self.log.info("regenerating", problems=report.codes)
            return
        await self.rt.store.set_fields(
            self.video_id, {"attempts": attempts, "validation": report.to_dict()}
        )
        raise ReelforgeError(
            f"the result failed validation: {reasons}", code="quality_check_failed"
        )

    async def make_outputs(self, rec: VideoRecord, report: ValidationReport) -> VideoRecord:
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

        raw = await self.local_raw(rec)
        async with self.timed("media"):
            outputs = await produce_outputs(
                raw,
                scratch_outputs(settings, self.video_id),
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
            # Stored before the record lists it: a listed file is always whole.
            async with self.timed("storage"):
                await self.rt.storage.put_file(
                    output_key(self.video_id, output.path.name),
                    output.path,
                    content_type=MEDIA_TYPES.get(output.path.suffix.lstrip(".")),
                )
        return await self.move(
            rec,
            Stage.VALIDATING,
            fields={
                "files": files,
                "validation": report.to_dict(),
                "attempts": [a.to_dict() for a in rec.attempts],
            },
        )

    async def check_conversions(self, rec: VideoRecord) -> None:
        """Each delivered video must still be its source: duration, size, SSIM."""
        report = dict(rec.validation or {})
        conversions: dict[str, Any] = {}
        raw = await self.local_raw(rec)
        for entry in rec.files:
            if entry["format"] not in ("mp4", "webm"):
                continue
            path = scratch_outputs(self.rt.settings, self.video_id) / entry["filename"]
            if not path.exists():  # made by another process: check what was stored
                async with self.timed("storage"):
                    await self.rt.storage.get_file(
                        output_key(self.video_id, entry["filename"]), path
                    )
            async with self.timed("media"):
                check = await check_conversion(raw, path)
            conversions[entry["format"]] = check.to_dict()
            if not check.ok:
                raise ReelforgeError(
                    f"the {entry['format']} conversion is not faithful to the result: "
                    + "; ".join(check.problems),
                    code="conversion_failed",
                )
        report["conversions"] = conversions
        await self.move(rec, Stage.COMPLETED, event="completed", fields={"validation": report})
        await remove_work_files(self.rt.storage, self.rt.settings, self.video_id)
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
        self.workers.append(webhook_worker(rt, rt.queues.webhooks, startup, timers))
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
