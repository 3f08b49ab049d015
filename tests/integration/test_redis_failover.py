"""Redis failover mid-run: a primary, a replica and three sentinels on loopback; the
API (``serve --workers 0``) and two workers reach Redis through a
``redis+sentinel://`` URL; the primary is SIGKILLed while 20 videos run.

Every video completes, none is lost or stuck, and none creates a second job at the
provider (counted at the OpenAI emulator, per idempotency key and per video). A
resubmit under the same key that the emulator answers with the same job costs
nothing and is only reported. The report is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import run_failover

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

VIDEOS = 20


async def test_a_primary_killed_mid_run_loses_no_video_and_makes_no_second_provider_job(
    tmp_path: Path,
) -> None:
    report = await run_failover(jobs=VIDEOS, workdir=tmp_path, seed=20260114)
    print("\n" + report.summary())
    assert report.failovers == 1
    assert report.in_flight_at_failover > 0  # the kill did land mid-run
    assert report.submitted == VIDEOS
    assert report.unexpected_exits == []
    assert report.lost == []
    assert report.stuck == {}
    assert report.completed == VIDEOS, report.failure_details
    # One provider job per video: no key made two, and no video got a second key.
    assert report.duplicate_jobs == {}
    assert report.extra_remote_jobs == {}
    assert report.attempts == {1: VIDEOS}
    # No worker died: turns that Redis cut short must not count as worker restarts.
    assert report.worker_restarts == 0
