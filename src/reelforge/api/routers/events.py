"""Live events of one video: ``GET …/events`` (Server-Sent Events) and ``WS …/ws``.

Both replay what the client missed (``Last-Event-ID`` or ``?after=SEQ``), follow live
events through the process's :class:`~reelforge.events.EventHub`, and end after the
terminal event. A stream that ends *without* a terminal event (the server is
stopping, or the client fell too far behind) is a cue to reconnect from the last
``seq`` received; browsers' ``EventSource`` does that by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated, Final

import structlog
from fastapi import APIRouter, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from reelforge.api.deps import HubDep, RuntimeDep, VideoId, record_by_link_or_key
from reelforge.api.schemas import error_responses
from reelforge.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ReelforgeError,
)
from reelforge.events import EventHub, EventHubClosedError, SlowSubscriberError, StreamEvent
from reelforge.runtime import Runtime
from reelforge.store import is_valid_video_id

__all__ = [
    "AFTER_PATTERN",
    "KEEPALIVE_SECONDS",
    "format_sse",
    "parse_after",
    "router",
    "sse_stream",
]

log = structlog.get_logger("reelforge.api.events")

router = APIRouter(tags=["events"])

KEEPALIVE_SECONDS: Final = 15.0
_SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# WebSocket close codes: 1xxx are the protocol's, 4xxx mirror our HTTP statuses.
WS_NORMAL: Final = 1000
WS_GOING_AWAY: Final = 1001
WS_INTERNAL_ERROR: Final = 1011
WS_TRY_AGAIN_LATER: Final = 1013
WS_BAD_REQUEST: Final = 4400
WS_UNAUTHORIZED: Final = 4401
WS_FORBIDDEN: Final = 4403
WS_NOT_FOUND: Final = 4404

# A seq as clients send it back: plain digits, at most 19 (Redis stream ids are 64-bit).
AFTER_PATTERN: Final = "^[0-9]{1,19}$"


def parse_after(value: str | None, *, param: str = "after") -> int:
    """A client's resume point: a non-negative integer seq, 0 when absent."""
    if value is None:
        return 0
    if not re.fullmatch(AFTER_PATTERN, value):
        raise InvalidRequestError(
            f"{param} must be an integer >= 0 (the seq of the last event received)",
            code="invalid_after",
            param=param,
        )
    return int(value)


def format_sse(event: StreamEvent) -> bytes:
    # The stored JSON is one line (no encoder we use emits newlines), so it fits one
    # ``data:`` field; forwarding it saves an encode per subscriber.
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {event.text}\n\n".encode()


async def sse_stream(
    hub: EventHub, video_id: str, after: int, *, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """The body of an SSE response: events, keep-alive comments while idle, then the end."""
    try:
        async with hub.subscribe(video_id, after, idle_after=keepalive) as events:
            while not events.finished:
                event = await events.next_or_idle()
                if event is None:
                    # A comment line keeps proxies and load balancers from closing an
                    # idle connection, and lets the server notice a vanished client.
                    yield b": keepalive\n\n"
                    continue
                # One write for everything already waiting: a stream that fell behind
                # (or a long replay) catches up in one send, not one per event.
                yield b"".join(map(format_sse, [event, *events.take_buffered()]))
            # Ending a response costs more than sending an event: let the video's other
            # subscribers send the terminal event before this one tears down.
            await asyncio.sleep(0)
    except (ReelforgeError, RedisError, OSError) as exc:
        # The headers are gone already: end the body cleanly, the client resumes.
        log.info("event stream ended early", video_id=video_id, reason=str(exc))


@router.get(
    "/api/videos/{video_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
        **error_responses(400, 403, 404, 503),
    },
)
async def stream_video_events(
    request: Request,
    video_id: VideoId,
    rt: RuntimeDep,
    hub: HubDep,
    after: Annotated[
        str | None,
        Query(
            description="replay events with a seq greater than this (a video's `seq`)",
            json_schema_extra={"pattern": AFTER_PATTERN},
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="what EventSource sends on reconnect; wins over `after`",
            json_schema_extra={"pattern": "^[0-9]{0,19}$"},
        ),
    ] = None,
    expires: Annotated[str | None, Query(max_length=16, description="of a signed link")] = None,
    sig: Annotated[str | None, Query(max_length=64, description="of a signed link")] = None,
) -> StreamingResponse:
    """Server-Sent Events: replay after ``Last-Event-ID`` (else ``?after``), then live.

    Opens with an API key, or without one through the signed ``links.events``."""
    start = parse_after(after)  # checked even when the header wins
    if last_event_id:
        start = parse_after(last_event_id, param="Last-Event-ID")
    # Before the stream starts, so a missing video is a JSON 404, not an empty stream.
    await record_by_link_or_key(request, rt, video_id, "events", expires, sig)
    return StreamingResponse(
        sse_stream(hub, video_id, start), media_type="text/event-stream", headers=_SSE_HEADERS
    )


