"""Per-tenant quotas and budgets, per-key request rate limits, and usage, in Redis.

Admission is one Lua script: it checks every quota of the tenant (concurrent jobs,
videos and seconds of video per UTC day, spend per month) and, only if all pass,
counts the new video against each, atomically. Any number of API processes agree,
and there is no check-then-act window: N concurrent creates against a quota of k
admit exactly k.

What an admission counted is kept per video (``tenant_reservations``) until the
video ends; then :meth:`Quotas.finish` frees its concurrency slot, replaces the
estimated cost by the actual one and adds the result to the tenant's usage. That
runs once per video (the reservation is taken atomically); an admission whose
release never comes (a lost worker) is forgotten after ``stale_after`` seconds.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast

from redis.asyncio import Redis

from reelforge.errors import BudgetExceededError, InvalidRequestError, QuotaExceededError
from reelforge.keys import Keys

__all__ = ["Admission", "Quotas", "RateLimitState", "UsageDay", "day_of", "month_of"]

_CONCURRENCY_RETRY_SECONDS: Final = 5
_USAGE_TTL_SECONDS: Final = 400 * 86_400
_MAX_USAGE_DAYS: Final = 366

# KEYS: tenant hash, jobs zset, reservations hash, day hash, month string.
# ARGV: video id, now, seconds, estimated cost, stale before, seconds to midnight,
# reservation JSON. Returns {admitted, code, limit, retry_after ("" = none)}.
_ADMIT_LUA = """
local tenant, jobs, resv, dayk, monthk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local vid, now, secs, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local stale, midnight = tonumber(ARGV[5]), ARGV[6]
local function limit(name)
  local v = redis.call('HGET', tenant, name)
  if v and v ~= '' then return tonumber(v) end
  return nil
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', jobs, '-inf', stale)) do
  redis.call('HDEL', resv, id)
end
redis.call('ZREMRANGEBYSCORE', jobs, '-inf', stale)
local max_jobs = limit('max_concurrent_jobs')
if max_jobs and redis.call('ZCARD', jobs) >= max_jobs then
  return {0, 'concurrent_jobs_exceeded', tostring(max_jobs), ARGV[8]}
end
local per_day = limit('videos_per_day')
if per_day and tonumber(redis.call('HGET', dayk, 'videos') or '0') + 1 > per_day then
  return {0, 'videos_per_day_exceeded', tostring(per_day), midnight}
end
local secs_per_day = limit('video_seconds_per_day')
if secs_per_day and tonumber(redis.call('HGET', dayk, 'seconds') or '0') + secs > secs_per_day then
  return {0, 'video_seconds_per_day_exceeded', tostring(secs_per_day), midnight}
end
local budget = limit('monthly_budget')
if budget then
  local spent = tonumber(redis.call('GET', monthk) or '0')
  if spent + cost > budget + 1e-9 then
    return {0, 'budget_exceeded', tostring(math.max(0, budget - spent)), ''}
  end
end
redis.call('ZADD', jobs, now, vid)
redis.call('HSET', resv, vid, ARGV[7])
redis.call('HINCRBY', dayk, 'videos', 1)
redis.call('HINCRBYFLOAT', dayk, 'seconds', secs)
redis.call('EXPIRE', dayk, 3 * 86400)
redis.call('INCRBYFLOAT', monthk, cost)
redis.call('EXPIRE', monthk, 62 * 86400)
return {1, '', '', ''}
"""

# KEYS: jobs zset, reservations hash, month string, usage hash (or the day hash
# when ARGV[2] == 'undo'), and for finish the day hash of the admission. ARGV:
# video id, mode (finish | undo), actual cost, provider, seconds, completed (1/0).
# Returns 1 when this call released it.
_RELEASE_LUA = """
local jobs, resv, monthk, other, dayk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local vid, mode = ARGV[1], ARGV[2]
local raw = redis.call('HGET', resv, vid)
if not raw then return 0 end
redis.call('HDEL', resv, vid)
redis.call('ZREM', jobs, vid)
local r = cjson.decode(raw)
if mode == 'undo' then
  redis.call('INCRBYFLOAT', monthk, -tonumber(r.cost))
  redis.call('HINCRBY', other, 'videos', -1)
  redis.call('HINCRBYFLOAT', other, 'seconds', -tonumber(r.seconds))
  return 1
