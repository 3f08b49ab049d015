"""`reelforge serve` as a user runs it: one command, embedded Redis it owns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service import REPO, free_port, wait_until

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_") and k != "REDIS_URL"
    }
    env.update({"REELFORGE_DATA_DIR": str(tmp_path / "data"), "REELFORGE_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def _processes_in(directory: str) -> list[int]:
    """Processes whose working directory is ``directory`` (valkey runs in its data dir
    and rewrites its own command line, so that is how to find it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == directory:
            pids.append(int(entry.name))
    return pids


async def test_serve_without_redis_url_owns_an_embedded_server_and_stops_it_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelforge", "serve", "--port", str(port)],
        env=_env(tmp_path),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=60, interval=0.2)
            redis_dir = str((tmp_path / "data" / "redis").resolve())
            assert _processes_in(redis_dir), "embedded server not running"
            body = {"prompt": "a green square", "duration_seconds": 0.5, "size": "64x64"}
            video_id = (await client.post("/api/videos/generate", json=body)).json()["id"]

            async def done() -> bool:
                status = (await client.get(f"/api/videos/status/{video_id}")).json()["status"]
                return status == "completed"

            await wait_until(done, timeout=60, interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert _processes_in(redis_dir) == []
    assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()


def test_serve_with_an_unreachable_redis_url_exits_with_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reelforge", "serve", "--port", str(free_port())],
        env=_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0", REELFORGE_REDIS_WAIT_SECONDS="1"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "waiting for Redis" in result.stdout + result.stderr  # it tried again first
    assert "cannot reach Redis at REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_public_address_without_api_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reelforge", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=_env(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "insecure_bind" in result.stderr


async def test_a_worker_started_before_redis_waits_for_it(tmp_path: Path) -> None:
    """Compose files and restarts start workers before Redis answers: they wait
    (``redis_wait_seconds``) rather than exit."""
    from reelforge.server import EmbeddedRedis

    port = free_port()
    log = tmp_path / "worker.log"
    env = _env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0", REELFORGE_LOG_LEVEL="INFO")
    env["REELFORGE_REDIS_PREFIX"] = f"wait-{port}"
    env["PYTHONPATH"] = str(REPO)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "worker"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    redis: EmbeddedRedis | None = None
    try:

        async def logged(text: str) -> bool:
            return text in log.read_text()

        await wait_until(lambda: logged("waiting for Redis"), timeout=30)
        assert proc.poll() is None
        redis = EmbeddedRedis(tmp_path / "data", port=port)
        redis.start()
        await wait_until(lambda: logged("worker started"), timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        if redis is not None:
            redis.stop()
