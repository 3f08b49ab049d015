"""Per-provider limits and circuit breakers, shared by every worker through Redis.

* **Concurrency caps**: a sorted set of leases (video id → expiry). A worker takes a
  lease before submitting and renews it while the provider works; a dead worker's
  lease simply expires, so capacity is never lost for good.
* **Rate limits** (submits per minute): a sliding one-minute log of submit times.
* **Circuit breakers**: consecutive provider-side failures open the circuit; after
  a cool-down one trial is let through (half-open); its success closes it again.

Each check is one Lua script, so workers on any number of machines agree.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from reelforge.keys import Keys
from reelforge.settings import ProviderConfig

__all__ = ["BreakerState", "Capacity", "CircuitBreakers", "Grant"]

# KEYS: leases zset, submit-log zset. ARGV: video id, now, lease seconds,
# max concurrent (0 = none), per-minute limit (0 = none), unique member.
# Returns {granted (1/0), reason, retry_after_seconds}.
_ACQUIRE_LUA = """
local leases, log = KEYS[1], KEYS[2]
local video, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_jobs, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
local holding = redis.call('ZSCORE', leases, video)
if not holding and max_jobs > 0 and redis.call('ZCARD', leases) >= max_jobs then
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  return {0, 'concurrency', tostring(math.max(0.2, tonumber(first[2]) - now))}
end
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - 60)
  if redis.call('ZCARD', log) >= per_minute then
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    return {0, 'rate_limit', tostring(math.max(0.05, tonumber(oldest[2]) + 60 - now))}
  end
  redis.call('ZADD', log, now, ARGV[6])
  redis.call('EXPIRE', log, 120)
end
redis.call('ZADD', leases, now + lease, video)
return {1, '', '0'}
"""

# KEYS: breaker hash. ARGV: now, cooldown. Returns 1 if a call may go ahead.
_ALLOW_LUA = """
local b = KEYS[1]
local now, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HGET', b, 'state')
if not state or state == 'closed' then return 1 end
local opened = tonumber(redis.call('HGET', b, 'opened_at') or '0')
if state == 'open' and now - opened >= cooldown then
  redis.call('HSET', b, 'state', 'half_open', 'trial_at', tostring(now))
  return 1
end
if state == 'half_open' then
  -- One trial at a time; a trial that never reports back frees itself.
  local trial = tonumber(redis.call('HGET', b, 'trial_at') or '0')
  if now - trial >= cooldown then
    redis.call('HSET', b, 'trial_at', tostring(now))
    return 1
  end
end
return 0
"""

# KEYS: breaker hash. ARGV: now, threshold. Returns the new state.
_FAILURE_LUA = """
local b = KEYS[1]
local now, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local failures = redis.call('HINCRBY', b, 'failures', 1)
local state = redis.call('HGET', b, 'state') or 'closed'
if state == 'half_open' or failures >= threshold then
  redis.call('HSET', b, 'state', 'open', 'opened_at', tostring(now))
  return 'open'
end
return state
"""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    reason: str = ""  # "concurrency" | "rate_limit" when not granted
    retry_after: float = 0.0


class Capacity:
    """Concurrency leases and submit rate, per provider."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_seconds: float):
        self.redis = redis
        self.keys = keys
        self.lease_seconds = lease_seconds
        self._acquire = redis.register_script(_ACQUIRE_LUA)

    async def acquire(self, provider: str, config: ProviderConfig, video_id: str) -> Grant:
        """Take (or renew) the video's lease and, for a submit, a rate-limit slot."""
        granted, reason, retry_after = await self._acquire(
            keys=[self.keys.leases(provider), self.keys.submit_log(provider)],
            args=[
                video_id,
                time.time(),
                self.lease_seconds,
                config.max_concurrent_jobs or 0,
                config.requests_per_minute or 0,
                f"{video_id}:{secrets.token_hex(4)}",
            ],
        )
        return Grant(bool(granted), str(reason), float(retry_after))

    async def renew(self, provider: str, video_id: str) -> None:
        """Keep the lease while the provider works (XX: never re-create a released one)."""
        await self.redis.zadd(
            self.keys.leases(provider), {video_id: time.time() + self.lease_seconds}, xx=True
        )

    async def release(self, provider: str, video_id: str) -> None:
        await self.redis.zrem(self.keys.leases(provider), video_id)

    async def in_use(self, provider: str) -> int:
        await self.redis.zremrangebyscore(self.keys.leases(provider), "-inf", time.time())
        return await self.redis.zcard(self.keys.leases(provider))


@dataclass(frozen=True, slots=True)
class BreakerState:
    state: str  # closed | open | half_open
    failures: int


class CircuitBreakers:
    """One breaker per provider, its state in Redis so every worker agrees."""

    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._allow = redis.register_script(_ALLOW_LUA)
        self._failure = redis.register_script(_FAILURE_LUA)

    async def allow(self, provider: str, config: ProviderConfig) -> bool:
        allowed = await self._allow(
            keys=[self.keys.breaker(provider)],
            args=[time.time(), config.breaker_cooldown_seconds],
        )
        return bool(allowed)

    async def success(self, provider: str) -> None:
        await self.redis.hset(
            self.keys.breaker(provider), mapping={"state": "closed", "failures": 0}
        )

    async def failure(self, provider: str, config: ProviderConfig) -> str:
        state = await self._failure(
            keys=[self.keys.breaker(provider)], args=[time.time(), config.breaker_failures]
        )
        return str(state)

    async def state(self, provider: str) -> BreakerState:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.breaker(provider)))
        return BreakerState(raw.get("state", "closed"), int(raw.get("failures", 0)))
