"""What the Runway, Luma and Veo adapters put on the wire and how they read answers.

The wire is faked with httpx's MockTransport; the behaviours every provider shares
(retries, fallback, downloads) are in tests/contract against real emulators.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reelforge.errors import (
    GenerationFailedError,
    ProviderAuthError,
    ProviderRejectedError,
    RateLimitedError,
)
from reelforge.models import GenerationRequest
from reelforge.providers import luma, runway, veo
from reelforge.providers.base import CallbackProvider, RemoteState
from reelforge.providers.registry import build_provider
from reelforge.settings import ProviderConfig, Settings, StorageSettings

Handler = Callable[[httpx.Request], httpx.Response]
REQ = GenerationRequest(prompt="a red ball", duration_seconds=4, size="1280x720")
PNG = b"\x89PNG\r\n\x1a\nfake"


def _config(kind: str, **options: str | int) -> ProviderConfig:
    return ProviderConfig(
        kind=kind, base_url="http://vendor", api_key="secret-key", options=options
    )  # type: ignore[arg-type]


def _recorder(response: httpx.Response) -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    return seen, httpx.MockTransport(handler)


def _upload(settings: Settings) -> str:
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.uploads_dir / "ref.png").write_bytes(PNG)
    return "ref.png"


# --- Runway ------------------------------------------------------------------------


async def test_runway_text_to_video_sends_promptText_ratio_and_the_version_header(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(200, json={"id": "task-1"}))
    provider = runway.RunwayProvider(
        name="rw", config=_config("runway", model="veo3.1"), settings=settings, transport=transport
    )
    assert await provider.submit(REQ, idempotency_key="k") == "task-1"
    request = seen[0]
    assert request.url.path == "/v1/text_to_video"
    assert request.headers["x-runway-version"] == "2024-11-06"
    assert request.headers["authorization"] == "Bearer secret-key"
    assert json.loads(request.content) == {
        "model": "veo3.1",
        "promptText": "a red ball",
        "duration": 4,
        "ratio": "1280:720",
        "audio": True,
    }
    await provider.aclose()


async def test_runway_an_input_image_goes_to_image_to_video_as_a_data_uri(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(200, json={"id": "task-1"}))
    provider = runway.RunwayProvider(
        name="rw", config=_config("runway"), settings=settings, transport=transport
    )
    req = REQ.model_copy(update={"image": _upload(settings), "duration_seconds": 5})
    await provider.submit(req, idempotency_key="k")
    assert seen[0].url.path == "/v1/image_to_video"
    body = json.loads(seen[0].content)
    assert body["promptImage"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    await provider.aclose()


async def test_runway_refuses_an_image_over_the_data_uri_limit_before_sending(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(200, json={"id": "task-1"}))
    provider = runway.RunwayProvider(
        name="rw", config=_config("runway"), settings=settings, transport=transport
    )
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.uploads_dir / "big.png").write_bytes(b"\0" * 4 * 1024 * 1024)
    req = REQ.model_copy(update={"image": "big.png", "duration_seconds": 5})
    with pytest.raises(ProviderRejectedError) as raised:
        await provider.submit(req, idempotency_key="k")
    assert raised.value.code == "image_too_large"
    assert seen == []
    await provider.aclose()


@pytest.mark.parametrize(
    ("task", "state", "progress", "extra"),
    [
        ({"status": "PENDING"}, RemoteState.QUEUED, 0, {}),
        ({"status": "THROTTLED"}, RemoteState.QUEUED, 0, {"waiting_for": "vendor_concurrency"}),
        ({"status": "RUNNING", "progress": 0.42}, RemoteState.RUNNING, 42, {}),
        ({"status": "SUCCEEDED", "output": ["https://cdn/x.mp4"]}, RemoteState.SUCCEEDED, 100, {}),
        ({"status": "CANCELLED"}, RemoteState.CANCELLED, 0, {}),
    ],
)
async def test_runway_task_states_map_to_ours(
    settings: Settings,
    task: dict[str, object],
    state: RemoteState,
    progress: int,
    extra: dict[str, str],
) -> None:
    _, transport = _recorder(httpx.Response(200, json={"id": "t", **task}))
    provider = runway.RunwayProvider(
        name="rw", config=_config("runway"), settings=settings, transport=transport
    )
    status = await provider.poll("t")
    assert (status.state, status.progress) == (state, progress)
    assert extra.items() <= status.extra.items()
    await provider.aclose()


@pytest.mark.parametrize(
    ("failure_code", "ours"),
    [
        ("SAFETY.INPUT.TEXT", "moderation_blocked"),
        ("SAFETY.OUTPUT.VIDEO", "moderation_blocked"),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", "moderation_blocked"),
        ("INTERNAL.BAD_OUTPUT.CODE01", "provider_internal_error"),
        ("INPUT_PREPROCESSING.INTERNAL", "provider_internal_error"),
        ("ASSET.INVALID", "generation_failed"),
        (None, "generation_failed"),
    ],
)
def test_runway_failure_codes_map_to_our_codes(failure_code: str | None, ours: str) -> None:
    assert runway.failure_code(failure_code) == ours


async def test_runway_output_links_are_fetched_without_our_credentials(
    settings: Settings, tmp_path: Path
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "vendor":
            return httpx.Response(
                200,
                json={"id": "t", "status": "SUCCEEDED", "output": ["https://cdn.example/o.mp4"]},
            )
        return httpx.Response(200, content=b"not a video")

    provider = runway.RunwayProvider(
        name="rw",
        config=_config("runway"),
        settings=settings,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(Exception, match="not a readable video"):
        await provider.download("t", tmp_path / "o.mp4")
    cdn = [r for r in seen if r.url.host == "cdn.example"]
    assert cdn
    assert "authorization" not in cdn[0].headers
    await provider.aclose()


async def test_a_download_over_the_size_cap_fails_without_retry(
    settings: Settings, tmp_path: Path
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "vendor":
            return httpx.Response(
                200, json={"id": "t", "status": "SUCCEEDED", "output": ["https://cdn/o"]}
            )
        return httpx.Response(200, content=b"x" * 2000)

    config = _config("runway", max_download_bytes=1000)
    provider = runway.RunwayProvider(
        name="rw", config=config, settings=settings, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(GenerationFailedError) as raised:
        await provider.download("t", tmp_path / "o.mp4")
    assert raised.value.code == "download_too_large"
    assert not raised.value.retryable
    assert not (tmp_path / "o.mp4").exists()
    await provider.aclose()


async def test_runway_a_400_is_rejected_with_runways_error_text(settings: Settings) -> None:
    _, transport = _recorder(httpx.Response(400, json={"error": "Invalid ratio"}))
    provider = runway.RunwayProvider(
        name="rw", config=_config("runway"), settings=settings, transport=transport
    )
    with pytest.raises(ProviderRejectedError, match="Invalid ratio"):
        await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()


# --- Luma --------------------------------------------------------------------------


async def test_luma_sends_the_dream_machine_fields(settings: Settings) -> None:
    seen, transport = _recorder(httpx.Response(201, json={"id": "gen-1", "state": "queued"}))
    provider = luma.LumaProvider(
        name="lm", config=_config("luma"), settings=settings, transport=transport
    )
    req = REQ.model_copy(update={"duration_seconds": 9})
    assert await provider.submit(req, idempotency_key="k") == "gen-1"
    assert seen[0].url.path == "/generations/video"
    assert json.loads(seen[0].content) == {
        "model": "ray-2",
        "prompt": "a red ball",
        "duration": "9s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    await provider.aclose()


async def test_luma_with_push_completion_sends_the_callback_url(settings: Settings) -> None:
    seen, transport = _recorder(httpx.Response(201, json={"id": "gen-1", "state": "queued"}))
    provider = luma.LumaProvider(
        name="lm", config=_config("luma"), settings=settings, transport=transport
    )
    assert isinstance(provider, CallbackProvider)
    req = REQ.model_copy(update={"duration_seconds": 5})
    await provider.submit(req, idempotency_key="k", callback_url="https://rf.example/cb/lm/t")
    assert json.loads(seen[0].content)["callback_url"] == "https://rf.example/cb/lm/t"
    await provider.verify_callback({}, b"anything: Luma signs nothing")
    await provider.aclose()


async def test_luma_without_an_image_base_url_offers_no_image_input(settings: Settings) -> None:
    provider = luma.LumaProvider(name="lm", config=_config("luma"), settings=settings)
    assert not provider.capabilities().image_input
    req = REQ.model_copy(update={"image": _upload(settings), "duration_seconds": 5})
    with pytest.raises(ProviderRejectedError) as raised:
        await provider.submit(req, idempotency_key="k")
    assert raised.value.code == "image_input_needs_url"
    await provider.aclose()


async def test_luma_sends_an_image_as_a_keyframe_url_under_image_base_url(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(201, json={"id": "gen-1", "state": "queued"}))
    config = _config("luma", image_base_url="https://files.example/uploads/")
    provider = luma.LumaProvider(name="lm", config=config, settings=settings, transport=transport)
    assert provider.capabilities().image_input
    req = REQ.model_copy(update={"image": _upload(settings), "duration_seconds": 5})
    await provider.submit(req, idempotency_key="k")
    assert json.loads(seen[0].content)["keyframes"] == {
        "frame0": {"type": "image", "url": "https://files.example/uploads/ref.png"}
    }
    await provider.aclose()


async def test_luma_with_s3_storage_sends_the_upload_as_a_presigned_url(
    settings: Settings,
) -> None:
    storage = StorageSettings(
        kind="s3",
        endpoint_url="http://127.0.0.1:9",
        bucket="media",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="example-secret",  # type: ignore[arg-type]  # noqa: S106
        path_style=True,
    )
    on_s3 = settings.model_copy(update={"storage": storage})
    seen, transport = _recorder(httpx.Response(201, json={"id": "gen-1", "state": "queued"}))
    config = _config("luma", image_url_seconds=900)
    provider = luma.LumaProvider(name="lm", config=config, settings=on_s3, transport=transport)
    assert provider.capabilities().image_input
    req = REQ.model_copy(update={"image": "ref_abc.png", "duration_seconds": 5})
    await provider.submit(req, idempotency_key="k")
    url = json.loads(seen[0].content)["keyframes"]["frame0"]["url"]
    assert url.startswith("http://127.0.0.1:9/media/uploads/ref_abc.png?")
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    await provider.aclose()


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("Prompt not allowed: content moderation", "moderation_blocked"),
        ("Your image violates our content policy", "moderation_blocked"),
        ("Internal error, please retry", "generation_failed"),
        (None, "generation_failed"),
    ],
)
def test_luma_failure_reasons_map_to_our_codes(reason: str | None, code: str) -> None:
    assert luma.failure_code(reason) == code


async def test_luma_a_401_is_an_auth_error_with_lumas_detail(settings: Settings) -> None:
    _, transport = _recorder(httpx.Response(401, json={"detail": "Invalid API key is provided"}))
    provider = luma.LumaProvider(
        name="lm", config=_config("luma"), settings=settings, transport=transport
    )
    with pytest.raises(ProviderAuthError, match="Invalid API key"):
        await provider.poll("gen-1")
    await provider.aclose()


# --- Veo ---------------------------------------------------------------------------


async def test_veo_gemini_sends_instances_and_parameters_with_the_key_header(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(200, json={"name": "models/m/operations/op1"}))
    provider = veo.VeoProvider(
        name="v", config=_config("veo"), settings=settings, transport=transport
    )
    req = REQ.model_copy(update={"negative_prompt": "blur", "seed": 3})
    assert await provider.submit(req, idempotency_key="k") == "models/m/operations/op1"
    request = seen[0]
    assert request.url.path == "/v1beta/models/veo-3.1-generate-preview:predictLongRunning"
    assert request.headers["x-goog-api-key"] == "secret-key"
    assert json.loads(request.content) == {
        "instances": [{"prompt": "a red ball"}],
        "parameters": {
            "sampleCount": 1,
            "negativePrompt": "blur",
            "durationSeconds": 4,
            "aspectRatio": "16:9",
            "resolution": "720p",
        },
    }
    await provider.aclose()


async def test_veo_vertex_sends_seed_and_audio_and_polls_with_fetch_predict_operation(
    settings: Settings,
) -> None:
    name = "projects/p/locations/l/publishers/google/models/veo-3.1-generate-001/operations/o"
    seen, transport = _recorder(httpx.Response(200, json={"name": name}))
    config = _config("veo", api="vertex", model="veo-3.1-generate-001", project="p", location="l")
    provider = veo.VeoProvider(name="v", config=config, settings=settings, transport=transport)
    await provider.submit(REQ.model_copy(update={"seed": 3}), idempotency_key="k")
    await provider.poll(name)
    create, poll = seen
    assert create.url.path == (
        "/v1beta1/projects/p/locations/l/publishers/google/models/"
        "veo-3.1-generate-001:predictLongRunning"
    )
    assert json.loads(create.content)["parameters"]["seed"] == 3
    assert json.loads(create.content)["parameters"]["generateAudio"] is True
    assert (poll.method, poll.url.path) == (
        "POST",
        "/v1beta1/projects/p/locations/l/publishers/google/models/"
        "veo-3.1-generate-001:fetchPredictOperation",
    )
    assert json.loads(poll.content) == {"operationName": name}
    await provider.aclose()


async def test_veo_an_invalid_key_400_is_an_auth_error(settings: Settings) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    _, transport = _recorder(httpx.Response(400, json=body))
    provider = veo.VeoProvider(
        name="v", config=_config("veo"), settings=settings, transport=transport
    )
    with pytest.raises(ProviderAuthError):
        await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()


async def test_veo_a_429_takes_its_wait_from_retry_info(settings: Settings) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}],
        }
    }
    _, transport = _recorder(httpx.Response(429, json=body))
    provider = veo.VeoProvider(
        name="v", config=_config("veo"), settings=settings, transport=transport
    )
    with pytest.raises(RateLimitedError) as raised:
        await provider.submit(REQ, idempotency_key="k")
    assert raised.value.retry_after == 3.0
    await provider.aclose()


@pytest.mark.parametrize(
    ("operation", "state", "code"),
    [
        ({"name": "n"}, RemoteState.RUNNING, None),
        (
            {"done": True, "response": {"generateVideoResponse": {"raiMediaFilteredCount": 1}}},
            RemoteState.FAILED,
            "moderation_blocked",
        ),
        (
            {"done": True, "error": {"code": 3, "status": "INVALID_ARGUMENT"}},
            RemoteState.FAILED,
            "invalid_request",
        ),
        (
            {"done": True, "error": {"code": 13, "status": "INTERNAL"}},
            RemoteState.FAILED,
            "provider_internal_error",
        ),
        ({"done": True, "error": {"code": 1, "status": "CANCELLED"}}, RemoteState.CANCELLED, None),
    ],
)
async def test_veo_operation_outcomes_map_to_ours(
    settings: Settings, operation: dict[str, object], state: RemoteState, code: str | None
) -> None:
    _, transport = _recorder(httpx.Response(200, json=operation))
    provider = veo.VeoProvider(
        name="v", config=_config("veo"), settings=settings, transport=transport
    )
    status = await provider.poll("models/m/operations/o")
    assert (status.state, status.error_code) == (state, code)
    await provider.aclose()


@pytest.mark.parametrize(
    ("uri", "fid"),
    [
        (
            "https://generativelanguage.googleapis.com/v1beta/files/abc123:download?alt=media",
            "abc123",
        ),
        ("files/abc123", "abc123"),
        ("gs://bucket/o.mp4", None),
    ],
)
def test_veo_file_ids_are_parsed_as_the_sdk_parses_them(uri: str, fid: str | None) -> None:
    assert veo.file_id(uri) == fid


async def test_veo_on_the_gemini_api_sends_a_webhook_config_for_push_completion(
    settings: Settings,
) -> None:
    seen, transport = _recorder(httpx.Response(200, json={"name": "models/m/operations/op1"}))
    provider = veo.veo_provider(
        name="v", config=_config("veo"), settings=settings, transport=transport
    )
    assert isinstance(provider, CallbackProvider)
    await provider.submit(REQ, idempotency_key="k", callback_url="https://rf.example/cb/v/t")
    assert json.loads(seen[0].content)["webhookConfig"] == {"uris": ["https://rf.example/cb/v/t"]}
    await provider.aclose()


def test_veo_on_vertex_takes_no_callbacks(settings: Settings) -> None:
    vertex = settings.model_copy(
        update={"providers": {"v": _config("veo", api="vertex", model="veo-3.1-generate-001")}}
    )
    gemini = settings.model_copy(update={"providers": {"v": _config("veo")}})
    assert not isinstance(build_provider("v", vertex), CallbackProvider)
    assert isinstance(build_provider("v", gemini), veo.GeminiVeoProvider)
