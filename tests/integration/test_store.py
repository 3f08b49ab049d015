"""The state machine's write path against real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog.testing

from reelforge.errors import NotFoundError
from reelforge.models import GenerationRequest, Stage, VideoStatus
from reelforge.runtime import Runtime
from reelforge.store import VideoRecord, new_video_id


def _record(owner: str = "default") -> VideoRecord:
    return VideoRecord(
        id=new_video_id(),
        owner=owner,
        request=GenerationRequest(prompt="a red ball", seed=1),
        provider="local",
    )


async def _events(rt: Runtime, video_id: str) -> list[dict[str, Any]]:
    entries = await rt.redis.xrange(rt.keys.events(video_id))
    return [{"id": entry_id, **json.loads(fields["data"])} for entry_id, fields in entries]


async def test_create_writes_record_index_and_first_event(runtime: Runtime) -> None:
    record, created = await runtime.store.create(_record())
    assert created
    stored = await runtime.store.get(record.id)
    assert (stored.status, stored.stage, stored.progress, stored.seq) == (
        VideoStatus.QUEUED,
        Stage.QUEUED,
        0,
        1,
    )
    events = await _events(runtime, record.id)
    assert [(e["id"], e["type"], e["seq"]) for e in events] == [("1-0", "created", 1)]
    assert await runtime.store.active_ids() == [record.id]


async def test_transitions_number_events_and_keep_progress_monotonic(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.transition(record.id, stage=Stage.SUBMITTING, progress=2)
    await runtime.store.transition(record.id, stage=Stage.GENERATING, progress=40)
    lower = await runtime.store.transition(record.id, progress=10, event="progress")
    assert not lower.applied  # a progress event that does not advance is dropped
    moved = await runtime.store.transition(record.id, stage=Stage.DOWNLOADING, progress=5)
    assert moved.applied
    stored = await runtime.store.get(record.id)
    assert stored.progress == 40 and stored.stage is Stage.DOWNLOADING
    events = await _events(runtime, record.id)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["id"] for e in events] == ["1-0", "2-0", "3-0", "4-0"]
    assert [e["progress"] for e in events] == [0, 2, 40, 40]
    assert set(stored.stage_durations) == {"queued", "submitting", "generating"}


async def test_terminal_records_never_change(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    done = await runtime.store.transition(record.id, stage=Stage.COMPLETED, progress=100)
    assert done.applied and done.status is VideoStatus.COMPLETED
    late = await runtime.store.transition(record.id, stage=Stage.FAILED)
    assert not late.applied and late.status is VideoStatus.COMPLETED
    assert await runtime.store.active_ids() == []
    assert (await runtime.store.get(record.id)).completed_at is not None


async def test_expect_stage_guards_against_a_stale_worker(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.transition(record.id, stage=Stage.SUBMITTING)
    stale = await runtime.store.transition(
        record.id, stage=Stage.SUBMITTING, expect_stage=Stage.QUEUED
    )
    assert not stale.applied and stale.stage is Stage.SUBMITTING


async def test_other_owners_get_not_found(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record(owner="alice"))
    assert (await runtime.store.get(record.id, owner="alice")).id == record.id
    with pytest.raises(NotFoundError):
        await runtime.store.get(record.id, owner="bob")


async def test_transition_of_a_deleted_record_is_not_applied(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.delete(record.id, owner="default")
    result = await runtime.store.transition(record.id, stage=Stage.SUBMITTING)
    assert not result.applied and result.status is None
    assert not await runtime.store.exists(record.id)


async def test_a_timing_added_after_a_delete_does_not_recreate_the_record(
    runtime: Runtime,
) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.delete(record.id, owner="default")
    assert await runtime.store.add_timing(record.id, "media", 1.5) is False
    assert await runtime.redis.exists(runtime.keys.video(record.id)) == 0


async def test_fields_set_after_a_delete_do_not_recreate_the_record(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.delete(record.id, owner="default")
    assert await runtime.store.set_fields(record.id, {"cancel_requested": "1"}) is False
    assert await runtime.redis.exists(runtime.keys.video(record.id)) == 0


async def test_a_turn_claimed_after_a_delete_does_not_recreate_the_record(
    runtime: Runtime,
) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.delete(record.id, owner="default")
    assert await runtime.store.claim_turn(record.id, "generate", "me") is None
    await runtime.store.release_turn(record.id, "generate", "me")
    assert await runtime.redis.exists(runtime.keys.video(record.id)) == 0


async def test_a_turn_left_by_another_worker_counts_a_worker_restart(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    first = await runtime.store.claim_turn(record.id, "generate", "worker-a")
    again = await runtime.store.claim_turn(record.id, "generate", "worker-a")
    taken_over = await runtime.store.claim_turn(record.id, "generate", "worker-b")
    assert first is not None and not first.orphaned
    assert again is not None and not again.orphaned  # the same process retrying
    assert taken_over is not None and taken_over.orphaned
    assert (await runtime.store.get(record.id)).worker_restarts == 1


async def test_a_turn_ended_cleanly_is_no_worker_restart(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.store.claim_turn(record.id, "generate", "worker-a")
    await runtime.store.release_turn(record.id, "generate", "worker-a")
    claim = await runtime.store.claim_turn(record.id, "generate", "worker-b")
    assert claim is not None and not claim.orphaned
    assert (await runtime.store.get(record.id)).worker_restarts == 0


async def test_a_partial_record_reads_as_not_found_and_is_logged(runtime: Runtime) -> None:
    video_id = new_video_id()
    # What an unguarded write after a delete used to leave: a hash without `id`.
    await runtime.redis.hset(runtime.keys.video(video_id), "time_media", "1.5")
    with structlog.testing.capture_logs() as logs, pytest.raises(NotFoundError):
        await runtime.store.get(video_id)
    assert any(
        entry["event"] == "malformed video record" and entry["key"] == runtime.keys.video(video_id)
        for entry in logs
    )


async def test_listing_skips_a_malformed_record(runtime: Runtime) -> None:
    good, _ = await runtime.store.create(_record())
    bad, _ = await runtime.store.create(_record())
    await runtime.redis.hdel(runtime.keys.video(bad.id), "id")
    page, has_more = await runtime.store.page("default", limit=10)
    assert [r.id for r in page] == [good.id] and not has_more


async def test_deleting_a_malformed_record_removes_it(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    await runtime.redis.hdel(runtime.keys.video(record.id), "id")
    assert await runtime.store.delete(record.id, owner="default") is None
    assert await runtime.redis.exists(runtime.keys.video(record.id)) == 0
    assert await runtime.redis.zscore(runtime.keys.owner_index("default"), record.id) is None


async def test_a_move_expecting_another_attempt_count_is_not_applied(runtime: Runtime) -> None:
    record, _ = await runtime.store.create(_record())
    stale = await runtime.store.transition(
        record.id, stage=Stage.SUBMITTING, expect_stage=Stage.QUEUED, expect_attempts=1
    )
    current = await runtime.store.transition(
        record.id, stage=Stage.SUBMITTING, expect_stage=Stage.QUEUED, expect_attempts=0
    )
    assert (stale.applied, current.applied) == (False, True)
