"""The ``diffusers`` provider end to end, on CPU: tiny random-weight Wan and LTX
pipelines built in code (tests/tiny_pipelines.py), saved to a directory and loaded
by real ``reelforge gpu-worker`` processes through the real loading code; videos
made through the HTTP API, real Redis, real ffmpeg.

The GPU workers are started once for the module (loading torch takes seconds);
each test runs its own API and service worker against them. The generation,
progress, cancel and bad-input cases are the provider contract's: a shared suite
can take them over given a running service with the provider configured (the
``fleet`` fixture) and a slow variant for cancel (``tinyltx``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from reelforge.gpu.jobs import GpuJobs, gpu_worker_window
from reelforge.keys import Keys
from reelforge.media.probe import probe
from reelforge.settings import ProviderConfig, Settings
from tests.conftest import delete_prefix
from tests.service import REPO, Service, running_service, service_env, spawn, stop, wait_until

pytest.importorskip("diffusers", reason="needs the gpu extra: pip install 'reelforge[gpu]'")

# Loading torch in the GPU workers takes tens of seconds on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WAN_STEPS = 4
LTX_STEPS = 50  # slow enough to cancel or kill a worker mid-denoise
BODY = {
    "prompt": "a cat and a dog dance in the rain",
    "size": "64x64",
    "duration_seconds": 1.0,
    "fps": 16,
    "regenerate_on_failure": False,
}


def _diffusers(model_path: Path, pipeline: str, steps: int) -> ProviderConfig:
    return ProviderConfig(
        kind="diffusers",
        poll_interval_seconds=0.05,
        options={
            "model_path": str(model_path),
            "pipeline": pipeline,
            "steps": steps,
            "max_sequence_length": 16,
        },
    )


@dataclass
class GpuFleet:
    """The module's settings and its GPU worker processes (one per provider)."""

    settings: Settings
    logs: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return service_env(self.settings, {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})

    def start(self, provider: str) -> subprocess.Popen[bytes]:
        proc = spawn(
            ["gpu-worker", "--provider", provider, "--device", "cpu"],
            self.env(),
            self.logs / f"gpu-{provider}-{secrets.token_hex(2)}.log",
        )
        self.workers[provider] = proc
        return proc

    def jobs(self, provider: str, redis: Any) -> GpuJobs:
        return GpuJobs(
            redis,
            Keys(self.settings.redis_prefix),
            provider,
            window=gpu_worker_window(self.settings),
        )


