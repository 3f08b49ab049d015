"""Deliverable files made from a source clip: MP4, WebM, a thumbnail, a spritesheet.

Every function probes its source first (so a file that is not readable video
fails with :class:`~reelforge.errors.UnreadableMediaError` before FFmpeg starts),
runs the bundled FFmpeg, and writes through :func:`atomic_output`: the final name
only ever holds a complete file. The encoding knobs come from
:class:`~reelforge.settings.MediaSettings`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelforge.errors import FFmpegError, UnreadableMediaError
from reelforge.media.ffmpeg import atomic_output, run_ffmpeg
from reelforge.media.probe import MediaInfo, VideoStreamInfo, probe
from reelforge.settings import MediaSettings

__all__ = [
    "SpritesheetInfo",
    "make_spritesheet",
    "make_thumbnail",
    "transcode_to_mp4",
    "transcode_to_webm",
    "webm_args",
]

ThumbnailFormat = Literal["jpeg", "webp"]

# ffmpeg stream specifiers: the first video stream that is not cover art, and the
# first audio stream if there is one ("?" makes a missing one no error).
_VIDEO_STREAM = "0:V:0"
_AUDIO_STREAM = "0:a:0?"
_THUMBNAIL_SUFFIXES: dict[str, ThumbnailFormat] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
}
# Still-image quality: mjpeg's qscale (2 best .. 31 worst) and libwebp's 0..100.
_THUMBNAIL_JPEG_QSCALE = "3"
_THUMBNAIL_WEBP_QUALITY = "80"
_SPRITESHEET_JPEG_QSCALE = "4"


@dataclass(frozen=True)
class SpritesheetInfo:
    """Geometry of a spritesheet: tile ``i`` (row-major) shows ``i * interval_seconds``."""

    path: Path
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    count: int  # tiles that hold a frame; the rest of the last row is blank
    interval_seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


async def transcode_to_mp4(
    src: Path,
    dest: Path,
    media: MediaSettings,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write ``src`` as web-ready MP4 (H.264 yuv420p + AAC, ``moov`` first) at ``dest``.

    Streams that are already H.264 yuv420p or AAC are copied, not re-encoded:
    copying is exact and far cheaper. Size and frame rate are the source's (an odd
    width or height loses its last pixel row or column, which H.264 4:2:0 needs).
    ``on_progress`` receives the fraction done, 0.0 .. 1.0, never decreasing.
    """
    info = await probe(src)
    async with atomic_output(dest) as tmp:
        await run_ffmpeg(
            _mp4_args(src, tmp, media, info),
            what=f"mp4 transcode of {src.name}",
            on_time=_fraction_reporter(on_progress, info.duration),
        )
    if on_progress is not None:
        on_progress(1.0)
    return dest


