"""The ``comfyui`` provider end to end: the shipped Wan 2.2 workflow and binding,
driven through the native API against the ComfyUI emulator (built from a recorded
real exchange), with real workers, Redis and media.

Cases follow the provider contract (submit → progress → download → valid video;
cancel; bad input) so a shared contract suite can take them over."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import reelforge.providers
from reelforge.media.probe import probe
from reelforge.models import GenerationRequest
from reelforge.providers.comfyui import ComfyUIProvider, comfy_prompt_id
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.comfyui import ComfyConfig, ComfyEmulator, running_comfy_emulator
from tests.service import Service, running_service, wait_until

pytestmark = pytest.mark.slow

WORKFLOWS = Path(reelforge.providers.__file__).parent / "comfyui_workflows"
WORKFLOW = WORKFLOWS / "wan22_ti2v_5b.json"
BINDING = WORKFLOWS / "wan22_ti2v_5b.binding.json"
BODY = {
    "prompt": "a lighthouse at night, waves",
    "negative_prompt": "blurry",
    "size": "64x64",
    "duration_seconds": 1.0,
    "fps": 16,
    "seed": 42,
    "provider": "comfy",
    "regenerate_on_failure": False,
}


def _comfy(base_url: str, workflow: Path = WORKFLOW) -> ProviderConfig:
    return ProviderConfig(
        kind="comfyui",
        base_url=base_url,
        poll_interval_seconds=0.05,
        timeout_seconds=5.0,
        options={"workflow": str(workflow), "binding": str(BINDING)},
    )


@contextlib.asynccontextmanager
async def _service_with(settings: Settings, config: ProviderConfig) -> AsyncIterator[Service]:
    configured = settings.model_copy(update={"providers": {**settings.providers, "comfy": config}})
    async with running_service(configured) as svc:
        yield svc


@pytest.fixture
async def emulator() -> AsyncIterator[ComfyEmulator]:
    async with running_comfy_emulator(ComfyConfig(step_seconds=0.05)) as emu:
        yield emu


@pytest.fixture
async def service(service_settings: Settings, emulator: ComfyEmulator) -> AsyncIterator[Service]:
    async with _service_with(service_settings, _comfy(emulator.base_url)) as svc:
        yield svc


async def _create(svc: Service, **overrides: Any) -> str:
    response = await svc.client.post("/api/videos/generate", json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    video_id: str = response.json()["id"]
    return video_id


async def test_a_generation_completes_with_a_valid_mp4_of_the_bound_size_and_frames(
    service: Service, emulator: ComfyEmulator, tmp_path: Path
) -> None:
    video_id = await _create(service)
    video = await service.wait_terminal(video_id, timeout=60)
    assert video["status"] == "completed", video.get("error")
    content = await service.client.get(f"/api/videos/{video_id}/content", params={"format": "mp4"})
    path = tmp_path / "out.mp4"
    path.write_bytes(content.content)
    info = await probe(path)
    assert info.video is not None
    # 1 s at 16 fps = 16 frames -> 17 (4k+1); 64x64 is a multiple of 32.
    assert (info.video.width, info.video.height, info.video.frames) == (64, 64, 17)
    assert list(emulator.state.submits.values()) == [1]


async def test_the_request_is_bound_onto_the_workflow_inputs(
    service: Service, emulator: ComfyEmulator
) -> None:
    video_id = await _create(service)
    video = await service.wait_terminal(video_id, timeout=60)
    assert video["status"] == "completed", video.get("error")
    (entry,) = emulator.history.values()
    graph = entry["prompt"][2]
    assert graph["6"]["inputs"]["text"] == BODY["prompt"]
    assert graph["7"]["inputs"]["text"] == "blurry"
    assert graph["3"]["inputs"]["seed"] == 42
    assert (graph["55"]["inputs"]["width"], graph["55"]["inputs"]["length"]) == (64, 17)
    assert graph["57"]["inputs"]["fps"] == 16


async def test_sampler_progress_reaches_the_video_in_order(service: Service) -> None:
    video_id = await _create(service)
    video = await service.wait_terminal(video_id, timeout=60)
    assert video["status"] == "completed", video.get("error")
    events = (await service.client.get(f"/api/videos/{video_id}/events")).text
    progress = [
        json.loads(line[5:])["progress"] for line in events.splitlines() if line.startswith("data:")
    ]
    assert progress == sorted(progress)
    generating = [p for p in progress if 10 < p < 80]
    assert len(set(generating)) >= 2  # steps arrived while the sampler ran


async def test_cancel_mid_sampling_interrupts_that_prompt(
    service_settings: Settings,
) -> None:
    async with (
        running_comfy_emulator(ComfyConfig(step_seconds=0.3)) as emu,
        _service_with(service_settings, _comfy(emu.base_url)) as svc,
    ):
        video_id = await _create(svc)

        async def past_first_steps() -> bool:
            status = (await svc.client.get(f"/api/videos/status/{video_id}")).json()
            return bool(status["progress"] > 15)

        await wait_until(past_first_steps, timeout=30)
        response = await svc.client.post(f"/api/videos/{video_id}/cancel")
        assert response.status_code in (200, 202)
        video = await svc.wait_terminal(video_id, timeout=30)
        assert video["status"] == "cancelled"
        prompt_id = video["attempts"][-1]["remote_id"]

        async def interrupted() -> bool:
            entry = emu.history.get(prompt_id)
            return entry is not None and entry["status"]["status_str"] == "error"

        await wait_until(interrupted, timeout=10)
        assert prompt_id in emu.state.interrupts


async def test_a_workflow_that_fails_validation_fails_the_video_with_the_node_errors(
    service_settings: Settings, emulator: ComfyEmulator, tmp_path: Path
) -> None:
    broken = json.loads(WORKFLOW.read_text())
    del broken["55"]["inputs"]["batch_size"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    async with _service_with(service_settings, _comfy(emulator.base_url, path)) as svc:
        video = await svc.wait_terminal(await _create(svc), timeout=60)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "comfyui_validation_failed"
    assert "node 55 (Wan22ImageToVideoLatent)" in video["error"]["message"]
    assert "batch_size" in video["error"]["message"]


async def test_an_execution_error_fails_the_video_with_the_node_and_exception(
    service_settings: Settings,
) -> None:
    async with (
        running_comfy_emulator(ComfyConfig(fail_class="VAEDecode")) as emu,
        _service_with(service_settings, _comfy(emu.base_url)) as svc,
    ):
        video = await svc.wait_terminal(await _create(svc), timeout=60)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "comfyui_execution_error"
    assert "VAEDecode" in video["error"]["message"]


async def test_a_resubmit_under_the_same_key_does_not_queue_the_prompt_twice(
    settings: Settings, emulator: ComfyEmulator
) -> None:
    provider = ComfyUIProvider(name="comfy", config=_comfy(emulator.base_url), settings=settings)
    try:
        request = GenerationRequest(prompt="a boat", size="64x64", duration_seconds=1, fps=16)
        first = await provider.submit(request, idempotency_key="video_1-1")
        second = await provider.submit(request, idempotency_key="video_1-1")
        assert first == second == comfy_prompt_id("video_1-1")
        assert emulator.state.submits[first] == 1
    finally:
        await provider.aclose()