end
local actual = tonumber(ARGV[3])
redis.call('INCRBYFLOAT', monthk, actual - tonumber(r.cost))
local p = ARGV[4]
if ARGV[6] == '1' then
  redis.call('HINCRBY', other, p .. '|videos', 1)
  redis.call('HINCRBYFLOAT', other, p .. '|seconds', tonumber(ARGV[5]))
elseif dayk and redis.call('EXISTS', dayk) == 1 then
  -- Nothing was delivered (failed, cancelled): the day's allowance is given back.
  redis.call('HINCRBY', dayk, 'videos', -1)
  redis.call('HINCRBYFLOAT', dayk, 'seconds', -tonumber(r.seconds))
end
redis.call('HINCRBYFLOAT', other, p .. '|spend', actual)
redis.call('EXPIRE', other, tonumber(ARGV[7]))
return 1
"""

# KEYS: the key's request log. ARGV: now, limit per minute, unique member.
# Returns {allowed, remaining, seconds until a slot frees}.
_RATE_LUA = """
local log, now, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - 60)
local used = redis.call('ZCARD', log)
if used >= limit then
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return {0, 0, tostring(math.max(0, tonumber(oldest[2]) + 60 - now))}
end
redis.call('ZADD', log, now, ARGV[3])
redis.call('EXPIRE', log, 61)
local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
return {1, limit - used - 1, tostring(math.max(0, tonumber(oldest[2]) + 60 - now))}
"""


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def _seconds_to_midnight(ts: float) -> int:
    now = datetime.fromtimestamp(ts, UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


_MESSAGES: Final = {
    "concurrent_jobs_exceeded": "the tenant already runs its {limit} concurrent jobs",
    "videos_per_day_exceeded": "the tenant's {limit} videos a day are used up",
    "video_seconds_per_day_exceeded": "the tenant's {limit} seconds of video a day are used up",
}


@dataclass(frozen=True, slots=True)
class Admission:
    video_id: str
    tenant: str


@dataclass(frozen=True, slots=True)
class RateLimitState:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        # draft-ietf-httpapi-ratelimit-headers: one named policy, quota per window.
        return {
            "RateLimit-Policy": f'"creates";q={self.limit};w=60',
            "RateLimit": f'"creates";r={self.remaining};t={self.reset_seconds}',
        }


@dataclass(frozen=True, slots=True)
class UsageDay:
    day: str
    providers: dict[str, dict[str, float]]


class Quotas:
    def __init__(self, redis: Redis, keys: Keys, *, stale_after: float):
        self.redis = redis
        self.keys = keys
        self.stale_after = stale_after
        self._admit = redis.register_script(_ADMIT_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._rate = redis.register_script(_RATE_LUA)

    async def admit(
        self, tenant: str, video_id: str, *, seconds: float, estimated_cost: float
    ) -> Admission:
        """Count a new video against the tenant's quotas, or raise the refusal."""
        now = time.time()
        reservation = json.dumps(
            {"seconds": seconds, "cost": estimated_cost, "month": month_of(now), "day": day_of(now)}
        )
        admitted, code, limit, retry_after = await self._admit(
            keys=[
                self.keys.tenant(tenant),
                self.keys.tenant_jobs(tenant),
                self.keys.tenant_reservations(tenant),
                self.keys.tenant_day(tenant, day_of(now)),
                self.keys.tenant_month(tenant, month_of(now)),
            ],
            args=[
                video_id,
                now,
                seconds,
                estimated_cost,
                now - self.stale_after,
                _seconds_to_midnight(now),
                reservation,
                _CONCURRENCY_RETRY_SECONDS,
            ],
        )
        if admitted:
            return Admission(video_id, tenant)
        if code == "budget_exceeded":
            raise BudgetExceededError(
                f"this video's estimated cost ({estimated_cost:g}) is more than the "
                f"{float(limit):g} left of the tenant's monthly budget"
            )
        raise QuotaExceededError(
            _MESSAGES[str(code)].format(limit=limit),
            code=str(code),
            retry_after=float(retry_after) if retry_after else None,
        )

    async def undo(self, admission: Admission) -> None:
        """Take back an admission whose video was not created after all."""
        raw = await self.redis.hget(
            self.keys.tenant_reservations(admission.tenant), admission.video_id
        )
        if raw is None:
            return
        month = json.loads(raw)["month"]
        day = day_of(time.time())
        await self._release(
            keys=[
                self.keys.tenant_jobs(admission.tenant),
                self.keys.tenant_reservations(admission.tenant),
                self.keys.tenant_month(admission.tenant, month),
                self.keys.tenant_day(admission.tenant, day),
            ],
            args=[admission.video_id, "undo", 0, "", 0, 0, 0],
        )

    async def finish(
        self,
        tenant: str,
        video_id: str,
        *,
        provider: str,
        seconds: float,
        cost: float,
        completed: bool,
    ) -> bool:
        """The video ended: free its slot, settle its cost, add it to usage (once).
        A video that delivered nothing gives its day's allowance back."""
        raw = await self.redis.hget(self.keys.tenant_reservations(tenant), video_id)
        if raw is None:
            return False
        now = time.time()
        reservation = json.loads(raw)
        released = await self._release(
            keys=[
                self.keys.tenant_jobs(tenant),
                self.keys.tenant_reservations(tenant),
                self.keys.tenant_month(tenant, reservation["month"]),
                self.keys.usage(tenant, day_of(now)),
                self.keys.tenant_day(tenant, reservation.get("day") or day_of(now)),
            ],
            args=[
                video_id,
                "finish",
                cost,
                provider,
                seconds,
                "1" if completed else "0",
                _USAGE_TTL_SECONDS,
            ],
        )
        return bool(released)

    async def running(self, tenant: str) -> int:
        return int(await self.redis.zcard(self.keys.tenant_jobs(tenant)))

    async def spent(self, tenant: str, month: str) -> float:
        return float(await self.redis.get(self.keys.tenant_month(tenant, month)) or 0)

    async def hit_rate_limit(self, key_id: str, per_minute: int) -> RateLimitState:
        """Count one create request of a key against its per-minute limit."""
        allowed, remaining, reset = await self._rate(
            keys=[self.keys.request_log(key_id)],
            args=[time.time(), per_minute, f"{time.time()}:{secrets.token_hex(4)}"],
        )
        return RateLimitState(
            allowed=bool(allowed),
            limit=per_minute,
            remaining=int(remaining),
            reset_seconds=max(1, math.ceil(float(reset))),
        )

    async def usage(self, tenant: str, start: date, end: date) -> list[UsageDay]:
        """Per day (inclusive range) and provider: videos, seconds, spend."""
        if end < start:
            raise InvalidRequestError("'to' is before 'from'", code="invalid_range", param="to")
        days = (end - start).days + 1
        if days > _MAX_USAGE_DAYS:
            raise InvalidRequestError(
                f"at most {_MAX_USAGE_DAYS} days at a time", code="invalid_range", param="to"
            )
        names = [(start + timedelta(days=i)).isoformat() for i in range(days)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.usage(tenant, name))
            rows = cast(list[dict[str, str]], await pipe.execute())
        result = []
        for name, row in zip(names, rows, strict=True):
            if not row:
                continue
            providers: dict[str, dict[str, Any]] = {}
            for field_name, value in row.items():
                provider, _, measure = field_name.rpartition("|")
                entry = providers.setdefault(provider, {"videos": 0, "seconds": 0.0, "spend": 0.0})
                entry[measure] = int(value) if measure == "videos" else round(float(value), 6)
            result.append(UsageDay(name, providers))
        return result
