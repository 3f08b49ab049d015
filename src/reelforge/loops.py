"""Background loops beside a job or a connection, and how to stop them for sure.

A loop that keeps going through errors (``suppress(Exception)`` around a Redis
call, a reconnect loop catching ``TimeoutError``) can swallow the one
``CancelledError`` meant to stop it: a cancel that lands inside a library's timeout
handling may surface as a ``TimeoutError`` instead (redis-py's pool wait,
``asyncio.timeout`` racing its deadline, websockets' ``open_timeout``). The loop then
runs on and whoever awaits it waits forever: a finished job whose heartbeat never
stops (so saq never sweeps it and the video stays stuck), a GPU worker that never
takes its next job, a worker that never shuts down. So each loop also checks a
flag, and :func:`stop_loop` sets it and cancels again until the loop is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Loop", "spawn_loop", "start_loop", "stop_loop"]


@dataclass
class Loop:
    task: asyncio.Task[None]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def spawn_loop(
    body: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, name: str | None = None
) -> Loop:
    """Run ``body(stopping)`` as a task; the body goes round ``while not
    stopping.is_set()`` and handles its own errors."""
    stopping = asyncio.Event()
    return Loop(task=asyncio.create_task(body(stopping), name=name), stopping=stopping)


def start_loop(step: Callable[[], Awaitable[None]], interval: float, *, first_wait: bool) -> Loop:
    """Run ``step`` every ``interval`` seconds (after one wait if ``first_wait``) until
    stopped; ``step`` handles its own errors."""

    async def run(stopping: asyncio.Event) -> None:
        if first_wait:
            await asyncio.sleep(interval)
        while not stopping.is_set():
            await step()
            if stopping.is_set():
                return
            await asyncio.sleep(interval)  # the loop's period

    return spawn_loop(run)


async def stop_loop(loop: Loop) -> None:
    """Stop the loop and wait until it has ended, even if a cancel is swallowed."""
    loop.stopping.set()
    while not loop.task.done():
        loop.task.cancel()
        await asyncio.wait({loop.task}, timeout=1.0)
    if not loop.task.cancelled():
        loop.task.exception()  # retrieved: a loop's own error is not left unseen
