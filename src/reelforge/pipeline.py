"""The steps that turn a request into delivered files, free of any queue or HTTP.

``generate_raw`` drives one provider through submit, poll and download;
``produce_outputs`` turns the raw result into the formats a user asked for plus a
thumbnail and a spritesheet. The CLI runs them in-process; the workers run the same
functions, one stage at a time, with the state machine around them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reelforge.errors import GenerationFailedError, JobCancelledError, ProviderError
from reelforge.media.probe import MediaInfo, probe
from reelforge.media.transcode import (
    make_spritesheet,
    make_thumbnail,
    transcode_to_mp4,
    transcode_to_webm,
)
from reelforge.models import GenerationRequest
from reelforge.providers.base import Provider, RemoteState
from reelforge.settings import MediaSettings

__all__ = ["OutputFile", "generate_raw", "produce_outputs", "wait_for_remote"]

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One delivered file and what probing it found."""

    format: str  # mp4 | webm | thumbnail | spritesheet
    path: Path
    bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    grid: dict[str, Any] | None = None  # spritesheet geometry

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


async def wait_for_remote(
    provider: Provider,
    remote_id: str,
    *,
    poll_interval: float,
    on_progress: ProgressCallback | None = None,
    deadline: float | None = None,
) -> None:
    """Poll until the remote job succeeds; raise our error when it fails or is cancelled."""
    while True:
        status = await provider.poll(remote_id)
        if on_progress is not None:
            on_progress(status.progress)
        if status.state is RemoteState.SUCCEEDED:
            return
        if status.state is RemoteState.FAILED:
            raise GenerationFailedError(
                status.error_message or "the provider reported a failed generation",
                remote_code=status.error_code,
            )
        if status.state is RemoteState.CANCELLED:
            raise JobCancelledError("the provider cancelled the job")
        if deadline is not None and time.monotonic() > deadline:
            raise ProviderError(
                f"{provider.name} did not finish {remote_id} in time", code="timeout"
            )
        await asyncio.sleep(poll_interval)


async def generate_raw(
    provider: Provider,
    req: GenerationRequest,
    dest: Path,
    *,
    idempotency_key: str,
    poll_interval: float,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Submit, wait, download: the provider's result lands at ``dest``."""
    remote_id = await provider.submit(req, idempotency_key=idempotency_key)
    await wait_for_remote(provider, remote_id, poll_interval=poll_interval, on_progress=on_progress)
    return await provider.download(remote_id, dest)


def _describe(fmt: str, path: Path, info: MediaInfo) -> OutputFile:
    return OutputFile(
        format=fmt,
        path=path,
        bytes=info.size_bytes,
        width=info.video.width if info.video else None,
        height=info.video.height if info.video else None,
        duration=info.duration,
        video_codec=info.video.codec if info.video else None,
        audio_codec=info.audio.codec if info.audio else None,
    )


async def produce_outputs(
    raw: Path,
    out_dir: Path,
    *,
    stem: str,
    formats: tuple[str, ...],
    media: MediaSettings,
    on_progress: ProgressCallback | None = None,
) -> list[OutputFile]:
    """Make every requested format plus thumbnail and spritesheet from ``raw``.

    Each output is probed after it is written: a file that does not probe is an
    error here, never a delivered file.
    """
    await probe(raw)  # an unreadable result fails here, before any work
    steps = [*formats, "thumbnail", "spritesheet"]
    outputs: list[OutputFile] = []
    for done, fmt in enumerate(steps):
        if fmt == "mp4":
            path = await transcode_to_mp4(raw, out_dir / f"{stem}.mp4", media)
            outputs.append(_describe(fmt, path, await probe(path)))
        elif fmt == "webm":
            path = await transcode_to_webm(raw, out_dir / f"{stem}.webm", media)
            outputs.append(_describe(fmt, path, await probe(path)))
        elif fmt == "thumbnail":
            suffix = "webp" if media.thumbnail_format == "webp" else "jpg"
            path = await make_thumbnail(raw, out_dir / f"{stem}.thumb.{suffix}", media)
            outputs.append(OutputFile(format=fmt, path=path, bytes=path.stat().st_size))
        else:
            sheet = await make_spritesheet(raw, out_dir / f"{stem}.sprites.jpg", media)
            outputs.append(
                OutputFile(
                    format=fmt,
                    path=sheet.path,
                    bytes=sheet.path.stat().st_size,
                    width=sheet.columns * sheet.tile_width,
                    height=sheet.rows * sheet.tile_height,
                    # The geometry only: a server path is nobody's business.
                    grid={k: v for k, v in sheet.to_dict().items() if k != "path"},
                )
            )
        if on_progress is not None:
            on_progress(round(100 * (done + 1) / len(steps)))
    return outputs
