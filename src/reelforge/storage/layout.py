"""Where a video's files live, in storage and in a worker's scratch directory.

Storage keys (shared by every process):

- ``raw/<id>/<attempt>.mp4``: the provider's result, put there by the stage that
  downloaded it, read by the stage that checks and converts it (maybe on another
  machine), removed when the video ends (per attempt, so a stale result of an
  earlier attempt is never taken for the current one);
- ``videos/<id>/<file>``: what we deliver (video.mp4, video.webm, thumbnail,
  spritesheet);
- ``uploads/<name>``: input reference images (:mod:`reelforge.uploads`).

Scratch (this process only): ``<work_dir>/<id>/`` holds the local copy of the raw
result and the conversions being made; it can vanish at any time (another
machine, a restart, the sweep) and is rebuilt from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Final

from reelforge.errors import ReelforgeError
from reelforge.settings import Settings
from reelforge.storage.base import Storage, join_key

__all__ = [
    "MEDIA_TYPES",
    "output_key",
    "outputs_prefix",
    "raw_key",
    "remove_video_files",
    "scratch_of",
]


# The media type of each file we store and serve, by suffix.
MEDIA_TYPES: Final = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "png": "image/png",
}


def raw_key(video_id: str, attempt: int) -> str:
    return join_key("raw", video_id, f"{attempt}.mp4")


def raw_prefix(video_id: str) -> str:
    return join_key("raw", video_id)


def scratch_raw(settings: Settings, video_id: str, attempt: int) -> Path:
    return settings.work_dir / video_id / f"raw-{attempt}.mp4"


def scratch_outputs(settings: Settings, video_id: str) -> Path:
    return settings.work_dir / video_id / "out"


def outputs_prefix(video_id: str) -> str:
    return join_key("videos", video_id)


def output_key(video_id: str, filename: str) -> str:
    return join_key("videos", video_id, filename)


def scratch_of(settings: Settings, video_id: str) -> Path:
    return settings.work_dir / video_id


async def remove_video_files(storage: Storage, settings: Settings, video_id: str) -> bool:
    """A video's files: delivered files, the raw result, this process's scratch (its
    upload is reference-counted: :meth:`reelforge.uploads.Uploads.release`). Best
    effort per part; never raises. False when the store could not remove them (the
    caller notes the video for the next hygiene round)."""
    removed = True
    try:
        await storage.delete_prefix(outputs_prefix(video_id))
    except ReelforgeError:
        removed = False
    await remove_work_files(storage, settings, video_id)
    return removed


async def remove_work_files(storage: Storage, settings: Settings, video_id: str) -> None:
    """The raw results and this process's scratch of a video (what an ended video
    no longer needs); never raises."""
    with contextlib.suppress(ReelforgeError):
        await storage.delete_prefix(raw_prefix(video_id))
    await asyncio.to_thread(shutil.rmtree, scratch_of(settings, video_id), True)
