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

    def queue(self, name: str) -> str:
        """saq queue name (saq adds its own suffixes)."""
        return f"{self.prefix}:{name}"

    def pattern(self) -> str:
        """Matches every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}:*"
