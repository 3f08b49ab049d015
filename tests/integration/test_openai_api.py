"""The OpenAI-compatible ``/v1/videos`` API, driven by the official ``openai`` SDK.

The real app under uvicorn, real Redis, real workers rendering with the ``local``
provider. The SDK is used unchanged, as a user would; every JSON answer it receives
is checked against OpenAI's published schemas (``tests/reference``) by a response
hook on its HTTP client, errors included.
"""

from __future__ import annotations

import base64
import colorsys
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx2
import numpy as np
import openai
import pytest

from reelforge.api.routers.openai_videos import MAX_CREATE_BODY_BYTES, MAX_INPUT_REFERENCE_BYTES
from reelforge.media.image import decode_image, encode_png
from reelforge.media.probe import probe
from reelforge.settings import MediaSettings, ProviderConfig, Settings
from tests.emulators.openai_schema import (
    response_schema_name,
    validate_against,
    validate_error_body,
)
from tests.service import Service, running_service

pytestmark = [
    # The SDK marks every videos.* method deprecated because OpenAI shut its own Sora
    # API down; serving that API is the point of reelforge's /v1, so here (and only
    # here) that one warning is expected.
    pytest.mark.filterwarnings(
        "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
    ),
]

RETENTION_SECONDS = 3600


@dataclass
class SpecChecker:
    """A response hook: each JSON answer must match what the spec promises for it."""

    checked: list[str] = field(default_factory=list)

    async def __call__(self, response: httpx2.Response) -> None:
        await response.aread()
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        payload = response.json()
        request = response.request
        if response.status_code >= 400:
            validate_error_body(payload)
            self.checked.append(f"{request.method} {request.url.path} -> error")
            return
        name = response_schema_name(request.method, request.url.path, response.status_code)
        assert name is not None, f"the spec promises no JSON for {request.url.path}"
        validate_against(name, payload)
        self.checked.append(f"{request.method} {request.url.path} -> {name}")


@dataclass
class Harness:
    svc: Service
    client: openai.AsyncOpenAI
    checker: SpecChecker

    async def native(self, video_id: str) -> dict[str, Any]:
        response = await self.svc.client.get(f"/api/videos/{video_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        return record

    async def nothing_written(self) -> bool:
        rt = self.svc.runtime
        keys = [k async for k in rt.redis.scan_iter(match=rt.keys.video("*"))]
        uploads = rt.settings.uploads_dir
        stored = list(uploads.iterdir()) if uploads.exists() else []
        return keys == [] and stored == []


@pytest.fixture
def fast_settings(service_settings: Settings) -> Settings:
    """Quick renders: the spec only allows 4-12 s at 720p and above."""
    return service_settings.model_copy(
        update={
            "providers": {
                "local": ProviderConfig(
                    kind="local", poll_interval_seconds=0.1, options={"preset": "ultrafast"}
                )
            },
            "media": MediaSettings(mp4_preset="ultrafast", spritesheet_columns=2),
            "retention_seconds": RETENTION_SECONDS,
            # Room for an input image however the app limits bodies by default.
            "max_body_bytes": max(service_settings.max_body_bytes, MAX_CREATE_BODY_BYTES),
        }
    )


@contextlib.asynccontextmanager
async def harness(settings: Settings, *, workers: int) -> AsyncIterator[Harness]:
    checker = SpecChecker()
    async with running_service(settings, workers=workers) as svc:
        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [checker]})
        async with openai.AsyncOpenAI(
            base_url=f"{svc.base_url}/v1",
            api_key="anything",
            http_client=http_client,
            max_retries=0,  # an error must surface, not be retried away
        ) as client:
            yield Harness(svc=svc, client=client, checker=checker)


@pytest.fixture
async def rendering(fast_settings: Settings) -> AsyncIterator[Harness]:
    async with harness(fast_settings, workers=1) as h:
        yield h


