"""Durable video records in Redis, and the state machine's one write path.

A record is a hash (``keys.video``); the owner's index is a sorted set by creation
time; videos not yet terminal sit in ``keys.active``. Every change of stage or
progress goes through :meth:`VideoStore.transition`, one Lua script that checks the
move (terminal records never change, progress never decreases, an optional expected
stage guards against a stale worker), writes the fields, and appends the event to
the video's stream, all atomically: once a transition returns, Redis has it.

No write may bring back a deleted record: every write to a record (transitions,
plain fields, timings, worker turns) is a Lua script that first checks the record
exists, so a worker finishing late after a delete writes nothing. A record that
cannot be read (a partial hash left by an older version) is treated as absent and
logged, never raised as a bare ``KeyError``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pydantic
import structlog
from redis.asyncio import Redis

from reelforge.errors import ConflictError, NotFoundError
from reelforge.keys import Keys
from reelforge.models import GenerationRequest, Stage, VideoStatus

__all__ = [
    "STAGE_STATUS",
    "Attempt",
    "TransitionResult",
    "TurnClaim",
    "VideoRecord",
    "VideoStore",
    "is_valid_video_id",
    "new_video_id",
]

log = structlog.get_logger("reelforge.store")

VIDEO_ID_PREFIX = "video_"
_ID_HEX = 24

STAGE_STATUS: dict[Stage, VideoStatus] = {
    Stage.QUEUED: VideoStatus.QUEUED,
    Stage.SUBMITTING: VideoStatus.IN_PROGRESS,
    Stage.GENERATING: VideoStatus.IN_PROGRESS,
    Stage.DOWNLOADING: VideoStatus.IN_PROGRESS,
    Stage.PROCESSING: VideoStatus.IN_PROGRESS,
    Stage.VALIDATING: VideoStatus.IN_PROGRESS,
    Stage.COMPLETED: VideoStatus.COMPLETED,
    Stage.FAILED: VideoStatus.FAILED,
    Stage.CANCELLED: VideoStatus.CANCELLED,
}


def new_video_id() -> str:
    return VIDEO_ID_PREFIX + secrets.token_hex(_ID_HEX // 2)


def is_valid_video_id(value: str) -> bool:
    suffix = value.removeprefix(VIDEO_ID_PREFIX)
    return (
        value.startswith(VIDEO_ID_PREFIX)
        and len(suffix) == _ID_HEX
        and all(c in "0123456789abcdef" for c in suffix)
    )


@dataclass(slots=True)
class Attempt:
    """One try at a provider: what it was asked, what it answered, what it cost."""

    number: int
    provider: str
    idempotency_key: str
    started_at: float
    remote_id: str | None = None
    ended_at: float | None = None
    error: dict[str, Any] | None = None
    cost: float = 0.0
    validation: dict[str, Any] | None = None  # the quality report of its result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "provider": self.provider,
            "idempotency_key": self.idempotency_key,
            "remote_id": self.remote_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "cost": self.cost,
            "validation": self.validation,
        }


@dataclass(slots=True)
class VideoRecord:
    id: str
    owner: str
    request: GenerationRequest
    provider: str
    status: VideoStatus = VideoStatus.QUEUED
    stage: Stage = Stage.QUEUED
    progress: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None
    error: dict[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    cost: float = 0.0
    regenerated_from: str | None = None
    cancel_requested: bool = False
    route: list[str] = field(default_factory=list)  # providers to try, in order
    waiting_for: str | None = None  # rate_limit | concurrency | circuit_open
    seq: int = 0
    # Turns that ended with their worker process (killed, shut down): not the
    # provider's fault, so counted apart from attempts, with their own cap.
    worker_restarts: int = 0
    stage_durations: dict[str, float] = field(default_factory=dict)
    # Seconds spent inside provider calls and media steps (``time_<name>`` fields):
    # what is left of the wall time is the service's own overhead.
    timings: dict[str, float] = field(default_factory=dict)
    # What reelforge.prompts made of the prompt: processed_prompt, negative_prompt,
    # steps, ... (ProcessedPrompt.to_dict); None on records from before it existed.
    prompt_processing: dict[str, Any] | None = None
    # Webhook delivery attempts, appended by reelforge.webhooks.
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "owner": self.owner,
            "request": self.request.model_dump_json(),
            "provider": self.provider,
            "status": self.status.value,
            "stage": self.stage.value,
            "progress": str(self.progress),
            "created_at": repr(self.created_at),
            "updated_at": repr(self.updated_at),
            "stage_started_at": repr(self.updated_at),
            "completed_at": "" if self.completed_at is None else repr(self.completed_at),
            "error": _dump(self.error),
            "attempts": json.dumps([a.to_dict() for a in self.attempts]),
            "files": json.dumps(self.files),
            "validation": _dump(self.validation),
            "cost": repr(self.cost),
            "regenerated_from": self.regenerated_from or "",
            "cancel_requested": "1" if self.cancel_requested else "0",
            "route": json.dumps(self.route),
            "waiting_for": self.waiting_for or "",
            "seq": str(self.seq),
            "worker_restarts": str(self.worker_restarts),
            "stage_durations": json.dumps(self.stage_durations),
            "prompt_processing": _dump(self.prompt_processing),
        }

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> VideoRecord:
        return cls(
            id=raw["id"],
            owner=raw["owner"],
            request=GenerationRequest.model_validate_json(raw["request"]),
            provider=raw["provider"],
            status=VideoStatus(raw["status"]),
            stage=Stage(raw["stage"]),
            progress=int(raw["progress"]),
            created_at=float(raw["created_at"]),
            updated_at=float(raw["updated_at"]),
            completed_at=float(raw["completed_at"]) if raw.get("completed_at") else None,
            error=_load(raw.get("error")),
            attempts=[Attempt.from_dict(a) for a in json.loads(raw.get("attempts") or "[]")],
            files=json.loads(raw.get("files") or "[]"),
            validation=_load(raw.get("validation")),
            cost=float(raw.get("cost") or 0),
            regenerated_from=raw.get("regenerated_from") or None,
            cancel_requested=raw.get("cancel_requested") == "1",
            route=json.loads(raw.get("route") or "[]"),
            waiting_for=raw.get("waiting_for") or None,
            seq=int(raw.get("seq") or 0),
            worker_restarts=int(raw.get("worker_restarts") or 0),
            stage_durations=json.loads(raw.get("stage_durations") or "{}"),
            timings={
                k.removeprefix("time_"): float(v) for k, v in raw.items() if k.startswith("time_")
            },
            prompt_processing=_load(raw.get("prompt_processing")),
            webhook_deliveries=json.loads(raw.get("webhook_deliveries") or "[]"),
        )


# What a hash that is not a whole record raises when read (a field missing or garbled).
_MALFORMED = (KeyError, ValueError, TypeError, pydantic.ValidationError)


def _dump(value: Any) -> str:
    return "" if value is None else json.dumps(value)


def _load(value: str | None) -> Any:
    return json.loads(value) if value else None


@dataclass(frozen=True, slots=True)
class TurnClaim:
    """A worker's claim on a video for one queue's turn."""

    orphaned: bool  # the previous turn's worker went away without finishing it
    worker_restarts: int


@dataclass(frozen=True, slots=True)
class TransitionResult:
    applied: bool
    seq: int
    status: VideoStatus | None  # None: the record is gone
    stage: Stage | None


# KEYS: record, events stream, active set, owners with ended videos
# ARGV: patch JSON {stage?, status?, progress?, fields{}, type, data{}, expect_stage?,
#       expect_attempts?, now, events_ttl, terminal, ended_key (with "{owner}")}
_TRANSITION_LUA = """
local rec, stream, active = KEYS[1], KEYS[2], KEYS[3]
local p = cjson.decode(ARGV[1])
if redis.call('HEXISTS', rec, 'id') == 0 then return {0, 0, '', ''} end
local cur = redis.call('HMGET', rec, 'status', 'stage', 'progress', 'seq',
                       'stage_started_at', 'stage_durations', 'id')
