"""Every Redis key name reelforge uses, in one place.

All names start with ``settings.redis_prefix`` so several deployments (or test runs)
can share one Redis without seeing each other's data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "rf"

    def video(self, video_id: str) -> str:
        """Hash: the video record."""
        return f"{self.prefix}:video:{video_id}"

    def submit_claim(self, video_id: str, attempt: int) -> str:
        """String (with a TTL): the run that submits this attempt, for providers
        without idempotency keys."""
        return f"{self.prefix}:video:{video_id}:submit:{attempt}"

    def replica_probe(self, instance: str) -> str:
        """String (expiring): a process writes it just before a Redis WAIT, on the
        same connection, because WAIT covers only that connection's own writes; the
        replication stream is ordered, so it covers every earlier write as well."""
        return f"{self.prefix}:replica-probe:{instance}"

    def events(self, video_id: str) -> str:
        """Stream: the video's events; entry id ``<seq>-0``."""
        return f"{self.prefix}:events:{video_id}"

    def owner_index(self, owner: str) -> str:
        """Sorted set: the owner's video ids by creation time (ms)."""
        return f"{self.prefix}:owner:{owner}:videos"

    def idempotency(self, owner: str, key: str) -> str:
        """String: JSON ``{video_id, fingerprint}`` for an Idempotency-Key."""
        return f"{self.prefix}:idem:{owner}:{key}"

    @property
    def active(self) -> str:
        """Sorted set: ids of videos not yet terminal, by last update (s)."""
        return f"{self.prefix}:active"

    @property
    def workers(self) -> str:
        """Sorted set: worker ids by last heartbeat (s)."""
        return f"{self.prefix}:workers"

    def leases(self, provider: str) -> str:
        """Sorted set: video ids holding a concurrency slot at the provider, by expiry."""
        return f"{self.prefix}:leases:{provider}"

    def submit_log(self, provider: str) -> str:
        """Sorted set: submit times in the last minute (rate limit)."""
        return f"{self.prefix}:submits:{provider}"

    def breaker(self, provider: str) -> str:
        """Hash: the provider's circuit breaker (state, failures, opened_at)."""
        return f"{self.prefix}:breaker:{provider}"

    def callback(self, token: str) -> str:
        """String: ``provider:video_id`` a vendor callback token was issued for."""
        return f"{self.prefix}:callback:{token}"

    def nudge(self, video_id: str) -> str:
        """List: a pending "poll now" for the video's worker (a vendor called back)."""
        return f"{self.prefix}:nudge:{video_id}"

    def metric(self, name: str) -> str:
        """Hash: a counter or histogram family shared by every process."""
        return f"{self.prefix}:metrics:{name}"

    def hub_wake(self, hub_id: str) -> str:
        """Stream: nudges one API process's event reader to re-read its subscriptions."""
        return f"{self.prefix}:hubwake:{hub_id}"

    def gpu_queue(self, provider: str) -> str:
        """List: ids of GPU jobs waiting for one of the provider's GPU workers, oldest first."""
        return f"{self.prefix}:gpu:{provider}:queue"

    def gpu_job(self, provider: str, job_id: str) -> str:
        """Hash: one GPU job (state, plan, step progress, worker, error, output)."""
        return f"{self.prefix}:gpu:{provider}:job:{job_id}"

    def gpu_steps(self, provider: str, job_id: str) -> str:
        """Stream: one entry per denoising step of a GPU job, in order."""
        return f"{self.prefix}:gpu:{provider}:steps:{job_id}"

    def gpu_workers(self, provider: str) -> str:
        """Sorted set: the provider's GPU worker ids by last heartbeat (s)."""
        return f"{self.prefix}:gpu:{provider}:workers"

    def gpu_worker(self, provider: str, worker_id: str) -> str:
        """Hash: a GPU worker's device and model, for /readyz and /api/providers."""
        return f"{self.prefix}:gpu:{provider}:worker:{worker_id}"

    def gpu_claimed(self, provider: str, worker_id: str) -> str:
        """List: the job a GPU worker has taken (moved here atomically from the queue,
        so a worker that dies holding it gives it back)."""
        return f"{self.prefix}:gpu:{provider}:claimed:{worker_id}"

    # -- tenants and API keys ---------------------------------------------------

    def api_key(self, key_id: str) -> str:
        """Hash: one API key's metadata (tenant, label, digest, created, last used)."""
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_digest(self, digest: str) -> str:
        """String: the id of the key whose SHA-256 is ``digest`` (absent once revoked)."""
        return f"{self.prefix}:apikey-digest:{digest}"

    @property
    def api_keys(self) -> str:
        """Sorted set: every key id ever created, by creation time. Not empty = auth on."""
        return f"{self.prefix}:apikeys"

    def tenant(self, tenant: str) -> str:
        """Hash: a tenant's quotas, default webhook URL and webhook secret."""
        return f"{self.prefix}:tenant:{tenant}"

    @property
    def tenants(self) -> str:
        """Set: every tenant name."""
        return f"{self.prefix}:tenants"

    def tenant_jobs(self, tenant: str) -> str:
        """Sorted set: the tenant's admitted, not yet finished video ids, by admission (s)."""
        return f"{self.prefix}:tenant:{tenant}:jobs"

    def tenant_reservations(self, tenant: str) -> str:
        """Hash: video id -> JSON of what its admission counted (seconds, cost, day, month)."""
        return f"{self.prefix}:tenant:{tenant}:reserved"

    def tenant_day(self, tenant: str, day: str) -> str:
        """Hash: the tenant's ``videos`` and ``seconds`` admitted on a UTC day (YYYY-MM-DD)."""
        return f"{self.prefix}:tenant:{tenant}:day:{day}"

    def tenant_month(self, tenant: str, month: str) -> str:
        """String: the tenant's spend (reserved estimates, then actual costs) in a month."""
        return f"{self.prefix}:tenant:{tenant}:month:{month}"

    def usage(self, tenant: str, day: str) -> str:
        """Hash: ``<provider>|videos``, ``|seconds``, ``|spend`` of finished videos on a day."""
        return f"{self.prefix}:usage:{tenant}:{day}"

    def request_log(self, key_id: str) -> str:
        """Sorted set: the key's create requests in the last minute (API rate limit)."""
        return f"{self.prefix}:ratelog:{key_id}"

    @property
    def link_secret(self) -> str:
        """String: the HMAC secret of signed media links, shared by every API process."""
        return f"{self.prefix}:link-secret"

    def webhook_log(self, video_id: str) -> str:
        """List: JSON of each webhook delivery attempt of a video."""
        return f"{self.prefix}:webhooks:{video_id}"

    def webhook_queued(self, event_id: str) -> str:
        """String: set when an event's webhook job was enqueued (enqueue once)."""
        return f"{self.prefix}:webhook-queued:{event_id}"

    def webhook_done(self, event_id: str) -> str:
        """String: set once an event's webhook was delivered (no second delivery)."""
        return f"{self.prefix}:webhook-done:{event_id}"

    def ended(self, owner: str) -> str:
        """Sorted set: the owner's ended videos by the time they ended (s), for retention."""
        return f"{self.prefix}:owner:{owner}:ended"

    @property
    def ended_owners(self) -> str:
        """Set: the owners that have ended videos (those the retention sweep visits)."""
        return f"{self.prefix}:ended-owners"

    @property
    def retention_lock(self) -> str:
        """String (expiring): held by the worker running this round's retention sweep."""
        return f"{self.prefix}:retention-lock"

    @property
    def unremoved_files(self) -> str:
        """Set: ids of deleted videos whose stored files could not be removed yet
        (the store was down); the hygiene round tries again."""
        return f"{self.prefix}:unremoved-files"

    def upload_users(self, name: str) -> str:
        """Set: the videos that use an uploaded image (it goes with the last one)."""
        return f"{self.prefix}:upload-users:{name}"

    def webhook_attempts(self, event_id: str) -> str:
        """String: the count of delivery attempts of an event (its attempt numbers)."""
        return f"{self.prefix}:webhook-attempts:{event_id}"

    def webhook_sending(self, event_id: str) -> str:
        """String (expiring): held while one attempt of an event is being sent."""
        return f"{self.prefix}:webhook-sending:{event_id}"

    def queue(self, name: str) -> str:
        """saq queue name (saq adds its own suffixes)."""
        return f"{self.prefix}:{name}"

    def pattern(self) -> str:
        """Matches every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"
