"""Chaos: SIGKILL workers and the API (and restart Redis, or the object store) while
30 videos are in flight; no video may be lost, stay stuck, or run twice at the
provider per attempt.
The report is printed (``pytest -s`` shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import ChaosReport, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Failures the chaos may legitimately cause; each must still carry its code.
ALLOWED_FAILURES = frozenset(
    {"provider_unavailable", "provider_timeout", "deadline_exceeded", "service_unavailable"}
)


def _check(report: ChaosReport, allowed: frozenset[str] = ALLOWED_FAILURES) -> None:
    print("\n" + report.summary())
    assert report.submitted == report.jobs
    assert report.lost == []
    assert report.stuck == {}
    assert report.duplicate_jobs == {}
    assert report.extra_remote_jobs == {}
    assert report.unexpected_exits == []
    assert report.completed + len(report.failed) + report.cancelled == report.jobs
    assert report.cancelled == 0
    assert set(report.failed.values()) <= allowed, report.failure_details
    assert report.completed >= report.jobs * 0.9


async def test_killing_workers_the_api_and_the_object_store_loses_no_job(
    redis_url: str, tmp_path: Path
) -> None:
    """The scale-out layout: API and workers each on their own disk, sharing only
    Redis and a SeaweedFS bucket, which is SIGKILLed and restarted mid-run."""
    report = await run_chaos(
        jobs=30,
        seconds=20,
        seed=20260101,
        redis_restart=False,
        workdir=tmp_path,
        redis_url=redis_url,
        object_store=True,
    )
    _check(report)
    assert report.kills >= 5 and report.restarts == report.kills
    assert report.s3_restarts == 1
    assert report.bucket_problems == []  # no half file, no orphan, nothing missing


async def test_a_redis_restart_mid_run_loses_no_job(tmp_path: Path) -> None:
    report = await run_chaos(
        jobs=30,
        seconds=15,
        seed=20260102,
        redis_restart=True,
        workdir=tmp_path,
        redis_url=None,
    )
    _check(report)
    assert report.redis_restarts == 1


async def test_killing_workers_with_vendors_in_the_route_makes_no_extra_vendor_job(
    redis_url: str, tmp_path: Path
) -> None:
    # Runway, Luma, Veo, fal and Replicate take no idempotency key: only the submit
    # claim keeps a second run of a job from creating (and billing) a second vendor
    # job. Each takes two jobs at a time, so the route spreads the videos over all five.
    report = await run_chaos(
        jobs=20,
        seconds=15,
        seed=20260103,
        redis_restart=False,
        workdir=tmp_path,
        redis_url=redis_url,
        vendors=True,
    )
    _check(report)
    assert report.kills >= 3
    assert set(report.vendor_jobs) == {"runway", "luma", "veo", "fal", "replicate"}
    assert all(report.vendor_jobs.values()), report.vendor_jobs
    assert set(report.breakers.values()) == {"closed"}, report.breakers


async def test_killing_workers_running_the_local_provider_is_no_provider_failure(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL one of the two workers every 1.5-4 s while 30 local renders run: each
    job that dies with its worker is restarted, never charged to the provider."""
    report = await run_chaos(
        jobs=30,
        seconds=20,
        seed=20260104,
        redis_restart=False,
        workdir=tmp_path,
        redis_url=redis_url,
        provider="local",
    )
    print("\n" + report.summary())
    assert report.kills >= 4 and report.restarts == report.kills
    assert report.lost == [] and report.stuck == {} and report.unexpected_exits == []
    assert report.completed == report.jobs, report.failure_details
    assert report.provider_errors == {}
    assert report.breakers == {"local": "closed"}
    assert report.worker_restarts >= 1  # the kills did hit running jobs