local status, stage, progress, seq = cur[1], cur[2], tonumber(cur[3]), tonumber(cur[4])
if status == 'completed' or status == 'failed' or status == 'cancelled' then
  return {0, seq, status, stage}
end
if p.expect_stage and p.expect_stage ~= stage then return {0, seq, status, stage} end
if p.expect_attempts then
  -- A stage can come round again (a restarted attempt): the attempt count tells a
  -- stale worker's move from the current one's.
  local attempts = redis.call('HGET', rec, 'attempts')
  local n = 0
  if attempts and attempts ~= '' then n = #cjson.decode(attempts) end
  if n ~= p.expect_attempts then return {0, seq, status, stage} end
end
local new_progress = progress
if p.progress and p.progress > progress then new_progress = p.progress end
local new_stage = p.stage or stage
if p.type == 'progress' and new_progress == progress then return {0, seq, status, stage} end
local now = p.now
if new_stage ~= stage then
  local durations = cjson.decode(cur[6])
  local started = tonumber(cur[5]) or now
  durations[stage] = (durations[stage] or 0) + (now - started)
  redis.call('HSET', rec, 'stage_durations', cjson.encode(durations),
             'stage_started_at', tostring(now))
end
local new_status = p.status or status
seq = seq + 1
redis.call('HSET', rec, 'status', new_status, 'stage', new_stage,
           'progress', tostring(new_progress), 'seq', tostring(seq), 'updated_at', tostring(now))
