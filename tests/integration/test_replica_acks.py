"""``redis_replica_acks``: with Redis replicas, a worker makes sure its submit claim and
the job id of a vendor that takes no idempotency key are on a replica (Redis WAIT)
before it goes on, so a failover right after cannot make it submit, and pay for,
the job again. A stalled replica delays the video by the WAIT timeout, never stops it.

A primary, a replica and three sentinels on loopback (tests/redis_ha.py); the service
reaches them through the ``redis+sentinel://`` URL; the Runway emulator is the vendor.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from reelforge.settings import ProviderConfig, Settings
from tests.emulators.runway import running_runway
from tests.emulators.vendor_common import VendorConfig
from tests.redis_ha import SentinelTopology, sentinel_topology
from tests.service import running_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = "replica-acks-test-key"
BODY = {"prompt": "a lighthouse at night", "duration_seconds": 5, "size": "1280x720"}


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[SentinelTopology]:
    with sentinel_topology(tmp_path / "redis-ha") as topology:
        yield topology


def _settings(base: Settings, ha: SentinelTopology, runway_url: str, **update: Any) -> Settings:
    runway = ProviderConfig(
        kind="runway",
        base_url=runway_url,
        api_key=KEY,  # type: ignore[arg-type]
        poll_interval_seconds=0.05,
        timeout_seconds=5,
        options={"model": "gen4.5"},
    )
    return base.model_copy(
        update={
            "redis_url": ha.url,
            "providers": {**base.providers, "runway": runway},
            "default_provider": "runway",
            **update,
        }
    )


def _wait_calls(port: int) -> int:
    client = sync_redis.Redis(port=port, socket_timeout=2)
    try:
        stats = client.info("commandstats")
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))
    finally:
        client.close()


async def _make_video(settings: Settings) -> dict[str, Any]:
    async with running_service(settings) as svc:
        response = await svc.client.post("/api/videos/generate", json=BODY)
        assert response.status_code == 202, response.text
        return await svc.wait_terminal(response.json()["id"], timeout=60)


async def test_the_claim_and_the_job_id_wait_for_a_replica(
    service_settings: Settings, ha: SentinelTopology
) -> None:
    async with running_runway(VendorConfig(api_key=KEY, job_seconds=0.3)) as runway:  # type: ignore[arg-type]
        settings = _settings(service_settings, ha, runway.base_url, redis_replica_acks=1)
        before = _wait_calls(ha.primary_port)
        video = await _make_video(settings)
        assert video["status"] == "completed", video["error"]
        assert runway.submits == 1
    # One WAIT after the submit claim, one after the stored job id.
    assert _wait_calls(ha.primary_port) - before == 2


async def test_without_the_setting_no_write_waits(
    service_settings: Settings, ha: SentinelTopology
) -> None:
    async with running_runway(VendorConfig(api_key=KEY, job_seconds=0.3)) as runway:  # type: ignore[arg-type]
        settings = _settings(service_settings, ha, runway.base_url)
        before = _wait_calls(ha.primary_port)
        video = await _make_video(settings)
        assert video["status"] == "completed", video["error"]
    assert _wait_calls(ha.primary_port) == before


async def test_a_stalled_replica_delays_the_video_but_does_not_stop_it(
    service_settings: Settings, ha: SentinelTopology, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_runway(VendorConfig(api_key=KEY, job_seconds=0.3)) as runway:  # type: ignore[arg-type]
        settings = _settings(
            service_settings, ha, runway.base_url, redis_replica_acks=1, redis_replica_ack_ms=200
        )
        replica = ha.procs["replica"].pid
        os.kill(replica, signal.SIGSTOP)
        try:
            video = await _make_video(settings)
        finally:
            os.kill(replica, signal.SIGCONT)
        assert video["status"] == "completed", video["error"]
        assert runway.submits == 1
    logged = capsys.readouterr().out
    assert "replica_ack_missing" in logged
    assert "write=submit_claim" in logged or '"write": "submit_claim"' in logged
