"""Webhooks reelforge sends when a video ends: signed the Standard Webhooks way
(verified with the independent ``standardwebhooks`` package), retried with backoff
up to a bound, logged on the video, durable across a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelforge.settings import Settings
from tests.service import Service, running_service, serve_app, service_env, spawn, stop, wait_until

SMALL = {"prompt": "hook me", "duration_seconds": 1, "size": "160x90", "fps": 12}


@dataclass
class Receiver:
    """A real HTTP endpoint that records each delivery and answers from a script."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers in order, then 200
    hold: asyncio.Event | None = None  # the first delivery waits for it, then fails
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def successes(self, event_id: str) -> int:
        return sum(
            1
            for headers, _, code in self.deliveries
            if headers["webhook-id"] == event_id and code < 300
        )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if state.hold is not None and not state.deliveries:
            state.deliveries.append((headers, body, 599))
            state.arrived.set()
            await state.hold.wait()
            return Response(status_code=503)
        code = state.statuses.pop(0) if state.statuses else 200
        state.deliveries.append((headers, body, code))
        state.arrived.set()
        return Response(status_code=code)

    async with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        state.url = f"{url}/hook"
        yield state


@pytest.fixture
def hook_settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(
        update={
            "fetch_allow_hosts": ["127.0.0.1"],
            "webhook_initial_backoff_seconds": 0.05,
            "webhook_max_backoff_seconds": 0.2,
            "webhook_timeout_seconds": 2.0,
            "webhook_max_attempts": 4,
        }
    )


@pytest.fixture
async def service(hook_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(hook_settings) as svc:
        yield svc


async def _deliveries(svc: Service, video_id: str, count: int) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = []

    async def logged() -> bool:
        nonlocal log
        log = (await svc.runtime.store.get(video_id)).webhook_deliveries
        return len(log) >= count

    await wait_until(logged, timeout=30)
    return log


async def test_a_completed_video_is_delivered_signed_as_standard_webhooks_expects(
    service: Service, receiver: Receiver
) -> None:
    created = await service.client.post(
        "/api/videos/generate", json={**SMALL, "webhook_url": receiver.url}
    )
    video_id = created.json()["id"]
    log = await _deliveries(service, video_id, 1)
    secret = await service.runtime.tenants.webhook_secret("default")
    headers, body, _ = receiver.deliveries[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "video.completed"
    assert payload["data"]["id"] == video_id and payload["data"]["status"] == "completed"
    assert headers["webhook-id"] == "msg_" + video_id.removeprefix("video_")
    assert [(e["attempt"], e["status_code"]) for e in log] == [(1, 200)]


async def test_a_signature_made_with_another_secret_does_not_verify(
    service: Service, receiver: Receiver
) -> None:
    created = await service.client.post(
        "/api/videos/generate", json={**SMALL, "webhook_url": receiver.url}
    )
    await _deliveries(service, created.json()["id"], 1)
    headers, body, _ = receiver.deliveries[0]
    other = Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    with pytest.raises(Exception, match=r"(?i)signature"):
        other.verify(body, headers)


async def test_failed_deliveries_are_retried_with_the_same_id_until_a_2xx(
    service: Service, receiver: Receiver
) -> None:
    receiver.statuses = [500, 502]
    created = await service.client.post(
        "/api/videos/generate", json={**SMALL, "webhook_url": receiver.url}
    )
    video_id = created.json()["id"]
    log = await _deliveries(service, video_id, 3)
    assert [e["status_code"] for e in log] == [500, 502, 200]
    attempts = [e["attempt"] for e in log]
    assert attempts == sorted(set(attempts)) and attempts[0] == 1
    assert len({h["webhook-id"] for h, _, _ in receiver.deliveries}) == 1
    secret = await service.runtime.tenants.webhook_secret("default")
    for headers, body, _ in receiver.deliveries:
        Webhook(secret).verify(body, headers)


async def test_deliveries_stop_after_the_bounded_number_of_tries(
    service: Service, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    created = await service.client.post(
        "/api/videos/generate", json={**SMALL, "webhook_url": receiver.url}
    )
    video_id = created.json()["id"]

    async def gave_up() -> bool:
        log = (await service.runtime.store.get(video_id)).webhook_deliveries
        return bool(log) and bool(log[-1].get("gave_up"))

    await wait_until(gave_up, timeout=60)
    log = (await service.runtime.store.get(video_id)).webhook_deliveries
    # Numbered by reelforge's own counter, never past webhook_max_attempts (4). (A try
    # that saq's sweep interrupts keeps its number, so one may be missing.)
    attempts = [e["attempt"] for e in log]
    assert attempts == sorted(set(attempts)) and attempts[0] == 1 and attempts[-1] == 4
    assert {e["status_code"] for e in log} == {500}
    assert len(log) <= len(receiver.deliveries) <= 4


async def test_a_tenants_default_url_gets_the_cancelled_event_with_the_tenants_secret(
    hook_settings: Settings, receiver: Receiver
) -> None:
    async with running_service(hook_settings, workers=0) as svc:
        created = await svc.runtime.tenants.create_key("hooked")
        assert created.webhook_secret is not None
        await svc.runtime.tenants.set_webhook_url("hooked", receiver.url)
        svc.client.headers["Authorization"] = f"Bearer {created.secret}"
        video_id = (await svc.client.post("/api/videos/generate", json=SMALL)).json()["id"]
        assert (await svc.client.post(f"/api/videos/{video_id}/cancel")).status_code == 200
        # No generate/process workers here: deliveries need the webhook worker only.
        from reelforge.worker import WorkerProcess

        worker = WorkerProcess(svc.runtime)
        await worker.start()
        try:
            await _deliveries(svc, video_id, 1)
        finally:
            await worker.stop()
    headers, body, _ = receiver.deliveries[0]
    payload = Webhook(created.webhook_secret).verify(body, headers)
    assert payload["type"] == "video.cancelled"


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop(proc, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_worker_killed_mid_delivery_still_delivers_exactly_one_success(
    hook_settings: Settings,
    receiver: Receiver,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    receiver.hold = asyncio.Event()
    env = service_env(
        hook_settings,
        {
            "REELFORGE_FETCH_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
            "REELFORGE_WEBHOOK_INITIAL_BACKOFF_SECONDS": "0.05",
            "REELFORGE_WEBHOOK_MAX_BACKOFF_SECONDS": "0.2",
            "REELFORGE_WEBHOOK_TIMEOUT_SECONDS": "2",
        },
    )
    first = spawn(["worker"], env, tmp_path / "worker1.log")
    children.append(first)
    async with running_service(hook_settings, workers=0) as svc:
        created = await svc.client.post(
            "/api/videos/generate", json={**SMALL, "webhook_url": receiver.url}
        )
        video_id = created.json()["id"]
        event_id = "msg_" + video_id.removeprefix("video_")
        await asyncio.wait_for(receiver.arrived.wait(), timeout=60)
        stop(first, signal.SIGKILL)  # mid-delivery: the receiver has not answered
        receiver.hold.set()
        children.append(spawn(["worker"], env, tmp_path / "worker2.log"))

        async def delivered() -> bool:
            return receiver.successes(event_id) >= 1

        await wait_until(delivered, timeout=90, interval=0.2)
        record = await svc.runtime.store.get(video_id)
    assert receiver.successes(event_id) == 1
    assert {h["webhook-id"] for h, _, _ in receiver.deliveries} == {event_id}
    assert record.webhook_deliveries[-1]["status_code"] == 200
