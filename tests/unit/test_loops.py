"""Background loops stop for sure, even when a library swallows the cancel."""

from __future__ import annotations

import asyncio
import contextlib

from reelforge.loops import start_loop, stop_loop
from tests.fakes import sleep_turning_cancel_into_timeout


async def test_a_loop_whose_step_swallows_the_cancel_still_stops() -> None:
    inside = asyncio.Event()
    calls = 0

    async def step() -> None:
        # What a cancel landing in a library's timeout handling looks like: the
        # CancelledError comes out as a TimeoutError, which the step's own
        # error handling then swallows.
        nonlocal calls
        calls += 1
        inside.set()
        with contextlib.suppress(Exception):
            await sleep_turning_cancel_into_timeout(30)

    loop = start_loop(step, 0.01, first_wait=False)
    await inside.wait()
    async with asyncio.timeout(10):
        await stop_loop(loop)
    assert loop.task.done()
    assert calls == 1  # it did not go round again after the stop


async def test_a_loop_runs_its_step_every_interval_until_stopped() -> None:
    ran = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            ran.set()

    loop = start_loop(step, 0.01, first_wait=True)
    async with asyncio.timeout(10):
        await ran.wait()
        await stop_loop(loop)
    assert loop.task.cancelled() or loop.task.done()
