"""How fast live events reach many SSE subscribers of one video.

The API runs under uvicorn in a child process (its own event loop and CPU), against
real Redis (``REDIS_URL``, else 127.0.0.1:6379) with a private key prefix that is
deleted afterwards. One video record is created; N clients (httpx, in this process)
open ``GET /api/videos/{id}/events``, in waves of 50, and wait for the replayed
``created`` event. Then 50 transitions, ~20 ms apart, are written with
``VideoStore.transition`` on a separate Redis client; each event carries its send
time (``at``), and every client records ``receive time - at``. The same with 1
subscriber (a few runs, for enough samples) is the baseline. Client and server
share the machine's CPUs, so the figures include the clients' own parsing and
move with the machine's load.

Run: ``.venv/bin/python benchmarks/bench_events.py`` or ``python -m benchmarks events``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis as sync_redis
from redis.asyncio import Redis

from reelforge.keys import Keys
from reelforge.models import GenerationRequest, Stage
from reelforge.store import VideoRecord, VideoStore, new_video_id

__all__ = ["run"]

SUBSCRIBERS = 500
TRANSITIONS = 50
SPACING_SECONDS = 0.020
TARGET_P99_MS = 100.0
CONNECT_TIMEOUT = 30.0
CONNECT_WAVE = 50
BASELINE_RUNS = 4
LOCAL_REDIS = "redis://127.0.0.1:6379/0"

# The server process: the real app factory, settings from the environment.
_SERVER = """
import sys
import uvicorn
from reelforge.api.app import create_app
from reelforge.settings import Settings

uvicorn.run(
    create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]),
    log_level="warning", access_log=False, backlog=4096,
)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _wait_healthy(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start in time")


async def _subscriber(
    client: httpx.AsyncClient, path: str, ready: list[int], delays: list[float]
) -> None:
    async with client.stream("GET", path) as response:
        response.raise_for_status()
        pending = b""
        # Raw bytes, split into events here: httpx's line iterator costs more CPU per
        # event than the server spends, and would measure the client.
        async for chunk in response.aiter_raw():
            received = time.time()
            *frames, pending = (pending + chunk).split(b"\n\n")
            for frame in frames:
                data = next((ln for ln in frame.split(b"\n") if ln.startswith(b"data:")), None)
                if data is None:
                    continue  # a keep-alive comment
                event = json.loads(data[5:])
                if event["seq"] == 1:
                    ready.append(1)  # the replayed "created" event: connected, caught up
                else:
                    delays.append((received - event["at"]) * 1000)
                if event["type"] == "completed":
                    # Closing the response is not delivery: let the other
                    # subscribers read the event first.
                    await asyncio.sleep(0)


async def _measure(base_url: str, store: VideoStore, subscribers: int) -> list[float]:
    """Delivery delays (ms) of every event at every subscriber."""
    record = VideoRecord(
        id=new_video_id(),
        owner="default",
        request=GenerationRequest(prompt="benchmark"),
        provider="local",
    )
    await store.create(record)
    ready: list[int] = []
    delays: list[float] = []
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(60.0, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        path = f"/api/videos/{record.id}/events"
        tasks: list[asyncio.Task[None]] = []
        deadline = time.monotonic() + CONNECT_TIMEOUT
        # Connect in waves: what is measured is delivery, not a connection storm
        # (which the API's shared Redis pool, 100 connections, cannot absorb at once).
        while len(tasks) < subscribers:
            wave = min(CONNECT_WAVE, subscribers - len(tasks))
            tasks += [
                asyncio.create_task(_subscriber(client, path, ready, delays)) for _ in range(wave)
            ]
            while len(ready) < len(tasks):
                failed = [task for task in tasks if task.done()]
                if failed:
                    await failed[0]  # raises what went wrong
                    raise RuntimeError("a subscriber ended before the events were sent")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(ready)} of {subscribers} subscribers connected")
                await asyncio.sleep(0.02)
        for i in range(TRANSITIONS - 1):
            await store.transition(record.id, stage=Stage.GENERATING, progress=i + 1)
            await asyncio.sleep(SPACING_SECONDS)
        await store.transition(record.id, stage=Stage.COMPLETED, progress=100, event="completed")
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    expected = subscribers * TRANSITIONS
    if len(delays) != expected:
        raise RuntimeError(f"received {len(delays)} events, expected {expected}")
    return delays


async def _run(redis_url: str, prefix: str, data_dir: Path) -> list[str]:
    port = _free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REELFORGE_REDIS_PREFIX": prefix,
        "REELFORGE_DATA_DIR": str(data_dir),
        "REELFORGE_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], env=env)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        store = VideoStore(redis, Keys(prefix), events_ttl=600, idempotency_ttl=600)
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as probe:
            await _wait_healthy(probe, server)
        await _measure(base_url, store, 1)  # warm-up: imports, first connections
        baseline: list[float] = []
        for _ in range(BASELINE_RUNS):  # one subscriber gives few samples: take several
            baseline += await _measure(base_url, store, 1)
        crowd = await _measure(base_url, store, SUBSCRIBERS)
    finally:
        await redis.aclose()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    b50, b99 = _percentile(baseline, 0.50), _percentile(baseline, 0.99)
    c50, c99 = _percentile(crowd, 0.50), _percentile(crowd, 0.99)
    verdict = "ok" if c99 < TARGET_P99_MS else "MISSED"
    return [
        f"event delivery, {SUBSCRIBERS} SSE subscribers on one video: p50 {c50:.1f} ms, "
        f"p99 {c99:.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms: {verdict})",
        f"event delivery, 1 SSE subscriber (baseline): p50 {b50:.1f} ms, p99 {b99:.1f} ms",
        f"ratio {SUBSCRIBERS} / 1 subscribers: p50 x{c50 / b50:.1f}, p99 x{c99 / b99:.1f}",
    ]


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run() -> list[str]:
    redis_url = os.environ.get("REDIS_URL") or LOCAL_REDIS
    prefix = f"rfbench-{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench_events_") as tmp:
            return asyncio.run(_run(redis_url, prefix, Path(tmp)))
    finally:
        _delete_prefix(redis_url, prefix)


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
