"""The saq job heartbeat of a turn stops with the turn, even when the cancel that
ends it is swallowed inside a Redis call (Python 3.11's ``asyncio.wait_for``, which
redis-py uses for socket timeouts, drops a cancel that lands as the call finishes;
it happened to a beat during a Redis failover and left the turn waiting forever)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from reelforge.worker.run import heartbeat


class FakeJobSwallowingCancel:
    """A saq job whose ``update()`` swallows the first cancel that reaches it."""

    def __init__(self) -> None:
        self.updating = asyncio.Event()
        self.updates = 0
        self.swallowed = False

    async def update(self) -> None:
        self.updates += 1
        self.updating.set()
        try:
            await asyncio.Event().wait()  # a Redis write that is slow to answer
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed = True  # the race above: the write finished as the cancel landed


async def test_a_heartbeat_whose_cancel_is_swallowed_still_ends_with_its_turn() -> None:
    job = FakeJobSwallowingCancel()

    async def turn() -> None:
        async with heartbeat(cast(Any, job), interval=0.01):
            await job.updating.wait()  # the turn ends while a beat is in flight

    running = asyncio.create_task(turn())
    done, _ = await asyncio.wait({running}, timeout=5)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert running in done, "the turn never ended: its heartbeat outlived it"
    assert job.updates == 1  # it beat while the turn ran, and never after