for k, v in pairs(p.fields) do redis.call('HSET', rec, k, v) end
local event = p.data
event['seq'] = seq
event['type'] = p.type
event['video_id'] = cur[7]
event['status'] = new_status
event['stage'] = new_stage
event['progress'] = new_progress
event['at'] = now
redis.call('XADD', stream, tostring(seq) .. '-0', 'data', cjson.encode(event))
if p.terminal then
  redis.call('ZREM', active, cur[7])
  redis.call('EXPIRE', stream, p.events_ttl)
  -- The retention index, in the same step: an ended video is always in it.
  local owner = redis.call('HGET', rec, 'owner') or ''
  local ended = string.gsub(p.ended_key, '{owner}', function() return owner end)
  redis.call('ZADD', ended, now, cur[7])
  redis.call('SADD', KEYS[4], owner)
else
  redis.call('ZADD', active, now, cur[7])
end
return {1, seq, new_status, new_stage}
"""

# The guarded writes below all start like the transition: no record (a hash with an
# ``id``), no write; a partial hash left by an older version gets nothing added.
# KEYS: record. ARGV: fields JSON {name: string}.
_SET_FIELDS_LUA = """
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return 0 end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
return 1
"""

# KEYS: record. ARGV: field, seconds.
_ADD_TIMING_LUA = """
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: record. ARGV: turn field, holder. Returns {exists, orphaned, worker_restarts}.
# A turn field still naming another holder means that holder's process ended
# mid-turn (a clean turn clears it): count a worker restart on a live record.
_CLAIM_TURN_LUA = """
local rec = KEYS[1]
if redis.call('HEXISTS', rec, 'id') == 0 then return {0, 0, 0} end
local prev = redis.call('HGET', rec, ARGV[1])
local restarts = tonumber(redis.call('HGET', rec, 'worker_restarts') or '0') or 0
local orphaned = 0
if prev and prev ~= '' and prev ~= ARGV[2] then
  local status = redis.call('HGET', rec, 'status')
  if status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
    restarts = redis.call('HINCRBY', rec, 'worker_restarts', 1)
    orphaned = 1
  end
end
redis.call('HSET', rec, ARGV[1], ARGV[2])
return {1, orphaned, restarts}
"""

# KEYS: record. Returns the new count (0: no record).
_COUNT_RESTART_LUA = """
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'worker_restarts', 1)
"""

