"""The event endpoints over real HTTP: SSE and WebSocket, the app under uvicorn.

Records and transitions are written straight through a Runtime (no workers), so
each test controls exactly which events exist when a client connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from reelforge.api.app import create_app
from reelforge.api.routers.events import sse_stream
from reelforge.events import EventHub
from reelforge.models import GenerationRequest, Stage
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.store import VideoRecord, new_video_id
from tests.service import serve_app, wait_until

pytestmark = pytest.mark.timeout(60)

UNKNOWN_ID = "video_" + "0" * 24


@dataclass
class Server:
    url: str
    runtime: Runtime
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def hub(self) -> EventHub:
        hub: EventHub = self.app.state.hub
        return hub


@pytest.fixture
async def server(service_settings: Settings) -> AsyncIterator[Server]:
    rt = await Runtime.open(service_settings)
    app = create_app(service_settings, runtime=rt)
    try:
        async with (
            serve_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            yield Server(url, rt, app, client)
    finally:
        await rt.close()


async def new_video(rt: Runtime) -> str:
    record = VideoRecord(
        id=new_video_id(),
        owner="default",
        request=GenerationRequest(prompt="paper boats on a canal"),
        provider="local",
    )
    await rt.store.create(record)
    return record.id


async def emit(rt: Runtime, video_id: str, count: int) -> int:
    seq = 0
    for i in range(count):
        seq = (await rt.store.transition(video_id, stage=Stage.GENERATING, progress=i + 1)).seq
    return seq


async def finish(rt: Runtime, video_id: str) -> int:
    result = await rt.store.transition(
        video_id, stage=Stage.COMPLETED, progress=100, event="completed"
    )
    return result.seq


@dataclass
class SseEvent:
    id: str
    event: str
    data: dict[str, Any]


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Events of a ``text/event-stream`` body; comments are skipped."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                yield SseEvent(fields["id"], fields["event"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def read_sse(
    server: Server, video_id: str, *, params: dict[str, str] | None = None, **headers: str
) -> tuple[httpx.Response, list[SseEvent]]:
    path = f"/api/videos/{video_id}/events"
    async with server.client.stream("GET", path, params=params, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response, []
        events = [event async for event in parse_sse(response.aiter_lines())]
    return response, events


async def test_sse_replays_every_event_and_ends_after_the_terminal_one(server: Server) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 3)
    last = await finish(server.runtime, video_id)

    response, events = await asyncio.wait_for(read_sse(server, video_id), 10)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert [e.id for e in events] == [str(seq) for seq in range(1, last + 1)]
    assert [e.event for e in events] == ["created", "stage", "stage", "stage", "completed"]
    assert all(e.data["seq"] == int(e.id) and e.data["type"] == e.event for e in events)


async def test_sse_after_yields_exactly_the_missed_events(server: Server) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 4)
    last = await finish(server.runtime, video_id)

    _, events = await read_sse(server, video_id, params={"after": "3"})

    assert [e.data["seq"] for e in events] == list(range(4, last + 1))


async def test_sse_last_event_id_wins_over_after(server: Server) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 4)
    last = await finish(server.runtime, video_id)

    _, events = await read_sse(server, video_id, params={"after": "1"}, **{"Last-Event-ID": "4"})

    assert [e.data["seq"] for e in events] == list(range(5, last + 1))


async def test_sse_follows_live_events_after_the_replay(server: Server) -> None:
    video_id = await new_video(server.runtime)
    path = f"/api/videos/{video_id}/events"
    async with server.client.stream("GET", path) as response:
        events = parse_sse(response.aiter_lines())
        first = await asyncio.wait_for(anext(events), 10)
        assert first.event == "created"
        await emit(server.runtime, video_id, 2)
        last = await finish(server.runtime, video_id)
        rest = await asyncio.wait_for(_collect(events), 10)

    assert [e.data["seq"] for e in rest] == list(range(2, last + 1))
    assert rest[-1].event == "completed"


async def _collect(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    return [event async for event in events]


async def test_sse_unknown_video_is_a_json_404(server: Server) -> None:
    response, _ = await read_sse(server, UNKNOWN_ID)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "headers", "param"),
    [
        ({"after": "-1"}, {}, "after"),
        ({"after": "three"}, {}, "after"),
        ({}, {"Last-Event-ID": "1.5"}, "Last-Event-ID"),
    ],
)
async def test_sse_bad_after_is_a_400(
    server: Server, params: dict[str, str], headers: dict[str, str], param: str
) -> None:
    video_id = await new_video(server.runtime)

    response, _ = await read_sse(server, video_id, params=params, **headers)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_after", param)


async def test_sse_sends_keepalive_comments_while_idle(runtime: object) -> None:
    rt = cast(Runtime, runtime)
    hub = EventHub(rt.redis, rt.keys)
    await hub.start()
    try:
        video_id = await new_video(rt)
        body = sse_stream(hub, video_id, 1, keepalive=0.05)
        async with contextlib.aclosing(body):
            chunk = await asyncio.wait_for(anext(body), 5)
    finally:
        await hub.stop()

    assert chunk == b": keepalive\n\n"


async def ws_messages(ws: ClientConnection) -> list[dict[str, Any]]:
    return [json.loads(message) async for message in ws]


async def test_ws_replays_after_and_closes_normally_after_the_terminal_event(
    server: Server,
) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 3)
    last = await finish(server.runtime, video_id)

    async with connect(f"{server.ws_url}/api/videos/{video_id}/ws?after=2") as ws:
        messages = await asyncio.wait_for(ws_messages(ws), 10)

    assert [m["seq"] for m in messages] == list(range(3, last + 1))
    assert ws.close_code == 1000


async def test_ws_follows_live_events(server: Server) -> None:
    video_id = await new_video(server.runtime)
    async with connect(f"{server.ws_url}/api/videos/{video_id}/ws") as ws:
        created = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert created["type"] == "created"
        await emit(server.runtime, video_id, 2)
        last = await finish(server.runtime, video_id)
        rest = await asyncio.wait_for(ws_messages(ws), 10)

    assert [m["seq"] for m in rest] == list(range(2, last + 1))
    assert ws.close_code == 1000


async def _close_code(url: str) -> tuple[int | None, str | None]:
    async with connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


async def test_ws_unknown_video_closes_with_4404(server: Server) -> None:
    code, reason = await _close_code(f"{server.ws_url}/api/videos/{UNKNOWN_ID}/ws")

    assert code == 4404
    assert reason


@pytest.mark.parametrize("query", ["after=-1", "after=x", "after=2.0"])
async def test_ws_bad_after_closes_with_4400(server: Server, query: str) -> None:
    video_id = await new_video(server.runtime)

    code, _ = await _close_code(f"{server.ws_url}/api/videos/{video_id}/ws?{query}")

    assert code == 4400


async def test_ws_malformed_video_id_closes_with_4400(server: Server) -> None:
    code, _ = await _close_code(f"{server.ws_url}/api/videos/not-a-video/ws")

    assert code == 4400


async def test_an_sse_client_that_leaves_is_detached_from_the_hub(server: Server) -> None:
    video_id = await new_video(server.runtime)
    async with server.client.stream("GET", f"/api/videos/{video_id}/events") as response:
        await asyncio.wait_for(anext(parse_sse(response.aiter_lines())), 10)
        assert server.hub.subscriber_count == 1

    await wait_until(lambda: _no_subscribers(server.hub), timeout=10)


async def test_a_ws_client_that_leaves_is_detached_from_the_hub(server: Server) -> None:
    video_id = await new_video(server.runtime)
    async with connect(f"{server.ws_url}/api/videos/{video_id}/ws") as ws:
        await asyncio.wait_for(ws.recv(), 10)
        assert server.hub.subscriber_count == 1

    await wait_until(lambda: _no_subscribers(server.hub), timeout=10)


async def _no_subscribers(hub: EventHub) -> bool:
    return hub.subscriber_count == 0 and hub.video_count == 0


async def test_closing_the_hubs_subscriptions_ends_sse_streams_cleanly(server: Server) -> None:
    video_id = await new_video(server.runtime)
    async with server.client.stream("GET", f"/api/videos/{video_id}/events") as response:
        events = parse_sse(response.aiter_lines())
        await asyncio.wait_for(anext(events), 10)
        server.hub.close_subscriptions()  # what a server that starts shutting down does
        rest = await asyncio.wait_for(_collect(events), 10)

    assert rest == []  # a complete body without a terminal event: the client resumes


async def test_closing_the_hubs_subscriptions_closes_websockets_with_1001(
    server: Server,
) -> None:
    video_id = await new_video(server.runtime)
    async with connect(f"{server.ws_url}/api/videos/{video_id}/ws") as ws:
        await asyncio.wait_for(ws.recv(), 10)
        server.hub.close_subscriptions()
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 10)

    assert ws.close_code == 1001


async def test_a_get_video_then_after_its_seq_streams_only_newer_events(server: Server) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 2)
    shown = (await server.client.get(f"/api/videos/{video_id}")).json()
    await emit(server.runtime, video_id, 2)
    last = await finish(server.runtime, video_id)

    _, events = await read_sse(server, video_id, params={"after": str(shown["seq"])})

    assert shown["seq"] == 3  # created (1), then two progress events
    assert [int(e.id) for e in events] == list(range(shown["seq"] + 1, last + 1))


async def test_the_status_object_carries_the_latest_seq_too(server: Server) -> None:
    video_id = await new_video(server.runtime)
    seq = await emit(server.runtime, video_id, 3)

    status = (await server.client.get(f"/api/videos/status/{video_id}")).json()

    assert status["seq"] == seq


async def test_ws_after_a_get_video_seq_sends_only_newer_events(server: Server) -> None:
    video_id = await new_video(server.runtime)
    await emit(server.runtime, video_id, 2)
    shown = (await server.client.get(f"/api/videos/{video_id}")).json()
    last = await finish(server.runtime, video_id)

    async with connect(f"{server.ws_url}/api/videos/{video_id}/ws?after={shown['seq']}") as ws:
        messages = await asyncio.wait_for(ws_messages(ws), 10)

    assert [m["seq"] for m in messages] == list(range(shown["seq"] + 1, last + 1))
