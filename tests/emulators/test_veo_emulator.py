"""The Veo emulator, driven by the official ``google-genai`` SDK (2.x), unchanged.

Pointed at the emulator as the reference describes: ``genai.Client(api_key=…,
http_options=HttpOptions(base_url=…))`` for the Gemini API (2.x: 3.x refuses Gemini-API
video), and ``vertexai=True`` for Vertex. If the SDK builds the operation, result
and file objects from every answer, tests of reelforge's ``veo`` adapter mean
something.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from fastapi import FastAPI, Request
from google import genai
from google.genai import errors, types

from tests.emulators.vendor_common import VendorConfig
from tests.emulators.veo import CANCEL_ROUTE, VeoEmulator, running_veo
from tests.service import serve_app, wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "AIza-emulator-test-key"
MODEL = "veo-3.1-generate-preview"
VERTEX_MODEL = "veo-3.1-generate-001"


@pytest.fixture
async def gemini() -> AsyncIterator[VeoEmulator]:
    async with running_veo(VendorConfig(api_key=API_KEY, job_seconds=0.4)) as emulator:
        yield emulator


@pytest.fixture
async def vertex() -> AsyncIterator[VeoEmulator]:
    config = VendorConfig(api_key=API_KEY, job_seconds=0.4)
    async with running_veo(config, surface="vertex") as emulator:
        yield emulator


_open_clients: list[genai.Client] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _open_clients:
        client = _open_clients.pop()
        await client.aio.aclose()
        client.close()


def _gemini_client(emu: VeoEmulator, api_key: str = API_KEY) -> genai.Client:
    client = genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(base_url=emu.base_url, api_version="v1beta"),
    )
    _open_clients.append(client)
    return client


def _vertex_client(emu: VeoEmulator, api_key: str = API_KEY) -> genai.Client:
    client = genai.Client(
        vertexai=True, api_key=api_key, http_options=types.HttpOptions(base_url=emu.base_url)
    )
    _open_clients.append(client)
    return client


async def _done(
    client: genai.Client, operation: types.GenerateVideosOperation
) -> types.GenerateVideosOperation:
    async def done() -> bool:
        nonlocal operation
        operation = await client.aio.operations.get(operation)
        return bool(operation.done)

    await wait_until(done, timeout=20)
    return operation


async def test_gemini_generate_poll_and_download_give_a_playable_video(
    gemini: VeoEmulator,
) -> None:
    client = _gemini_client(gemini)
    operation = await client.aio.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(prompt="a cat"),
        config=types.GenerateVideosConfig(
            duration_seconds=4, aspect_ratio="16:9", resolution="720p", number_of_videos=1
        ),
    )
    assert operation.name == f"models/{MODEL}/operations/" + operation.name.rpartition("/")[2]  # type: ignore[union-attr]
    operation = await _done(client, operation)
    assert operation.response is not None
    videos = operation.response.generated_videos
    assert videos
    data = await client.aio.files.download(file=videos[0])
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.width == 1280


async def test_gemini_sends_instances_and_parameters_as_the_reference_says(
    gemini: VeoEmulator,
) -> None:
    client = _gemini_client(gemini)
    await client.aio.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(
            prompt="a cat",
            image=types.Image(image_bytes=b"\x89PNG fake", mime_type="image/png"),
        ),
        config=types.GenerateVideosConfig(
            duration_seconds=8, aspect_ratio="9:16", negative_prompt="blurry"
        ),
    )
    (job,) = gemini.state.jobs.values()
    body = job.body  # type: ignore[attr-defined]
    assert body["instances"][0]["prompt"] == "a cat"
    assert body["instances"][0]["image"]["mimeType"] == "image/png"
    assert body["parameters"] == {
        "durationSeconds": 8,
        "aspectRatio": "9:16",
        "negativePrompt": "blurry",
    }
    assert gemini.state.log[-1].headers["x-goog-api-key"] == "<redacted>"


async def test_gemini_safety_filtering_reaches_the_sdk_as_rai_counts(gemini: VeoEmulator) -> None:
    gemini.config.fail_jobs_with = "RAI"
    client = _gemini_client(gemini)
    operation = await _done(
        client,
        await client.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt="x")
        ),
    )
    assert operation.response is not None
    assert operation.response.rai_media_filtered_count == 1
    assert not operation.response.generated_videos


async def test_gemini_a_failed_operation_carries_a_google_rpc_error(gemini: VeoEmulator) -> None:
    gemini.config.fail_jobs_with = "INTERNAL"
    client = _gemini_client(gemini)
    operation = await _done(
        client,
        await client.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt="x")
        ),
    )
    assert operation.error is not None
    assert operation.error["status"] == "INTERNAL"


async def test_gemini_a_wrong_key_is_a_client_error_with_api_key_invalid(
    gemini: VeoEmulator,
) -> None:
    client = _gemini_client(gemini, api_key="wrong")
    with pytest.raises(errors.ClientError) as raised:
        await client.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt="x")
        )
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert "API key not valid" in str(raised.value.message)


async def test_gemini_a_429_is_resource_exhausted(gemini: VeoEmulator) -> None:
    gemini.config.rate_limit_next = 1
    client = _gemini_client(gemini)
    with pytest.raises(errors.ClientError) as raised:
        await client.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt="x")
        )
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")


async def test_gemini_a_500_is_a_server_error(gemini: VeoEmulator) -> None:
    gemini.config.fail_next = 1
    client = _gemini_client(gemini)
    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_videos(
            model=MODEL, source=types.GenerateVideosSource(prompt="x")
        )


async def test_the_sdk_refuses_seed_on_gemini_before_sending(gemini: VeoEmulator) -> None:
    client = _gemini_client(gemini)
    with pytest.raises(ValueError, match="seed"):
        await client.aio.models.generate_videos(
            model=MODEL,
            source=types.GenerateVideosSource(prompt="x"),
            config=types.GenerateVideosConfig(seed=1),
        )
    assert gemini.submits == 0


async def test_vertex_generate_and_fetch_predict_operation_give_inline_video(
    vertex: VeoEmulator,
) -> None:
    client = _vertex_client(vertex)
    operation = await client.aio.models.generate_videos(
        model=VERTEX_MODEL,
        source=types.GenerateVideosSource(prompt="a cat"),
        config=types.GenerateVideosConfig(duration_seconds=4, seed=7, generate_audio=True),
    )
    assert operation.name is not None
    assert operation.name.startswith(f"publishers/google/models/{VERTEX_MODEL}/operations/")
    operation = await _done(client, operation)
    assert operation.response is not None
    videos = operation.response.generated_videos
    assert videos
    assert videos[0].video is not None
    data = videos[0].video.video_bytes
    assert data is not None
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.height == 720
    (job,) = vertex.state.jobs.values()
    assert job.body["parameters"]["seed"] == 7  # type: ignore[attr-defined]
    assert job.body["parameters"]["generateAudio"] is True  # type: ignore[attr-defined]


async def test_vertex_a_wrong_key_is_unauthenticated(vertex: VeoEmulator) -> None:
    client = _vertex_client(vertex, api_key="wrong")
    with pytest.raises(errors.ClientError) as raised:
        await client.aio.models.generate_videos(
            model=VERTEX_MODEL, source=types.GenerateVideosSource(prompt="x")
        )
    assert (raised.value.code, raised.value.status) == (401, "UNAUTHENTICATED")


async def test_cancel_of_a_running_operation_is_recorded(gemini: VeoEmulator) -> None:
    # The SDK has no cancel: this is the standard long-running :cancel, sent raw.
    import httpx

    gemini.config.job_seconds = 30
    client = _gemini_client(gemini)
    operation = await client.aio.models.generate_videos(
        model=MODEL, source=types.GenerateVideosSource(prompt="x")
    )
    async with httpx.AsyncClient(base_url=gemini.base_url) as http:
        response = await http.post(
            f"/v1beta/{operation.name}:cancel", headers={"x-goog-api-key": API_KEY}, json={}
        )
    assert response.status_code == 200
    assert gemini.state.requests[CANCEL_ROUTE] == 1
    operation = await client.aio.operations.get(operation)
    assert operation.done
    assert operation.error is not None
    assert operation.error["status"] == "CANCELLED"


async def test_gemini_webhook_config_gets_a_video_generated_event(gemini: VeoEmulator) -> None:
    received: list[tuple[dict[str, str], dict[str, Any]]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        received.append((dict(request.headers), await request.json()))
        return {}

    client = _gemini_client(gemini)
    async with serve_app(receiver) as url:
        operation = await client.aio.models.generate_videos(
            model=MODEL,
            source=types.GenerateVideosSource(prompt="a cat"),
            config=types.GenerateVideosConfig(
                webhook_config=types.WebhookConfig(uris=[f"{url}/hook"], user_metadata={"a": 1})
            ),
        )

        async def arrived() -> bool:
            return bool(received)

        await wait_until(arrived, timeout=10)
    (job,) = gemini.state.jobs.values()
    # What the SDK sends (Reference §1.2, PROBE): webhookConfig, snake_case user_metadata.
    assert job.body["webhookConfig"] == {  # type: ignore[attr-defined]
        "uris": [f"{url}/hook"],
        "user_metadata": {"a": 1},
    }
    headers, event = received[0]
    assert event["type"] == "video.generated"
    assert event["data"]["id"] == operation.name
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-timestamp"].isdigit()
    assert sum(gemini.callbacks_sent.values()) == 1