def _build_models(root: Path) -> dict[str, Path]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "tests.tiny_pipelines", str(root), "wan", "ltx"],
        check=True,
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    return {kind: root / f"tiny-{kind}" for kind in ("wan", "ltx")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[GpuFleet]:
    root = tmp_path_factory.mktemp("gpu")
    models = _build_models(root)
    prefix = f"rftest-{secrets.token_hex(4)}"
    base = Settings(
        data_dir=root / "data",
        redis_url=redis_url,
        redis_prefix=prefix,
        job_heartbeat_seconds=3,
        sweep_interval_seconds=1.0,
        worker_heartbeat_seconds=0.4,
        process_concurrency=2,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
    )
    settings = base.model_copy(
        update={
            "providers": {
                **base.providers,
                "tinywan": _diffusers(models["wan"], "WanPipeline", WAN_STEPS),
                "tinyltx": _diffusers(models["ltx"], "LTXPipeline", LTX_STEPS),
                "nogpu": _diffusers(models["wan"], "WanPipeline", WAN_STEPS),
            }
        }
    )
    logs = root / "logs"
    logs.mkdir()
    gpu = GpuFleet(settings=settings, logs=logs)
    try:
        gpu.start("tinywan")
        gpu.start("tinyltx")
        yield gpu
    finally:
        for proc in gpu.workers.values():
            stop(proc)
        delete_prefix(redis_url, prefix)


@pytest.fixture
async def service(fleet: GpuFleet) -> AsyncIterator[Service]:
    async with running_service(fleet.settings) as svc:
        for provider in ("tinywan", "tinyltx"):
            jobs = fleet.jobs(provider, svc.runtime.redis)

            async def live(jobs: GpuJobs = jobs) -> bool:
                return bool(await jobs.live_workers())

            await wait_until(live, timeout=90, interval=0.2)
        yield svc


async def _create(svc: Service, **overrides: Any) -> str:
    response = await svc.client.post("/api/videos/generate", json={**BODY, **overrides})
    assert response.status_code == 202, response.text
    video_id: str = response.json()["id"]
    return video_id


def _remote_id(video: dict[str, Any]) -> str:
    remote_id: str = video["attempts"][-1]["remote_id"]
    return remote_id


def _decoded_frames(path: Path) -> np.ndarray[Any, Any]:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


async def _mp4_of(svc: Service, video_id: str, dest: Path) -> Path:
    response = await svc.client.get(f"/api/videos/{video_id}/content", params={"format": "mp4"})
    assert response.status_code == 200
    dest.write_bytes(response.content)
    return dest


async def _job_step(fleet: GpuFleet, svc: Service, provider: str, video_id: str) -> int:
    video = (await svc.client.get(f"/api/videos/{video_id}")).json()
    if not video["attempts"] or not video["attempts"][-1]["remote_id"]:
        return 0
    job = await fleet.jobs(provider, svc.runtime.redis).get(_remote_id(video))
    return job.step if job is not None and job.state == "running" else 0


async def test_generation_through_the_api_gives_an_mp4_of_the_mapped_size_and_frames(
    service: Service, tmp_path: Path
) -> None:
    video_id = await _create(service, provider="tinywan")
    video = await service.wait_terminal(video_id, timeout=90)
    assert video["status"] == "completed", video.get("error")
    info = await probe(await _mp4_of(service, video_id, tmp_path / "out.mp4"))
    assert info.video is not None
    # 64x64 is a multiple of 16; 1 s at 16 fps = 16 frames -> 17 (4k+1).
    assert (info.video.width, info.video.height) == (64, 64)
    assert info.video.codec == "h264"
    assert info.video.frames == 17


async def test_ltx_generation_completes_with_a_valid_mp4(service: Service, tmp_path: Path) -> None:
    video_id = await _create(service, provider="tinyltx", size="96x64")
    video = await service.wait_terminal(video_id, timeout=90)
    assert video["status"] == "completed", video.get("error")
    info = await probe(await _mp4_of(service, video_id, tmp_path / "ltx.mp4"))
    assert info.video is not None
    # LTX: 8k+1 frames (16 -> 17), sides in multiples of 32 (96x64 kept).
    assert (info.video.width, info.video.height, info.video.frames) == (96, 64, 17)


async def test_every_denoising_step_is_reported_in_order(fleet: GpuFleet, service: Service) -> None:
    video_id = await _create(service, provider="tinywan")
    video = await service.wait_terminal(video_id, timeout=90)
    assert video["status"] == "completed", video.get("error")
    steps = await fleet.jobs("tinywan", service.runtime.redis).steps(_remote_id(video))
    assert steps == [(n, WAN_STEPS) for n in range(1, WAN_STEPS + 1)]
    events = (await service.client.get(f"/api/videos/{video_id}/events")).text
    progress = [
        json.loads(line[5:])["progress"] for line in events.splitlines() if line.startswith("data:")
    ]
    assert progress == sorted(progress)


async def test_same_seed_gives_identical_frames(service: Service, tmp_path: Path) -> None:
    first = await _create(service, provider="tinywan", seed=1234)
    second = await _create(service, provider="tinywan", seed=1234)
    other = await _create(service, provider="tinywan", seed=99)
    for video_id in (first, second, other):
        assert (await service.wait_terminal(video_id, timeout=90))["status"] == "completed"
    a = _decoded_frames(await _mp4_of(service, first, tmp_path / "a.mp4"))
    b = _decoded_frames(await _mp4_of(service, second, tmp_path / "b.mp4"))
    c = _decoded_frames(await _mp4_of(service, other, tmp_path / "c.mp4"))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


async def test_cancel_mid_denoise_ends_the_job_cancelled_within_one_step(
    fleet: GpuFleet, service: Service
) -> None:
    video_id = await _create(service, provider="tinyltx")

    async def denoising() -> bool:
        return await _job_step(fleet, service, "tinyltx", video_id) >= 3

    await wait_until(denoising, timeout=90)
    response = await service.client.post(f"/api/videos/{video_id}/cancel")
    assert response.status_code in (200, 202), response.text
    video = await service.wait_terminal(video_id, timeout=30)
    assert video["status"] == "cancelled"
    jobs = fleet.jobs("tinyltx", service.runtime.redis)

    async def worker_stopped() -> bool:
        job = await jobs.get(_remote_id(video))
        return job is not None and job.state == "cancelled"

    await wait_until(worker_stopped, timeout=30)
    job = await jobs.get(_remote_id(video))
    assert job is not None
    stopped, seen = int(job.fields["stopped_step"]), int(job.fields["cancel_seen_step"])
    assert stopped < LTX_STEPS
    assert stopped - seen <= 1


async def test_a_gpu_worker_killed_mid_job_is_replaced_and_the_job_completes(
    fleet: GpuFleet, service: Service
) -> None:
    video_id = await _create(service, provider="tinyltx")

    async def denoising() -> bool:
        return await _job_step(fleet, service, "tinyltx", video_id) >= 3

    await wait_until(denoising, timeout=90)
    victim = fleet.workers["tinyltx"]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    fleet.start("tinyltx")
    video = await service.wait_terminal(video_id, timeout=110)
    assert video["status"] == "completed", video.get("error")
    assert len(video["attempts"]) == 1  # the service never saw a failure
    job = await fleet.jobs("tinyltx", service.runtime.redis).get(_remote_id(video))
    assert job is not None
    assert job.requeues == 1


async def test_a_model_without_a_live_gpu_worker_waits_queued_for_one(
    service: Service,
) -> None:
    video_id = await _create(service, provider="nogpu")

    async def waiting() -> bool:
        status = (await service.client.get(f"/api/videos/status/{video_id}")).json()
        return bool(status.get("waiting_for") == "gpu_worker" and status["status"] == "queued")

    await wait_until(waiting, timeout=30)
    response = await service.client.post(f"/api/videos/{video_id}/cancel")
    assert response.status_code in (200, 202)
    assert (await service.wait_terminal(video_id, timeout=30))["status"] == "cancelled"


async def test_a_duration_beyond_the_model_is_refused_before_anything_is_queued(
    service: Service,
) -> None:
    response = await service.client.post(
        "/api/videos/generate", json={**BODY, "provider": "tinywan", "duration_seconds": 30}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_request"


async def test_more_frames_than_the_model_makes_fails_the_video_with_invalid_duration(
    service: Service,
) -> None:
    # 10 s fits the model's length at its own 16 fps, but 24 fps asks for 241 frames.
    video_id = await _create(service, provider="tinywan", duration_seconds=10, fps=24)
    video = await service.wait_terminal(video_id, timeout=60)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "invalid_duration"
