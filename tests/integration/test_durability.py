"""Processes die; jobs don't. Workers and the API run as real child processes and
are killed with SIGKILL; a remote-like provider (its jobs live outside the worker)
counts submits."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelforge.runtime import Runtime
from reelforge.settings import ProviderConfig, Settings
from tests.clips import lavfi_clip
from tests.fakes import submits
from tests.service import free_port, service_env, spawn, stop, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return lavfi_clip(path, "testsrc2=size=160x90:rate=12:duration=1", seconds=1)


@pytest.fixture
def slow_settings(service_settings: Settings, clip: Path, tmp_path: Path) -> Settings:
    slow = ProviderConfig(
        kind="tests.fakes:FakeRemoteProvider",
        poll_interval_seconds=0.1,
        options={"state_dir": str(tmp_path / "remote"), "clip": str(clip), "seconds": 4},
    )
    return service_settings.model_copy(
        update={"providers": {**service_settings.providers, "slow": slow}}
    )


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop(proc, signal.SIGKILL)


async def _api(settings: Settings, tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    port = free_port()
    env = service_env(settings)
    procs.append(spawn(["serve", "--port", str(port), "--workers", "0"], env, tmp_path / "api.log"))
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(up, timeout=30, interval=0.1)
    return url


async def test_worker_killed_while_generating_is_finished_by_another_with_one_submit(
    slow_settings: Settings, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    env = service_env(slow_settings)
    first = spawn(["worker"], env, tmp_path / "worker1.log")
    children.append(first)
    url = await _api(slow_settings, tmp_path, children)
    rt = await Runtime.open(slow_settings)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {
                "prompt": "a slow one",
                "duration_seconds": 1,
                "size": "160x90",
                "provider": "slow",
            }
            video_id = (await client.post("/api/videos/generate", json=body)).json()["id"]

            async def generating() -> bool:
                return (await rt.store.get(video_id)).stage.value == "generating"

            await wait_until(generating, timeout=30)
            stop(first, signal.SIGKILL)
            children.append(spawn(["worker"], env, tmp_path / "worker2.log"))

            async def terminal() -> bool:
                return (await rt.store.get(video_id)).status.is_terminal

            await wait_until(terminal, timeout=60, interval=0.1)
            record = await rt.store.get(video_id)
    finally:
        await rt.close()
    assert record.status.value == "completed", record.error
    assert submits(tmp_path / "remote") == [f"{video_id}-1"]
    assert len(record.attempts) == 1


async def test_restarting_the_api_loses_no_job(
    slow_settings: Settings, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    env = service_env(slow_settings)
    children.append(spawn(["worker"], env, tmp_path / "worker.log"))
    url = await _api(slow_settings, tmp_path, children)
    body = {"prompt": "survive", "duration_seconds": 1, "size": "160x90", "provider": "slow"}
    async with httpx.AsyncClient(base_url=url) as client:
        ids = [
            (await client.post("/api/videos/generate", json=body)).json()["id"] for _ in range(5)
        ]
    stop(children.pop(), signal.SIGKILL)  # the API, mid-flight
    url = await _api(slow_settings, tmp_path, children)
    async with httpx.AsyncClient(base_url=url) as client:

        async def all_done() -> bool:
            videos = [(await client.get(f"/api/videos/{i}")).json() for i in ids]
            return all(v["status"] == "completed" for v in videos)

        await wait_until(all_done, timeout=60, interval=0.2)
    assert sorted(submits(tmp_path / "remote")) == sorted(f"{i}-1" for i in ids)
