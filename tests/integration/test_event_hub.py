"""The event hub against real Redis: replay, live following, fan-out, slow consumers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from reelforge.events import EventHub, EventHubClosedError, SlowSubscriberError
from reelforge.models import GenerationRequest, Stage
from reelforge.runtime import Runtime
from reelforge.store import VideoRecord, new_video_id

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rt(runtime: object) -> Runtime:
    return cast(Runtime, runtime)


@pytest.fixture
async def hub(rt: Runtime) -> AsyncIterator[EventHub]:
    hub = EventHub(rt.redis, rt.keys)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def new_video(rt: Runtime) -> str:
    record = VideoRecord(
        id=new_video_id(),
        owner="default",
        request=GenerationRequest(prompt="a lighthouse at dusk"),
        provider="local",
    )
    await rt.store.create(record)
    return record.id


async def emit(rt: Runtime, video_id: str, count: int) -> int:
    """``count`` applied stage events; returns the last seq."""
    seq = 0
    for i in range(count):
        result = await rt.store.transition(
            video_id, stage=Stage.GENERATING, progress=min(99, i + 1)
        )
        assert result.applied
        seq = result.seq
    return seq


async def finish(rt: Runtime, video_id: str) -> int:
    result = await rt.store.transition(
        video_id, stage=Stage.COMPLETED, progress=100, event="completed"
    )
    assert result.applied
    return result.seq


async def collect(hub: EventHub, video_id: str, after: int = 0) -> list[dict[str, Any]]:
    async with hub.subscribe(video_id, after) as events:
        return [event async for event in events]


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


async def wait_for_state(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_replay_from_zero_yields_every_event_in_order(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    await emit(rt, video_id, 5)
    last = await finish(rt, video_id)

    events = await asyncio.wait_for(collect(hub, video_id), 10)

    assert seqs(events) == list(range(1, last + 1))
    assert events[0]["type"] == "created"
    assert events[-1]["type"] == "completed"
    assert all(event["video_id"] == video_id for event in events)


async def test_replay_after_n_yields_exactly_the_missed_events(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    await emit(rt, video_id, 6)
    last = await finish(rt, video_id)

    events = await asyncio.wait_for(collect(hub, video_id, after=4), 10)

    assert seqs(events) == list(range(5, last + 1))


async def test_replay_holding_the_terminal_event_ends_without_joining_the_hub(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    await finish(rt, video_id)
    reads = hub.stats.reads

    async with hub.subscribe(video_id) as events:
        assert hub.video_count == 0
        received = [event async for event in events]

    assert seqs(received) == [1, 2]
    assert events.finished
    assert hub.stats.wakes == 0
    assert hub.stats.reads == reads


async def test_iterator_ends_after_the_live_terminal_event(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as events:
        assert (await anext(events))["seq"] == 1
        await emit(rt, video_id, 2)
        last = await finish(rt, video_id)
        rest = await asyncio.wait_for(_drain(events), 10)
        assert seqs(rest) == list(range(2, last + 1))
        assert events.finished
        assert hub.video_count == 0


async def _drain(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in events]


async def test_live_events_follow_the_replay_without_gaps_or_duplicates(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    await emit(rt, video_id, 3)
    async with hub.subscribe(video_id) as events:
        replayed = [await anext(events) for _ in range(4)]
        await emit(rt, video_id, 5)
        last = await finish(rt, video_id)
        live = await asyncio.wait_for(_drain(events), 10)

    assert seqs(replayed + live) == list(range(1, last + 1))


async def test_subscribing_while_transitions_hammer_the_stream_loses_and_repeats_nothing(
    rt: Runtime, hub: EventHub
) -> None:
    transitions = 400
    videos = [await new_video(rt) for _ in range(3)]

    async def writer(video_id: str) -> int:
        await emit(rt, video_id, transitions)
        return await finish(rt, video_id)

    async def subscriber(video_id: str, after: int, leave_after: int | None) -> list[int]:
        async with hub.subscribe(video_id, after) as events:
            got: list[int] = []
            async for event in events:
                got.append(event["seq"])
                if leave_after is not None and len(got) == leave_after:
                    break  # leaving early removes the video from the read set
            return got

    writers = [asyncio.create_task(writer(video_id)) for video_id in videos]
    readers: list[tuple[str, int, int | None, asyncio.Task[list[int]]]] = []
    i = 0
    while not all(task.done() for task in writers):
        video_id = videos[i % len(videos)]
        raw = await rt.redis.hget(rt.keys.video(video_id), "seq")
        after = [0, int(raw or 0) // 2, int(raw or 0)][i % 3]
        leave_after = 3 if i % 5 == 4 else None
        task = asyncio.create_task(subscriber(video_id, after, leave_after))
        readers.append((video_id, after, leave_after, task))
        i += 1
        await asyncio.sleep(0)  # let the subscription start mid-stream, not to wait for state
    finals = dict(zip(videos, await asyncio.gather(*writers), strict=True))
    results = await asyncio.wait_for(asyncio.gather(*(r[3] for r in readers)), 30)

    assert len(readers) > 30
    for (video_id, after, leave_after, _), got in zip(readers, results, strict=True):
        expected = list(range(after + 1, finals[video_id] + 1))
        if leave_after is not None:
            expected = expected[:leave_after]
        assert got == expected, (video_id, after)
    assert hub.video_count == 0
    assert hub.stats.dropped == 0


async def test_two_subscribers_on_one_video_see_the_same_sequence(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as first, hub.subscribe(video_id) as second:
        await emit(rt, video_id, 10)
        await finish(rt, video_id)
        a, b = await asyncio.wait_for(asyncio.gather(_drain(first), _drain(second)), 10)

    assert a == b
    assert seqs(a) == list(range(1, 13))
    assert hub.stats.wakes == 1  # the second one joined the first one's feed


async def test_a_late_subscriber_sees_the_same_sequence(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as early:
        await emit(rt, video_id, 5)
        first_part = [await asyncio.wait_for(anext(early), 10) for _ in range(6)]
        async with hub.subscribe(video_id) as late:
            await emit(rt, video_id, 5)
            await finish(rt, video_id)
            rest, everything = await asyncio.wait_for(
                asyncio.gather(_drain(early), _drain(late)), 10
            )

    assert everything == first_part + rest
    assert seqs(everything) == list(range(1, 13))


async def test_200_subscribers_on_one_video_share_one_read_loop(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    reads_before = hub.stats.reads
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(hub.subscribe(video_id)) for _ in range(200)
        ]
        assert hub.subscriber_count == 200
        assert hub.video_count == 1
        readers = [
            client
            for client in await rt.redis.client_list()
            if client.get("name") == hub.client_name
        ]
        assert len(readers) == 1
        await emit(rt, video_id, 10)
        last = await finish(rt, video_id)
        received = await asyncio.wait_for(asyncio.gather(*map(_drain, subscriptions)), 20)

    assert all(seqs(events) == list(range(1, last + 1)) for events in received)
    # One XREAD per batch of entries (plus the wake), however many subscribers.
    assert hub.stats.wakes == 1
    assert hub.stats.reads - reads_before <= last + 5
    assert hub.stats.delivered == 200 * (last - 1)


async def test_a_slow_subscriber_is_dropped_without_stalling_the_others(
    rt: Runtime, redis_url: str
) -> None:
    hub = EventHub(rt.redis, rt.keys, redis_url=redis_url, max_queued=5)
    await hub.start()
    try:
        video_id = await new_video(rt)
        async with hub.subscribe(video_id) as slow, hub.subscribe(video_id) as fast:
            # Nobody reads ``slow`` while ``fast`` keeps up.
            fast_reader = asyncio.create_task(_drain(fast))
            await emit(rt, video_id, 20)
            last = await finish(rt, video_id)
            fast_events = await asyncio.wait_for(fast_reader, 10)
            assert seqs(fast_events) == list(range(1, last + 1))
            assert hub.stats.dropped == 1

            slow_seqs: list[int] = []
            with pytest.raises(SlowSubscriberError):
                async for event in slow:
                    slow_seqs.append(event["seq"])
            # What was buffered comes first, so the client can resume from it.
            assert slow_seqs == list(range(1, 7))
    finally:
        await hub.stop()


async def test_a_new_video_is_read_without_waiting_for_the_block_timeout(
    rt: Runtime, redis_url: str
) -> None:
    hub = EventHub(rt.redis, rt.keys, redis_url=redis_url, block_ms=30_000)
    await hub.start()
    try:
        first, second = await new_video(rt), await new_video(rt)
        async with hub.subscribe(first) as a:
            await asyncio.wait_for(anext(a), 5)
            await emit(rt, first, 1)
            assert (await asyncio.wait_for(anext(a), 5))["seq"] == 2
            # The hub is now blocked in an XREAD that does not name ``second``.
            async with hub.subscribe(second) as b:
                await asyncio.wait_for(anext(b), 5)
                await emit(rt, second, 1)
                assert (await asyncio.wait_for(anext(b), 5))["seq"] == 2
        assert hub.stats.wakes >= 2
    finally:
        await hub.stop()


async def test_subscribers_stay_attached_while_the_hub_reconnects(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as events:
        assert (await asyncio.wait_for(anext(events), 5))["seq"] == 1
        await wait_for_state(lambda: hub.stats.reads >= 2)  # blocked on the feed now
        # Cut the reader's connection, as a Redis restart would.
        for client in await rt.redis.client_list():
            if client.get("name") == hub.client_name:
                await rt.redis.client_kill_filter(_id=client["id"])
        await wait_for_state(lambda: hub.stats.read_failures >= 1)
        await emit(rt, video_id, 3)
        last = await finish(rt, video_id)
        rest = await asyncio.wait_for(_drain(events), 10)

    assert seqs(rest) == list(range(2, last + 1))


async def test_a_video_leaves_the_read_set_when_its_last_subscriber_leaves(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as first:
        async with hub.subscribe(video_id):
            assert hub.subscriber_count == 2
        assert hub.subscriber_count == 1
        await asyncio.wait_for(anext(first), 5)
    assert hub.video_count == 0
    assert hub.subscriber_count == 0


async def test_stopping_the_hub_ends_subscriptions_with_a_clear_error(rt: Runtime) -> None:
    hub = EventHub(rt.redis, rt.keys)
    await hub.start()
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as events:
        await asyncio.wait_for(anext(events), 5)
        await hub.stop()
        with pytest.raises(EventHubClosedError):
            await anext(events)


async def test_resuming_after_the_terminal_event_ends_at_once(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    last = await finish(rt, video_id)

    events = await asyncio.wait_for(collect(hub, video_id, after=last), 5)

    assert events == []
    assert hub.video_count == 0


async def test_a_video_whose_events_are_gone_ends_at_once(rt: Runtime, hub: EventHub) -> None:
    video_id = await new_video(rt)
    await rt.redis.delete(rt.keys.events(video_id))  # as when the replay window expired

    async with hub.subscribe(video_id) as events:
        assert events.finished
        assert [event async for event in events] == []


async def test_closing_subscriptions_ends_them_and_refuses_new_ones(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as events:
        await asyncio.wait_for(anext(events), 5)
        hub.close_subscriptions()
        with pytest.raises(EventHubClosedError):
            await anext(events)
    assert hub.video_count == 0
    with pytest.raises(EventHubClosedError):
        async with hub.subscribe(video_id):
            pass


async def test_events_that_arrive_between_replay_and_joining_are_read_again(
    rt: Runtime, hub: EventHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id) as first:
        await asyncio.wait_for(anext(first), 5)
        real_read = hub._read_since
        calls: list[int] = []

        async def read_then_fall_behind(vid: str, after: int) -> Any:
            result = await real_read(vid, after)
            calls.append(after)
            if len(calls) == 1:
                # The hub moves on before the second subscriber has joined.
                await emit(rt, video_id, 3)
                await wait_for_state(lambda: hub._feeds[video_id].position == 4)
            return result

        monkeypatch.setattr(hub, "_read_since", read_then_fall_behind)
        async with hub.subscribe(video_id) as second:
            monkeypatch.undo()
            last = await finish(rt, video_id)
            a, b = await asyncio.wait_for(asyncio.gather(_drain(first), _drain(second)), 10)

    assert calls == [0, 1]  # the replay, then the gap after it
    assert seqs(b) == list(range(1, last + 1))
    assert seqs(a) == list(range(2, last + 1))


async def test_next_or_idle_returns_none_when_nothing_came_for_idle_after(
    rt: Runtime, hub: EventHub
) -> None:
    video_id = await new_video(rt)
    async with hub.subscribe(video_id, idle_after=0.05) as events:
        assert (await asyncio.wait_for(events.next_or_idle(), 5)) is not None  # created
        assert (await asyncio.wait_for(events.next_or_idle(), 5)) is None
        await emit(rt, video_id, 1)
        event = await asyncio.wait_for(events.next_or_idle(), 5)
        assert event is not None
        assert event["seq"] == 2
