"""Orchestration overhead per job: submit to the `completed` event, minus the time
spent inside the provider and the media steps (both recorded on the video).

The provider here answers at once and hands back a tiny ready-made clip, so what
remains is the service's own cost: HTTP, Redis writes, queue hops, events. Time a job waits
for a free slot on the CPU-bound ``process`` queue (concurrency = cores) is
capacity, not overhead, and is recorded and left out too. Measured
at 1 job at a time and at 50 concurrent jobs, against a Redis PING round trip of
the same run as the baseline.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis as sync_redis

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from reelforge.errors import RemoteJobLostError  # noqa: E402
from reelforge.models import GenerationRequest  # noqa: E402
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus  # noqa: E402
from reelforge.settings import ProviderConfig, Settings  # noqa: E402


class InstantProvider:
    """Done as soon as asked: every second measured is the service's own."""

    def __init__(self, *, name: str, config: ProviderConfig, settings: Settings):
        self.name = name
        self.clip = Path(str(config.options["clip"]))
        self.jobs: set[str] = set()

    def capabilities(self) -> Capabilities:
        return Capabilities(max_duration_seconds=60)

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        self.jobs.add(idempotency_key)
        return idempotency_key

    async def poll(self, remote_id: str) -> RemoteStatus:
        if remote_id not in self.jobs:
            raise RemoteJobLostError(remote_id)
        return RemoteStatus(RemoteState.SUCCEEDED, progress=100)

    async def download(self, remote_id: str, dest: Path) -> Path:
        shutil.copyfile(self.clip, dest)
        return dest

    async def cancel(self, remote_id: str) -> None:
        self.jobs.discard(remote_id)

    async def aclose(self) -> None:
        return None


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sync_redis.Redis.from_url(url).ping()
    return url


def _clip(directory: Path) -> Path:
    from tests.clips import lavfi_clip

    return lavfi_clip(
        directory / "clip.mp4", "testsrc2=size=64x64:rate=8:duration=0.5", seconds=0.5
    )


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _one_job(client: httpx.AsyncClient) -> float:
    """Seconds of overhead for one job, measured at the client."""
    body = {"prompt": "overhead", "duration_seconds": 0.5, "size": "64x64", "provider": "instant"}
    started = time.perf_counter()
    response = await client.post("/api/videos/generate", json=body)
    video_id = response.json()["id"]
    async with client.stream("GET", f"/api/videos/{video_id}/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:") and json.loads(line[5:])["type"] in (
                "completed",
                "failed",
            ):
                break
    wall = time.perf_counter() - started
    video = (await client.get(f"/api/videos/{video_id}")).json()
    assert video["status"] == "completed", video["error"]
    timings = video["timings"]
    inside = timings.get("provider", 0.0) + timings.get("media", 0.0)
    return wall - inside - timings.get("process_queue", 0.0)


async def _measure(url: str, concurrency: int, rounds: int) -> list[float]:
    limits = httpx.Limits(max_connections=concurrency * 3)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await _one_job(client)  # warm-up
        overheads: list[float] = []
        for _ in range(rounds):
            overheads += await asyncio.gather(*(_one_job(client) for _ in range(concurrency)))
        return overheads


async def _bench() -> list[str]:
    from tests.conftest import delete_prefix
    from tests.service import free_port, service_env, spawn, stop, wait_until

    url = _redis_url()
    prefix = f"rfbench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp))
        settings = Settings(
            data_dir=Path(tmp) / "data",
            redis_url=url,
            redis_prefix=prefix,
            providers={
                "instant": ProviderConfig(
                    kind="benchmarks.bench_service:InstantProvider",
                    poll_interval_seconds=0.01,
                    options={"clip": str(clip)},
                )
            },
        )
        # The production shape: API and worker are separate processes.
        env = service_env(settings)
        port = free_port()
        logs = Path(tmp)
        procs = [
            spawn(["serve", "--port", str(port), "--workers", "0"], env, logs / "api.log"),
            spawn(["worker"], env, logs / "worker.log"),
        ]
        base = f"http://127.0.0.1:{port}"
        try:
            client = sync_redis.Redis.from_url(url)
            pings = []
            for _ in range(200):
                t = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - t)
            ping = statistics.median(pings)

            async def ready() -> bool:
                try:
                    async with httpx.AsyncClient() as c:
                        return (await c.get(f"{base}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=60, interval=0.1)
            single = await _measure(base, 1, 30)
            many = await _measure(base, 50, 2)
        finally:
            for proc in procs:
                stop(proc)
            delete_prefix(url, prefix)
    lines = [f"baseline: Redis PING round trip {ping * 1000:.3f} ms"]
    for label, values in (("1 job at a time", single), ("50 concurrent jobs", many)):
        p50, p99 = _percentile(values, 50) * 1000, _percentile(values, 99) * 1000
        lines.append(
            f"orchestration overhead, {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"(= {p50 / (ping * 1000):.0f}x / {p99 / (ping * 1000):.0f}x a PING; "
            "targets p50 < 20 ms, p99 < 100 ms)"
        )
    return lines


def run() -> list[str]:
    return asyncio.run(_bench())


if __name__ == "__main__":
    for line in run():
        print(line)