@router.websocket("/api/videos/{video_id}/ws")
async def video_events_websocket(websocket: WebSocket, video_id: str) -> None:
    """Each event as a JSON text message; closes with 1000 after the terminal event.

    Opens with an API key, or without one through the signed ``links.ws``. Refusals
    arrive as close codes after the handshake (a refused handshake would only show
    the client a bare 403): 4400 bad ``after`` or id, 4401 no valid key, 4403 a bad
    signed link, 4404 unknown video (or another tenant's).
    """
    # HubDep/StoreDep read ``Request``, which a WebSocket route does not have.
    runtime: Runtime = websocket.app.state.runtime
    hub: EventHub = websocket.app.state.hub
    await websocket.accept()
    try:
        after = parse_after(websocket.query_params.get("after"))
        if not is_valid_video_id(video_id):
            raise InvalidRequestError(f"{video_id!r} is not a video id", code="invalid_id")
        params = websocket.query_params
        await record_by_link_or_key(
            websocket, runtime, video_id, "events", params.get("expires"), params.get("sig")
        )
    except InvalidRequestError as exc:
        await _close(websocket, WS_BAD_REQUEST, exc.message)
        return
    except AuthenticationError as exc:
        await _close(websocket, WS_UNAUTHORIZED, exc.message)
        return
    except PermissionDeniedError as exc:
        await _close(websocket, WS_FORBIDDEN, exc.message)
        return
    except NotFoundError:
        await _close(websocket, WS_NOT_FOUND, f"no video {video_id}")
        return
    except (RedisError, OSError):
        await _close(websocket, WS_INTERNAL_ERROR, "the job store is unreachable; retry")
        return
    await _forward_events(websocket, hub, video_id, after)


async def _forward_events(websocket: WebSocket, hub: EventHub, video_id: str, after: int) -> None:
    async def send_events() -> None:
        async with hub.subscribe(video_id, after) as events:
            async for event in events:
                await websocket.send_text(event.text)

    async def until_client_leaves() -> None:
        # Clients send nothing we need; reading is how a departure is noticed at once.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sender = asyncio.create_task(send_events())
    listener = asyncio.create_task(until_client_leaves())
    try:
        await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sender.cancel()
        listener.cancel()
        await asyncio.wait({sender, listener})
    error = None if sender.cancelled() else sender.exception()
    if not listener.cancelled():
        listener.exception()  # retrieved: a broken connection is a departure too
        return  # the client left: nobody to close for
    if error is None:
        await _close(websocket, WS_NORMAL, "stream ended")
    elif isinstance(error, SlowSubscriberError):
        await _close(websocket, WS_TRY_AGAIN_LATER, "too far behind; reconnect with after")
    elif isinstance(error, EventHubClosedError):
        await _close(websocket, WS_GOING_AWAY, "server stopping; reconnect with after")
    elif isinstance(error, WebSocketDisconnect | OSError):
        return
    else:
        log.warning("event websocket failed", video_id=video_id, error=repr(error))
        await _close(websocket, WS_INTERNAL_ERROR, "event stream failed; reconnect with after")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A close reason may hold at most 123 bytes.
    reason_bytes = reason.encode()[:123]
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason_bytes.decode(errors="ignore"))
