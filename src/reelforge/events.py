"""Live video events for API clients: one Redis reader per process, fanned out.

Every transition appends an event to the video's stream (``keys.events``, entry id
``<seq>-0``, one field ``data`` holding the JSON event). An API process may have
thousands of WebSocket/SSE clients watching a handful of videos; opening an
``XREAD`` per client would cost a Redis connection each. :class:`EventHub` instead
runs *one* read loop per process::

    XREAD BLOCK <ms> STREAMS <wake> <events:v1> <events:v2> ... <wake-id> <id1> <id2> ...

over the videos that currently have subscribers, keeping a per-video position, and
hands each entry to every :class:`Subscription` of that video.

Subscribing is replay-then-follow. The subscription reads what the client missed
(``XRANGE`` from ``after + 1``), then joins the hub's feed for the video. Both run on
one event loop, so the hand-over is race-free without locks: after the replay's last
``await``, the subscription compares (synchronously) the hub's position for the
video with how far the replay reached, reads the gap again if the hub got ahead,
and registers only when no gap remains. Subscriptions also drop any event whose
``seq`` they have already seen, so an overlap never shows as a duplicate.

A video new to the hub would otherwise wait for the running ``XREAD`` to time out;
the hub therefore also reads a private "wake" stream (``keys.hub_wake(hub_id)``)
and a new subscription nudges it with an ``XADD``.

Each subscription buffers at most ``max_queued`` live events: one that falls
further behind is dropped (:class:`SlowSubscriberError`) instead of holding up
the others, and its client resumes from the last seq it received. When a read
fails (Redis restarting), the loop backs off and reads again from the same
positions; subscriptions stay attached and miss nothing.

The blocking ``XREAD`` runs on the hub's own connection, never on the shared
client: it would hold a pooled connection for seconds at a time, and the shared
client's socket timeout (redis-py's default is 5 s) would cut blocks short. The
reader connects to ``redis_url`` when given, else with the shared client's
connection settings, and in both cases with a socket timeout longer than a block.

Redis Cluster note: one ``XREAD`` over many keys needs them in one hash slot; the
hub targets a single Redis (or a primary), like the rest of reelforge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, cast

import structlog
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from reelforge.errors import InvalidRequestError, ServiceUnavailableError
from reelforge.keys import Keys
from reelforge.redis_client import open_redis

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "EventHub",
    "EventHubClosedError",
    "HubStats",
    "SlowSubscriberError",
    "StreamEvent",
    "Subscription",
    "is_terminal_event",
]

log = structlog.get_logger("reelforge.events")

TERMINAL_EVENT_TYPES: Final = frozenset({"completed", "failed", "cancelled"})

_WAKE_MAXLEN: Final = 10
_READ_BATCH: Final = 1000  # entries per stream per XREAD; bounds one reply's size
_BACKOFF_INITIAL: Final = 0.05
_BACKOFF_MAX: Final = 2.0
# Extra seconds the reader's socket waits beyond a block before calling Redis dead.
_SOCKET_SLACK: Final = 5.0


class SlowSubscriberError(ServiceUnavailableError):
    """The subscriber fell too far behind and was dropped; reconnect from its last seq."""

    code = "subscriber_too_slow"


class EventHubClosedError(ServiceUnavailableError):
    """The hub is not running (not started yet, or stopping with its process)."""

    code = "event_hub_closed"


def is_terminal_event(event: dict[str, Any]) -> bool:
    """Whether ``event`` ends its video's stream (completed, failed or cancelled)."""
    return event.get("type") in TERMINAL_EVENT_TYPES


@dataclass(slots=True)
class HubStats:
    """Counters for tests, benchmarks and metrics; they only ever grow."""

    reads: int = 0  # XREAD calls made by the read loop
    read_failures: int = 0  # XREAD calls that failed (Redis unreachable, restarting)
    wakes: int = 0  # nudges sent on the wake stream
    delivered: int = 0  # events handed to subscription buffers
    dropped: int = 0  # subscriptions dropped for falling behind


@dataclass(eq=False, slots=True)
class _Feed:
    """One watched video: how far the hub has read it, and who is listening."""

    position: int  # seq of the last entry handed to ``subscribers``
    subscribers: set[Subscription] = field(default_factory=set)


