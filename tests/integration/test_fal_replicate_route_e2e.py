"""A route across the Replicate and fal emulators, end to end through the native HTTP
API: the real app, a real worker, real Redis, both emulators on 127.0.0.1 (fal over
TLS with a test CA).

Replicate failing on every request falls over to fal, which makes the video; a
moderation refusal at Replicate does not fall over (fal would be billed for the same
refusal); bad credentials at Replicate move on to fal without retrying Replicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelforge.settings import ProviderConfig, Settings
from tests.emulators.fal import FalConfig, FalEmulator
from tests.emulators.fal import running_emulator as running_fal
from tests.emulators.replicate import CREATE_ROUTE, ReplicateConfig, ReplicateEmulator
from tests.emulators.replicate import running_emulator as running_replicate
from tests.service import Service, running_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = "route-test-key"
BODY = {"prompt": "a windmill in a storm", "duration_seconds": 4, "size": "1280x720"}


@dataclass
class Route:
    service: Service
    replicate: ReplicateEmulator
    fal: FalEmulator


def _config(kind: str, base_url: str, model: str) -> ProviderConfig:
    return ProviderConfig(
        kind=kind,
        base_url=base_url,
        api_key=KEY,  # type: ignore[arg-type]
        poll_interval_seconds=0.05,
        timeout_seconds=5,
        breaker_failures=50,
        options={"model": model},
    )


@pytest.fixture
async def route(
    service_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Route]:
    async with (
        running_replicate(
            ReplicateConfig(api_key=KEY, job_seconds=0.5, retry_after_seconds=0)
        ) as replicate,
        running_fal(tmp_path, FalConfig(api_key=KEY, job_seconds=0.5)) as fal,
    ):
        monkeypatch.setenv("SSL_CERT_FILE", str(fal.ca_file))
        providers = {
            **service_settings.providers,
            "rep": _config("replicate", replicate.base_url, "google/veo-3.1-fast"),
            "fal": _config("fal", fal.base_url, "fal-ai/veo3.1"),
        }
        settings = service_settings.model_copy(
            update={"providers": providers, "default_route": ["rep", "fal"]}
        )
        async with running_service(settings) as svc:
            yield Route(svc, replicate, fal)


async def _run(route: Route) -> dict[str, Any]:
    response = await route.service.client.post("/api/videos/generate", json=BODY)
    assert response.status_code == 202, response.text
    return await route.service.wait_terminal(response.json()["id"], timeout=90)


def _providers(video: dict[str, Any]) -> list[str]:
    return [attempt["provider"] for attempt in video["attempts"]]


async def test_replicate_failing_falls_over_to_fal_which_makes_the_video(route: Route) -> None:
    route.replicate.config.fail_next = 10_000

    video = await _run(route)

    assert video["status"] == "completed", video.get("error")
    assert _providers(video) == ["rep", "fal"]
    assert video["attempts"][0]["error"]["code"] == "provider_unavailable"
    assert sum(route.replicate.state.submits_by_prompt.values()) == 0
    assert sum(route.fal.state.submits_by_prompt.values()) == 1
    assert video["cost"] == pytest.approx(0.40 * 4, abs=0.1)  # fal's Veo 3.1 with audio


async def test_moderation_at_replicate_does_not_fall_over(route: Route) -> None:
    route.replicate.config.fail_jobs_with = "moderation_blocked"

    video = await _run(route)

    assert video["status"] == "failed"
    assert video["error"]["code"] == "prompt_rejected"  # the vendor's moderation, our code
    assert _providers(video) == ["rep"]
    assert sum(route.fal.state.submits_by_prompt.values()) == 0


async def test_bad_credentials_at_replicate_move_on_to_fal_without_a_retry(route: Route) -> None:
    route.replicate.config.unauthorized = True

    video = await _run(route)

    assert video["status"] == "completed", video.get("error")
    assert _providers(video) == ["rep", "fal"]
    assert video["attempts"][0]["error"]["code"] == "provider_auth_failed"
    assert route.replicate.state.requests[CREATE_ROUTE] == 1
