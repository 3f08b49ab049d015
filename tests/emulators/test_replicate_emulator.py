"""The Replicate emulator, driven by the official ``replicate`` SDK (1.0.7), unchanged.

The SDK is pointed at the emulator the documented way (``Client(base_url=…)``); if
it creates, waits, cancels, parses progress and errors, and validates webhooks
against the emulator, then reelforge's adapter tests against it mean something.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import replicate
import standardwebhooks
from fastapi import FastAPI, Request
from replicate.exceptions import ModelError, ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from tests.emulators.replicate import (
    CANCEL_ROUTE,
    CREATE_ROUTE,
    GET_ROUTE,
    MODERATION_ERROR,
    ReplicateConfig,
    ReplicateEmulator,
    running_emulator,
)
from tests.service import serve_app, wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "r8_emulator_test_key"
MODEL = "google/veo-3.1-fast"
INPUT = {"prompt": "a lighthouse at dusk", "duration": 2, "aspect_ratio": "16:9"}


@pytest.fixture(scope="session")
def replicate_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicate-emulator-media")


@pytest.fixture
async def emulator(replicate_media: Path) -> AsyncIterator[ReplicateEmulator]:
    config = ReplicateConfig(api_key=API_KEY, job_seconds=0.4, media_dir=replicate_media)
    async with running_emulator(config) as emu:
        yield emu


_clients: list[replicate.Client] = []


def client_for(emu: ReplicateEmulator, key: str = API_KEY) -> replicate.Client:
    client = replicate.Client(api_token=key, base_url=emu.base_url)
    client.poll_interval = 0.05
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        # The SDK opens its httpx client lazily and never closes it itself.
        await _clients.pop()._async_client.aclose()


async def test_run_waits_for_the_output_url_of_a_playable_video(
    emulator: ReplicateEmulator, tmp_path: Path
) -> None:
    output = await client_for(emulator).async_run(MODEL, input=INPUT)

    assert isinstance(output, str) and output.startswith(emulator.base_url)
    async with httpx.AsyncClient() as http:
        data = (await http.get(output)).content
    clip = tmp_path / "out.mp4"
    clip.write_bytes(data)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
    # run() sends Prefer: wait, so the answer came back finished: no polling needed.
    create = emulator.state.requests_to(CREATE_ROUTE)[0]
    assert create.headers["prefer"] == "wait"


async def test_created_prediction_reports_progress_from_its_logs_then_succeeds(
    emulator: ReplicateEmulator,
) -> None:
    client = client_for(emulator)
    prediction = await client.models.predictions.async_create(model=MODEL, input=INPUT)
    assert prediction.status == "starting"
    seen: list[float] = []

    async def finished() -> bool:
        await prediction.async_reload()
        if prediction.progress is not None:
            seen.append(prediction.progress.percentage)
        return prediction.status == "succeeded"

    await wait_until(finished, timeout=10, interval=0.03)
    assert seen and seen == sorted(seen) and seen[-1] == 1.0
    assert prediction.output.endswith("/output.mp4")
    assert prediction.input == INPUT


async def test_cancel_ends_a_running_prediction_as_canceled(emulator: ReplicateEmulator) -> None:
    emulator.config.job_seconds = 30
    client = client_for(emulator)
    prediction = await client.models.predictions.async_create(model=MODEL, input=INPUT)

    await prediction.async_cancel()

    assert prediction.status == "canceled"
    assert (await client.predictions.async_get(prediction.id)).status == "canceled"
    assert emulator.state.requests[CANCEL_ROUTE] == 1


async def test_bad_token_is_a_401_problem_the_sdk_raises(emulator: ReplicateEmulator) -> None:
    with pytest.raises(ReplicateError) as caught:
        await client_for(emulator, key="r8_wrong").models.predictions.async_create(
            model=MODEL, input=INPUT
        )
    assert caught.value.status == 401
    assert caught.value.title == "Unauthenticated"


async def test_invalid_input_is_a_422_problem(emulator: ReplicateEmulator) -> None:
    with pytest.raises(ReplicateError) as caught:
        await client_for(emulator).models.predictions.async_create(
            model=MODEL, input={"duration": 4}
        )
    assert caught.value.status == 422
    assert "prompt" in (caught.value.detail or "")


async def test_sdk_retries_a_throttled_get_after_retry_after(emulator: ReplicateEmulator) -> None:
    client = client_for(emulator)
    prediction = await client.models.predictions.async_create(model=MODEL, input=INPUT)
    emulator.config.rate_limit_next = 1

    fetched = await client.predictions.async_get(prediction.id)

    assert fetched.id == prediction.id
    assert emulator.state.requests[GET_ROUTE] == 2  # the 429, then the retry


async def test_throttled_create_is_not_retried_by_the_sdk(emulator: ReplicateEmulator) -> None:
    emulator.config.rate_limit_next = 1
    with pytest.raises(ReplicateError) as caught:
        await client_for(emulator).models.predictions.async_create(model=MODEL, input=INPUT)
    assert caught.value.status == 429
    assert "throttled" in (caught.value.detail or "")
    assert emulator.state.requests[CREATE_ROUTE] == 1


async def test_flagged_prediction_fails_with_replicates_sensitive_content_error(
    emulator: ReplicateEmulator,
) -> None:
    emulator.config.fail_jobs_with = "moderation_blocked"
    with pytest.raises(ModelError) as caught:
        await client_for(emulator).async_run(MODEL, input=INPUT, wait=False)
    assert caught.value.prediction.error == MODERATION_ERROR


async def test_vanished_prediction_reads_as_not_found(emulator: ReplicateEmulator) -> None:
    emulator.config.vanish_jobs = True
    emulator.config.job_seconds = 0.2
    client = client_for(emulator)
    prediction = await client.models.predictions.async_create(model=MODEL, input=INPUT)
    await asyncio.sleep(0.1)  # the job leaves "starting" after a quarter of its time
    with pytest.raises(ReplicateError) as caught:
        await client.predictions.async_get(prediction.id)
    assert caught.value.status == 404


async def test_webhook_arrives_signed_so_the_sdk_and_standardwebhooks_accept_it(
    emulator: ReplicateEmulator,
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, Any]:
        received.append((dict(request.headers), await request.body()))
        return {}

    client = client_for(emulator)
    async with serve_app(receiver) as url:
        prediction = await client.models.predictions.async_create(
            model=MODEL,
            input=INPUT,
            webhook=f"{url}/hook",
            webhook_events_filter=["completed"],
        )

        async def delivered() -> bool:
            return bool(received)

        await wait_until(delivered, timeout=10)
    secret = await client.webhooks.default.async_secret()
    headers, body = received[0]

    Webhooks.validate(headers=headers, body=body.decode(), secret=secret)
    standardwebhooks.Webhook(secret.key).verify(body, headers)
    assert '"status": "succeeded"' in body.decode()
    assert prediction.id in body.decode()
    with pytest.raises(replicate.webhook.InvalidSignatureError):
        Webhooks.validate(
            headers=headers,
            body=body.decode(),
            secret=WebhookSigningSecret(key="whsec_" + "QUJD" * 8),
        )
