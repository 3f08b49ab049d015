"""The Runway emulator, driven by the official ``runwayml`` SDK (5.24), unchanged.

The SDK is pointed at the emulator the way the reference describes
(``AsyncRunwayML(base_url=…)``); it sends ``X-Runway-Version`` and Bearer auth
itself, so if it is happy with every answer, tests of reelforge's ``runway``
adapter against the emulator mean something.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import av
import httpx
import pytest
import runwayml

from tests.emulators.runway import RunwayEmulator, running_runway
from tests.emulators.vendor_common import VendorConfig
from tests.service import wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "key_" + "0123456789abcdef" * 8


@pytest.fixture
async def emu() -> AsyncIterator[RunwayEmulator]:
    async with running_runway(VendorConfig(api_key=API_KEY, job_seconds=0.4)) as emulator:
        yield emulator


def _client(
    emu: RunwayEmulator, *, api_key: str = API_KEY, retries: int = 0
) -> runwayml.AsyncRunwayML:
    return runwayml.AsyncRunwayML(api_key=api_key, base_url=emu.base_url, max_retries=retries)


async def _finished(client: runwayml.AsyncRunwayML, task_id: str) -> object:
    task: object = None

    async def done() -> bool:
        nonlocal task
        task = await client.tasks.retrieve(task_id)
        return getattr(task, "status", None) in ("SUCCEEDED", "FAILED", "CANCELLED")

    await wait_until(done, timeout=20)
    return task


async def test_text_to_video_runs_to_succeeded_with_a_playable_output(emu: RunwayEmulator) -> None:
    async with _client(emu) as client:
        created = await client.text_to_video.create(
            model="gen4.5", prompt_text="a lighthouse", ratio="1280:720", duration=2
        )
        task = await _finished(client, created.id)
        assert task.status == "SUCCEEDED"  # type: ignore[attr-defined]
        url = task.output[0]  # type: ignore[attr-defined]
    async with httpx.AsyncClient() as http:
        data = (await http.get(url)).content
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.width == 1280


async def test_the_sdk_sends_the_version_header_and_the_documented_body(
    emu: RunwayEmulator,
) -> None:
    async with _client(emu) as client:
        await client.text_to_video.create(
            model="veo3.1",
            prompt_text="a cat",
            ratio="1280:720",
            duration=8,
            seed=1,
            audio=True,
            negative_prompt="blur",
        )
    (job,) = emu.state.jobs.values()
    assert job.body == {  # type: ignore[attr-defined]
        "model": "veo3.1",
        "promptText": "a cat",
        "ratio": "1280:720",
        "duration": 8,
        "seed": 1,
        "audio": True,
        "negativePrompt": "blur",
    }
    assert emu.state.log[-1].headers["x-runway-version"] == "2024-11-06"


async def test_running_tasks_report_progress_between_zero_and_one(emu: RunwayEmulator) -> None:
    emu.config.job_seconds = 4
    async with _client(emu) as client:
        created = await client.image_to_video.create(
            model="gen4_turbo", prompt_image="https://example.com/a.png", ratio="960:960"
        )
        seen: list[object] = []

        async def running() -> bool:
            task = await client.tasks.retrieve(created.id)
            seen.append(task)
            return task.status == "RUNNING"

        await wait_until(running, timeout=10)
    task = seen[-1]
    assert 0 <= task.progress <= 1  # type: ignore[attr-defined]


async def test_a_safety_failure_reaches_the_sdk_as_failed_with_its_code(
    emu: RunwayEmulator,
) -> None:
    emu.config.fail_jobs_with = "SAFETY.INPUT.TEXT"
    async with _client(emu) as client:
        created = await client.text_to_video.create(
            model="gen4.5", prompt_text="x", ratio="720:1280", duration=5
        )
        task = await _finished(client, created.id)
    assert (task.status, task.failure_code) == ("FAILED", "SAFETY.INPUT.TEXT")  # type: ignore[attr-defined]


async def test_delete_cancels_a_running_task(emu: RunwayEmulator) -> None:
    emu.config.job_seconds = 30
    async with _client(emu) as client:
        created = await client.text_to_video.create(
            model="gen4.5", prompt_text="x", ratio="1280:720", duration=5
        )
        await client.tasks.delete(created.id)
        task = await client.tasks.retrieve(created.id)
    assert task.status == "CANCELLED"
    assert emu.cancels == 1


async def test_a_wrong_key_raises_authentication_error(emu: RunwayEmulator) -> None:
    async with _client(emu, api_key="key_wrong") as client:
        with pytest.raises(runwayml.AuthenticationError):
            await client.tasks.retrieve("00000000-0000-0000-0000-000000000000")


async def test_an_unknown_task_raises_not_found(emu: RunwayEmulator) -> None:
    async with _client(emu) as client:
        with pytest.raises(runwayml.NotFoundError):
            await client.tasks.retrieve("00000000-0000-0000-0000-000000000000")


async def test_a_bad_ratio_raises_bad_request_with_runways_error_member(
    emu: RunwayEmulator,
) -> None:
    async with _client(emu) as client:
        with pytest.raises(runwayml.BadRequestError) as raised:
            await client.text_to_video.create(
                model="gen4.5", prompt_text="x", ratio="960:960", duration=5
            )
    assert "ratio" in raised.value.body["error"]  # type: ignore[index]


async def test_the_sdk_retries_a_429_after_retry_after_and_creates_once(
    emu: RunwayEmulator,
) -> None:
    emu.config.rate_limit_next = 1
    emu.config.retry_after_seconds = 0
    async with _client(emu, retries=2) as client:
        await client.text_to_video.create(
            model="gen4.5", prompt_text="x", ratio="1280:720", duration=5
        )
    assert emu.state.requests["POST /v1/text_to_video"] == 2
    assert emu.submits == 1


async def test_a_429_without_sdk_retries_raises_rate_limit_error(emu: RunwayEmulator) -> None:
    emu.config.rate_limit_next = 1
    async with _client(emu) as client:
        with pytest.raises(runwayml.RateLimitError) as raised:
            await client.text_to_video.create(
                model="gen4.5", prompt_text="x", ratio="1280:720", duration=5
            )
    assert raised.value.response.headers["retry-after"] == "1"


async def test_a_500_raises_internal_server_error(emu: RunwayEmulator) -> None:
    emu.config.fail_next = 1
    async with _client(emu) as client:
        with pytest.raises(runwayml.InternalServerError):
            await client.tasks.retrieve("00000000-0000-0000-0000-000000000000")