def _seq_of(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _stream_entries(reply: Any) -> Iterable[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """(stream, entries) pairs of an XREAD reply, in RESP2 (list) or RESP3 (dict) shape."""
    if not reply:
        return ()
    if isinstance(reply, dict):
        return cast(Iterable[tuple[str, list[tuple[str, dict[str, str]]]]], reply.items())
    return cast(Iterable[tuple[str, list[tuple[str, dict[str, str]]]]], reply)


class StreamEvent(dict[str, Any]):
    """One event as a dict, plus ``text``: the JSON it is stored as in its stream.

    Fan-out forwards ``text`` instead of encoding the same event once per subscriber.
    """

    __slots__ = ("text",)

    def __init__(self, data: dict[str, Any], text: str):
        super().__init__(data)
        self.text = text


def _decode(video_id: str, entry_id: str, fields: dict[str, str]) -> StreamEvent | None:
    try:
        text = fields["data"]
        data = json.loads(text)
    except (KeyError, TypeError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
        log.error("malformed event skipped", video_id=video_id, entry_id=entry_id)
        return None
    return StreamEvent(data, text)


class Subscription:
    """One consumer's view of one video's events: the replay, then live ones.

    Created by :meth:`EventHub.subscribe`; use it as an async context manager (entering
    replays and joins the hub; leaving detaches) and iterate it::

        async with hub.subscribe(video_id, after=seq) as events:
            async for event in events:
                ...

    Iteration ends after the terminal event (:attr:`finished` turns true). It raises
    :class:`SlowSubscriberError` when the hub dropped this subscription for falling
    behind, and :class:`EventHubClosedError` when the hub stopped; both only after
    every event already buffered, so the consumer can resume from the last seq it
    saw. Waiting may be cancelled without losing anything. Consumers that need a
    heartbeat subscribe with ``idle_after`` and loop on :meth:`next_or_idle`.
    """

    def __init__(
        self, hub: EventHub, video_id: str, after: int, *, idle_after: float | None = None
    ):
        self.video_id = video_id
        self._hub = hub
        self._high = after  # highest seq buffered so far: everything <= it is a duplicate
        self._replay: deque[StreamEvent] = deque()
        self._live: deque[StreamEvent] = deque()
        self._ready = asyncio.Event()
        self._error: Exception | None = None
        self._stream_over = False  # the terminal event is buffered, or no stream is left
        self._finished = False
        self._entered = False
        self._exited = False
        # Idle detection with one timer per subscription that re-arms itself, instead
        # of a timeout per wait: with hundreds of subscribers, a timer created and
        # cancelled per event per subscriber is a large share of the fan-out cost.
        self._idle_after = idle_after
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_due = False
        self._last_sent = 0.0

    @property
    def finished(self) -> bool:
        """True once nothing more will come: the terminal event has been returned, or
        the stream is gone (expired or deleted) and the replay is exhausted."""
        return self._finished or (self._stream_over and not self._replay and not self._live)

    async def __aenter__(self) -> Subscription:
        if self._entered:
            raise RuntimeError("a Subscription can be entered only once")
        self._entered = True
        hub = self._hub
        hub._ensure_running()
        events, end, over = await hub._read_since(self.video_id, self._high)
        self._buffer_replay(events, over)
        # From here to the registration there must be no await unless the loop starts
        # over: the hub's position can only move while this coroutine is suspended.
        while not self._stream_over:
            hub._ensure_running()
            feed = hub._feeds.get(self.video_id)
            if feed is None:
                hub._open_feed(self.video_id, self, position=end)
                break
            if feed.position <= end:
                feed.subscribers.add(self)
                break
            # The hub delivered entries past what the replay saw, before this
            # subscription was listening: read that gap, then check again.
            events, end, over = await hub._read_since(self.video_id, self._high)
            self._buffer_replay(events, over)
        if self._idle_after is not None:
            loop = asyncio.get_running_loop()
            self._last_sent = loop.time()
            self._idle_timer = loop.call_at(self._last_sent + self._idle_after, self._check_idle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEvent:
        """The next event; waits for a live one when none is buffered.

        Safe to cancel while waiting (e.g. under ``asyncio.timeout`` for a
        heartbeat): nothing is taken from the buffer until it is returned.
        """
        if self.finished:
            raise StopAsyncIteration
        if not self._entered or self._exited:
            raise RuntimeError("use the Subscription inside 'async with'")
        while (event := self._pop()) is None:
            if self._error is not None:
                raise self._error
            self._ready.clear()
            await self._ready.wait()
        return event

    async def next_or_idle(self) -> StreamEvent | None:
        """The next event, or ``None`` when none came for ``idle_after`` seconds.

        Meant for a loop ``while not events.finished``; without ``idle_after`` it
        never returns ``None``.
        """
        if self.finished:
            raise RuntimeError("the subscription has finished")
        if not self._entered or self._exited:
            raise RuntimeError("use the Subscription inside 'async with'")
        while (event := self._pop()) is None:
            if self._error is not None:
                raise self._error
            if self._idle_due:
                self._idle_due = False
                return None
            self._ready.clear()
            await self._ready.wait()
        return event

    def take_buffered(self) -> list[StreamEvent]:
        """The events already buffered, without waiting (none past the terminal one).

        A consumer that fell behind sends them in one write instead of one each.
        """
        taken: list[StreamEvent] = []
        while not self._finished and (event := self._pop()) is not None:
            taken.append(event)
        return taken

    def _pop(self) -> StreamEvent | None:
        if self._replay:
            event = self._replay.popleft()
        elif self._live:
            event = self._live.popleft()
        else:
            return None
        self._idle_due = False
        if self._idle_timer is not None:
            self._last_sent = asyncio.get_running_loop().time()
        if is_terminal_event(event):
            self._finished = True
            self._leave()
        return event

    def _check_idle(self) -> None:
        assert self._idle_after is not None  # noqa: S101 - only armed with idle_after
        loop = asyncio.get_running_loop()
        due = self._last_sent + self._idle_after
        if loop.time() >= due:
            self._idle_due = True
            self._last_sent = loop.time()  # the heartbeat counts as sent
            self._ready.set()
            due = self._last_sent + self._idle_after
        self._idle_timer = loop.call_at(due, self._check_idle)

    # -- called by the hub, synchronously, from its read loop ------------------------

    def _buffer_replay(self, events: list[StreamEvent], over: bool) -> None:
        for event in events:
            seq = int(event["seq"])
            if seq <= self._high:
                continue
            self._high = seq
            self._replay.append(event)
            if is_terminal_event(event):
                break
        # ``over`` also covers a client resuming after the terminal event, and a
        # stream that expired or was deleted: joining the hub would wait forever.
        self._stream_over = over

    def _offer(self, event: StreamEvent, seq: int, limit: int) -> bool:
        """Buffer a live event; False when the buffer is full (the hub then drops us)."""
        if seq <= self._high:
            return True  # already replayed
        if len(self._live) >= limit:
            return False
        self._high = seq
        self._live.append(event)
        self._stream_over = is_terminal_event(event)
        self._ready.set()
        return True

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._ready.set()

    def _leave(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._entered and not self._exited:
            self._exited = True
            self._hub._detach(self)


class EventHub:
    """Reads every watched video's event stream with one ``XREAD`` loop per process.

    ``redis`` is the process's shared client (replays and wake nudges use it);
    ``redis_url``, when given, is where the reader opens its own connection, else it
    copies the shared client's connection settings. ``block_ms`` bounds how long one
    ``XREAD`` blocks; ``max_queued`` is how many live events a subscriber may have
    waiting before it is dropped as too slow; ``max_concurrent_replays`` caps how
    many subscriptions read their replay from Redis at once.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        redis_url: str | None = None,
        block_ms: int = 5000,
        max_queued: int = 256,
        max_concurrent_replays: int = 16,
        hub_id: str | None = None,
    ):
        if min(block_ms, max_queued, max_concurrent_replays) < 1:
            raise ValueError("block_ms, max_queued and max_concurrent_replays must be >= 1")
        self.hub_id = hub_id or secrets.token_hex(6)
        self.stats = HubStats()
        self._redis = redis
        self._keys = keys
        self._redis_url = redis_url
        self._block_ms = block_ms
        self._max_queued = max_queued
        # One reply never holds more entries per video than a subscriber may have
        # queued, so a subscriber that keeps up between replies is never dropped.
        self._batch = min(_READ_BATCH, max_queued)
        self._wake_key = keys.hub_wake(self.hub_id)
        self._wake_last = "0-0"
        self._wake_pending = False
        self._feeds: dict[str, _Feed] = {}
        self._reader: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        # Replays use the shared pool, which refuses (not queues) past its size:
        # a crowd of clients reconnecting at once must not exhaust it.
        self._replay_slots = asyncio.Semaphore(max_concurrent_replays)

    @property
    def client_name(self) -> str:
        """The name the reader's connection carries in ``CLIENT LIST``."""
        return f"{self._keys.prefix}:hub:{self.hub_id}"

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def video_count(self) -> int:
        """Videos in the XREAD set (those with at least one subscriber)."""
        return len(self._feeds)

    @property
    def subscriber_count(self) -> int:
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    async def start(self) -> None:
        """Open the reader connection (lazily, on first read) and start the loop."""
        if self._task is not None:
            return
        self._stopping = False
        self._closing = False
        self._reader = self._open_reader()
        self._task = asyncio.create_task(self._read_loop(), name=f"event-hub-{self.hub_id}")

    async def stop(self) -> None:
        """Stop reading; every subscription ends with :class:`EventHubClosedError`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        pending = {task, *self._background}
        for pending_task in pending:
            pending_task.cancel()
        # Python 3.11's asyncio.wait_for, which redis-py sends commands with, can
        # swallow a cancellation that lands as the send completes; the loop then
        # blocks in XREAD. Closing the reader's socket ends that read for sure.
        if self._reader is not None:
            await self._reader.aclose()
            self._reader = None
        await asyncio.wait(pending)
        self.close_subscriptions()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._wake_key)

    def close_subscriptions(self) -> None:
        """End every subscription with :class:`EventHubClosedError`, and refuse new ones.

        For a server that begins to shut down: uvicorn waits for open responses to
        finish before the app's lifespan (and :meth:`stop`) runs, and an event stream
        only finishes with its video. Consumers end their streams cleanly and clients
        resume elsewhere from their last seq.
        """
        self._closing = True
        closed = EventHubClosedError("the server is stopping; reconnect to resume")
        for feed in self._feeds.values():
            for subscription in feed.subscribers:
                subscription._fail(closed)
        self._feeds.clear()

    def subscribe(
        self, video_id: str, after: int = 0, *, idle_after: float | None = None
    ) -> Subscription:
        """Events of ``video_id`` with ``seq > after``: the replay, then live ones.

        Returns a :class:`Subscription`, to be entered with ``async with`` and
        iterated. The caller checks that the video exists (and is the caller's):
        the hub only reads streams. ``idle_after`` (seconds) enables
        :meth:`Subscription.next_or_idle`, for consumers that send heartbeats.
        """
        if after < 0:
            raise InvalidRequestError("after must be >= 0", code="invalid_after", param="after")
        if idle_after is not None and idle_after <= 0:
            raise ValueError("idle_after must be positive")
        return Subscription(self, video_id, after, idle_after=idle_after)

    # -- internals shared with Subscription ---------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None or self._closing:
            raise EventHubClosedError("the event hub is not running")

    async def _read_since(self, video_id: str, after: int) -> tuple[list[StreamEvent], int, bool]:
        """Events with seq > ``after``; the seq the stream ended at when read; and
        whether the stream is over (its last event is terminal, or it is gone).

        One MULTI so the end is exactly where the range stopped: a new entry cannot
        fall between the two reads.
        """
        stream = self._keys.events(video_id)
        async with self._replay_slots, self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, min=f"{after + 1}-0", max="+")
            pipe.xrevrange(stream, max="+", min="-", count=1)
            entries, last = await pipe.execute()
        events = [
            event
            for entry_id, fields in entries
            if (event := _decode(video_id, entry_id, fields)) is not None
        ]
        if not last:
            return events, 0, True
        last_id, last_fields = last[0]
        final = _decode(video_id, last_id, last_fields)
        return events, _seq_of(last_id), final is not None and is_terminal_event(final)

    def _open_feed(self, video_id: str, subscription: Subscription, *, position: int) -> None:
        self._feeds[video_id] = _Feed(position=position, subscribers={subscription})
        self._request_wake()

    def _detach(self, subscription: Subscription) -> None:
        feed = self._feeds.get(subscription.video_id)
        if feed is None or subscription not in feed.subscribers:
            return
        feed.subscribers.discard(subscription)
        if not feed.subscribers:
            # No wake: the running XREAD may still return entries for it, which are
            # ignored; the next XREAD leaves the video out.
            del self._feeds[subscription.video_id]

    def _request_wake(self) -> None:
        """Make the running XREAD return so the next one includes a new video."""
        if self._wake_pending or self._task is None:
            return  # a nudge is on its way, or the next XREAD has not started yet
        self._wake_pending = True
        task = asyncio.create_task(self._send_wake())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_wake(self) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=_WAKE_MAXLEN, approximate=True)
                # The stream outlives a crashed process only briefly.
                pipe.expire(self._wake_key, max(60, 2 * self._block_ms // 1000))
                await pipe.execute()
            self.stats.wakes += 1
        except (RedisError, OSError) as exc:
            # The read loop picks the video up when its block times out anyway.
            log.warning("event hub wake failed", hub=self.hub_id, error=str(exc))

    # -- the read loop ----------------------------------------------------------------

    def _open_reader(self) -> Redis:
        options: dict[str, Any] = {
            "socket_timeout": self._block_ms / 1000 + _SOCKET_SLACK,
            "client_name": self.client_name,
            # The read loop owns retrying (it backs off forever); redis-py's own
            # retries would only hide an outage and slow down stop().
            "retry": Retry(NoBackoff(), 0),
        }
        if self._redis_url is not None:
            return open_redis(self._redis_url, max_connections=4, decode_responses=True, **options)
        shared = self._redis.connection_pool
        pool = ConnectionPool(
            connection_class=shared.connection_class, **{**shared.connection_kwargs, **options}
        )
        return Redis.from_pool(pool)

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None  # noqa: S101 - set by start() before the task runs
        failures = 0
        while not self._stopping:
            streams: dict[str, str] = {self._wake_key: self._wake_last}
            stream_video: dict[str, str] = {}
            for video_id, feed in self._feeds.items():
                stream = self._keys.events(video_id)
                streams[stream] = f"{feed.position}-0"
                stream_video[stream] = video_id
            # Every video subscribed from now on needs a nudge; earlier ones are in.
            self._wake_pending = False
            self.stats.reads += 1
            try:
                reply = await reader.xread(
                    cast(Any, streams), count=self._batch, block=self._block_ms
                )
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                self.stats.read_failures += 1
                if failures == 0:
                    log.warning("event hub read failed; retrying", hub=self.hub_id, error=str(exc))
                failures += 1
                await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_INITIAL * 2 ** (failures - 1)))
                continue
            if failures:
                log.info("event hub reading again", hub=self.hub_id, failed_reads=failures)
                failures = 0
            self._dispatch(reply, stream_video)

    def _dispatch(self, reply: Any, stream_video: dict[str, str]) -> None:
        for stream, entries in _stream_entries(reply):
            if stream == self._wake_key:
                if entries:
                    self._wake_last = entries[-1][0]
                continue
            video_id = stream_video.get(stream)
            feed = self._feeds.get(video_id) if video_id is not None else None
            if video_id is None or feed is None:
                continue  # everyone left while the XREAD was out
            for entry_id, fields in entries:
                seq = _seq_of(entry_id)
                if seq <= feed.position:
                    continue  # a newer feed for this video already starts past it
                feed.position = seq
                event = _decode(video_id, entry_id, fields)
                if event is None:
                    continue
                self._deliver(feed, event, seq)
                if is_terminal_event(event):
                    # Nothing follows a terminal event: stop reading this stream.
                    if self._feeds.get(video_id) is feed:
                        del self._feeds[video_id]
                    break

    def _deliver(self, feed: _Feed, event: StreamEvent, seq: int) -> None:
        for subscription in list(feed.subscribers):
            if subscription._offer(event, seq, self._max_queued):
                self.stats.delivered += 1
                continue
            feed.subscribers.discard(subscription)
            self.stats.dropped += 1
            log.warning(
                "slow event subscriber dropped",
                video_id=subscription.video_id,
                queued=self._max_queued,
            )
            subscription._fail(
                SlowSubscriberError(
                    f"fell more than {self._max_queued} events behind; "
                    "reconnect with the last seq received"
                )
            )
