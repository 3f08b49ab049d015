"""The GPU job service: a per-model queue of generation jobs in Redis.

The ``diffusers`` provider submits here and polls here; ``reelforge gpu-worker``
processes take jobs from here, one at a time each. Nothing is held only in a
process, so a GPU worker that dies loses nothing:

* a worker registers a heartbeat (``gpu_workers``, a sorted set) *before* it takes a
  job, and takes a job by moving its id atomically from the queue to its own
  ``gpu_claimed`` list (``BLMOVE``);
* :meth:`GpuJobs.reap` (run by every GPU worker and by every poll) finds workers
  whose heartbeat is older than the window and puts their claimed jobs back at the
  *front* of the queue, as ``queued`` again: another worker takes them next, and the
  service never sees a provider failure;
* a job's writes (progress, result) are accepted only from the worker that holds it,
  so a worker that was presumed dead cannot overwrite its successor's work.

Job states: ``queued -> running -> succeeded | failed | cancelled`` (a reaped job goes
back to ``queued``). Each state change is one Lua script. The scripts name keys they
derive from the prefix they are given, so the service needs one Redis (or one
Cluster hash slot), not a cluster of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final, cast

from redis.asyncio import Redis

from reelforge.keys import Keys
from reelforge.settings import Settings
from reelforge.storage import join_key

__all__ = [
    "GpuJob",
    "GpuJobs",
    "GpuWorkerInfo",
    "gpu_worker_window",
    "gpu_workers_by_provider",
    "job_output_key",
    "live_gpu_workers",
]

STEPS_MAXLEN: Final = 2000
_TERMINAL: Final = ("succeeded", "failed", "cancelled")

# KEYS: job, queue. ARGV: job id, then field/value pairs.
# A job that exists and did not fail or get cancelled is kept: same key, same job.
_SUBMIT_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'failed' and state ~= 'cancelled' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# KEYS: job, claimed list. ARGV: job id, worker id, now.
# Returns 'run', or why the claimed job is not to be run.
_START_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return 'gone'
end
if state ~= 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return state
end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'ended_at', ARGV[3])
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'started_at', ARGV[3])
return 'run'
"""

# KEYS: job, steps stream. ARGV: worker, step, steps, progress, stream maxlen.
_STEP_LUA = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'step', ARGV[2], 'steps', ARGV[3], 'progress', ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'step', ARGV[2], 'steps', ARGV[3])
return 1
"""

# KEYS: job, claimed list. ARGV: job id, worker, then field/value pairs (incl. state).
_FINISH_LUA = """
redis.call('LREM', KEYS[2], 0, ARGV[1])
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
"""

# KEYS: job, queue. ARGV: job id, now. Returns the state after the request.
_CANCEL_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return '' end
if state == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancel', '1', 'ended_at', ARGV[2])
  return 'cancelled'
end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_requested_at', ARGV[2])
end
return state
"""

# KEYS: workers zset, queue. ARGV: stale-before time, key prefix of the provider
# ("<prefix>:gpu:<provider>:"). Requeues the claimed jobs of stale workers.
_REAP_LUA = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local requeued = 0
for _, worker in ipairs(stale) do
  local claimed = ARGV[2] .. 'claimed:' .. worker
  while true do
    local id = redis.call('RPOP', claimed)
    if not id then break end
    local job = ARGV[2] .. 'job:' .. id
    local state = redis.call('HGET', job, 'state')
    if state == 'running' or state == 'queued' then
      if redis.call('HGET', job, 'cancel') == '1' then
        redis.call('HSET', job, 'state', 'cancelled')
      else
        redis.call('HSET', job, 'state', 'queued', 'worker', '', 'step', '0', 'progress', '0')
        redis.call('HINCRBY', job, 'requeues', 1)
        redis.call('LPUSH', KEYS[2], id)
        requeued = requeued + 1
      end
    end
  end
  redis.call('ZREM', KEYS[1], worker)
  redis.call('DEL', ARGV[2] .. 'worker:' .. worker)
