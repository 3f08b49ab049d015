"""reelforge's `openai` provider against the emulator, end to end through the
native API, once per injected fault: each video ends in the expected terminal
state and error code, and the emulator saw exactly the submits we expect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelforge.media.probe import probe
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.openai_videos import Emulator, EmulatorConfig, running_emulator
from tests.service import Service, running_service

pytestmark = pytest.mark.slow

API_KEY = "sk-emulator"
BODY = {"prompt": "a lighthouse at night", "duration_seconds": 4, "size": "1280x720"}


@dataclass
class Setup:
    service: Service
    emulator: Emulator


@pytest.fixture
async def setup(service_settings: Settings, tmp_path: Path) -> AsyncIterator[Setup]:
    config = EmulatorConfig(
        api_key=API_KEY, job_seconds=0.5, poll_after_ms=50, retry_after_seconds=1
    )
    async with running_emulator(config) as emu:
        remote = ProviderConfig(
            kind="openai",
            base_url=emu.base_url,
            api_key=API_KEY,  # type: ignore[arg-type]
            poll_interval_seconds=0.05,
            timeout_seconds=1.0,
            price_per_second=0.1,
        )
        settings = service_settings.model_copy(
            update={"providers": {**service_settings.providers, "remote": remote}}
        )
        async with running_service(settings) as svc:
            yield Setup(svc, emu)


async def _run(setup: Setup, **overrides: Any) -> dict[str, Any]:
    body = {**BODY, "provider": "remote", **overrides}
    response = await setup.service.client.post("/api/videos/generate", json=body)
    assert response.status_code == 202, response.text
    return await setup.service.wait_terminal(response.json()["id"], timeout=60)


def _accepted_submits(emu: Emulator) -> dict[str, int]:
    return dict(emu.state.submits_by_key)


async def test_no_fault_completes_with_one_submit_and_a_cost(setup: Setup, tmp_path: Path) -> None:
    video = await _run(setup)
    assert video["status"] == "completed", video["error"]
    assert _accepted_submits(setup.emulator) == {f"{video['id']}-1": 1}
    assert video["cost"] == pytest.approx(0.4)  # 4 s at $0.10/s
    content = await setup.service.client.get(f"/api/videos/{video['id']}/content?format=mp4")
    path = tmp_path / "v.mp4"
    path.write_bytes(content.content)
    info = await probe(path)
    assert info.video is not None and (info.video.width, info.video.height) == (1280, 720)


async def test_429s_are_retried_after_retry_after_and_submitted_once(setup: Setup) -> None:
    setup.emulator.config.rate_limit_next = 2
    video = await _run(setup)
    assert video["status"] == "completed", video["error"]
    assert _accepted_submits(setup.emulator) == {f"{video['id']}-1": 1}
    assert len(setup.emulator.state.create_attempts) == 3


async def test_500s_are_retried(setup: Setup) -> None:
    setup.emulator.config.fail_next = 2
    video = await _run(setup)
    assert video["status"] == "completed", video["error"]
    assert _accepted_submits(setup.emulator) == {f"{video['id']}-1": 1}


async def test_a_provider_slower_than_the_timeout_fails_with_provider_timeout(setup: Setup) -> None:
    setup.emulator.config.slow_seconds = 2.0
    video = await _run(setup)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "provider_timeout"


async def test_a_moderation_failure_is_carried_through_and_not_retried(setup: Setup) -> None:
    setup.emulator.config.fail_jobs_with = "moderation_blocked"
    video = await _run(setup)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "prompt_rejected"  # the provider's moderation, our code
    assert _accepted_submits(setup.emulator) == {f"{video['id']}-1": 1}
    assert len(video["attempts"]) == 1


async def test_a_vanished_job_is_resubmitted_as_new_attempts_then_fails(setup: Setup) -> None:
    setup.emulator.config.vanish_jobs = True
    video = await _run(setup)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "remote_job_lost"
    keys = [f"{video['id']}-{n}" for n in (1, 2, 3)]
    assert _accepted_submits(setup.emulator) == dict.fromkeys(keys, 1)
    assert [a["error"]["code"] for a in video["attempts"]] == ["remote_job_lost"] * 3


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("corrupt_content", "corrupt_download"),
        ("truncate_content", "corrupt_download"),
        ("cut_content", "truncated_download"),
    ],
)
async def test_bad_downloads_are_retried_then_fail_with_their_code(
    setup: Setup, fault: str, code: str
) -> None:
    setup.emulator.config.__setattr__(fault, True)
    video = await _run(setup)
    assert video["status"] == "failed"
    assert video["error"]["code"] == code
    # Each attempt fetched again before giving up, then a new attempt was made:
    # a provider-side failure mid-job falls over (here to the same, only provider).
    keys = [f"{video['id']}-{n}" for n in (1, 2, 3)]
    assert _accepted_submits(setup.emulator) == dict.fromkeys(keys, 1)
    assert [a["error"]["code"] for a in video["attempts"]] == [code] * 3
    downloads = setup.emulator.state.requests_to("GET /v1/videos/{video_id}/content")
    assert len(downloads) > 3


async def test_a_bad_download_that_recovers_completes(setup: Setup) -> None:
    setup.emulator.config.corrupt_content = True
    body = {**BODY, "provider": "remote"}
    created = (await setup.service.client.post("/api/videos/generate", json=body)).json()

    async def first_download_seen() -> bool:
        return bool(setup.emulator.state.requests_to("GET /v1/videos/{video_id}/content"))

    from tests.service import wait_until

    await wait_until(first_download_seen, timeout=30)
    setup.emulator.config.corrupt_content = False
    video = await setup.service.wait_terminal(created["id"], timeout=60)
    assert video["status"] == "completed", video["error"]


async def test_a_wrong_api_key_fails_at_once_without_retries(setup: Setup) -> None:
    setup.emulator.config.unauthorized = True
    video = await _run(setup)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "provider_auth_failed"
    assert len(setup.emulator.state.create_attempts) == 1


async def test_cancelling_a_running_video_deletes_the_remote_job(setup: Setup) -> None:
    setup.emulator.config.job_seconds = 30
    body = {**BODY, "provider": "remote"}
    created = (await setup.service.client.post("/api/videos/generate", json=body)).json()
    from tests.service import wait_until

    async def generating() -> bool:
        status = await setup.service.client.get(f"/api/videos/status/{created['id']}")
        return bool(status.json()["stage"] == "generating")

    await wait_until(generating, timeout=30)
    await setup.service.client.post(f"/api/videos/{created['id']}/cancel")
    video = await setup.service.wait_terminal(created["id"], timeout=30)
    assert video["status"] == "cancelled"
    remote_id = video["attempts"][0]["remote_id"]
    assert setup.emulator.state.deleted.get(remote_id) in ("queued", "in_progress")
