"""The connections and services one process holds, opened and closed together.

API processes and workers both build a :class:`Runtime` from settings; nothing here
runs at import time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from redis.asyncio import Redis

from reelforge.callbacks import CallbackRegistry
from reelforge.errors import ServiceUnavailableError
from reelforge.keys import Keys
from reelforge.limits import Capacity, CircuitBreakers
from reelforge.links import LinkSigner, load_link_secret
from reelforge.metrics import Metrics
from reelforge.providers import Provider, build_provider
from reelforge.queue import Queues
from reelforge.quotas import Quotas
from reelforge.redis_client import open_redis
from reelforge.settings import Settings
from reelforge.storage import Storage, build_storage
from reelforge.store import VideoStore
from reelforge.tenants import Tenants
from reelforge.uploads import Uploads

__all__ = ["Runtime", "redis_url_of"]


def redis_url_of(settings: Settings) -> str:
    if settings.redis_url is None:
        raise ServiceUnavailableError("no Redis configured: set REDIS_URL (or use reelforge serve)")
    return settings.redis_url


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    keys: Keys
    store: VideoStore
    queues: Queues
    metrics: Metrics
    capacity: Capacity
    breakers: CircuitBreakers
    tenants: Tenants
    quotas: Quotas
    links: LinkSigner
    callbacks: CallbackRegistry
    # Finished files, uploads and the raw results handed between stages: the only
    # files processes share (local directory or S3 bucket).
    storage: Storage
    uploads: Uploads
    # This process's identity in worker turns: in-process providers' jobs live and
    # die with it, so a turn left by another instance means a dead worker.
    instance_id: str = field(default_factory=lambda: secrets.token_hex(8))
    _providers: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        url = redis_url_of(settings)
        # Bursts (1000 jobs polling, 500 SSE clients joining) must wait for a pooled
        # connection, not fail with "Too many connections".
        redis = open_redis(
            url, decode_responses=True, max_connections=settings.redis_max_connections, timeout=10
        )
        keys = Keys(settings.redis_prefix)
        queues = Queues.from_settings(settings, url)
        await queues.connect()
        secret = settings.link_secret.get_secret_value() if settings.link_secret else None
        storage = build_storage(settings)
        return cls(
            settings=settings,
            redis=redis,
            keys=keys,
            store=VideoStore(
                redis,
                keys,
                events_ttl=settings.events_ttl_seconds,
                idempotency_ttl=settings.idempotency_ttl_seconds,
            ),
            queues=queues,
            metrics=Metrics(redis, keys),
            capacity=Capacity(redis, keys, lease_seconds=3.0 * settings.job_heartbeat_seconds),
            breakers=CircuitBreakers(redis, keys),
            tenants=Tenants(redis, keys),
            # An admission is forgotten once its video is past any deadline.
            quotas=Quotas(redis, keys, stale_after=settings.job_deadline_seconds + 600),
            links=LinkSigner(
                await load_link_secret(redis, keys, secret), settings.media_link_seconds
            ),
            callbacks=CallbackRegistry(redis, keys, settings),
            storage=storage,
            uploads=Uploads(settings, storage, redis=redis, keys=keys),
        )

    def provider(self, name: str) -> Provider:
        """This process's instance of a provider, built on first use."""
        if name not in self._providers:
            self._providers[name] = build_provider(name, self.settings)
        return self._providers[name]

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        await self.queues.disconnect()
        await self.storage.aclose()
        await self.redis.aclose(close_connection_pool=True)
