"""Opening Redis from REDIS_URL: plain URLs, and Sentinel failover with real
valkey-server processes (primary, replica, three sentinels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.redis_client import open_redis, parse_sentinel_url
from tests.redis_ha import sentinel_topology
from tests.service import wait_until


def test_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    target = parse_sentinel_url("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/cache/3")
    assert target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (target.service, target.db, target.password) == ("cache", 3, "pw")
    assert parse_sentinel_url("redis://127.0.0.1:6379/0") is None
    with pytest.raises(ValueError, match="service name"):
        parse_sentinel_url("redis+sentinel://127.0.0.1:26379")


async def test_a_plain_url_opens_a_blocking_pool(redis_url: str) -> None:
    client = open_redis(redis_url, max_connections=3, decode_responses=True)
    try:
        assert await client.ping()
        assert client.connection_pool.max_connections == 3
    finally:
        await client.aclose()


async def test_the_client_follows_the_primary_through_a_failover(tmp_path: Path) -> None:
    with sentinel_topology(tmp_path / "ha") as ha:
        client = open_redis(ha.url, max_connections=4, decode_responses=True)
        try:
            await client.set("before", "1")
            # Acknowledged by the replica: what a failover must not lose.
            assert await client.execute_command("WAIT", 1, 2000) == 1
            ha.kill_primary()
            ha.wait_for_failover()

            async def writes_again() -> bool:
                try:
                    await client.set("after", "2")
                except Exception:
                    return False
                return True

            await wait_until(writes_again, timeout=30)
            assert await client.get("before") == "1"
            _host, port = await client.connection_pool.get_master_address()  # type: ignore[attr-defined]
            assert port == ha.replica_port
        finally:
            await client.aclose()
