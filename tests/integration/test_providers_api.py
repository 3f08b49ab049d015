"""``GET /api/providers``: configured providers with capabilities, prices, circuit
state and limits, read live from Redis (real app, real Redis, no workers needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from reelforge.runtime import Runtime
from reelforge.settings import ProviderConfig, Settings
from tests.service import running_server


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(
        update={
            "providers": {
                "local": ProviderConfig(kind="local"),
                "rep": ProviderConfig(
                    kind="replicate",
                    api_key="r8_secret_never_shown",
                    options={"model": "google/veo-3.1-fast"},
                    requests_per_minute=30,
                    max_concurrent_jobs=4,
                    breaker_failures=2,
                ),
                "kling": ProviderConfig(
                    kind="fal",
                    options={"model": "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"},
                    price_per_second=0.05,
                ),
                "broken": ProviderConfig(kind="openai"),  # no base_url
            },
            "default_route": ["rep", "kling"],
        }
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    rt = await Runtime.open(settings)
    try:
        async with running_server(settings, rt) as url, httpx.AsyncClient(base_url=url) as client:
            yield client, rt
    finally:
        await rt.close()


async def listing(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/providers")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["data"]}


async def test_catalogue_model_is_listed_with_its_capabilities_and_prices(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    rep = (await listing(api[0]))["rep"]

    assert (rep["kind"], rep["model"]) == ("replicate", "google/veo-3.1-fast")
    assert rep["capabilities"]["durations"] == [4, 6, 8]
    assert "1280x720" in rep["capabilities"]["sizes"]
    assert rep["capabilities"]["audio"] is True
    assert rep["price_per_second"] == 0.15  # it makes audio, so the audio price applies
    assert rep["price_per_second_without_audio"] == 0.10
    assert rep["price_per_second_with_audio"] == 0.15
    assert rep["default"] is True and rep["in_route"] is True


async def test_configured_price_overrides_the_catalogue(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    kling = (await listing(api[0]))["kling"]

    assert kling["price_per_second"] == 0.05
    assert kling["default"] is False and kling["in_route"] is True


async def test_open_circuit_shows_as_open_with_its_failure_count(
    api: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, rt = api
    for _ in range(2):
        await rt.breakers.failure("rep", settings.providers["rep"])

    circuit = (await listing(client))["rep"]["circuit"]

    assert circuit == {
        "state": "open",
        "failures": 2,
        "failure_threshold": 2,
        "cooldown_seconds": 30.0,
    }
    assert (await listing(client))["local"]["circuit"]["state"] == "closed"


async def test_limits_show_the_configuration_and_jobs_in_flight(
    api: tuple[httpx.AsyncClient, Runtime], settings: Settings
) -> None:
    client, rt = api
    await rt.capacity.acquire("rep", settings.providers["rep"], "video_" + "a" * 24)

    limits = (await listing(client))["rep"]["limits"]

    assert limits == {"requests_per_minute": 30, "max_concurrent_jobs": 4, "jobs_in_flight": 1}


async def test_misconfigured_provider_is_listed_with_its_reason(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    broken = (await listing(api[0]))["broken"]

    assert broken["capabilities"] is None
    assert broken["error"]["code"] == "provider_misconfigured"


async def test_secrets_never_appear_in_the_listing(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    response = await api[0].get("/api/providers")

    assert "r8_secret_never_shown" not in response.text
    assert response.json()["default_route"] == ["rep", "kling"]