end
return requeued
"""


@dataclass(frozen=True, slots=True)
class GpuJob:
    """A job as its hash holds it."""

    job_id: str
    state: str
    plan: dict[str, Any]
    step: int
    steps: int
    progress: int
    worker: str
    error_code: str | None
    error_message: str | None
    output: str | None
    requeues: int
    cancel_requested: bool
    fields: dict[str, str]

    @property
    def is_terminal(self) -> bool:
        return self.state in _TERMINAL

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str]) -> GpuJob:
        return cls(
            job_id=job_id,
            state=raw.get("state", ""),
            plan=json.loads(raw.get("plan") or "{}"),
            step=int(raw.get("step") or 0),
            steps=int(raw.get("steps") or 0),
            progress=int(raw.get("progress") or 0),
            worker=raw.get("worker", ""),
            error_code=raw.get("error_code") or None,
            error_message=raw.get("error_message") or None,
            output=raw.get("output") or None,
            requeues=int(raw.get("requeues") or 0),
            cancel_requested=raw.get("cancel") == "1",
            fields=raw,
        )


@dataclass(frozen=True, slots=True)
class GpuWorkerInfo:
    worker_id: str
    device: str
    last_beat: float
    job: str


def gpu_worker_window(settings: Settings) -> float:
    """A GPU worker whose heartbeat is older than this is taken for dead."""
    return max(1.0, settings.worker_heartbeat_seconds * 5)


def job_output_key(provider: str, job_id: str) -> str:
    """The storage key of a finished job's MP4: the GPU worker puts it there, the
    provider's ``download`` takes it (storage is shared, local or S3)."""
    return join_key("gpu", provider, f"{job_id}.mp4")


