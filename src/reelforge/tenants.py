"""Tenants and their API keys, in Redis.

A key is ``rf_`` + 43 URL-safe random characters (256 bits; the prefix lets secret
scanners find leaked ones). It is shown once, when created; Redis keeps only its
SHA-256 (a slow password hash buys nothing for a 256-bit random secret), mapped to
the key's id. The key's record holds its tenant, label and times. The tenant is the
owner of every record its keys create.

Authentication is on as soon as any key has been created (revoking every key does
not switch it off again: a server never silently falls back to open access).

A tenant's hash holds its quotas (see :mod:`reelforge.quotas`), its default
webhook URL and its webhook signing secret (``whsec_…``, shown once, when the
tenant's first key is created).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any, Final, cast

from redis.asyncio import Redis

from reelforge.errors import AuthenticationError, InvalidRequestError, NotFoundError
from reelforge.keys import Keys

__all__ = [
    "API_KEY_PREFIX",
    "ApiKey",
    "CreatedKey",
    "Principal",
    "TenantLimits",
    "Tenants",
    "check_tenant_name",
]

API_KEY_PREFIX: Final = "rf_"
_KEY_ID_PREFIX: Final = "key_"
_TENANT_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KEY_ID: Final = re.compile(r"^key_[0-9a-f]{16}$")
_KEY_SHAPE: Final = re.compile(r"^rf_[A-Za-z0-9_-]{43}$")
_LAST_USED_EVERY: Final = 60.0  # seconds: how stale ``last_used_at`` may get (one write a minute)


def check_tenant_name(name: str) -> str:
    if not _TENANT_NAME.match(name):
        raise InvalidRequestError(
            f"{name!r} is not a tenant name (1-63 of a-z, 0-9, _ and -, starting alnum)",
            code="invalid_tenant",
            param="tenant",
        )
    return name


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the tenant, and the key it came with (None: no keys)."""

    tenant: str
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """A tenant's quotas; None is unlimited."""

    max_concurrent_jobs: int | None = None
    videos_per_day: int | None = None
    video_seconds_per_day: float | None = None
    monthly_budget: float | None = None  # in the providers' price unit (USD)
    # Ended videos (and their files) are deleted this long after they ended; None:
    # the service's retention_seconds.
    retention_seconds: int | None = None

    def to_hash(self) -> dict[str, str]:
        return {f.name: _text(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TenantLimits:
        def number(name: str, kind: type[int] | type[float]) -> Any:
            value = raw.get(name) or ""
            return kind(value) if value else None

        return cls(
            max_concurrent_jobs=number("max_concurrent_jobs", int),
            videos_per_day=number("videos_per_day", int),
            video_seconds_per_day=number("video_seconds_per_day", float),
            monthly_budget=number("monthly_budget", float),
            retention_seconds=number("retention_seconds", int),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _text(value: float | None) -> str:
    return "" if value is None else repr(value)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> ApiKey:
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            name=raw.get("name", ""),
            created_at=float(raw["created_at"]),
            last_used_at=float(raw["last_used_at"]) if raw.get("last_used_at") else None,
            revoked_at=float(raw["revoked_at"]) if raw.get("revoked_at") else None,
        )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key; ``secret`` (and ``webhook_secret`` for a new tenant) are shown once."""

    key: ApiKey
    secret: str
    webhook_secret: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_webhook_secret() -> str:
    # Standard Webhooks secrets: "whsec_" + base64 of the raw key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Tenants:
    """Keys and tenants; every method is one or two Redis round trips."""

    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    async def auth_enabled(self) -> bool:
        return bool(await self.redis.zcard(self.keys.api_keys))

    async def create_key(
        self, tenant: str, *, name: str = "", limits: TenantLimits | None = None
    ) -> CreatedKey:
        check_tenant_name(tenant)
        if len(name) > 100 or not name.isprintable():
            raise InvalidRequestError(
                "a key's name is at most 100 printable characters", code="invalid_name"
            )
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=_KEY_ID_PREFIX + secrets.token_hex(8),
            tenant=tenant,
            name=name,
            created_at=time.time(),
            last_used_at=None,
            revoked_at=None,
        )
        tenant_key = self.keys.tenant(tenant)
        webhook_secret = new_webhook_secret()
        # A new tenant gets its webhook secret now; an existing one keeps its own.
        is_new = await self.redis.hsetnx(tenant_key, "webhook_secret", webhook_secret)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.keys.api_key(key.id),
                mapping={
                    "id": key.id,
                    "tenant": tenant,
                    "name": name,
                    "digest": _digest(secret),
                    "created_at": repr(key.created_at),
                },
            )
            pipe.set(self.keys.api_key_digest(_digest(secret)), key.id)
            pipe.zadd(self.keys.api_keys, {key.id: key.created_at})
            pipe.sadd(self.keys.tenants, tenant)
            if limits is not None:
                pipe.hset(tenant_key, mapping=cast(Any, limits.to_hash()))
            await pipe.execute()
        return CreatedKey(key=key, secret=secret, webhook_secret=webhook_secret if is_new else None)

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a presented key; AuthenticationError for any bad key."""
        invalid = AuthenticationError("the API key is not valid", code="invalid_api_key")
        if not _KEY_SHAPE.match(secret):
            raise invalid
        key_id = cast(str | None, await self.redis.get(self.keys.api_key_digest(_digest(secret))))
        if key_id is None:
            raise invalid
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.api_key(key_id)))
        if not raw or raw.get("revoked_at"):
            raise invalid
        now = time.time()
        if now - float(raw.get("last_used_at") or 0) > _LAST_USED_EVERY:
            await self.redis.hset(self.keys.api_key(key_id), "last_used_at", repr(now))
        return Principal(tenant=raw["tenant"], key_id=key_id)

    async def list_keys(self) -> list[ApiKey]:
        ids = cast(list[str], await self.redis.zrange(self.keys.api_keys, 0, -1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self.keys.api_key(key_id))
            rows = cast(list[dict[str, str]], await pipe.execute())
        return [ApiKey.from_hash(row) for row in rows if row]

    async def revoke(self, key_id: str) -> ApiKey:
        if not _KEY_ID.match(key_id):
            raise InvalidRequestError(f"{key_id!r} is not a key id", code="invalid_id")
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.api_key(key_id)))
        if not raw:
            raise NotFoundError(f"no API key {key_id}", code="not_found")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.api_key_digest(raw["digest"]))
            pipe.hsetnx(self.keys.api_key(key_id), "revoked_at", repr(time.time()))
            await pipe.execute()
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.api_key(key_id)))
        return ApiKey.from_hash(raw)

    async def limits(self, tenant: str) -> TenantLimits:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.tenant(tenant)))
        return TenantLimits.from_hash(raw)

    async def set_limits(self, tenant: str, changes: dict[str, float | None]) -> TenantLimits:
        """Change some quotas (None: unlimited); the others stay as they are."""
        check_tenant_name(tenant)
        if not await self.redis.sismember(self.keys.tenants, tenant):
            raise NotFoundError(f"no tenant {tenant}; create a key for it first")
        known = {f.name for f in fields(TenantLimits)}
        unknown = set(changes) - known
        if unknown:
            raise InvalidRequestError(f"unknown quotas {sorted(unknown)}", code="invalid_quota")
        for name, value in changes.items():
            if value is not None and value < 0:
                raise InvalidRequestError(f"{name} must be >= 0", code="invalid_quota", param=name)
        await self.redis.hset(
            self.keys.tenant(tenant), mapping={k: _text(v) for k, v in changes.items()}
        )
        return await self.limits(tenant)

    async def webhook_target(self, tenant: str) -> tuple[str | None, str | None]:
        """The tenant's default webhook URL and its signing secret."""
        url, secret = await self.redis.hmget(
            self.keys.tenant(tenant), ["webhook_url", "webhook_secret"]
        )
        return (str(url) if url else None), (str(secret) if secret else None)

    async def set_webhook_url(self, tenant: str, url: str | None) -> None:
        await self.redis.hset(self.keys.tenant(tenant), "webhook_url", url or "")

    async def webhook_secret(self, tenant: str) -> str:
        """The tenant's signing secret, made on first use (the single-tenant case)."""
        await self.redis.hsetnx(self.keys.tenant(tenant), "webhook_secret", new_webhook_secret())
        return str(await self.redis.hget(self.keys.tenant(tenant), "webhook_secret"))

    async def rotate_webhook_secret(self, tenant: str) -> str:
        """A new signing secret for the tenant (shown once); the old one stops at once."""
        check_tenant_name(tenant)
        secret = new_webhook_secret()
        await self.redis.hset(self.keys.tenant(tenant), "webhook_secret", secret)
        await self.redis.sadd(self.keys.tenants, tenant)
        return secret
