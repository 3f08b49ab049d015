"""Resilience: fallback routes, circuit breakers, rate limits and concurrency caps
shared through Redis, deadlines, cancellation freeing capacity, the local
provider's faulty mode, and the API riding out a Redis restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.settings import ProviderConfig, Settings
from tests.emulators.openai_videos import Emulator, EmulatorConfig, running_emulator
from tests.service import Service, running_service, service_env, spawn, stop, wait_until

pytestmark = pytest.mark.slow

BODY = {"prompt": "a red ball", "duration_seconds": 4, "size": "1280x720"}


def _remote(emu: Emulator, **fields: Any) -> ProviderConfig:
    return ProviderConfig(
        kind="openai",
        base_url=emu.base_url,
        poll_interval_seconds=0.05,
        timeout_seconds=2,
        **fields,
    )


@pytest.fixture
async def two_emulators() -> AsyncIterator[tuple[Emulator, Emulator]]:
    fast = {"job_seconds": 0.3, "poll_after_ms": 50}
    async with (
        running_emulator(EmulatorConfig(**fast)) as primary,  # type: ignore[arg-type]
        running_emulator(EmulatorConfig(**fast)) as fallback,  # type: ignore[arg-type]
    ):
        yield primary, fallback


def _with(settings: Settings, **update: Any) -> Settings:
    providers = {**settings.providers, **update.pop("providers", {})}
    return settings.model_copy(update={"providers": providers, **update})


async def _generate(svc: Service, **fields: Any) -> dict[str, Any]:
    response = await svc.client.post("/api/videos/generate", json={**BODY, **fields})
    assert response.status_code == 202, response.text
    video: dict[str, Any] = response.json()
    return video


async def test_a_failing_provider_falls_over_to_the_next_in_the_route(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, fallback = two_emulators
    primary.config.fail_next = 1_000
    settings = _with(
        service_settings,
        providers={"primary": _remote(primary), "fallback": _remote(fallback)},
        default_route=["primary", "fallback"],
    )
    async with running_service(settings) as svc:
        video = await svc.wait_terminal((await _generate(svc))["id"])
    assert video["status"] == "completed", video["error"]
    assert video["route"] == ["primary", "fallback"]
    assert [(a["provider"], (a["error"] or {}).get("code")) for a in video["attempts"]] == [
        ("primary", "provider_unavailable"),
        ("fallback", None),
    ]
    assert video["provider"] == "fallback"


async def test_a_user_error_does_not_fall_over(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, fallback = two_emulators
    primary.config.fail_jobs_with = "moderation_blocked"
    settings = _with(
        service_settings,
        providers={"primary": _remote(primary), "fallback": _remote(fallback)},
        default_route=["primary", "fallback"],
    )
    async with running_service(settings) as svc:
        video = await svc.wait_terminal((await _generate(svc))["id"])
    assert video["status"] == "failed" and video["error"]["code"] == "prompt_rejected"
    assert len(video["attempts"]) == 1 and not fallback.state.jobs


async def test_the_breaker_opens_sends_traffic_to_the_fallback_and_closes_after_recovery(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, fallback = two_emulators
    primary.config.fail_next = 1_000
    # The cool-down must outlast the next video's trip to the breaker on a busy
    # machine (else it is half-open already and the primary gets a trial call).
    breaker = {"breaker_failures": 2, "breaker_cooldown_seconds": 5.0}
    settings = _with(
        service_settings,
        providers={"primary": _remote(primary, **breaker), "fallback": _remote(fallback)},
        default_route=["primary", "fallback"],
    )
    async with running_service(settings) as svc:
        first_two = [await svc.wait_terminal((await _generate(svc))["id"]) for _ in range(2)]
        assert all(len(v["attempts"]) == 2 for v in first_two)  # tried primary, fell over
        assert (await svc.runtime.breakers.state("primary")).state == "open"

        creates_at_primary = len(primary.state.create_attempts)
        while_open = await svc.wait_terminal((await _generate(svc))["id"])
        assert [a["provider"] for a in while_open["attempts"]] == ["fallback"]
        assert len(primary.state.create_attempts) == creates_at_primary  # skipped entirely

        primary.config.fail_next = 0  # the primary recovers

        async def cooled_down() -> bool:
            video = await svc.wait_terminal((await _generate(svc))["id"])
            return [a["provider"] for a in video["attempts"]] == ["primary"]

        await wait_until(cooled_down, timeout=30, interval=0.2)
        assert (await svc.runtime.breakers.state("primary")).state == "closed"


async def test_a_provider_past_its_deadline_is_cancelled_there_and_the_job_rerouted(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, fallback = two_emulators
    primary.config.job_seconds = 60
    settings = _with(
        service_settings,
        providers={"primary": _remote(primary), "fallback": _remote(fallback)},
        default_route=["primary", "fallback"],
        provider_deadline_seconds=1.0,
    )
    async with running_service(settings) as svc:
        video = await svc.wait_terminal((await _generate(svc))["id"])
    assert video["status"] == "completed", video["error"]
    first = video["attempts"][0]
    assert (first["provider"], first["error"]["code"]) == ("primary", "provider_deadline_exceeded")
    assert primary.state.deleted.get(first["remote_id"]) in ("queued", "in_progress")


async def test_the_job_deadline_fails_a_video_with_a_clear_code(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, _ = two_emulators
    primary.config.job_seconds = 60
    settings = _with(
        service_settings, providers={"primary": _remote(primary)}, job_deadline_seconds=1.0
    )
    async with running_service(settings) as svc:
        video = await svc.wait_terminal((await _generate(svc, provider="primary"))["id"])
    assert video["status"] == "failed" and video["error"]["code"] == "deadline_exceeded"


async def test_concurrency_cap_holds_and_cancelling_frees_the_slot_at_once(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator]
) -> None:
    primary, _ = two_emulators
    primary.config.job_seconds = 60  # slow: slots stay taken until cancelled
    settings = _with(
        service_settings, providers={"capped": _remote(primary, max_concurrent_jobs=2)}
    )
    async with running_service(settings) as svc:
        ids = [(await _generate(svc, provider="capped"))["id"] for _ in range(3)]

        async def statuses() -> list[dict[str, Any]]:
            return [(await svc.client.get(f"/api/videos/status/{i}")).json() for i in ids]

        async def two_running_one_waiting() -> bool:
            now = await statuses()
            return sorted(s["waiting_for"] or s["stage"] for s in now) == [
                "concurrency",
                "generating",
                "generating",
            ]

        await wait_until(two_running_one_waiting, timeout=20)
        assert len(primary.state.jobs) == 2
        running = next(s["id"] for s in await statuses() if s["stage"] == "generating")
        await svc.client.post(f"/api/videos/{running}/cancel")

        async def waiting_one_started() -> bool:
            return len(primary.state.create_attempts) == 3

        await wait_until(waiting_one_started, timeout=10)
        for video_id in ids:
            await svc.client.post(f"/api/videos/{video_id}/cancel")
        for video_id in ids:
            assert (await svc.wait_terminal(video_id))["status"] == "cancelled"
        assert await svc.runtime.capacity.in_use("capped") == 0


async def test_the_rate_limit_holds_across_two_worker_processes(
    service_settings: Settings, two_emulators: tuple[Emulator, Emulator], tmp_path: Path
) -> None:
    primary, _ = two_emulators
    settings = _with(
        service_settings, providers={"limited": _remote(primary, requests_per_minute=3)}
    )
    env = service_env(settings)
    workers = [spawn(["worker"], env, tmp_path / f"worker{n}.log") for n in (1, 2)]
    try:
        async with running_service(settings, workers=0) as svc:
            ids = [(await _generate(svc, provider="limited"))["id"] for _ in range(6)]

            async def settled() -> bool:
                now = [(await svc.client.get(f"/api/videos/status/{i}")).json() for i in ids]
                done = sum(s["status"] == "completed" for s in now)
                waiting = sum(s["waiting_for"] == "rate_limit" for s in now)
                return done == 3 and waiting == 3

            await wait_until(settled, timeout=60, interval=0.2)
            assert primary.state.create_attempts_within(60) == 3
            for video_id in ids:
                await svc.client.post(f"/api/videos/{video_id}/cancel")
            finals = [await svc.wait_terminal(i) for i in ids]
    finally:
        for worker in workers:
            stop(worker)
    assert sorted(v["status"] for v in finals) == ["cancelled"] * 3 + ["completed"] * 3
    assert len(primary.state.create_attempts) == 3  # never more than the limit


async def test_the_local_faulty_mode_fails_half_way_and_the_route_recovers(
    service_settings: Settings,
) -> None:
    faulty = ProviderConfig(
        kind="local",
        poll_interval_seconds=0.05,
        options={"fault_rate": 1.0, "fault": "midway", "delay_seconds": 0.2},
    )
    settings = _with(
        service_settings, providers={"flaky": faulty}, default_route=["flaky", "local"]
    )
    async with running_service(settings) as svc:
        video = await svc.wait_terminal(
            (await _generate(svc, duration_seconds=1, size="160x90"))["id"]
        )
    assert video["status"] == "completed", video["error"]
    assert [(a["provider"], (a["error"] or {}).get("code")) for a in video["attempts"]] == [
        ("flaky", "local_fault"),
        ("local", None),
    ]


async def test_the_api_answers_503_while_redis_is_down_and_recovers_by_itself(
    service_settings: Settings, tmp_path: Path
) -> None:
    from reelforge.server import EmbeddedRedis

    data = tmp_path / "redis-owner"
    embedded = EmbeddedRedis(data)
    url = embedded.start()
    port = url.rsplit(":", 1)[1].split("/")[0]
    settings = service_settings.model_copy(update={"redis_url": url})
    try:
        async with running_service(settings, workers=0) as svc:
            video = await _generate(svc, duration_seconds=1, size="160x90")
            embedded.stop()
            down = await svc.client.get(f"/api/videos/{video['id']}")
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "service_unavailable"
            assert down.headers["retry-after"]
            embedded = EmbeddedRedis(data, port=int(port))
            embedded.start()

            async def back() -> bool:
                try:
                    r = await svc.client.get(f"/api/videos/{video['id']}")
                except httpx.TransportError:
                    return False
                return r.status_code == 200

            await wait_until(back, timeout=30, interval=0.2)
            again = (await svc.client.get(f"/api/videos/{video['id']}")).json()
            assert again["id"] == video["id"]  # kept by the append-only file
    finally:
        embedded.stop()