# KEYS: record. ARGV: turn field, holder.
_RELEASE_TURN_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], '')
end
return 1
"""

# KEYS: record, events stream, owner index, active set, idempotency key (or "")
# ARGV: record JSON (flat hash), created_ms, idempotency JSON, idem ttl, event JSON
_CREATE_LUA = """
local rec, stream, index, active, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then return existing end
end
local fields = cjson.decode(ARGV[1])
for k, v in pairs(fields) do redis.call('HSET', rec, k, v) end
redis.call('ZADD', index, ARGV[2], fields['id'])
redis.call('ZADD', active, fields['created_at'], fields['id'])
redis.call('XADD', stream, '1-0', 'data', ARGV[5])
if idem ~= '' then redis.call('SET', idem, ARGV[3], 'EX', ARGV[4]) end
return false
"""


def request_fingerprint(data: dict[str, Any]) -> str:
    """A stable hash of what a client sent, to tell a retry from a different request."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class VideoStore:
    """Reads and writes video records; knows nothing of HTTP or queues."""

    def __init__(self, redis: Redis, keys: Keys, *, events_ttl: int, idempotency_ttl: int):
        self.redis = redis
        self.keys = keys
        self._events_ttl = events_ttl
        self._idempotency_ttl = idempotency_ttl
        self._transition = redis.register_script(_TRANSITION_LUA)
        self._create = redis.register_script(_CREATE_LUA)
        self._set_fields = redis.register_script(_SET_FIELDS_LUA)
        self._add_timing = redis.register_script(_ADD_TIMING_LUA)
        self._claim_turn = redis.register_script(_CLAIM_TURN_LUA)
        self._release_turn = redis.register_script(_RELEASE_TURN_LUA)
        self._count_restart = redis.register_script(_COUNT_RESTART_LUA)

    def _parse(self, video_id: str, raw: dict[str, str]) -> VideoRecord | None:
        """The record in ``raw``, or None (logged) when the hash is not a whole record."""
        try:
            return VideoRecord.from_hash(raw)
        except _MALFORMED as exc:
            log.warning(
                "malformed video record",
                key=self.keys.video(video_id),
                fields=sorted(raw)[:20],
                error=f"{type(exc).__name__}: {exc}",
            )
            return None

    async def create(
        self,
        record: VideoRecord,
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> tuple[VideoRecord, bool]:
        """Store a new queued record; with an idempotency key, return the earlier one.

        Returns ``(record, created)``. The same key with a different fingerprint is a
        :class:`ConflictError`.
        """
        now = time.time()
        record.created_at = record.updated_at = now
        record.seq = 1
        idem_key = self.keys.idempotency(record.owner, idempotency_key) if idempotency_key else ""
        event = {
            "seq": 1,
            "type": "created",
            "video_id": record.id,
            "status": record.status.value,
            "stage": record.stage.value,
            "progress": 0,
            "at": now,
        }
        existing = await self._create(
            keys=[
                self.keys.video(record.id),
                self.keys.events(record.id),
                self.keys.owner_index(record.owner),
                self.keys.active,
                idem_key,
            ],
            args=[
                json.dumps(record.to_hash()),
                int(now * 1000),
                json.dumps({"video_id": record.id, "fingerprint": fingerprint}),
                self._idempotency_ttl,
                json.dumps(event),
            ],
        )
        if existing is None:
            return record, True
        earlier = json.loads(existing)
        if earlier["fingerprint"] != fingerprint:
            raise ConflictError(
                "Idempotency-Key was already used with a different request",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            )
        return await self.get(earlier["video_id"], owner=record.owner), False

    async def get(self, video_id: str, *, owner: str | None = None) -> VideoRecord:
        """The record, or NotFoundError (also when it belongs to another owner)."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.video(video_id)))
        record = self._parse(video_id, raw) if raw else None
        if record is None or (owner is not None and record.owner != owner):
            raise NotFoundError(f"no video {video_id}", param="id")
        return record

    async def exists(self, video_id: str) -> bool:
        """Whether a whole record is stored (a partial hash is not one)."""
        return bool(await self.redis.hexists(self.keys.video(video_id), "id"))

    async def page(
        self,
        owner: str,
        *,
        limit: int,
        after: str | None = None,
        status: VideoStatus | None = None,
        newest_first: bool = True,
    ) -> tuple[list[VideoRecord], bool]:
        """A page of the owner's videos and whether more follow.

        ``after`` is the id of the last video of the previous page (cursor).
        """
        index = self.keys.owner_index(owner)
        start = 0
        if after is not None:
            rank = cast(
                int | None,
                await (self.redis.zrevrank if newest_first else self.redis.zrank)(index, after),
            )
            if rank is None:
                # Well formed but not (or no longer) here: like any unknown id, a 404.
                raise NotFoundError(
                    f"unknown cursor {after!r}", code="cursor_not_found", param="after"
                )
            start = rank + 1
        page: list[VideoRecord] = []
        batch = max(limit * 2, 20)
        while True:
            read = self.redis.zrevrange if newest_first else self.redis.zrange
            ids = cast(list[str], await read(index, start, start + batch - 1))
            if not ids:
                return page, False
            async with self.redis.pipeline(transaction=False) as pipe:
                for video_id in ids:
                    pipe.hgetall(self.keys.video(video_id))
                raws: list[dict[str, str]] = await pipe.execute()
            for video_id, raw in zip(ids, raws, strict=True):
                # Empty: deleted between the two reads. None: malformed (logged).
                record = self._parse(video_id, raw) if raw else None
                if record is None:
                    continue
                if status is not None and record.status is not status:
                    continue
                if len(page) == limit:
                    return page, True
                page.append(record)
            start += batch

    async def transition(
        self,
        video_id: str,
        *,
        stage: Stage | None = None,
        progress: int | None = None,
        fields: dict[str, Any] | None = None,
        event: str = "stage",
        data: dict[str, Any] | None = None,
        expect_stage: Stage | None = None,
        expect_attempts: int | None = None,
    ) -> TransitionResult:
        """Apply one state-machine step atomically and emit its event.

        ``fields`` are extra record fields (JSON-encoded unless strings). Nothing is
        applied to a terminal record, or when ``expect_stage`` or ``expect_attempts``
        (the number of attempts stored) does not match.
        """
        status = STAGE_STATUS[stage] if stage is not None else None
        patch: dict[str, Any] = {
            "type": event,
            "fields": {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in (fields or {}).items()
            },
            "data": data or {},
            "now": time.time(),
            "events_ttl": self._events_ttl,
            "terminal": bool(status and status.is_terminal),
            "ended_key": self.keys.ended("{owner}"),
        }
        if stage is not None:
            patch["stage"] = stage.value
            patch["status"] = status.value if status else None
        if progress is not None:
            patch["progress"] = max(0, min(100, progress))
        if expect_stage is not None:
            patch["expect_stage"] = expect_stage.value
        if expect_attempts is not None:
            patch["expect_attempts"] = expect_attempts
        if status is not None and status.is_terminal:
            patch["fields"]["completed_at"] = repr(patch["now"])
        applied, seq, new_status, new_stage = await self._transition(
            keys=[
                self.keys.video(video_id),
                self.keys.events(video_id),
                self.keys.active,
                self.keys.ended_owners,
            ],
            args=[json.dumps(patch)],
        )
        return TransitionResult(
            applied=bool(applied),
            seq=int(seq),
            status=VideoStatus(new_status) if new_status else None,
            stage=Stage(new_stage) if new_stage else None,
        )

    async def set_fields(self, video_id: str, fields: dict[str, Any]) -> bool:
        """Write record fields that are not a transition (e.g. the attempts list).

        False, and nothing written, when the record is gone."""
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return bool(
            await self._set_fields(keys=[self.keys.video(video_id)], args=[json.dumps(encoded)])
        )

    async def add_timing(self, video_id: str, name: str, seconds: float) -> bool:
        """Add ``seconds`` to ``timings[name]``; False when the record is gone."""
        return bool(
            await self._add_timing(
                keys=[self.keys.video(video_id)], args=[f"time_{name}", repr(seconds)]
            )
        )

    async def claim_turn(self, video_id: str, queue: str, holder: str) -> TurnClaim | None:
        """Mark ``holder`` as working the video's ``queue`` turn; None if it is gone."""
        exists, orphaned, restarts = await self._claim_turn(
            keys=[self.keys.video(video_id)], args=[f"turn_{queue}", holder]
        )
        if not exists:
            return None
        return TurnClaim(orphaned=bool(orphaned), worker_restarts=int(restarts))

    async def count_worker_restart(self, video_id: str) -> int:
        """Count one more worker restart (a job lost with its worker); returns the total."""
        return int(await self._count_restart(keys=[self.keys.video(video_id)]))

    async def release_turn(self, video_id: str, queue: str, holder: str) -> None:
        """The turn ended cleanly (never creates the record)."""
        await self._release_turn(keys=[self.keys.video(video_id)], args=[f"turn_{queue}", holder])

    async def delete(
        self, video_id: str, *, owner: str, providers: list[str] | tuple[str, ...] = ()
    ) -> VideoRecord | None:
        """Remove the record, its events, index entries, provider leases and submit claims.

        A malformed hash of this owner (or of none) is removed too; returns None then.
        """
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.video(video_id)))
        record = self._parse(video_id, raw) if raw else None
        if record is not None and record.owner != owner:
            record = None
        if record is None and not (raw and raw.get("owner") in (None, owner)):
            raise NotFoundError(f"no video {video_id}", param="id")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.video(video_id), self.keys.events(video_id))
            pipe.zrem(self.keys.owner_index(owner), video_id)
            pipe.zrem(self.keys.ended(owner), video_id)
            pipe.zrem(self.keys.active, video_id)
            for provider in providers:
                pipe.zrem(self.keys.leases(provider), video_id)
            for attempt in record.attempts if record is not None else []:
                pipe.delete(self.keys.submit_claim(video_id, attempt.number))
            await pipe.execute()
        return record

    async def active_ids(self, *, idle_for: float = 0.0) -> list[str]:
        """Non-terminal videos not updated for ``idle_for`` seconds (oldest first)."""
        cutoff = time.time() - idle_for
        return cast(list[str], await self.redis.zrangebyscore(self.keys.active, "-inf", cutoff))
