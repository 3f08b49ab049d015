"""Background loops a worker runs beside its jobs, and how to stop them for sure.

A loop that keeps going through errors (``suppress(Exception)`` around a Redis
call) can swallow the one ``CancelledError`` meant to stop it: a cancel that lands
inside a library's timeout handling may surface as a ``TimeoutError`` instead
(redis-py's pool wait, ``asyncio.timeout`` racing its deadline). The loop then runs
on and whoever awaits it waits forever: a finished job whose heartbeat never stops
(so saq never sweeps it and the video stays stuck), or a worker that never shuts
down. So each loop also checks a flag, and :func:`stop_loop` sets it and cancels
again until the loop is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Loop", "start_loop", "stop_loop"]


@dataclass
class Loop:
    task: asyncio.Task[None]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def start_loop(step: Callable[[], Awaitable[None]], interval: float, *, first_wait: bool) -> Loop:
    """Run ``step`` every ``interval`` seconds (after one wait if ``first_wait``) until
    stopped; ``step`` handles its own errors."""
    stopping = asyncio.Event()

    async def run() -> None:
        if first_wait:
            await asyncio.sleep(interval)
        while not stopping.is_set():
            await step()
            if stopping.is_set():
                return
            await asyncio.sleep(interval)  # the loop's period

    return Loop(task=asyncio.create_task(run()), stopping=stopping)


async def stop_loop(loop: Loop) -> None:
    """Stop the loop and wait until it has ended, even if a cancel is swallowed."""
    loop.stopping.set()
    while not loop.task.done():
        loop.task.cancel()
        await asyncio.wait({loop.task}, timeout=1.0)
    if not loop.task.cancelled():
        loop.task.exception()  # retrieved: a loop's own error is not left unseen
