"""Tenant quotas, budgets and the per-key create rate limit, through the real API
and Redis. Without workers, admitted videos stay queued, so counts are exact."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelforge.settings import ProviderConfig, Settings
from reelforge.tenants import TenantLimits
from tests.emulators.openai_videos import EmulatorConfig, running_emulator
from tests.service import Service, running_service

SMALL = {"prompt": "a quota test", "duration_seconds": 1, "size": "160x90", "fps": 12}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings, workers=0) as svc:
        yield svc


async def _client(svc: Service, tenant: str, **limits: float) -> httpx.AsyncClient:
    created = await svc.runtime.tenants.create_key(tenant, limits=TenantLimits(**limits))  # type: ignore[arg-type]
    return httpx.AsyncClient(base_url=svc.base_url, headers=bearer(created.secret), timeout=30)


async def test_twenty_concurrent_creates_against_a_quota_of_five_admit_exactly_five(
    service: Service,
) -> None:
    async with await _client(service, "racer", max_concurrent_jobs=5) as client:
        answers = await asyncio.gather(
            *(client.post("/api/videos/generate", json=SMALL) for _ in range(20))
        )
    codes = Counter(r.status_code for r in answers)
    assert codes == {202: 5, 429: 15}
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["code"] == "concurrent_jobs_exceeded"
    assert int(refused.headers["retry-after"]) > 0
    assert await service.runtime.quotas.running("racer") == 5


async def test_a_refused_create_leaves_no_video_behind(service: Service) -> None:
    async with await _client(service, "tidy", max_concurrent_jobs=1) as client:
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 429
        listed = (await client.get("/api/videos")).json()["data"]
    assert len(listed) == 1


async def test_cancelling_a_queued_video_frees_its_concurrency_slot(service: Service) -> None:
    async with await _client(service, "canceller", max_concurrent_jobs=1) as client:
        first = (await client.post("/api/videos/generate", json=SMALL)).json()
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 429
        assert (await client.post(f"/api/videos/{first['id']}/cancel")).status_code == 200
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202


async def test_videos_per_day_refuses_the_next_one_until_midnight(service: Service) -> None:
    async with await _client(service, "daily", videos_per_day=2) as client:
        for _ in range(2):
            assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202
        refused = await client.post("/v1/videos", json={"prompt": "one more", "seconds": "4"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "videos_per_day_exceeded"
    assert 0 < int(refused.headers["retry-after"]) <= 86_400


async def test_a_video_that_delivered_nothing_gives_its_days_allowance_back(
    service: Service,
) -> None:
    async with await _client(service, "refund", videos_per_day=1) as client:
        first = (await client.post("/api/videos/generate", json=SMALL)).json()
        refused = await client.post("/api/videos/generate", json=SMALL)
        assert refused.json()["error"]["code"] == "videos_per_day_exceeded"
        assert (await client.post(f"/api/videos/{first['id']}/cancel")).status_code == 200
        # Cancelled (or failed) before anything was made: today's video is not used up.
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202
        again = await client.post("/api/videos/generate", json=SMALL)
    assert again.json()["error"]["code"] == "videos_per_day_exceeded"


async def test_seconds_per_day_counts_the_requested_duration(service: Service) -> None:
    async with await _client(service, "seconds", video_seconds_per_day=5) as client:
        four = await client.post("/api/videos/generate", json={**SMALL, "duration_seconds": 4})
        two = await client.post("/api/videos/generate", json={**SMALL, "duration_seconds": 2})
        one = await client.post("/api/videos/generate", json={**SMALL, "duration_seconds": 1})
    assert (four.status_code, two.status_code, one.status_code) == (202, 429, 202)
    assert two.json()["error"]["code"] == "video_seconds_per_day_exceeded"


async def test_quotas_changed_later_apply_to_the_next_create(service: Service) -> None:
    async with await _client(service, "grows", max_concurrent_jobs=1) as client:
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 429
        await service.runtime.tenants.set_limits("grows", {"max_concurrent_jobs": 2})
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202
        await service.runtime.tenants.set_limits("grows", {"max_concurrent_jobs": None})
        assert (await client.post("/api/videos/generate", json=SMALL)).status_code == 202


async def test_an_idempotent_retry_is_answered_even_when_the_quota_is_full(
    service: Service,
) -> None:
    async with await _client(service, "retrier", max_concurrent_jobs=1) as client:
        headers = {"Idempotency-Key": "same-request"}
        first = await client.post("/api/videos/generate", json=SMALL, headers=headers)
        again = await client.post("/api/videos/generate", json=SMALL, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert await service.runtime.quotas.running("retrier") == 1


async def test_the_create_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(
    service_settings: Settings,
) -> None:
    settings = service_settings.model_copy(update={"api_creates_per_minute": 3})
    async with running_service(settings, workers=0) as svc, await _client(svc, "fast") as client:
        allowed = [await client.post("/api/videos/generate", json=SMALL) for _ in range(3)]
        refused = await client.post("/api/videos/generate", json=SMALL)
        reads = await client.get("/api/videos")  # reads are not rate limited
    assert [r.status_code for r in allowed] == [202, 202, 202]
    assert allowed[0].headers["ratelimit-policy"] == '"creates";q=3;w=60'
    assert allowed[2].headers["ratelimit"].startswith('"creates";r=0;')
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit"].startswith('"creates";r=0;')
    assert reads.status_code == 200


async def test_a_job_over_the_remaining_budget_is_refused_before_any_submit(
    service_settings: Settings, tmp_path: Path
) -> None:
    async with running_emulator(EmulatorConfig(api_key="sk-emu", job_seconds=0.2)) as emu:
        remote = ProviderConfig(
            kind="openai",
            base_url=emu.base_url,
            api_key="sk-emu",  # type: ignore[arg-type]
            price_per_second=0.1,
            poll_interval_seconds=0.05,
        )
        settings = service_settings.model_copy(
            update={"providers": {**service_settings.providers, "remote": remote}}
        )
        async with (
            running_service(settings, workers=1) as svc,
            await _client(svc, "thrifty", monthly_budget=0.5) as client,
        ):
            body = {"prompt": "an expensive shot", "provider": "remote", "size": "1280x720"}
            refused = await client.post(
                "/api/videos/generate", json={**body, "duration_seconds": 8}
            )
            listed = (await client.get("/api/videos")).json()["data"]
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert listed == []
    assert emu.state.submits_by_key == Counter()
    assert emu.state.requests == Counter()


async def test_spend_is_settled_at_the_actual_cost_when_a_video_completes(
    service_settings: Settings,
) -> None:
    # The local provider at 0.05 a second: a 1-second video costs 0.05 of a 0.12
    # budget, so a second one fits and a third (0.15 reserved in all) does not.
    providers = {
        "local": service_settings.providers["local"].model_copy(update={"price_per_second": 0.05})
    }
    settings = service_settings.model_copy(update={"providers": providers})
    async with (
        running_service(settings, workers=1) as svc,
        await _client(svc, "payer", monthly_budget=0.12) as client,
    ):
        svc.client.headers.update(client.headers)
        first = (await client.post("/api/videos/generate", json=SMALL)).json()
        done = await svc.wait_terminal(first["id"])
        second = await client.post("/api/videos/generate", json=SMALL)
        third = await client.post("/api/videos/generate", json=SMALL)
        usage = (await client.get("/api/usage")).json()
    assert done["status"] == "completed" and done["cost"] > 0
    assert second.status_code == 202
    assert third.status_code == 402
    assert usage["totals"]["local"]["videos"] == 1
    assert usage["totals"]["local"]["spend"] == pytest.approx(done["cost"])


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2026-13-01", "invalid_date"),
        ("to=yesterday", "invalid_date"),
        ("from=2026-11-02&to=2026-11-01", "invalid_range"),
        ("from=2020-01-01&to=2026-01-01", "invalid_range"),
    ],
)
async def test_usage_refuses_a_malformed_or_unbounded_range(
    service: Service, query: str, code: str
) -> None:
    response = await service.client.get(f"/api/usage?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
