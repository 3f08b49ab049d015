"""fal webhooks at ``POST /api/callbacks/fal/{token}``: only one carrying fal's ED25519
signature wakes the worker; the rest are answered 401 ``invalid_signature``, as a
Replicate webhook whose signature does not verify is. The real service (API and
worker, real Redis) and the fal emulator, which signs with its own key and publishes
it as a JWKS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reelforge.settings import ProviderConfig, Settings
from tests.emulators.fal import STATUS_ROUTE, FalConfig, FalEmulator
from tests.emulators.fal import running_emulator as running_fal
from tests.service import Service, free_port, running_service, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

FAL_KEY = "fal-signature-key:secret"
BODY = {"prompt": "a kite over dunes", "duration_seconds": 4, "size": "1280x720"}


def _settings(base: Settings, emu: FalEmulator) -> tuple[Settings, int]:
    port = free_port()
    provider = ProviderConfig(
        kind="fal",
        base_url=emu.base_url,
        api_key=FAL_KEY,  # type: ignore[arg-type]
        poll_interval_seconds=120,  # only a callback can wake the worker in this test
        options={"model": "fal-ai/veo3.1", "webhook_jwks_url": emu.jwks_url},
    )
    update = {"providers": {"fal": provider}, "public_url": f"http://127.0.0.1:{port}"}
    return base.model_copy(update=update), port


async def _callback_path(svc: Service, emu: FalEmulator) -> tuple[str, str]:
    response = await svc.client.post("/api/videos/generate", json={**BODY, "provider": "fal"})
    assert response.status_code == 202, response.text

    async def polled_once() -> bool:
        return emu.state.requests[STATUS_ROUTE] >= 1

    await wait_until(polled_once, timeout=20)
    (job,) = emu.state.jobs.values()
    webhook = job.webhook  # type: ignore[attr-defined]
    assert webhook is not None
    return response.json()["id"], webhook.removeprefix(svc.base_url)


async def _wakes_the_worker(
    svc: Service, emu: FalEmulator, path: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    polls = emu.state.requests[STATUS_ROUTE]
    response = await svc.client.post(path, content=body, headers=headers)

    async def woken() -> bool:
        return emu.state.requests[STATUS_ROUTE] > polls

    if response.status_code == 200:
        await wait_until(woken, timeout=20)  # polled at once, not in 120 s
    return response


async def test_only_webhooks_signed_by_fal_are_taken_and_a_rotated_key_is_found(
    service_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = FalConfig(api_key=FAL_KEY, job_seconds=60, drop_webhooks=True)
    async with running_fal(tmp_path, config) as emu:
        monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_file))
        settings, port = _settings(service_settings, emu)
        async with running_service(settings, port=port) as svc:
            video_id, path = await _callback_path(svc, emu)
            (request_id,) = emu.state.jobs
            body = json.dumps({"request_id": request_id, "status": "OK", "payload": {}}).encode()
            signer = emu.signer

            genuine = await _wakes_the_worker(
                svc, emu, path, body, signer.headers(request_id, body)
            )
            signer.rotate()  # fal signs with a new key from now on
            rotated = await _wakes_the_worker(
                svc, emu, path, body, signer.headers(request_id, body)
            )
            fetches_after_rotation = emu.state.jwks_fetches

            stranger = Ed25519PrivateKey.generate()
            refused = {
                "tampered body": (body + b" ", signer.headers(request_id, body)),
                "old timestamp": (
                    body,
                    signer.headers(request_id, body, timestamp=int(time.time()) - 600),
                ),
                "unknown key": (body, signer.headers(request_id, body, key=stranger)),
                "retired key": (body, signer.headers(request_id, body, key=signer.keys[0])),
                "unsigned": (body, {}),
            }
            answers = {
                why: await svc.client.post(path, content=content, headers=headers)
                for why, (content, headers) in refused.items()
            }
            await svc.client.post(f"/api/videos/{video_id}/cancel")

    assert genuine.status_code == 200, genuine.text
    assert rotated.status_code == 200, rotated.text
    assert fetches_after_rotation == 2  # the first fetch, then one for the unknown key
    for why, answer in answers.items():
        assert answer.status_code == 401, (why, answer.text)
        assert answer.json()["error"]["code"] == "invalid_signature", why
    # Forged signatures within the minute made no further fetch of fal's keys.
    assert emu.state.jwks_fetches == fetches_after_rotation
