"""Retention and disk hygiene: ended videos expire, scratch does not pile up.

- A video that ends (completed, failed, cancelled) is noted in its owner's ``ended``
  index by the same atomic step that ends it (``store.transition``). Its owner's
  ``retention_seconds`` (a tenant limit), else the service's ``retention_seconds``
  (0: keep forever), after it ended, the video is deleted as a user's DELETE would:
  record, events, files in storage, its share of an upload.
  One worker runs each round (a Redis lock), every ``retention_sweep_seconds``.
- A worker's scratch directory (``work_dir``) holds per-video folders; the folder
  of a video that ended or is gone is removed at worker start and every round, and
  so are temporary files older than a job could run (left by a killed process).
- Raw results in storage (``raw/<id>/``) of a video that ended or is gone are
  removed every round too: the worker removes them as the video ends, but it may
  die right then, or the store may be down. So are the files of a video deleted
  while the store was down (``keys.unremoved_files``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import Final, cast

import structlog

from reelforge.errors import NotFoundError, ReelforgeError
from reelforge.runtime import Runtime
from reelforge.storage.layout import remove_video_files
from reelforge.store import is_valid_video_id
from reelforge.videos import delete_video

__all__ = [
    "retention_of",
    "shared_round",
    "sweep_expired",
    "sweep_raw",
    "sweep_scratch",
    "sweep_unremoved",
]

log = structlog.get_logger("reelforge.retention")

# A round deletes at most this many videos per owner (the next round goes on).
_BATCH: Final = 200


async def retention_of(rt: Runtime, owner: str) -> int:
    """Seconds an ended video of ``owner`` is kept (0: forever)."""
    limit = (await rt.tenants.limits(owner)).retention_seconds
    return rt.settings.retention_seconds if limit is None else limit


async def sweep_expired(rt: Runtime, *, now: float | None = None) -> int:
    """Delete every ended video past its owner's retention; returns how many."""
    now = time.time() if now is None else now
    deleted = 0
    owners = cast(set[str], await rt.redis.smembers(rt.keys.ended_owners))
    for owner in sorted(owners):
        keep = await retention_of(rt, owner)
        if keep <= 0:
            continue
        expired = cast(
            list[str],
            await rt.redis.zrangebyscore(
                rt.keys.ended(owner), "-inf", now - keep, start=0, num=_BATCH
            ),
        )
        for video_id in expired:
            try:
                await delete_video(rt, video_id, owner=owner)
                deleted += 1
            except NotFoundError:
                pass  # deleted meanwhile, or malformed: the index entry goes below
            except ReelforgeError as exc:  # storage down: the next round tries again
                log.warning("retention delete failed", video_id=video_id, error=exc.message)
                continue
            await rt.redis.zrem(rt.keys.ended(owner), video_id)
        if not await rt.redis.exists(rt.keys.ended(owner)):
            await rt.redis.srem(rt.keys.ended_owners, owner)
    if deleted:
        log.info("retention sweep", deleted=deleted)
    return deleted


async def shared_round(rt: Runtime) -> bool:
    """This round's retention and raw-result sweep, by the one worker that takes the
    round's lock; False when another worker has it."""
    interval = max(1, int(rt.settings.retention_sweep_seconds))
    if not await rt.redis.set(rt.keys.retention_lock, rt.instance_id, nx=True, ex=interval):
        return False
    await sweep_expired(rt)
    await sweep_raw(rt)
    await sweep_unremoved(rt)
    return True


async def sweep_unremoved(rt: Runtime) -> int:
    """Remove the stored files of deleted videos that the store was down for at the
    time; returns how many videos' files went now."""
    removed = 0
    for video_id in sorted(cast(set[str], await rt.redis.smembers(rt.keys.unremoved_files))):
        if await rt.store.exists(video_id):  # not deleted after all (an old entry)
            await rt.redis.srem(rt.keys.unremoved_files, video_id)
            continue
        if await remove_video_files(rt.storage, rt.settings, video_id):
            await rt.redis.srem(rt.keys.unremoved_files, video_id)
            removed += 1
    return removed


async def sweep_scratch(rt: Runtime) -> int:
    """Remove the scratch folders of videos that ended or are gone, and stale
    temporary files; returns how many folders went."""
    root = rt.settings.work_dir
    if not root.is_dir():
        return 0
    removed = 0
    for entry in await asyncio.to_thread(lambda: list(root.iterdir())):
        if not entry.is_dir() or not is_valid_video_id(entry.name):
            continue
        if await _still_needed(rt, entry.name):
            continue
        await asyncio.to_thread(shutil.rmtree, entry, True)
        removed += 1
    stale = time.time() - rt.settings.job_deadline_seconds
    await asyncio.to_thread(_remove_old_parts, root, stale)
    if removed:
        log.info("scratch sweep", removed=removed)
    return removed


async def sweep_raw(rt: Runtime) -> int:
    """Remove the raw results in storage of videos that ended or are gone; returns
    how many videos' results went."""
    ids = {key.split("/")[1] for key in await rt.storage.list_keys("raw") if key.count("/") >= 2}
    removed = 0
    for video_id in sorted(ids):
        if is_valid_video_id(video_id) and await _still_needed(rt, video_id):
            continue
        await rt.storage.delete_prefix(f"raw/{video_id}")
        removed += 1
    if removed:
        log.info("raw results swept", removed=removed)
    return removed


async def _still_needed(rt: Runtime, video_id: str) -> bool:
    try:
        record = await rt.store.get(video_id)
    except NotFoundError:
        return False
    return not record.status.is_terminal


def _remove_old_parts(root: Path, before: float) -> None:
    """Half-written files (``*.part``) and in-process renders older than any job."""
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            old = path.is_file() and path.stat().st_mtime < before
            if old and (path.name.endswith(".part") or path.parent.name == "local"):
                path.unlink()
