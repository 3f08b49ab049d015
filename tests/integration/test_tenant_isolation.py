"""Two tenants on one server: every route answers another tenant's video with 404,
and lists and usage never show it. Real app, Redis, worker and local renderer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from reelforge.settings import Settings
from reelforge.tenants import TenantLimits
from tests.service import Service, running_service, wait_until

SMALL = {"duration_seconds": 1, "size": "160x90", "fps": 12}


@dataclass
class TwoTenants:
    service: Service
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    alice_key: str
    bob_key: str
    video: dict[str, Any]  # alice's, completed


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def tenants(service_settings: Settings) -> AsyncIterator[TwoTenants]:
    async with running_service(service_settings) as svc:
        rt = svc.runtime
        alice_key = (await rt.tenants.create_key("alice", name="a")).secret
        bob_key = (await rt.tenants.create_key("bob", limits=TenantLimits())).secret
        async with (
            httpx.AsyncClient(base_url=svc.base_url, headers=bearer(alice_key)) as alice,
            httpx.AsyncClient(base_url=svc.base_url, headers=bearer(bob_key)) as bob,
        ):
            created = await alice.post(
                "/api/videos/generate", json={"prompt": "alice's secret garden", **SMALL}
            )
            assert created.status_code == 202, created.text
            video_id = created.json()["id"]
            svc.client.headers.update(bearer(alice_key))
            await svc.wait_terminal(video_id)
            video = (await alice.get(f"/api/videos/{video_id}")).json()
            assert video["status"] == "completed"
            yield TwoTenants(svc, alice, bob, alice_key, bob_key, video)


# (method, path template, body): every route that names a video.
VIDEO_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/videos/status/{id}", None),
    ("GET", "/api/videos/{id}", None),
    ("GET", "/api/videos/{id}/content?format=mp4", None),
    ("GET", "/api/videos/{id}/content?format=thumbnail", None),
    ("GET", "/api/videos/{id}/events", None),
    ("POST", "/api/videos/{id}/regenerate", {}),
    ("POST", "/api/videos/{id}/cancel", None),
    ("GET", "/v1/videos/{id}", None),
    ("GET", "/v1/videos/{id}/content", None),
    ("GET", "/v1/videos/{id}/content?variant=thumbnail", None),
    ("POST", "/v1/videos/{id}/remix", {"prompt": "bob's version"}),
    ("DELETE", "/api/videos/{id}", None),
    ("DELETE", "/v1/videos/{id}", None),
]


async def _call(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> httpx.Response:
    if path.endswith("/events"):
        async with client.stream(method, path) as response:
            await response.aread()  # a finished video's stream ends after its replay
            return response
    return await client.request(method, path, json=body)


async def test_another_tenant_gets_404_on_every_video_route(tenants: TwoTenants) -> None:
    video_id = tenants.video["id"]
    answers = {}
    for method, template, body in VIDEO_ROUTES:
        response = await _call(tenants.bob, method, template.format(id=video_id), body)
        answers[f"{method} {template}"] = response.status_code
        if response.status_code == 404:
            assert "alice" not in response.text and "garden" not in response.text
    assert answers == dict.fromkeys(answers, 404)
    # Nothing bob tried touched it: alice still has her completed video.
    still = await tenants.alice.get(f"/api/videos/{video_id}")
    assert still.status_code == 200 and still.json()["status"] == "completed"


async def test_the_owner_reaches_every_read_route(tenants: TwoTenants) -> None:
    # The same table with alice's key: proves bob's 404s come from the tenant check.
    video_id = tenants.video["id"]
    answers = {}
    for method, template, body in VIDEO_ROUTES:
        if method != "GET":
            continue
        response = await _call(tenants.alice, method, template.format(id=video_id), body)
        answers[f"{method} {template}"] = response.status_code
    assert answers == dict.fromkeys(answers, 200)


async def test_another_tenants_websocket_closes_with_4404(tenants: TwoTenants) -> None:
    url = tenants.service.base_url.replace("http", "ws", 1)
    path = f"{url}/api/videos/{tenants.video['id']}/ws"
    async with websockets.connect(path, additional_headers=bearer(tenants.bob_key)) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    async with websockets.connect(path, additional_headers=bearer(tenants.alice_key)) as ws:
        first = json.loads(await ws.recv())
    assert first["seq"] == 1


async def test_lists_never_show_another_tenants_videos(tenants: TwoTenants) -> None:
    mine = await tenants.bob.post("/api/videos/generate", json={"prompt": "bob's", **SMALL})
    assert mine.status_code == 202
    native = (await tenants.bob.get("/api/videos")).json()["data"]
    openai = (await tenants.bob.get("/v1/videos")).json()["data"]
    assert [v["id"] for v in native] == [mine.json()["id"]]
    assert [v["id"] for v in openai] == [mine.json()["id"]]
    alice_ids = [v["id"] for v in (await tenants.alice.get("/api/videos")).json()["data"]]
    assert alice_ids == [tenants.video["id"]]


async def test_usage_counts_only_the_callers_tenant(tenants: TwoTenants) -> None:
    alice = (await tenants.alice.get("/api/usage")).json()
    bob = (await tenants.bob.get("/api/usage")).json()
    assert alice["tenant"] == "alice" and alice["totals"]["local"]["videos"] == 1
    assert alice["totals"]["local"]["seconds"] == 1
    assert bob["tenant"] == "bob" and bob["days"] == [] and bob["totals"] == {}


async def test_a_signed_link_cannot_be_pointed_at_another_file(tenants: TwoTenants) -> None:
    mp4 = next(f for f in tenants.video["files"] if f["format"] == "mp4")
    thumbnail_with_mp4_signature = mp4["url"].replace("format=mp4", "format=thumbnail")
    async with httpx.AsyncClient(base_url=tenants.service.base_url) as anonymous:
        assert (await anonymous.get(mp4["url"])).status_code == 200
        refused = await anonymous.get(thumbnail_with_mp4_signature)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "invalid_link"


async def test_a_request_without_a_key_is_refused_with_401(tenants: TwoTenants) -> None:
    async with httpx.AsyncClient(base_url=tenants.service.base_url) as anonymous:
        listing = await anonymous.get("/api/videos")
        wrong = await anonymous.get("/v1/videos", headers=bearer("rf_" + "x" * 43))
    assert listing.status_code == 401
    assert listing.json()["error"]["code"] == "missing_api_key"
    assert listing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


async def test_a_revoked_key_is_refused_from_the_next_request(tenants: TwoTenants) -> None:
    rt = tenants.service.runtime
    key = next(k for k in await rt.tenants.list_keys() if k.tenant == "bob")
    assert (await tenants.bob.get("/api/videos")).status_code == 200
    await rt.tenants.revoke(key.id)
    refused = await tenants.bob.get("/api/videos")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_metrics_count_jobs_and_spend_by_tenant(tenants: TwoTenants) -> None:
    async def counted() -> bool:
        text = (await tenants.alice.get("/metrics")).text
        return 'reelforge_tenant_jobs_total{status="completed",tenant="alice"} 1.0' in text

    await wait_until(counted, timeout=10)
    text = (await tenants.alice.get("/metrics")).text
    assert 'reelforge_tenant_spend_dollars_total{tenant="alice"}' in text
    assert 'tenant="bob"' not in text


@pytest.mark.filterwarnings(
    "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
)
async def test_the_openai_sdk_works_with_a_key_and_raises_its_own_errors_without(
    tenants: TwoTenants,
) -> None:
    import openai

    base = f"{tenants.service.base_url}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key=tenants.bob_key, max_retries=0) as bob:
        page = await bob.videos.list()
        with pytest.raises(openai.NotFoundError):
            await bob.videos.retrieve(tenants.video["id"])
    async with openai.AsyncOpenAI(base_url=base, api_key="rf_wrong", max_retries=0) as nobody:
        with pytest.raises(openai.AuthenticationError):
            await nobody.videos.list()
    assert page.data == []
