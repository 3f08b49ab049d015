"""Webhooks reelforge sends to its users when a video ends.

Events ``video.completed``, ``video.failed`` and ``video.cancelled``, each carrying
the video object, go to the request's ``webhook_url`` or else the tenant's default
one. They are signed the Standard Webhooks way (https://www.standardwebhooks.com):
``webhook-id`` (one per event, the same on every retry), ``webhook-timestamp``
(unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`` with the tenant's ``whsec_`` secret.

Delivery is a saq job on the ``webhooks`` queue, keyed by the event id, so it is
durable (a worker killed mid-delivery is swept and the job retried) and enqueued
at most once per event. A delivery that does not get a 2xx is retried with
exponential backoff (full jitter) up to ``webhook_max_attempts`` tries; a 2xx marks
the event delivered, and a delivered event is never sent again. Each attempt is
logged on the video (``webhook_deliveries``: attempt, status code, error, time;
the last of a run that gave up says ``gave_up``).

Attempts are numbered and bounded by a counter in Redis, not by saq's own count:
saq's sweep can hand a job that was just dequeued to a second worker, and two
runs of one try must neither reuse an attempt number nor both reach the target
(one attempt is sent at a time, under an expiring lock). Targets go through
:mod:`reelforge.net.urlguard` on every attempt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any, Final

import httpx
import structlog
from saq import Job, Queue, Worker
from saq.types import Context

from reelforge.errors import NotFoundError, ReelforgeError
from reelforge.models import VideoStatus
from reelforge.net.urlguard import guarded_request, policy_from_settings
from reelforge.runtime import Runtime
from reelforge.store import VideoRecord

__all__ = [
    "EVENT_TYPES",
    "deliver_webhook",
    "enqueue_webhook",
    "event_id_of",
    "sign_webhook",
    "webhook_worker",
]

log = structlog.get_logger("reelforge.webhooks")

EVENT_TYPES: Final = {
    VideoStatus.COMPLETED: "video.completed",
    VideoStatus.FAILED: "video.failed",
    VideoStatus.CANCELLED: "video.cancelled",
}
_DONE_TTL_SECONDS: Final = 30 * 86_400
_MAX_LOGGED: Final = 50

# KEYS: the video hash. ARGV: one delivery as JSON, cap. Appends it to the
# record's ``webhook_deliveries`` unless the record is gone (never recreate it).
_LOG_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'webhook_deliveries')
local log = (raw and raw ~= '') and cjson.decode(raw) or {}
table.insert(log, cjson.decode(ARGV[1]))
while #log > tonumber(ARGV[2]) do table.remove(log, 1) end
redis.call('HSET', KEYS[1], 'webhook_deliveries', cjson.encode(log))
return 1
"""


def event_id_of(video_id: str) -> str:
    # A video has exactly one terminal event, so its id names the event.
    return "msg_" + video_id.removeprefix("video_")


