"""Service metrics shared by every process through Redis, exported by ``/metrics``.

Workers and API processes come and go and run on several machines, so per-process
Prometheus registries would lose counts and split them. Counters and histogram
buckets are Redis hash increments instead; ``/metrics`` reads them at scrape time
and renders the Prometheus text format with ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from reelforge.keys import Keys

__all__ = ["STAGE_BUCKETS", "Metrics", "render_metrics"]

STAGE_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_SEP = "|"
# Tenants get their own label up to this many; later ones share "_other", so a
# deployment with thousands of tenants cannot blow up the scrape.
MAX_TENANT_LABELS = 100
_HASHES = ("jobs", "provider_errors", "spend", "stage_seconds", "tenant_jobs", "tenant_spend")

# KEYS: the set of labelled tenants. ARGV: tenant, cap. Returns the label to use.
_TENANT_LABEL_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return ARGV[1] end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return ARGV[1]
end
return '_other'
"""


class Metrics:
    """Increment shared counters; cheap enough to call on every transition."""

    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._tenant_label = redis.register_script(_TENANT_LABEL_LUA)

    async def tenant_job_finished(self, tenant: str, status: str, cost: float) -> None:
        label = str(
            await self._tenant_label(
                keys=[self.keys.metric("tenant_labels")], args=[tenant, MAX_TENANT_LABELS]
            )
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.keys.metric("tenant_jobs"), f"{label}{_SEP}{status}", 1)
            pipe.hincrbyfloat(self.keys.metric("tenant_spend"), label, cost)
            await pipe.execute()

    async def job_finished(self, provider: str, status: str) -> None:
        await self.redis.hincrby(self.keys.metric("jobs"), f"{provider}{_SEP}{status}", 1)

    async def provider_error(self, provider: str, code: str) -> None:
        await self.redis.hincrby(self.keys.metric("provider_errors"), f"{provider}{_SEP}{code}", 1)

    async def spend(self, provider: str, amount: float) -> None:
        if amount:
            await self.redis.hincrbyfloat(self.keys.metric("spend"), provider, amount)

    async def stage_durations(self, durations: Mapping[str, float]) -> None:
        """Observe each stage's seconds into its histogram (one round trip)."""
        key = self.keys.metric("stage_seconds")
        async with self.redis.pipeline(transaction=False) as pipe:
            for stage, seconds in durations.items():
                bucket = bisect.bisect_left(STAGE_BUCKETS, seconds)
                le = "+Inf" if bucket == len(STAGE_BUCKETS) else repr(STAGE_BUCKETS[bucket])
                pipe.hincrby(key, f"{stage}{_SEP}{le}", 1)
                pipe.hincrby(key, f"{stage}{_SEP}count", 1)
                pipe.hincrbyfloat(key, f"{stage}{_SEP}sum", seconds)
            await pipe.execute()


class _Snapshot(Collector):
    """A collector over values read from Redis just before rendering."""

    def __init__(
        self, raw: dict[str, dict[str, str]], queue_depth: Mapping[str, int], workers: int
    ):
        self.raw = raw
        self.queue_depth = queue_depth
        self.workers = workers

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        jobs = CounterMetricFamily(
            "reelforge_jobs", "Jobs that reached a terminal status", labels=["provider", "status"]
        )
        for field, value in self.raw["jobs"].items():
            provider, status = field.split(_SEP, 1)
            jobs.add_metric([provider, status], float(value))
        yield jobs

        errors = CounterMetricFamily(
            "reelforge_provider_errors", "Provider errors by code", labels=["provider", "code"]
        )
        for field, value in self.raw["provider_errors"].items():
            provider, code = field.split(_SEP, 1)
            errors.add_metric([provider, code], float(value))
        yield errors

        spend = CounterMetricFamily(
            "reelforge_spend_dollars", "Money spent at providers", labels=["provider"]
        )
        for provider, value in self.raw["spend"].items():
            spend.add_metric([provider], float(value))
        yield spend

        tenant_jobs = CounterMetricFamily(
            "reelforge_tenant_jobs",
            "Jobs that reached a terminal status, by tenant",
            labels=["tenant", "status"],
        )
        for field, value in self.raw["tenant_jobs"].items():
            tenant, status = field.split(_SEP, 1)
            tenant_jobs.add_metric([tenant, status], float(value))
        yield tenant_jobs

        tenant_spend = CounterMetricFamily(
            "reelforge_tenant_spend_dollars",
            "Money spent at providers, by tenant",
            labels=["tenant"],
        )
        for tenant, value in self.raw["tenant_spend"].items():
            tenant_spend.add_metric([tenant], float(value))
        yield tenant_spend

        yield from self._stage_histogram()

        depth = GaugeMetricFamily("reelforge_queue_depth", "Jobs waiting", labels=["queue"])
        for name, waiting in self.queue_depth.items():
            depth.add_metric([name], float(waiting))
        yield depth
        yield GaugeMetricFamily(
            "reelforge_workers", "Workers with a recent heartbeat", value=float(self.workers)
        )

    def _stage_histogram(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "reelforge_stage_duration_seconds", "Time spent in each stage", labels=["stage"]
        )
        stages: dict[str, dict[str, float]] = {}
        for field, value in self.raw["stage_seconds"].items():
            stage, part = field.split(_SEP, 1)
            stages.setdefault(stage, {})[part] = float(value)
        for stage, parts in sorted(stages.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound in [*(repr(b) for b in STAGE_BUCKETS), "+Inf"]:
                cumulative += parts.get(bound, 0.0)
                buckets.append((bound, cumulative))
            family.add_metric([stage], buckets, parts.get("sum", 0.0))
        yield family


async def render_metrics(
    redis: Redis, keys: Keys, queue_depth: Mapping[str, int], *, worker_window: float
) -> bytes:
    async with redis.pipeline(transaction=False) as pipe:
        for name in _HASHES:
            pipe.hgetall(keys.metric(name))
        pipe.zcount(keys.workers, time.time() - worker_window, "+inf")
        *hashes, workers = await pipe.execute()
    raw = dict(zip(_HASHES, hashes, strict=True))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(raw, queue_depth, int(workers)))
    return generate_latest(registry)
