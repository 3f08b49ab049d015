"""The generate queue's run: queued ▸ submitting ▸ generating ▸ downloading."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any

from reelforge.errors import (
    ProviderError,
    ProviderModerationError,
    ReelforgeError,
    RemoteJobLostError,
)
from reelforge.media.probe import probe
from reelforge.models import GenerationRequest, Stage
from reelforge.prompts.submit import prepare_submission
from reelforge.providers import RemoteState
from reelforge.providers.base import CallbackProvider, WaitsForWorkers, is_moderation_refusal
from reelforge.retry import call_with_retries
from reelforge.storage.layout import (
    raw_key,
    scratch_raw,
)
from reelforge.store import Attempt, VideoRecord
from reelforge.worker.run import (
    PROGRESS,
    WORKER_LOST,
    Cancelled,
    Run,
    Superseded,
    falls_over,
    lost_to_worker,
)

__all__ = ["GenerationRun"]


class GenerationRun(Run):
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
        return await self._requeue(
            rec, event="restarting", data={"attempt": attempt.number, "reason": WORKER_LOST}
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
                raise Cancelled
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
        provider = self.rt.provider(attempt.provider)
        keyless = not provider.capabilities().idempotent_submit
        if attempt.remote_id is None:
            # The processed prompt (remote enhancement and moderation run here).
            request = await prepare_submission(self.rt, rec, attempt.provider)
            note_retry = self._note_retry(attempt.provider)
            if keyless:
                note_retry = await self._claim_submit(attempt, note_retry)
            submit = await self._submit_call(provider, request, attempt)
            async with self.timed("provider"):
                attempt.remote_id = await call_with_retries(
                    submit, self.policy, on_retry=note_retry
                )
        moved = await self.move(
            rec,
            Stage.GENERATING,
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data={"remote_id": attempt.remote_id},
        )
        if keyless:
            await self._replicated("remote_id")
        return moved

    async def _replicated(self, write: str) -> None:
        """Wait until ``redis_replica_acks`` replicas have this connection's writes
        (Redis WAIT), so a failover cannot lose them; go on after the timeout, with
        a warning: the write is made, only its copy is late."""
        wanted = self.rt.settings.redis_replica_acks
        if wanted == 0:
            return
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.rt.keys.replica_probe(self.rt.instance_id), write, px=60_000)
            pipe.wait(wanted, self.rt.settings.redis_replica_ack_ms)
            _, acked = await pipe.execute()
        if acked < wanted:
            self.log.warning("replica_ack_missing", write=write, acked=acked, wanted=wanted)

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
            raise Superseded(f"{self.video_id} attempt {attempt.number} is being submitted")
        await self._replicated("submit_claim")

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
        span = PROGRESS[Stage.DOWNLOADING] - PROGRESS[Stage.GENERATING]
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
                raise Cancelled
            # A vendor holding the job back for its own reasons (Runway's THROTTLED:
            # over the account's concurrency) says why; clients see it as waiting_for.
            waiting_for = status.extra.get("waiting_for", "")
            changed = waiting_for != (rec.waiting_for or "")
            await self.rt.store.transition(
                self.video_id,
                progress=PROGRESS[Stage.GENERATING] + span * status.progress // 100,
                # A "progress" event that moves nothing is dropped: this one says why.
                event="waiting" if changed else "progress",
                fields={"waiting_for": waiting_for} if changed else None,
                data={"waiting_for": waiting_for} if changed else None,
            )
            if changed:
                rec = dataclasses.replace(rec, waiting_for=waiting_for or None)
            await self.rt.capacity.renew(name, self.video_id)
            if await self.cancel_requested():
                raise Cancelled
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
        return await self._requeue(
            rec, event="retrying", data={"attempt": attempt.number, "error": attempt.error}
        )

    async def _requeue(self, rec: VideoRecord, *, event: str, data: dict[str, Any]) -> VideoRecord:
        """Back to ``queued`` for a new attempt, with the attempts as they now stand."""
        return await self.move(
            rec,
            Stage.QUEUED,
            event=event,
            fields={"attempts": [a.to_dict() for a in rec.attempts]},
            data=data,
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
