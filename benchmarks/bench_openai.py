"""OpenAI-compatible API figures.

1. The `openai` provider at scale: 1000 generations in flight at once against the
   emulator (slow jobs) on one worker process: its peak RSS and the CPU it spends
   per poll, with an idle worker of the same run as the baseline.
2. Relay latency: a `/v1/videos` create + retrieve through reelforge (its own API
   process) against the same calls made to the emulator directly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis as sync_redis

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from reelforge.models import GenerationRequest  # noqa: E402
from reelforge.runtime import Runtime  # noqa: E402
from reelforge.settings import ProviderConfig, Settings  # noqa: E402
from reelforge.videos import create_video  # noqa: E402

IN_FLIGHT = 1000
WINDOW_SECONDS = 10.0
POLL_ROUTE = "GET /v1/videos/{video_id}"


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def _bench() -> list[str]:
    from tests.conftest import delete_prefix
    from tests.emulators.openai_videos import EmulatorConfig, running_emulator
    from tests.service import service_env, spawn, stop, wait_until

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sync_redis.Redis.from_url(url).ping()
    prefix = f"rfbench-{secrets.token_hex(4)}"
    config = EmulatorConfig(job_seconds=3600, poll_after_ms=1000)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_emulator(config) as emu:
            settings = Settings(
                data_dir=Path(tmp) / "data",
                redis_url=url,
                redis_prefix=prefix,
                generate_concurrency=IN_FLIGHT,
                providers={
                    "remote": ProviderConfig(
                        kind="openai", base_url=emu.base_url, poll_interval_seconds=1.0
                    )
                },
            )
            worker = spawn(["worker"], service_env(settings), Path(tmp) / "worker.log")
            rt = await Runtime.open(settings)
            try:

                async def beating() -> bool:
                    return bool(await rt.redis.zcard(rt.keys.workers))

                await wait_until(beating, timeout=60, interval=0.1)
                idle_rss = _rss_kb(worker.pid, "VmRSS")
                req = GenerationRequest(
                    prompt="slow", duration_seconds=4, size="1280x720", provider="remote"
                )
                for _ in range(IN_FLIGHT):
                    await create_video(rt, req, owner="bench")

                async def all_polled() -> bool:
                    return (
                        len(emu.state.jobs) >= IN_FLIGHT
                        and emu.state.requests[POLL_ROUTE] >= 2 * IN_FLIGHT
                    )

                await wait_until(all_polled, timeout=180, interval=0.2)
                polls0, cpu0, t0 = (
                    emu.state.requests[POLL_ROUTE],
                    _cpu_seconds(worker.pid),
                    time.monotonic(),
                )
                await asyncio.sleep(WINDOW_SECONDS)  # a measuring window, not a wait for state
                polls = emu.state.requests[POLL_ROUTE] - polls0
                cpu = _cpu_seconds(worker.pid) - cpu0
                elapsed = time.monotonic() - t0
                peak_rss = _rss_kb(worker.pid, "VmHWM")
            finally:
                stop(worker)
                await rt.close()
                delete_prefix(url, prefix)
    return [
        f"baseline: idle worker RSS {idle_rss / 1024:.0f} MB",
        f"{IN_FLIGHT} generations in flight on one worker: peak RSS {peak_rss / 1024:.0f} MB "
        f"({peak_rss / idle_rss:.2f}x idle; target < 200 MB)",
        f"polling: {polls / elapsed:.0f} polls/s, worker CPU {cpu / elapsed * 100:.0f}% of a core, "
        f"{cpu / max(polls, 1) * 1e6:.0f} us CPU per poll",
    ]


RELAY_ROUNDS = 300


async def _create_and_retrieve(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    body = {"model": "sora-2", "prompt": "relay", "seconds": "4", "size": "1280x720"}
    created = await client.post("/videos", json=body)
    created.raise_for_status()
    (await client.get(f"/videos/{created.json()['id']}")).raise_for_status()
    return time.perf_counter() - started


async def _relay() -> list[str]:
    from tests.conftest import delete_prefix
    from tests.service import free_port, service_env, spawn, stop, wait_until

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"rfbench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", redis_url=url, redis_prefix=prefix)
        # Both servers in processes of their own, like the client sees them.
        port, emu_port = free_port(), free_port()
        api = spawn(
            ["serve", "--port", str(port), "--workers", "0"],
            service_env(settings),
            Path(tmp) / "api.log",
        )
        with (Path(tmp) / "emulator.log").open("wb") as log:
            emulator = subprocess.Popen(
                [sys.executable, "-m", "tests.emulators.openai_videos", "--port", str(emu_port)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            async with (
                httpx.AsyncClient(base_url=f"{base}/v1") as relay,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{emu_port}/v1") as direct,
            ):

                async def up() -> bool:
                    try:
                        for client in (relay, direct):
                            await client.get("/videos?limit=1")
                        return True
                    except httpx.TransportError:
                        return False

                await wait_until(up, timeout=60, interval=0.1)
                for client in (relay, direct):  # warm both paths
                    for _ in range(20):
                        await _create_and_retrieve(client)
                via, straight = [], []
                for _ in range(RELAY_ROUNDS):  # interleaved: same conditions for both
                    via.append(await _create_and_retrieve(relay))
                    straight.append(await _create_and_retrieve(direct))
        finally:
            stop(api)
            emulator.terminate()
            emulator.wait(timeout=10)
            delete_prefix(url, prefix)
    p50_via, p50_direct = statistics.median(via) * 1000, statistics.median(straight) * 1000
    return [
        f"/v1 create+retrieve: via reelforge p50 {p50_via:.2f} ms, emulator directly "
        f"p50 {p50_direct:.2f} ms, added {p50_via - p50_direct:.2f} ms "
        f"(ratio {p50_via / p50_direct:.2f}; target < 3 ms added)"
    ]


def run() -> list[str]:
    return asyncio.run(_bench()) + asyncio.run(_relay())


if __name__ == "__main__":
    for line in run():
        print(line)
