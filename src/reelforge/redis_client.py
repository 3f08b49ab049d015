"""Opening Redis from ``REDIS_URL``: a plain server, or a Sentinel-watched primary.

Every process opens its Redis clients here, so failover works the same everywhere
(API, workers, the event reader, queues).

* ``redis://[:password@]host:port/db`` (or ``rediss://``): one server, e.g. a
  managed Redis whose endpoint follows its primary.
* ``redis+sentinel://[:password@]host1:26379,host2:26379/SERVICE[/db]`` (or
  ``rediss+sentinel://``): ask the sentinels where the primary of ``SERVICE`` is;
  after a failover, connections are re-pointed to the new primary the next time
  they are used (the caller's retry, e.g. saq retrying a job, rides the gap).

Pools block when exhausted (bursts wait for a connection instead of failing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

__all__ = ["SentinelTarget", "open_redis", "parse_sentinel_url"]

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (finds the primary) with BlockingConnectionPool's waiting."""


class _SentinelManagedRedis(Redis):
    """A client of the primary that also closes its connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.sentinel_manager.sentinels if self.sentinel_manager else ():
            await client.aclose()


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    username: str | None = None
    ssl: bool = False


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The sentinel set of a ``redis+sentinel://`` URL, or None for a plain URL."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        return None
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        if not host:
            host, port = item, "26379"
        sentinels.append((host.strip("[]"), int(port)))
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError("a redis+sentinel:// URL needs the service name: .../SERVICE[/db]")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=unquote(segments[0]),
        db=int(segments[1]) if len(segments) > 1 else 0,
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
        ssl=parts.scheme.startswith("rediss"),
    )


def open_redis(url: str, *, max_connections: int, timeout: float = 10.0, **options: Any) -> Redis:
    """A client with a blocking pool of ``max_connections``; ``options`` are
    connection options (``decode_responses``, ``socket_connect_timeout``, ...)."""
    target = parse_sentinel_url(url)
    if target is None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
        return Redis.from_pool(pool)  # the client owns (and closes) its pool
    auth = {"password": target.password, "username": target.username}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={"socket_connect_timeout": 2.0, "socket_timeout": 2.0},
        **{k: v for k, v in auth.items() if v is not None},
    )
    client: _SentinelManagedRedis = sentinel.master_for(
        target.service,
        redis_class=_SentinelManagedRedis,
        connection_pool_class=BlockingSentinelConnectionPool,
        db=target.db,
        ssl=target.ssl,
        max_connections=max_connections,
        timeout=timeout,
        **options,
    )
    client.sentinel_manager = sentinel
    return client