async def transcode_to_webm(
    src: Path,
    dest: Path,
    media: MediaSettings,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Write ``src`` as WebM (VP9 yuv420p + Opus) at ``dest``; see :func:`webm_args`.

    ``on_progress`` receives the fraction done, 0.0 .. 1.0, never decreasing.
    """
    info = await probe(src)
    async with atomic_output(dest) as tmp:
        await run_ffmpeg(
            webm_args(src, tmp, media),
            what=f"webm transcode of {src.name}",
            on_time=_fraction_reporter(on_progress, info.duration),
        )
    if on_progress is not None:
        on_progress(1.0)
    return dest


def webm_args(src: Path, dest: Path, media: MediaSettings) -> list[str]:
    """The ffmpeg arguments (after the binary and global flags) of a WebM transcode.

    Public so that a benchmark can run exactly this command line through plain
    ffmpeg. Constant quality (``-b:v 0 -crf``) at libvpx's realtime speed, with
    row-based multithreading over every core we may use.
    """
    return [
        "-i", _arg(src),
        "-map", _VIDEO_STREAM, "-map", _AUDIO_STREAM, "-sn", "-dn",
        "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p",
        "-b:v", "0", "-crf", str(media.webm_crf),
        "-deadline", "realtime", "-cpu-used", str(media.webm_cpu_used),
        "-row-mt", "1", "-threads", str(_usable_cores()),
        "-c:a", "libopus", "-b:a", media.audio_bitrate,
        "-f", "webm", _arg(dest),
    ]  # fmt: skip


async def make_thumbnail(
    src: Path,
    dest: Path,
    media: MediaSettings,
    *,
    at_seconds: float | None = None,
) -> Path:
    """Write one still of ``src`` at ``dest``, ``media.thumbnail_width`` pixels wide.

    The format follows the suffix of ``dest`` (``.jpg``/``.jpeg``/``.webp``), else
    ``media.thumbnail_format``. The frame is the one at ``at_seconds`` (default: a
    third of the way in), clamped to the clip so that a short clip still yields one.
    """
    info = await probe(src)
    video = _video_of(info)
    image_format = _THUMBNAIL_SUFFIXES.get(dest.suffix.lower(), media.thumbnail_format)
    width = media.thumbnail_width
    height = _scaled_even_height(width, video)
    length = video.duration or info.duration
    last_frame_at = max(0.0, length - 1.0 / video.fps) if video.fps > 0 else 0.0
    wanted = length / 3 if at_seconds is None else at_seconds
    at = min(max(0.0, wanted), last_frame_at)
    what = f"thumbnail of {src.name}"
    async with atomic_output(dest) as tmp:
        try:
            await run_ffmpeg(_thumbnail_args(src, tmp, image_format, width, height, at), what=what)
        except FFmpegError:
            if at == 0:
                raise
        if not _has_content(tmp) and at > 0:
            # The video can end before the clip does (Matroska states no stream
            # durations, and audio may run longer): a seek past the last frame
            # yields no image, which ffmpeg reports as an encoder error. Fall back
            # to the first frame; a real failure shows up again here.
            await run_ffmpeg(_thumbnail_args(src, tmp, image_format, width, height, 0.0), what=what)
        if not _has_content(tmp):
            raise UnreadableMediaError(f"cannot read {src} as media: no frame could be decoded")
    return dest


async def make_spritesheet(
    src: Path,
    dest: Path,
    media: MediaSettings,
    *,
    duration: float | None = None,
) -> SpritesheetInfo:
    """Write a JPEG grid of evenly spaced frames of ``src`` at ``dest``.

    The grid is ``media.spritesheet_columns`` x ``media.spritesheet_rows`` tiles of
    ``media.spritesheet_tile_width`` pixels (height from the source's aspect, both
    even); a clip with fewer frames than tiles gets fewer rows (and columns). Frames
    are taken every ``duration / count`` seconds from the start; ``duration``
    defaults to the video stream's.
    """
    info = await probe(src)
    video = _video_of(info)
    span = duration if duration is not None and duration > 0 else video.duration or info.duration
    if span > 0:
        available = video.frames or (round(span * video.fps) if video.fps > 0 else 0)
    else:  # a still image or a stream that states no length: one tile
        span, available = 1.0, 1
    slots = media.spritesheet_columns * media.spritesheet_rows
    count = max(1, min(slots, available or slots))
    columns = min(media.spritesheet_columns, count)
    rows = math.ceil(count / columns)
    tile_width = _even(media.spritesheet_tile_width)
    tile_height = _scaled_even_height(tile_width, video)
    frame_filter = (
        # fps picks evenly spaced frames; trim drops the extra frame that fps may
        # emit at the end of the stream, which would fill a slot meant to be blank.
        f"fps={count}/{span:.6f},trim=end_frame={count},"
        f"scale={tile_width}:{tile_height},tile={columns}x{rows}"
    )
    async with atomic_output(dest) as tmp:
        args = _spritesheet_args(src, tmp, frame_filter)
        await run_ffmpeg(args, what=f"spritesheet of {src.name}")
        if not _has_content(tmp):
            raise UnreadableMediaError(f"cannot read {src} as media: no frame could be decoded")
    return SpritesheetInfo(
        path=dest,
        columns=columns,
        rows=rows,
        tile_width=tile_width,
        tile_height=tile_height,
        count=count,
        interval_seconds=span / count,
    )


def _mp4_args(src: Path, dest: Path, media: MediaSettings, info: MediaInfo) -> list[str]:
    video = _video_of(info)
    args = ["-i", _arg(src), "-map", _VIDEO_STREAM, "-map", _AUDIO_STREAM, "-sn", "-dn"]
    if video.codec == "h264" and video.pix_fmt == "yuv420p":
        args += ["-c:v", "copy"]
    else:
        args += [
            "-c:v", "libx264", "-preset", media.mp4_preset, "-crf", str(media.mp4_crf),
            "-pix_fmt", "yuv420p",
        ]  # fmt: skip
        if video.width % 2 or video.height % 2:
            args += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"]
    if info.audio is None or info.audio.codec == "aac":
        args += ["-c:a", "copy"]
    else:
        args += ["-c:a", "aac", "-b:a", media.audio_bitrate]
    return [*args, "-movflags", "+faststart", "-f", "mp4", _arg(dest)]


def _thumbnail_args(
    src: Path, dest: Path, image_format: ThumbnailFormat, width: int, height: int, at: float
) -> list[str]:
    if image_format == "webp":
        encode = ["-c:v", "libwebp", "-quality", _THUMBNAIL_WEBP_QUALITY, "-f", "webp"]
    else:
        encode = ["-c:v", "mjpeg", "-q:v", _THUMBNAIL_JPEG_QSCALE, "-f", "image2", "-update", "1"]
    return [
        # -ss before -i seeks the input, then decodes up to the exact frame.
        "-ss", f"{at:.6f}", "-i", _arg(src), "-map", _VIDEO_STREAM, "-an", "-sn", "-dn",
        "-vf", f"scale={width}:{height}", "-frames:v", "1", *encode, _arg(dest),
    ]  # fmt: skip


def _spritesheet_args(src: Path, dest: Path, frame_filter: str) -> list[str]:
    return [
        "-i", _arg(src), "-map", _VIDEO_STREAM, "-an", "-sn", "-dn",
        "-vf", frame_filter, "-frames:v", "1",
        "-c:v", "mjpeg", "-q:v", _SPRITESHEET_JPEG_QSCALE, "-f", "image2", "-update", "1",
        _arg(dest),
    ]  # fmt: skip


def _fraction_reporter(
    on_progress: Callable[[float], None] | None, duration: float
) -> Callable[[float], None] | None:
    """Turn ffmpeg's "seconds written" into a never-decreasing fraction of ``duration``."""
    if on_progress is None:
        return None
    highest = 0.0

    def report(seconds: float) -> None:
        nonlocal highest
        fraction = min(1.0, seconds / duration) if duration > 0 else 0.0
        highest = max(highest, fraction)
        on_progress(highest)

    return report


def _video_of(info: MediaInfo) -> VideoStreamInfo:
    if info.video is None:  # probe() refuses such files; this narrows the type
        raise UnreadableMediaError(f"cannot read {info.path} as media: it has no video stream")
    return info.video


def _scaled_even_height(width: int, video: VideoStreamInfo) -> int:
    """The even height that keeps ``video``'s aspect at ``width`` (4:2:0 needs even)."""
    return max(2, 2 * math.floor(width * video.height / (2 * video.width) + 0.5))


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _usable_cores() -> int:
    # The cores this process may run on (a container's CPU set), not the machine's.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _arg(path: Path) -> str:
    # Absolute, so that ffmpeg never reads a name as an option ("-x.mp4") or as a
    # protocol URL ("concat:a.mp4").
    return str(Path(path).absolute())
