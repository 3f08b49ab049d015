"""The fal queue emulator, driven by the official ``fal-client`` SDK (1.0.3), unchanged.

fal-client forces ``https://`` on its queue host, so the emulator serves TLS with a
certificate from a test CA (trustme) and the SDK trusts it through ``SSL_CERT_FILE``.
The host is the SDK's ``FAL_QUEUE_RUN_HOST``: read once at import, so in this process
the tests set the URL it derives (``client.QUEUE_URL_FORMAT``) to the same value, and
one test runs the SDK in a fresh process with the real environment variables.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import fal_client
import fal_client.client
import httpx
import pytest
from fastapi import FastAPI, Request

from reelforge.errors import CallbackRejectedError
from reelforge.providers.fal_webhooks import FalWebhookVerifier
from tests.emulators.fal import (
    CANCEL_ROUTE,
    MODERATION_MESSAGE,
    STATUS_ROUTE,
    SUBMIT_PATH_ROUTE,
    FalConfig,
    FalEmulator,
    running_emulator,
)
from tests.service import REPO, serve_app, wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "fal-emulator-key-id:secret"
MODEL = "fal-ai/veo3.1"
INPUT = {"prompt": "a paper boat on a stream", "duration": "4s", "aspect_ratio": "16:9"}


@pytest.fixture(scope="session")
def fal_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fal-emulator-media")


@pytest.fixture
async def emulator(
    fal_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FalEmulator]:
    config = FalConfig(api_key=API_KEY, job_seconds=0.4, media_dir=fal_media)
    async with running_emulator(tmp_path, config) as emu:
        monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_file))
        # What FAL_QUEUE_RUN_HOST=<host> makes of it at import time.
        monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"https://{emu.host}/")
        yield emu


@pytest.fixture
async def sdk() -> AsyncIterator[fal_client.AsyncClient]:
    client = fal_client.AsyncClient(key=API_KEY)
    yield client
    if "_client" in client.__dict__:  # opened lazily on first use
        await (await client._client).aclose()


async def test_subscribe_returns_the_url_of_a_playable_video(
    emulator: FalEmulator, sdk: fal_client.AsyncClient, tmp_path: Path
) -> None:
    result = await sdk.subscribe(MODEL, arguments=INPUT, interval=0.05)

    url = result["video"]["url"]
    assert url.startswith(emulator.base_url)
    async with httpx.AsyncClient() as http:  # trusts SSL_CERT_FILE
        clip = tmp_path / "out.mp4"
        clip.write_bytes((await http.get(url)).content)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert float(container.duration or 0) / 1e6 == pytest.approx(4, abs=0.3)


async def test_status_goes_from_queued_through_progress_logs_to_completed(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    handle = await sdk.submit(MODEL, arguments=INPUT)
    kinds: list[str] = []
    async for status in handle.iter_events(with_logs=True, interval=0.03):
        kinds.append(type(status).__name__)
        if isinstance(status, fal_client.InProgress):
            assert status.logs and status.logs[-1]["message"].endswith("%")
    assert kinds[0] == "Queued" and kinds[-1] == "Completed"
    assert "InProgress" in kinds


async def test_endpoint_path_is_dropped_from_the_status_result_and_cancel_urls(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    emulator.config.job_seconds = 30
    handle = await sdk.submit(f"{MODEL}/image-to-video", arguments=INPUT)

    assert handle.status_url == f"{emulator.base_url}/{MODEL}/requests/{handle.request_id}/status"
    await handle.cancel()
    assert emulator.state.requests[SUBMIT_PATH_ROUTE] == 1
    assert emulator.state.requests[CANCEL_ROUTE] == 1
    status = await handle.status()
    assert isinstance(status, fal_client.Completed)
    assert status.error_type == "request_cancelled"


async def test_flagged_request_completes_with_an_error_and_its_result_is_a_422(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    emulator.config.fail_jobs_with = "moderation_blocked"
    handle = await sdk.submit(MODEL, arguments=INPUT)

    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await handle.get(interval=0.03)
    assert caught.value.status_code == 422
    status = await handle.status()
    assert isinstance(status, fal_client.Completed)
    assert (status.error, status.error_type) == (MODERATION_MESSAGE, "content_policy_violation")


async def test_bad_key_is_a_401_the_sdk_raises(emulator: FalEmulator) -> None:
    client = fal_client.AsyncClient(key="fal-wrong")
    try:
        with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
            await client.submit(MODEL, arguments=INPUT)
    finally:
        await (await client._client).aclose()
    assert caught.value.status_code == 401


async def test_invalid_input_is_a_422_with_fastapi_style_detail(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await sdk.submit(MODEL, arguments={"duration": "4s"})
    assert caught.value.status_code == 422
    assert "prompt" in json.dumps(caught.value.response.json())


async def test_sdk_retries_a_429_on_status(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    handle = await sdk.submit(MODEL, arguments=INPUT)
    emulator.config.rate_limit_next = 1

    await handle.status()

    assert emulator.state.requests[STATUS_ROUTE] == 2


async def test_webhook_posts_the_result_when_the_request_ends(
    emulator: FalEmulator, sdk: fal_client.AsyncClient
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        received.append((dict(request.headers), await request.body()))
        return {}

    async with serve_app(receiver) as url:
        handle = await sdk.submit(MODEL, arguments=INPUT, webhook_url=f"{url}/hook")

        async def delivered() -> bool:
            return bool(received)

        await wait_until(delivered, timeout=10)
    headers, raw = received[0]
    body = json.loads(raw)
    assert body["request_id"] == handle.request_id
    assert body["status"] == "OK"
    assert body["payload"]["video"]["url"].endswith("/output.mp4")
    # Signed as fal signs, with a key its JWKS publishes (fetched over TLS, no auth).
    assert headers["x-fal-webhook-request-id"] == handle.request_id
    async with httpx.AsyncClient() as http:
        await FalWebhookVerifier(http, jwks_url=emulator.jwks_url).verify(headers, raw)
        with pytest.raises(CallbackRejectedError):
            await FalWebhookVerifier(http, jwks_url=emulator.jwks_url).verify(headers, raw + b" ")
    assert emulator.state.jwks_fetches == 2


async def test_sdk_in_a_fresh_process_reaches_the_emulator_through_its_env_vars(
    emulator: FalEmulator,
) -> None:
    script = (
        "import json, fal_client\n"
        "print(json.dumps(fal_client.subscribe('fal-ai/veo3.1', arguments="
        f"{INPUT!r})))\n"
    )
    env = {
        "FAL_KEY": API_KEY,
        "FAL_QUEUE_RUN_HOST": emulator.host,
        "SSL_CERT_FILE": str(emulator.ca_file),
        "PATH": "/usr/bin:/bin",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["video"]["url"].startswith(f"https://{emulator.host}/files/")
