"""Running the real service in tests: the app under uvicorn on 127.0.0.1, real
workers (in this process or as child processes), real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from reelforge.api.app import create_app
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.worker import WorkerProcess

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it is true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@dataclass
class Service:
    base_url: str
    runtime: Runtime
    client: httpx.AsyncClient
    workers: list[WorkerProcess] = field(default_factory=list)

    async def wait_terminal(self, video_id: str, timeout: float = 60.0) -> dict[str, Any]:
        result: dict[str, Any] = {}

        async def done() -> bool:
            nonlocal result
            result = (await self.client.get(f"/api/videos/{video_id}")).json()
            return result["status"] in ("completed", "failed", "cancelled")

        await wait_until(done, timeout=timeout, interval=0.1)
        return result


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings, runtime: Runtime, *, port: int | None = None
) -> AsyncIterator[str]:
    async with serve_app(create_app(settings, runtime=runtime), port=port) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_app(app: Any, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app under uvicorn on 127.0.0.1 (a free port unless given), in this
    event loop."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port or free_port(),
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: _started(server), timeout=10)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, *, workers: int = 1, port: int | None = None
) -> AsyncIterator[Service]:
    rt = await Runtime.open(settings)
    processes = [WorkerProcess(rt) for _ in range(workers)]
    try:
        for process in processes:
            await process.start()
        async with (
            running_server(settings, rt, port=port) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield Service(base_url=url, runtime=rt, client=client, workers=processes)
    finally:
        try:
            async with asyncio.timeout(60):
                for process in processes:
                    await process.stop()
                await rt.close()
        except TimeoutError:
            # A teardown that hangs would only show pytest-timeout's thread dump: say
            # where each task waits instead.
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)
            raise


def service_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child reelforge process that shares the test's Redis and data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    env.update(
        {
            "REDIS_URL": settings.redis_url or "",
            "REELFORGE_REDIS_PREFIX": settings.redis_prefix,
            "REELFORGE_DATA_DIR": str(settings.data_dir),
            "REELFORGE_JOB_HEARTBEAT_SECONDS": str(settings.job_heartbeat_seconds),
            "REELFORGE_SWEEP_INTERVAL_SECONDS": str(settings.sweep_interval_seconds),
            "REELFORGE_WORKER_HEARTBEAT_SECONDS": str(settings.worker_heartbeat_seconds),
            "REELFORGE_PROCESS_CONCURRENCY": str(settings.process_concurrency),
            "REELFORGE_GENERATE_CONCURRENCY": str(settings.generate_concurrency),
            "REELFORGE_RETRY_INITIAL_SECONDS": str(settings.retry_initial_seconds),
            "REELFORGE_RETRY_MAX_SECONDS": str(settings.retry_max_seconds),
            "REELFORGE_LOG_LEVEL": "WARNING",
            # The caller's path first (a checkout beside an editable install imports
            # itself), then this checkout's own source, whatever the venv installed.
            "PYTHONPATH": os.pathsep.join([*_caller_path(), str(REPO / "src"), str(REPO)]),
        }
    )
    providers = {}
    for name, config in settings.providers.items():
        fields = config.model_dump(mode="json")
        if config.api_key is not None:
            fields["api_key"] = config.api_key.get_secret_value()
        providers[name] = fields
    env["REELFORGE_PROVIDERS"] = json.dumps(providers)
    env["REELFORGE_DEFAULT_ROUTE"] = json.dumps(settings.default_route)
    if extra:
        env.update(extra)
    return env


def _caller_path() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def spawn(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m reelforge ARGS`` in its own process group."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reelforge", *args],
            env=dict(env),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=timeout)