@pytest.fixture
async def api_only(fast_settings: Settings) -> AsyncIterator[Harness]:
    """No workers: videos stay queued, so nothing renders."""
    async with harness(fast_settings, workers=0) as h:
        yield h


def solid_png(rgb: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    image = np.empty((size[1], size[0], 3), dtype=np.uint8)
    image[...] = rgb
    image[: size[1] // 2] //= 2  # a little structure: a darker upper half
    return encode_png(image)


def hue_of(rgb: np.ndarray) -> float:
    red, green, blue = (float(c) / 255 for c in rgb)
    return colorsys.rgb_to_hsv(red, green, blue)[0] * 360


def middle_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[len(frames) // 2]


# -- the happy paths, rendering real videos ---------------------------------------


@pytest.mark.slow
async def test_create_and_poll_renders_the_video_and_every_variant_downloads(
    rendering: Harness, tmp_path: Path
) -> None:
    client = rendering.client
    video = await client.videos.create_and_poll(
        prompt="a red ball bouncing", model="sora-2", seconds="4", size="1280x720"
    )
    assert (video.status, video.progress, video.error) == ("completed", 100, None)
    assert (video.model, video.seconds, video.size) == ("sora-2", "4", "1280x720")
    assert video.prompt == "a red ball bouncing"
    assert video.completed_at is not None and video.completed_at >= video.created_at
    assert video.expires_at == video.completed_at + RETENTION_SECONDS
    assert video.remixed_from_video_id is None

    content = await client.videos.download_content(video.id, variant="video")
    path = tmp_path / "video.mp4"
    path.write_bytes(content.content)
    info = await probe(path)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.audio.codec) == ("h264", "aac")
    assert (info.video.width, info.video.height) == (1280, 720)
    assert abs(info.duration - 4.0) < 0.15
    for variant in ("thumbnail", "spritesheet"):
        still = await client.videos.download_content(video.id, variant=variant)
        assert decode_image(still.content).size > 0, variant
    assert "POST /v1/videos -> VideoResource" in rendering.checker.checked


@pytest.mark.slow
async def test_remix_makes_a_new_video_with_the_same_settings_and_seed(
    rendering: Harness,
) -> None:
    client = rendering.client
    source = await client.videos.create_and_poll(
        prompt="a blue square spinning", model="sora-2-pro", size="720x1280"
    )
    assert source.status == "completed"
    remix = await client.videos.remix(source.id, prompt="a green square spinning")
    assert remix.id != source.id
    assert remix.remixed_from_video_id == source.id
    assert remix.prompt == "a green square spinning"
    assert (remix.model, remix.size, remix.seconds) == ("sora-2-pro", "720x1280", "4")
    done = await client.videos.poll(remix.id)
    assert done.status == "completed"
    assert (await rendering.native(remix.id))["seed"] == (await rendering.native(source.id))["seed"]


@pytest.mark.slow
async def test_an_uploaded_input_reference_colours_the_video(
    rendering: Harness, tmp_path: Path
) -> None:
    orange = (235, 120, 20)
    video = await rendering.client.videos.create_and_poll(
        prompt="a ball drifting",
        input_reference=("reference.png", solid_png(orange), "image/png"),
        size="720x1280",
    )
    assert video.status == "completed", video.error
    stored = (await rendering.native(video.id))["request"]["image"]
    assert (rendering.svc.runtime.settings.uploads_dir / stored).is_file()

    content = await rendering.client.videos.download_content(video.id)
    path = tmp_path / "video.mp4"
    path.write_bytes(content.content)
    frame = middle_frame(path)
    assert abs(hue_of(np.median(frame.reshape(-1, 3), axis=0)) - hue_of(np.array(orange))) < 12


# -- the same API without rendering ---------------------------------------------------


async def test_list_pages_through_every_video_in_both_orders(api_only: Harness) -> None:
    client = api_only.client
    ids = [(await client.videos.create(prompt=f"a ball, take {n}")).id for n in range(5)]
    newest_first = [video.id async for video in client.videos.list(limit=2)]
    assert newest_first == ids[::-1]
    oldest_first = [video.id async for video in client.videos.list(limit=2, order="asc")]
    assert oldest_first == ids
    page = await client.videos.list(limit=2)
    assert (page.has_more, page.last_id) == (True, ids[3])
    assert api_only.checker.checked.count("GET /v1/videos -> VideoListResource") >= 7


async def test_a_queued_video_reports_pacing_for_the_sdk_poller(api_only: Harness) -> None:
    created = await api_only.client.videos.create(prompt="a ball")
    assert (created.status, created.progress, created.completed_at) == ("queued", 0, None)
    raw = await api_only.client.videos.with_raw_response.retrieve(created.id)
    assert raw.headers["openai-poll-after-ms"] == "250"
    assert raw.parse().id == created.id


async def test_a_video_cancelled_through_the_native_api_is_failed_with_code_cancelled(
    api_only: Harness,
) -> None:
    created = await api_only.client.videos.create(prompt="a ball")
    response = await api_only.svc.client.post(f"/api/videos/{created.id}/cancel")
    assert response.json()["status"] == "cancelled"
    video = await api_only.client.videos.retrieve(created.id)
    assert video.status == "failed"
    assert video.error is not None and video.error.code == "cancelled"
    assert (await api_only.client.videos.poll(created.id)).status == "failed"  # poll ends


async def test_a_native_video_is_shown_with_the_default_model(api_only: Harness) -> None:
    response = await api_only.svc.client.post(
        "/api/videos/generate",
        json={"prompt": "a ball", "duration_seconds": 2.5, "size": "160x90"},
    )
    video_id = response.json()["id"]
    # Raw HTTP: 160x90 is outside the spec's four sizes, and is reported as it is.
    shown = (await api_only.svc.client.get(f"/v1/videos/{video_id}")).json()
    assert (shown["model"], shown["size"], shown["seconds"]) == ("sora-2", "160x90", "2.5")


async def test_delete_removes_the_video(api_only: Harness) -> None:
    client = api_only.client
    created = await client.videos.create(prompt="a ball")
    deleted = await client.videos.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.videos.delete(created.id)


async def test_content_and_remix_of_an_unfinished_video_are_refused_as_not_ready(
    api_only: Harness,
) -> None:
    client = api_only.client
    created = await client.videos.create(prompt="a ball")
    with pytest.raises(openai.BadRequestError) as content_error:
        await client.videos.download_content(created.id)
    with pytest.raises(openai.BadRequestError) as remix_error:
        await client.videos.remix(created.id, prompt="a square")
    assert content_error.value.code == remix_error.value.code == "video_not_ready"


async def test_a_json_data_url_input_reference_is_stored_as_png(api_only: Harness) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(solid_png((20, 90, 230))).decode()
    response = await api_only.svc.client.post(
        "/v1/videos",
        json={"prompt": "a ball", "input_reference": {"image_url": data_url}},
    )
    assert response.status_code == 200, response.text
    validate_against("VideoResource", response.json())
    stored = (await api_only.native(response.json()["id"]))["request"]["image"]
    image = decode_image(api_only.svc.runtime.settings.uploads_dir / stored)
    assert tuple(image[-1, -1]) == (20, 90, 230)


async def test_the_same_idempotency_key_returns_the_first_video(api_only: Harness) -> None:
    client = api_only.client
    key = {"Idempotency-Key": "create-once"}
    first = await client.videos.create(prompt="a ball", extra_headers=key)
    again = await client.videos.create(prompt="a ball", extra_headers=key)
    assert again.id == first.id
    with pytest.raises(openai.ConflictError):
        await client.videos.create(prompt="a square", extra_headers=key)


@pytest.mark.parametrize(
    ("arguments", "code", "param"),
    [
        ({"size": "999x999"}, "invalid_value", "size"),
        ({"seconds": "5"}, "invalid_value", "seconds"),
        ({"model": "sora-9"}, "model_not_found", "model"),
        ({"extra_body": {"colour": "red"}}, "unknown_parameter", "colour"),
        ({"prompt": ""}, "string_below_min_length", "prompt"),
        ({"prompt": "x" * 32_001}, "string_above_max_length", "prompt"),
        # SDK 3.57 cannot pass the object form as input_reference= (it expects a
        # file there); extra_body sends it as form fields input_reference[...].
        (
            {"extra_body": {"input_reference": {"image_url": "https://example.com/cat.png"}}},
            "unsupported_input_reference",
            "input_reference.image_url",
        ),
        (
            {"extra_body": {"input_reference": {"file_id": "file-123"}}},
            "unsupported_input_reference",
            "input_reference.file_id",
        ),
        (
            {"input_reference": ("notes.txt", b"not an image at all", "text/plain")},
            "invalid_input_reference",
            "input_reference",
        ),
    ],
)
async def test_bad_create_arguments_are_bad_requests_and_write_nothing(
    api_only: Harness, arguments: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await api_only.client.videos.create(**{"prompt": "a ball", **arguments})
    assert (caught.value.code, caught.value.param) == (code, param)
    assert caught.value.type == "invalid_request_error"
    assert await api_only.nothing_written()


async def test_an_input_reference_over_10_mib_is_refused(api_only: Harness) -> None:
    too_big = solid_png((1, 2, 3)) + bytes(MAX_INPUT_REFERENCE_BYTES)
    with pytest.raises(openai.BadRequestError) as caught:
        await api_only.client.videos.create(
            prompt="a ball", input_reference=("big.png", too_big, "image/png")
        )
    assert (caught.value.code, caught.value.param) == (
        "input_reference_too_large",
        "input_reference",
    )
    assert await api_only.nothing_written()


@pytest.mark.parametrize("video_id", ["video_" + "0" * 24, "video_123", "characters-x"])
async def test_unknown_ids_are_not_found(api_only: Harness, video_id: str) -> None:
    client = api_only.client
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve(video_id)
    with pytest.raises(openai.NotFoundError):
        await client.videos.download_content(video_id)
    with pytest.raises(openai.NotFoundError):
        await client.videos.remix(video_id, prompt="a ball")
    with pytest.raises(openai.NotFoundError):
        await client.videos.delete(video_id)


async def test_characters_edits_and_extensions_are_refused_as_unsupported(
    api_only: Harness,
) -> None:
    videos = api_only.client.videos
    clip = ("clip.mp4", b"\0", "video/mp4")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "characters": lambda: videos.create_character(name="cat", video=clip),
        "character": lambda: videos.get_character("char_123"),
        "edits": lambda: videos.edit(prompt="bluer", video=clip),
        "extensions": lambda: videos.extend(prompt="longer", seconds="4", video=clip),
    }
    for name, call in calls.items():
        with pytest.raises(openai.BadRequestError) as caught:
            await call()
        assert caught.value.code == "unsupported_endpoint", name
        assert "does not support" in caught.value.message, name


async def test_framework_errors_on_v1_are_openai_shaped(api_only: Harness) -> None:
    client = api_only.svc.client
    for method, path, status in [
        ("GET", "/v1/videos?limit=500", 400),
        ("GET", "/v1/videos?order=sideways", 400),
        ("GET", "/v1/videos?after=" + "x" * 129, 400),
        ("GET", "/v1/videos?after=video_nope", 404),  # an unknown cursor, as any unknown id
        ("GET", "/v1/nothing-here", 404),
        ("PUT", "/v1/videos", 405),
    ]:
        response = await client.request(method, path)
        assert response.status_code == status, (path, response.text)
        validate_error_body(response.json())
