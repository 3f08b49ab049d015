"""A route across two vendor emulators, end to end through the native HTTP API: the
real app, a real worker, real Redis, the Runway, Luma and Veo emulators on 127.0.0.1.

A vendor that keeps failing falls over to the next one in the route; a moderation
refusal does not (another vendor would refuse it too, and it would be billed twice);
bad credentials move on without retrying the same vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelforge.media.probe import probe
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.luma import LumaEmulator, running_luma
from tests.emulators.runway import RunwayEmulator, running_runway
from tests.emulators.vendor_common import VendorConfig
from tests.emulators.veo import VeoEmulator, running_veo
from tests.service import Service, running_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = "vendor-route-test-key"
# Fits every model on the route: Runway gen4.5 (2-10 s), Luma ray-2 (5/9 s), Veo (4/6/8 s)
# would not, so the Veo route uses its own duration.
BODY = {"prompt": "a lighthouse at night", "duration_seconds": 5, "size": "1280x720"}


@dataclass
class Route:
    service: Service
    runway: RunwayEmulator
    luma: LumaEmulator
    veo: VeoEmulator


def _config(kind: str, base_url: str, **options: str) -> ProviderConfig:
    return ProviderConfig(
        kind=kind,
        base_url=base_url,
        api_key=KEY,  # type: ignore[arg-type]
        poll_interval_seconds=0.05,
        timeout_seconds=5,
        breaker_failures=50,
        options=options,
    )


@pytest.fixture
async def route(service_settings: Settings) -> AsyncIterator[Route]:
    config = {"api_key": KEY, "job_seconds": 0.5, "retry_after_seconds": 0}
    async with (
        running_runway(VendorConfig(**config)) as runway,  # type: ignore[arg-type]
        running_luma(VendorConfig(**config)) as luma,  # type: ignore[arg-type]
        running_veo(VendorConfig(**config)) as veo,  # type: ignore[arg-type]
    ):
        providers = {
            **service_settings.providers,
            "runway": _config("runway", runway.base_url, model="gen4.5"),
            "luma": _config("luma", luma.base_url, model="ray-2"),
            "veo": _config("veo", veo.base_url, model="veo-3.1-generate-preview"),
        }
        settings = service_settings.model_copy(
            update={"providers": providers, "default_route": ["runway", "luma"]}
        )
        async with running_service(settings) as svc:
            yield Route(svc, runway, luma, veo)


async def _run(route: Route, **overrides: Any) -> dict[str, Any]:
    response = await route.service.client.post("/api/videos/generate", json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    return await route.service.wait_terminal(response.json()["id"], timeout=90)


async def test_a_failing_vendor_falls_over_to_the_next_one_in_the_route(
    route: Route, tmp_path: Path
) -> None:
    route.runway.config.fail_next = 10_000
    video = await _run(route)
    assert video["status"] == "completed", video["error"]
    providers = [a["provider"] for a in video["attempts"]]
    assert providers[0] == "runway"
    assert providers[-1] == "luma"
    assert route.runway.submits == 0
    assert route.luma.submits == 1
    content = await route.service.client.get(f"/api/videos/{video['id']}/content?format=mp4")
    path = tmp_path / "v.mp4"
    path.write_bytes(content.content)
    info = await probe(path)
    assert info.video is not None
    assert (info.video.width, info.video.height) == (1280, 720)


async def test_a_runway_internal_failure_falls_over_to_luma(route: Route) -> None:
    route.runway.config.fail_jobs_with = "INTERNAL.BAD_OUTPUT.CODE01"
    video = await _run(route)
    assert video["status"] == "completed", video["error"]
    assert video["attempts"][0]["error"]["code"] == "provider_internal_error"
    assert video["attempts"][-1]["provider"] == "luma"
    assert route.luma.submits == 1


async def test_a_moderation_refusal_does_not_fall_over(route: Route) -> None:
    route.runway.config.fail_jobs_with = "SAFETY.INPUT.TEXT"
    video = await _run(route)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "prompt_rejected"  # the vendor's moderation, our code
    assert len(video["attempts"]) == 1
    assert (route.runway.submits, route.luma.submits) == (1, 0)


async def test_bad_credentials_move_on_without_retrying_the_same_vendor(route: Route) -> None:
    route.runway.config.unauthorized = True
    video = await _run(route)
    assert video["status"] == "completed", video["error"]
    assert video["attempts"][0]["error"]["code"] == "provider_auth_failed"
    assert route.runway.state.requests["POST /v1/text_to_video"] == 1
    assert route.luma.submits == 1


async def test_veo_safety_filtering_fails_with_the_moderation_code(route: Route) -> None:
    route.veo.config.fail_jobs_with = "RAI"
    video = await _run(route, provider="veo", duration_seconds=4)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "prompt_rejected"  # the vendor's moderation, our code
    assert route.veo.submits == 1


async def test_veo_completes_through_the_api_with_the_catalogue_price(route: Route) -> None:
    video = await _run(route, provider="veo", duration_seconds=4)
    assert video["status"] == "completed", video["error"]
    assert video["cost"] == pytest.approx(1.6)  # 4 s at the catalogue's $0.40/s


async def test_a_second_run_of_the_same_job_does_not_submit_again(route: Route) -> None:
    # Runway takes no idempotency key: a second run of the job (saq retrying a job
    # whose heartbeat it missed) must not make, and bill, a second task.
    from reelforge.worker import generate_video
    from tests.service import wait_until

    route.runway.config.slow_seconds = 1.0
    created = await route.service.client.post(
        "/api/videos/generate", json={**BODY, "provider": "runway"}
    )
    video_id = created.json()["id"]

    async def submitting() -> bool:
        status = await route.service.client.get(f"/api/videos/status/{video_id}")
        return bool(status.json()["stage"] == "submitting")

    await wait_until(submitting, timeout=30, interval=0.02)
    await generate_video({"runtime": route.service.runtime}, video_id=video_id)  # type: ignore[typeddict-item]
    video = await route.service.wait_terminal(video_id, timeout=90)
    assert video["status"] == "completed", video["error"]
    assert route.runway.submits == 1


async def test_a_throttled_runway_task_shows_as_waiting_for_vendor_concurrency(
    route: Route,
) -> None:
    from tests.service import wait_until

    route.runway.config.throttle_jobs = True
    route.runway.config.job_seconds = 4
    created = await route.service.client.post(
        "/api/videos/generate", json={**BODY, "provider": "runway"}
    )
    video_id = created.json()["id"]
    seen: list[dict[str, Any]] = []

    async def throttled() -> bool:
        seen.append((await route.service.client.get(f"/api/videos/status/{video_id}")).json())
        return seen[-1].get("waiting_for") == "vendor_concurrency"

    await wait_until(throttled, timeout=30, interval=0.05)
    assert seen[-1]["stage"] == "generating"
    video = await route.service.wait_terminal(video_id, timeout=90)
    assert video["status"] == "completed", video["error"]
    assert not video.get("waiting_for")