def sign_webhook(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a body (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _job_key(event_id: str) -> str:
    return f"deliver_webhook:{event_id}"


async def enqueue_webhook(rt: Runtime, record: VideoRecord) -> bool:
    """Queue the webhook of a video that just ended; False when none is due."""
    event_type = EVENT_TYPES.get(record.status)
    if event_type is None:
        return False
    url = record.request.webhook_url
    if url is None:
        url, _ = await rt.tenants.webhook_target(record.owner)
    if not url:
        return False
    settings = rt.settings
    event_id = event_id_of(record.id)
    if not await rt.redis.set(rt.keys.webhook_queued(event_id), "1", nx=True, ex=_DONE_TTL_SECONDS):
        return False
    job = await rt.queues.webhooks.enqueue(
        "deliver_webhook",
        key=_job_key(event_id),
        video_id=record.id,
        event_id=event_id,
        url=url,
        # A delivery takes at most webhook_timeout_seconds; a job silent for longer
        # lost its worker, and saq's sweep hands it to another.
        timeout=math.ceil(settings.webhook_timeout_seconds) + 10,
        heartbeat=math.ceil(settings.webhook_timeout_seconds) + 5,
        retries=2 * settings.webhook_max_attempts,  # our counter is the bound
        retry_delay=settings.webhook_initial_backoff_seconds,
        retry_backoff=settings.webhook_max_backoff_seconds,
    )
    return job is not None


def _payload(rt: Runtime, record: VideoRecord) -> bytes:
    from reelforge.api.schemas import present_video

    video = present_video(record, rt.links).model_dump(mode="json")
    body = {
        "type": EVENT_TYPES[record.status],
        "timestamp": record.updated_at,
        "data": video,
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def deliver_webhook(ctx: Context, *, video_id: str, event_id: str, url: str) -> str:
    """One delivery attempt (a saq job): raises to be retried unless it got a 2xx."""
    rt: Runtime = ctx["runtime"]  # type: ignore[typeddict-item]
    job = ctx.get("job")
    settings = rt.settings
    sending = rt.keys.webhook_sending(event_id)
    hold = math.ceil(settings.webhook_timeout_seconds) + 5
    if not await rt.redis.set(sending, "1", nx=True, ex=hold):
        # Another run of this job is sending right now (saq's sweep can start a
        # second one): try again later rather than deliver twice.
        raise WebhookNotDeliveredError("another attempt is in flight")
    try:
        return await _attempt(rt, job, video_id=video_id, event_id=event_id, url=url)
    finally:
        await rt.redis.delete(sending)


async def _attempt(rt: Runtime, job: Job | None, *, video_id: str, event_id: str, url: str) -> str:
    settings = rt.settings
    if await rt.redis.exists(rt.keys.webhook_done(event_id)):
        return "already delivered"
    try:
        record = await rt.store.get(video_id)
    except NotFoundError:
        return "video deleted"
    counter = rt.keys.webhook_attempts(event_id)
    attempt = int(await rt.redis.incr(counter))
    await rt.redis.expire(counter, _DONE_TTL_SECONDS)
    if attempt > settings.webhook_max_attempts:
        _stop_retrying(job)
        return "gave up"
    secret = await rt.tenants.webhook_secret(record.owner)
    body = _payload(rt, record)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "reelforge-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, event_id, timestamp, body),
    }
    entry: dict[str, Any] = {"attempt": attempt, "event_id": event_id, "at": time.time()}
    policy = policy_from_settings(settings, timeout=settings.webhook_timeout_seconds)
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            answer = await guarded_request(
                client,
                "POST",
                url,
                policy,
                headers=headers,
                content=body,
                follow_redirects=False,
                param="webhook_url",
            )
        entry["status_code"] = answer.status_code
    except ReelforgeError as exc:
        entry["status_code"] = None
        entry["error"] = {"code": exc.code, "message": exc.message}
    delivered = entry["status_code"] is not None and 200 <= entry["status_code"] < 300
    last = not delivered and attempt >= settings.webhook_max_attempts
    if delivered:
        await rt.redis.set(rt.keys.webhook_done(event_id), "1", ex=_DONE_TTL_SECONDS)
    if last:
        entry["gave_up"] = True
    await rt.redis.eval(_LOG_LUA, 1, rt.keys.video(video_id), json.dumps(entry), _MAX_LOGGED)
    log.info(
        "webhook attempt",
        video_id=video_id,
        tenant=record.owner,
        attempt=attempt,
        status_code=entry["status_code"],
        gave_up=last,
    )
    if delivered:
        return "delivered"
    if last:
        _stop_retrying(job)
    raise WebhookNotDeliveredError(f"attempt {attempt}: {entry}")


def _stop_retrying(job: Job | None) -> None:
    # Our counter says this was the last try: make saq record the job as failed
    # now instead of trying again (it retries while retries > attempts).
    if job is not None:
        job.retries = job.attempts


class WebhookNotDeliveredError(Exception):
    """Raised inside the saq job so that saq retries it later (with backoff)."""


def webhook_worker(rt: Runtime, queue: Queue, startup: Any, timers: Any) -> Worker[Any]:
    """The saq worker that delivers webhooks, for :class:`reelforge.worker.WorkerProcess`."""
    worker = Worker(
        queue,
        functions=[deliver_webhook],
        concurrency=rt.settings.webhook_concurrency,
        startup=startup,
        timers=timers,
        shutdown_grace_period_s=0,
    )
    worker.SIGNALS = []
    return worker