def _pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class GpuJobs:
    """One provider's GPU job queue. ``window``: a worker silent this long is dead."""

    def __init__(self, redis: Redis, keys: Keys, provider: str, *, window: float):
        self.redis = redis
        self.keys = keys
        self.provider = provider
        self.window = window
        self._submit = redis.register_script(_SUBMIT_LUA)
        self._start = redis.register_script(_START_LUA)
        self._step = redis.register_script(_STEP_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._cancel = redis.register_script(_CANCEL_LUA)
        self._reap = redis.register_script(_REAP_LUA)

    def _job_key(self, job_id: str) -> str:
        return self.keys.gpu_job(self.provider, job_id)

    # -- the provider's side --------------------------------------------------

    async def submit(self, job_id: str, plan: dict[str, Any]) -> bool:
        """Queue a job; ``False`` when a job under this id already exists (kept)."""
        fields = {
            "state": "queued",
            "plan": json.dumps(plan),
            "created_at": repr(time.time()),
            "step": "0",
            "steps": str(plan.get("steps", 0)),
            "progress": "0",
            "requeues": "0",
        }
        created = await self._submit(
            keys=[self._job_key(job_id), self.keys.gpu_queue(self.provider)],
            args=[job_id, *_pairs(fields)],
        )
        return bool(created)

    async def get(self, job_id: str) -> GpuJob | None:
        raw = cast(dict[str, str], await self.redis.hgetall(self._job_key(job_id)))
        return GpuJob.from_hash(job_id, raw) if raw else None

    async def cancel(self, job_id: str) -> str:
        """Cancel a queued job at once, or ask its worker to stop at the next step."""
        state = await self._cancel(
            keys=[self._job_key(job_id), self.keys.gpu_queue(self.provider)],
            args=[job_id, repr(time.time())],
        )
        return str(state)

    async def steps(self, job_id: str) -> list[tuple[int, int]]:
        """Every step a worker reported for the job, in order: ``(step, steps)``."""
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(self.keys.gpu_steps(self.provider, job_id)),
        )
        return [(int(fields["step"]), int(fields["steps"])) for _, fields in entries]

    async def delete(self, job_id: str) -> None:
        await self.redis.delete(self._job_key(job_id), self.keys.gpu_steps(self.provider, job_id))

    # -- both sides -----------------------------------------------------------

    async def reap(self) -> int:
        """Give the jobs of dead workers back to the queue; how many went back."""
        prefix = self.keys.gpu_queue(self.provider).removesuffix("queue")
        requeued = await self._reap(
            keys=[self.keys.gpu_workers(self.provider), self.keys.gpu_queue(self.provider)],
            args=[repr(time.time() - self.window), prefix],
        )
        return int(requeued)

    async def live_workers(self) -> list[GpuWorkerInfo]:
        return await live_gpu_workers(self.redis, self.keys, self.provider, window=self.window)

    async def queue_length(self) -> int:
        return int(await self.redis.llen(self.keys.gpu_queue(self.provider)))

    # -- the GPU worker's side -------------------------------------------------

    async def beat(self, worker_id: str, *, device: str, job: str = "") -> None:
        now = time.time()
        info = self.keys.gpu_worker(self.provider, worker_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.gpu_workers(self.provider), {worker_id: now})
            pipe.hset(info, mapping={"device": device, "job": job})
            pipe.expire(info, max(1, int(self.window * 4)))
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        """A worker stopping cleanly: its claimed job (if any) goes back at once."""
        await self.redis.zadd(self.keys.gpu_workers(self.provider), {worker_id: 0})
        await self.reap()

    async def take(self, worker_id: str, *, wait_seconds: float) -> str | None:
        """Block up to ``wait_seconds`` for a queued job; move it to this worker's claims."""
        job_id = await self.redis.blmove(
            self.keys.gpu_queue(self.provider),
            self.keys.gpu_claimed(self.provider, worker_id),
            cast(int, wait_seconds),  # redis-py types it int; Redis takes seconds as float
            "LEFT",
            "RIGHT",
        )
        return str(job_id) if job_id is not None else None

    async def start(self, job_id: str, worker_id: str) -> str:
        """``"run"`` when this worker now runs the job; else why not (it is dropped)."""
        verdict = await self._start(
            keys=[self._job_key(job_id), self.keys.gpu_claimed(self.provider, worker_id)],
            args=[job_id, worker_id, repr(time.time())],
        )
        return str(verdict)

    async def record_step(self, job_id: str, worker_id: str, *, step: int, steps: int) -> bool:
        progress = min(99, step * 100 // max(1, steps))
        accepted = await self._step(
            keys=[self._job_key(job_id), self.keys.gpu_steps(self.provider, job_id)],
            args=[worker_id, step, steps, progress, STEPS_MAXLEN],
        )
        return bool(accepted)

    async def cancel_requested(self, job_id: str) -> bool:
        return await self.redis.hget(self._job_key(job_id), "cancel") == "1"

    async def finish(self, job_id: str, worker_id: str, state: str, **fields: str) -> bool:
        """End the job this worker holds (``succeeded``/``failed``/``cancelled``)."""
        values = {"state": state, "ended_at": repr(time.time()), **fields}
        if state == "succeeded":
            values["progress"] = "100"
        done = await self._finish(
            keys=[self._job_key(job_id), self.keys.gpu_claimed(self.provider, worker_id)],
            args=[job_id, worker_id, *_pairs(values)],
        )
        return bool(done)


async def live_gpu_workers(
    redis: Redis, keys: Keys, provider: str, *, window: float
) -> list[GpuWorkerInfo]:
    """The provider's GPU workers that beat within ``window`` seconds (for /readyz and
    ``GET /api/providers``): id, device, last heartbeat and the job it runs."""
    beats = cast(
        list[tuple[str, float]],
        await redis.zrangebyscore(
            keys.gpu_workers(provider), time.time() - window, "+inf", withscores=True
        ),
    )
    workers = []
    for worker_id, last_beat in beats:
        info = cast(dict[str, str], await redis.hgetall(keys.gpu_worker(provider, worker_id)))
        workers.append(
            GpuWorkerInfo(
                worker_id=str(worker_id),
                device=info.get("device", ""),
                last_beat=float(last_beat),
                job=info.get("job", ""),
            )
        )
    return workers


async def gpu_workers_by_provider(
    redis: Redis, keys: Keys, settings: Settings
) -> dict[str, list[GpuWorkerInfo]]:
    """Every configured ``diffusers`` provider and its live GPU workers (an empty list:
    none, so its videos wait). What ``/readyz`` and ``GET /api/providers`` show."""
    window = gpu_worker_window(settings)
    return {
        name: await live_gpu_workers(redis, keys, name, window=window)
        for name, config in sorted(settings.providers.items())
        if config.kind == "diffusers"
    }
