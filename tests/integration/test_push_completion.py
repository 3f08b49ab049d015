"""Push completion end to end: the real service (API + worker, real Redis) with
``public_url`` set, and vendor emulators that call it back (Replicate, fal, Luma, Veo
on the Gemini API).

The poll interval is far longer than the jobs, so a video that completes within the
wait below can only have been woken by the callback; with callbacks dropped, polling
(at a short interval) still finishes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reelforge.settings import ProviderConfig, Settings
from tests.emulators.fal import FalConfig, FalEmulator
from tests.emulators.fal import running_emulator as running_fal
from tests.emulators.luma import GET_ROUTE as LUMA_GET_ROUTE
from tests.emulators.luma import LumaEmulator, running_luma
from tests.emulators.replicate import (
    GET_ROUTE,
    ReplicateConfig,
    ReplicateEmulator,
    sign_webhook,
)
from tests.emulators.replicate import running_emulator as running_replicate
from tests.emulators.vendor_common import VendorConfig
from tests.emulators.veo import POLL_ROUTE as VEO_POLL_ROUTE
from tests.emulators.veo import VeoEmulator, running_veo
from tests.service import Service, free_port, running_service, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

API_KEY = "r8_push_test_key"
FAL_KEY = "fal-push-key:secret"
BODY = {"prompt": "swallows over a barn", "duration_seconds": 4, "size": "1280x720"}
# Far beyond how long the wait for a pushed completion may take.
LONG_POLL_SECONDS = 120.0
PUSH_WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def vendor_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("push-media")


@pytest.fixture
async def replicate_emu(vendor_media: Path) -> AsyncIterator[ReplicateEmulator]:
    config = ReplicateConfig(api_key=API_KEY, job_seconds=0.5, media_dir=vendor_media)
    async with running_replicate(config) as emu:
        yield emu


def with_provider(
    settings: Settings, name: str, config: ProviderConfig, *, push: bool = True
) -> tuple[Settings, int]:
    port = free_port()
    update: dict[str, Any] = {"providers": {**settings.providers, name: config}}
    if push:
        update["public_url"] = f"http://127.0.0.1:{port}"
    return settings.model_copy(update=update), port


def replicate_provider(emu: ReplicateEmulator, *, poll: float) -> ProviderConfig:
    return ProviderConfig(
        kind="replicate",
        base_url=emu.base_url,
        api_key=API_KEY,  # type: ignore[arg-type]
        poll_interval_seconds=poll,
        options={"model": "google/veo-3.1-fast"},
    )


async def generate(
    svc: Service, provider: str, timeout: float, *, seconds: int = 4
) -> dict[str, Any]:
    body = {**BODY, "provider": provider, "duration_seconds": seconds}
    response = await svc.client.post("/api/videos/generate", json=body)
    assert response.status_code == 202, response.text
    return await svc.wait_terminal(response.json()["id"], timeout=timeout)


async def test_replicate_webhook_completes_the_video_before_the_next_poll(
    service_settings: Settings, replicate_emu: ReplicateEmulator
) -> None:
    replicate_emu.config.job_seconds = 3.0  # still running at the first poll
    settings, port = with_provider(
        service_settings, "rep", replicate_provider(replicate_emu, poll=LONG_POLL_SECONDS)
    )
    async with running_service(settings, port=port) as svc:
        video = await generate(svc, "rep", timeout=PUSH_WAIT_SECONDS)

    assert video["status"] == "completed", video.get("error")
    (prediction_id,) = replicate_emu.state.jobs
    assert replicate_emu.webhooks_sent[prediction_id] == 1
    job = replicate_emu.state.jobs[prediction_id]
    assert job.body["webhook"].startswith(f"http://127.0.0.1:{port}/api/callbacks/rep/")  # type: ignore[attr-defined]
    # At most: the poll right after submit, the one the callback woke, the download's.
    assert replicate_emu.state.requests[GET_ROUTE] <= 3


async def test_dropped_replicate_webhook_still_finishes_by_polling(
    service_settings: Settings, replicate_emu: ReplicateEmulator
) -> None:
    replicate_emu.config.drop_webhooks = True
    replicate_emu.config.job_seconds = 4.0  # several polls at 0.2 s
    settings, port = with_provider(
        service_settings, "rep", replicate_provider(replicate_emu, poll=0.2)
    )
    async with running_service(settings, port=port) as svc:
        video = await generate(svc, "rep", timeout=60)

    assert video["status"] == "completed", video.get("error")
    assert sum(replicate_emu.webhooks_sent.values()) == 0
    assert replicate_emu.state.requests[GET_ROUTE] > 3


async def test_fal_webhook_completes_the_video_before_the_next_poll(
    service_settings: Settings,
    vendor_media: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = FalConfig(api_key=FAL_KEY, job_seconds=0.5, media_dir=vendor_media)
    async with running_fal(tmp_path, config) as emu:
        monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_file))
        settings, port = with_provider(service_settings, "fal", fal_provider(emu))
        async with running_service(settings, port=port) as svc:
            video = await generate(svc, "fal", timeout=PUSH_WAIT_SECONDS)

    assert video["status"] == "completed", video.get("error")
    assert sum(emu.state.webhooks_sent.values()) == 1  # accepted: its signature verified
    assert emu.state.jwks_fetches == 1


def fal_provider(emu: FalEmulator) -> ProviderConfig:
    return ProviderConfig(
        kind="fal",
        base_url=emu.base_url,
        api_key=FAL_KEY,  # type: ignore[arg-type]
        poll_interval_seconds=LONG_POLL_SECONDS,
        # The emulator signs its webhooks with its own key, published here.
        options={"model": "fal-ai/veo3.1", "webhook_jwks_url": emu.jwks_url},
    )


async def test_forged_callback_is_refused_and_a_genuine_one_wakes_the_worker(
    service_settings: Settings, replicate_emu: ReplicateEmulator
) -> None:
    replicate_emu.config.job_seconds = 60
    replicate_emu.config.drop_webhooks = True
    settings, port = with_provider(
        service_settings, "rep", replicate_provider(replicate_emu, poll=LONG_POLL_SECONDS)
    )
    async with running_service(settings, port=port) as svc:
        response = await svc.client.post("/api/videos/generate", json={**BODY, "provider": "rep"})
        video_id = response.json()["id"]

        async def first_poll() -> bool:
            return replicate_emu.state.requests[GET_ROUTE] >= 1

        await wait_until(first_poll, timeout=20)
        (job,) = replicate_emu.state.jobs.values()
        path = job.body["webhook"].removeprefix(svc.base_url)  # type: ignore[attr-defined]
        body = json.dumps({"id": job.id, "status": "succeeded"}).encode()
        now = int(time.time())
        forged = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign_webhook("whsec_" + "QUJD" * 8, "msg_1", now, body),
        }

        refused = await svc.client.post(path, content=body, headers=forged)
        unknown = await svc.client.post(
            "/api/callbacks/rep/" + "x" * 32, content=body, headers=forged
        )
        genuine = {
            **forged,
            "webhook-signature": sign_webhook(
                replicate_emu.config.webhook_secret, "msg_1", now, body
            ),
        }
        polls = replicate_emu.state.requests[GET_ROUTE]
        accepted = await svc.client.post(path, content=body, headers=genuine)

        async def woken() -> bool:
            return replicate_emu.state.requests[GET_ROUTE] > polls

        await wait_until(woken, timeout=20)  # the worker polled at once, not in 120 s
        await svc.client.post(f"/api/videos/{video_id}/cancel")

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"
    assert unknown.status_code == 404
    assert accepted.status_code == 200


VENDOR_KEY = "push-vendor-key"


def vendor_provider(kind: str, base_url: str, model: str, *, poll: float) -> ProviderConfig:
    return ProviderConfig(
        kind=kind,
        base_url=base_url,
        api_key=VENDOR_KEY,  # type: ignore[arg-type]
        poll_interval_seconds=poll,
        options={"model": model},
    )


@pytest.fixture
async def luma_emu(vendor_media: Path) -> AsyncIterator[LumaEmulator]:
    config = VendorConfig(api_key=VENDOR_KEY, job_seconds=3.0, media_dir=vendor_media)
    async with running_luma(config) as emu:
        yield emu


@pytest.fixture
async def veo_emu(vendor_media: Path) -> AsyncIterator[VeoEmulator]:
    config = VendorConfig(api_key=VENDOR_KEY, job_seconds=3.0, media_dir=vendor_media)
    async with running_veo(config) as emu:
        yield emu


async def test_luma_callback_completes_the_video_long_before_the_next_poll(
    service_settings: Settings, luma_emu: LumaEmulator
) -> None:
    provider = vendor_provider("luma", luma_emu.base_url, "ray-2", poll=LONG_POLL_SECONDS)
    settings, port = with_provider(service_settings, "luma", provider)
    async with running_service(settings, port=port) as svc:
        started = time.monotonic()
        video = await generate(svc, "luma", timeout=PUSH_WAIT_SECONDS, seconds=5)
        took = time.monotonic() - started

    assert video["status"] == "completed", video.get("error")
    print(f"\nLuma by callback: {took:.1f} s to complete; polling every {LONG_POLL_SECONDS:g} s")
    (generation_id,) = luma_emu.state.jobs
    job = luma_emu.state.jobs[generation_id]
    assert job.body["callback_url"].startswith(f"http://127.0.0.1:{port}/api/callbacks/luma/")  # type: ignore[attr-defined]
    assert luma_emu.callbacks_sent[generation_id] == 2  # dreaming, then completed
    # The poll right after submit, one per callback, the download's fresh read.
    assert luma_emu.state.requests[LUMA_GET_ROUTE] <= 4
    assert took < LONG_POLL_SECONDS / 4


async def test_dropped_luma_callbacks_still_finish_by_polling(
    service_settings: Settings, luma_emu: LumaEmulator
) -> None:
    luma_emu.config.drop_callbacks = True
    provider = vendor_provider("luma", luma_emu.base_url, "ray-2", poll=0.2)
    settings, port = with_provider(service_settings, "luma", provider)
    async with running_service(settings, port=port) as svc:
        video = await generate(svc, "luma", timeout=60, seconds=5)

    assert video["status"] == "completed", video.get("error")
    assert sum(luma_emu.callbacks_sent.values()) == 0
    assert luma_emu.state.requests[LUMA_GET_ROUTE] > 4


async def test_veo_webhook_completes_the_video_long_before_the_next_poll(
    service_settings: Settings, veo_emu: VeoEmulator
) -> None:
    model = "veo-3.1-generate-preview"
    provider = vendor_provider("veo", veo_emu.base_url, model, poll=LONG_POLL_SECONDS)
    settings, port = with_provider(service_settings, "veo", provider)
    async with running_service(settings, port=port) as svc:
        started = time.monotonic()
        video = await generate(svc, "veo", timeout=PUSH_WAIT_SECONDS)
        took = time.monotonic() - started

    assert video["status"] == "completed", video.get("error")
    print(f"\nVeo by webhook: {took:.1f} s to complete; polling every {LONG_POLL_SECONDS:g} s")
    (job,) = veo_emu.state.jobs.values()
    (uri,) = job.body["webhookConfig"]["uris"]  # type: ignore[attr-defined]
    assert uri.startswith(f"http://127.0.0.1:{port}/api/callbacks/veo/")
    assert sum(veo_emu.callbacks_sent.values()) == 1
    # The poll right after submit, the one the webhook woke, the download's.
    assert veo_emu.state.requests[VEO_POLL_ROUTE] <= 3
    assert took < LONG_POLL_SECONDS / 4
