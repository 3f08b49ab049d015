"""Serving an emulator's app under uvicorn on 127.0.0.1, in the current event loop.

The socket is bound before uvicorn starts, so no other process can take the port
between choosing it and serving on it; a startup failure surfaces at once instead
of being waited out.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from tests.service import wait_until

__all__ = ["bound_socket", "serve_on_loopback"]


@contextlib.contextmanager
def bound_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def serve_on_loopback(app: Any, **options: Any) -> AsyncIterator[int]:
    """Serve ``app`` (uvicorn ``options`` on top of quiet defaults); yields the port."""
    settings: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "ws": "none",
        "lifespan": "off",
        **options,
    }
    with bound_socket() as sock:
        server = uvicorn.Server(uvicorn.Config(app, **settings))
        task = asyncio.create_task(server.serve(sockets=[sock]))

        async def started() -> bool:
            if task.done():
                task.result()  # surfaces a startup failure instead of waiting it out
            return server.started

        try:
            await wait_until(started, timeout=10)
            yield int(sock.getsockname()[1])
        finally:
            server.should_exit = True
            await task
