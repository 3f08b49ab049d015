"""The `openai` provider's translation of HTTP answers into our errors.

The wire is faked with httpx's MockTransport; end-to-end behaviour against a real
emulator server lives in tests/integration/test_openai_provider_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reelforge.errors import (
    ProviderAuthError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    ReelforgeError,
    RemoteJobLostError,
)
from reelforge.models import GenerationRequest
from reelforge.providers.base import RemoteState
from reelforge.providers.openai import OpenAIVideosProvider
from reelforge.settings import ProviderConfig, Settings

Handler = Callable[[httpx.Request], httpx.Response]


def _provider(
    settings: Settings, handler: Handler, base_url: str = "http://emu/v1"
) -> OpenAIVideosProvider:
    config = ProviderConfig(kind="openai", base_url=base_url, api_key="sk-test")  # type: ignore[arg-type]
    return OpenAIVideosProvider(
        name="remote", config=config, settings=settings, transport=httpx.MockTransport(handler)
    )


def _error(status: int, code: str, message: str = "nope", **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": message, "type": "x", "param": None, "code": code}}
        return httpx.Response(status, json=body, headers=headers)

    return handler


REQ = GenerationRequest(prompt="a red ball", duration_seconds=4, size="1280x720")


async def test_submit_sends_the_spec_fields_auth_and_idempotency_key(settings: Settings) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "video_abc", "status": "queued"})

    provider = _provider(settings, handler)
    assert await provider.submit(REQ, idempotency_key="video_x-1") == "video_abc"
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/v1/videos")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["idempotency-key"] == "video_x-1"
    assert json.loads(request.content) == {
        "model": "sora-2",
        "prompt": "a red ball",
        "seconds": "4",
        "size": "1280x720",
    }
    await provider.aclose()


@pytest.mark.parametrize(
    ("handler", "error", "code", "retryable"),
    [
        (_error(401, "invalid_api_key"), ProviderAuthError, "provider_auth_failed", False),
        (_error(403, "forbidden"), ProviderAuthError, "provider_auth_failed", False),
        (_error(400, "invalid_size", "bad size"), ProviderRejectedError, "invalid_size", False),
        (_error(422, "unprocessable"), ProviderRejectedError, "unprocessable", False),
        (
            _error(429, "rate_limit_exceeded", **{"Retry-After": "7"}),
            RateLimitedError,
            "rate_limited",
            True,
        ),
        (_error(500, "server_error"), ProviderUnavailableError, "provider_unavailable", True),
        (_error(503, "overloaded"), ProviderUnavailableError, "provider_unavailable", True),
    ],
)
async def test_http_errors_map_to_our_errors(
    settings: Settings, handler: Handler, error: type[ReelforgeError], code: str, retryable: bool
) -> None:
    provider = _provider(settings, handler)
    with pytest.raises(error) as caught:
        await provider.submit(REQ, idempotency_key="k")
    assert caught.value.code == code
    assert caught.value.retryable is retryable
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after == 7.0
    await provider.aclose()


async def test_the_servers_message_is_carried_through(settings: Settings) -> None:
    provider = _provider(settings, _error(400, "invalid_prompt", "prompt is too spicy"))
    with pytest.raises(ProviderRejectedError, match="prompt is too spicy"):
        await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()


async def test_404_on_poll_means_the_remote_job_is_lost(settings: Settings) -> None:
    provider = _provider(settings, _error(404, "not_found"))
    with pytest.raises(RemoteJobLostError):
        await provider.poll("video_gone")
    await provider.aclose()


async def test_a_failed_remote_job_carries_its_code(settings: Settings) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"code": "moderation_blocked", "message": "blocked by moderation"}
        return httpx.Response(
            200, json={"id": "v", "status": "failed", "progress": 40, "error": error}
        )

    provider = _provider(settings, handler)
    status = await provider.poll("v")
    assert (status.state, status.error_code, status.error_message) == (
        RemoteState.FAILED,
        "moderation_blocked",
        "blocked by moderation",
    )
    await provider.aclose()


async def test_timeouts_and_refused_connections_are_retryable(settings: Settings) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler, code in ((timeout, "provider_timeout"), (refused, "provider_unreachable")):
        provider = _provider(settings, handler)
        with pytest.raises(ProviderUnavailableError) as caught:
            await provider.poll("v")
        assert caught.value.code == code and caught.value.retryable
        await provider.aclose()


async def test_a_truncated_download_is_a_retryable_error_and_leaves_no_file(
    settings: Settings, tmp_path: Path
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00" * 10, headers={"content-length": "100"})

    provider = _provider(settings, handler)
    dest = tmp_path / "raw.mp4"
    with pytest.raises(ReelforgeError) as caught:
        await provider.download("v", dest)
    assert caught.value.retryable
    assert list(tmp_path.iterdir()) == []
    await provider.aclose()


async def test_openais_own_api_is_refused_with_the_shutdown_date_and_alternatives(
    settings: Settings,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("must not call api.openai.com")

    provider = _provider(settings, handler, base_url="https://api.openai.com/v1")
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.submit(REQ, idempotency_key="k")
    assert caught.value.code == "sora_api_shut_down" and not caught.value.retryable
    for word in ("2026-09-24", "LiteLLM", "SGLang", "reelforge"):
        assert word in caught.value.message
    await provider.aclose()


def test_capabilities_follow_the_spec(settings: Settings) -> None:
    caps = _provider(settings, _error(500, "x")).capabilities()
    assert caps.fits(REQ)
    assert not caps.fits(GenerationRequest(prompt="x", duration_seconds=5, size="1280x720"))
    assert not caps.fits(GenerationRequest(prompt="x", duration_seconds=4, size="640x360"))
