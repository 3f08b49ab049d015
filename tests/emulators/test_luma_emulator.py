"""The Luma Dream Machine emulator, driven by the official ``lumaai`` SDK (1.21), unchanged.

The SDK is pointed at the emulator the way the reference describes
(``AsyncLumaAI(base_url=…/dream-machine/v1)``); if it is happy with every answer,
tests of reelforge's ``luma`` adapter against the emulator mean something.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import lumaai
import pytest
from fastapi import FastAPI, Request

from tests.emulators.luma import LumaEmulator, running_luma
from tests.emulators.vendor_common import VendorConfig
from tests.service import serve_app, wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "luma-emulator-test-key"


@pytest.fixture
async def emu() -> AsyncIterator[LumaEmulator]:
    async with running_luma(VendorConfig(api_key=API_KEY, job_seconds=0.4)) as emulator:
        yield emulator


def _client(emu: LumaEmulator, *, api_key: str = API_KEY, retries: int = 0) -> lumaai.AsyncLumaAI:
    return lumaai.AsyncLumaAI(auth_token=api_key, base_url=emu.base_url, max_retries=retries)


async def _finished(client: lumaai.AsyncLumaAI, generation_id: str) -> lumaai.types.Generation:
    generation: lumaai.types.Generation | None = None

    async def done() -> bool:
        nonlocal generation
        generation = await client.generations.get(generation_id)
        return generation.state in ("completed", "failed")

    await wait_until(done, timeout=20)
    assert generation is not None
    return generation


async def test_a_video_generation_completes_with_a_playable_video(emu: LumaEmulator) -> None:
    async with _client(emu) as client:
        created = await client.generations.video.create(
            model="ray-2", prompt="a cat", aspect_ratio="16:9", resolution="720p", duration="5s"
        )
        assert created.state == "queued"
        assert created.id is not None
        generation = await _finished(client, created.id)
    assert generation.state == "completed"
    assert generation.assets is not None
    assert generation.assets.video is not None
    async with httpx.AsyncClient() as http:
        data = (await http.get(generation.assets.video)).content
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)


async def test_the_sdk_sends_the_documented_body(emu: LumaEmulator) -> None:
    async with _client(emu) as client:
        await client.generations.create(
            model="ray-flash-2",
            prompt="a cat",
            aspect_ratio="9:16",
            duration="9s",
            resolution="540p",
            keyframes={"frame0": {"type": "image", "url": "https://example.com/a.png"}},
        )
    (job,) = emu.state.jobs.values()
    assert job.body == {  # type: ignore[attr-defined]
        "model": "ray-flash-2",
        "prompt": "a cat",
        "aspect_ratio": "9:16",
        "duration": "9s",
        "resolution": "540p",
        "keyframes": {"frame0": {"type": "image", "url": "https://example.com/a.png"}},
    }
    assert job.size == "540x960"


async def test_a_running_generation_is_dreaming(emu: LumaEmulator) -> None:
    emu.config.job_seconds = 4
    async with _client(emu) as client:
        created = await client.generations.video.create(model="ray-2", prompt="x")
        assert created.id is not None

        async def dreaming() -> bool:
            assert created.id is not None
            return (await client.generations.get(created.id)).state == "dreaming"

        await wait_until(dreaming, timeout=10)


async def test_a_failed_generation_carries_its_failure_reason(emu: LumaEmulator) -> None:
    emu.config.fail_jobs_with = "content moderation"
    async with _client(emu) as client:
        created = await client.generations.video.create(model="ray-2", prompt="x")
        assert created.id is not None
        generation = await _finished(client, created.id)
    assert (generation.state, generation.failure_reason) == ("failed", "content moderation")


async def test_delete_removes_an_unfinished_generation(emu: LumaEmulator) -> None:
    emu.config.job_seconds = 30
    async with _client(emu) as client:
        created = await client.generations.video.create(model="ray-2", prompt="x")
        assert created.id is not None
        await client.generations.delete(created.id)
        with pytest.raises(lumaai.NotFoundError):
            await client.generations.get(created.id)
    assert emu.cancels == 1


async def test_a_wrong_key_raises_authentication_error_with_lumas_detail(
    emu: LumaEmulator,
) -> None:
    async with _client(emu, api_key="wrong") as client:
        with pytest.raises(lumaai.AuthenticationError) as raised:
            await client.generations.get("00000000-0000-0000-0000-000000000000")
    assert raised.value.body == {"detail": "Invalid API key is provided"}


async def test_a_bad_duration_raises_bad_request(emu: LumaEmulator) -> None:
    async with _client(emu) as client:
        with pytest.raises(lumaai.BadRequestError):
            await client.generations.video.create(model="ray-2", prompt="x", duration="7s")


async def test_the_sdk_retries_a_429_and_creates_once(emu: LumaEmulator) -> None:
    emu.config.rate_limit_next = 1
    emu.config.retry_after_seconds = 0
    async with _client(emu, retries=2) as client:
        await client.generations.video.create(model="ray-2", prompt="x")
    assert emu.state.requests["POST /dream-machine/v1/generations/video"] == 2
    assert emu.submits == 1


async def test_a_500_raises_internal_server_error(emu: LumaEmulator) -> None:
    emu.config.fail_next = 1
    async with _client(emu) as client:
        with pytest.raises(lumaai.InternalServerError):
            await client.generations.get("00000000-0000-0000-0000-000000000000")


def _receiver(received: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {}

    return app


async def _callbacks_for(emu: LumaEmulator, count: int, **create: Any) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with serve_app(_receiver(received)) as url, _client(emu) as client:
        created = await client.generations.video.create(
            model="ray-2", prompt="x", callback_url=f"{url}/hook", **create
        )

        async def arrived() -> bool:
            return len(received) >= count

        await wait_until(arrived, timeout=10)
    assert all(body["id"] == created.id for body in received)
    return received


async def test_callback_url_gets_the_generation_when_it_dreams_and_when_it_completes(
    emu: LumaEmulator,
) -> None:
    received = await _callbacks_for(emu, 2)

    # What Luma POSTs is the SDK's own Generation object.
    generations = [lumaai.types.Generation.model_validate(body) for body in received]
    assert [g.state for g in generations] == ["dreaming", "completed"]
    assert generations[1].assets is not None and generations[1].assets.video
    assert sum(emu.callbacks_sent.values()) == 2


async def test_callback_url_gets_a_failed_generation_with_its_reason(emu: LumaEmulator) -> None:
    emu.config.fail_jobs_with = "generation failed"
    received = await _callbacks_for(emu, 2)

    assert [(b["state"], b["failure_reason"]) for b in received] == [
        ("dreaming", None),
        ("failed", "generation failed"),
    ]


async def test_dropped_callbacks_are_never_sent(emu: LumaEmulator) -> None:
    emu.config.drop_callbacks = True
    async with _client(emu) as client:
        created = await client.generations.video.create(
            model="ray-2", prompt="x", callback_url="http://127.0.0.1:9/hook"
        )
        assert created.id is not None
        assert (await _finished(client, created.id)).state == "completed"
    assert emu.context.callbacks.attempted == {}
