"""Signed links: file and event URLs in API answers open without an API key (for
``<video src>``, downloads and ``EventSource``); tampered or expired ones get 403."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets

from reelforge.links import LinkSigner
from reelforge.settings import Settings
from tests.service import Service, running_service

SMALL = {"prompt": "signed links", "duration_seconds": 1, "size": "160x90", "fps": 12}


@dataclass
class Keyed:
    service: Service
    anonymous: httpx.AsyncClient
    video: dict[str, Any]


@pytest.fixture
async def keyed(service_settings: Settings) -> AsyncIterator[Keyed]:
    async with running_service(service_settings) as svc:
        key = (await svc.runtime.tenants.create_key("links")).secret
        svc.client.headers["Authorization"] = f"Bearer {key}"
        created = await svc.client.post("/api/videos/generate", json=SMALL)
        assert created.status_code == 202
        video = await svc.wait_terminal(created.json()["id"])
        async with httpx.AsyncClient(base_url=svc.base_url) as anonymous:
            yield Keyed(svc, anonymous, video)


def _file_url(video: dict[str, Any], fmt: str) -> str:
    url: str = next(f["url"] for f in video["files"] if f["format"] == fmt)
    return url


async def test_a_files_signed_url_opens_without_a_key_with_range(keyed: Keyed) -> None:
    url = _file_url(keyed.video, "mp4")
    whole = await keyed.anonymous.get(url)
    part = await keyed.anonymous.get(url, headers={"Range": "bytes=0-99"})
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert part.status_code == 206 and len(part.content) == 100


async def test_the_same_path_without_a_signature_needs_a_key(keyed: Keyed) -> None:
    response = await keyed.anonymous.get(f"/api/videos/{keyed.video['id']}/content")
    assert response.status_code == 401


async def test_a_tampered_signature_is_refused_with_403(keyed: Keyed) -> None:
    url = _file_url(keyed.video, "mp4")
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    response = await keyed.anonymous.get(url.replace(sig, flipped))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_link"


async def test_a_later_expiry_with_the_old_signature_is_refused(keyed: Keyed) -> None:
    url = _file_url(keyed.video, "mp4")
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    response = await keyed.anonymous.get(url.replace(expires, str(int(expires) + 86_400)))
    assert response.status_code == 403


async def test_an_expired_link_is_refused_with_link_expired(keyed: Keyed) -> None:
    rt = keyed.service.runtime
    signer = LinkSigner(rt.links.secret, lifetime_seconds=60)
    query = signer.query(keyed.video["id"], "mp4", "links", now=time.time() - 3600)
    response = await keyed.anonymous.get(f"/api/videos/{keyed.video['id']}/content?{query}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "link_expired"


async def test_the_signed_events_link_streams_without_a_key(keyed: Keyed) -> None:
    events = []
    async with keyed.anonymous.stream("GET", keyed.video["links"]["events"]) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events[-1]["type"] == "completed"


async def test_the_signed_websocket_link_streams_without_a_key(keyed: Keyed) -> None:
    url = keyed.service.base_url.replace("http", "ws", 1) + keyed.video["links"]["ws"]
    received = []
    async with websockets.connect(url) as ws:
        async for message in ws:
            received.append(json.loads(message))
    assert received[-1]["type"] == "completed"


async def test_a_websocket_without_key_or_link_closes_with_4401(keyed: Keyed) -> None:
    url = keyed.service.base_url.replace("http", "ws", 1)
    async with websockets.connect(f"{url}/api/videos/{keyed.video['id']}/ws") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
