"""What a media file holds: container, duration, video and audio streams.

:func:`probe` reads a file with PyAV (in a worker thread, since it blocks) and
returns a :class:`MediaInfo`. PyAV's and the OS's exceptions are translated into
:class:`~reelforge.errors.UnreadableMediaError` here, at this one boundary, so
callers only ever see our error tree. :func:`top_level_atoms` lists the top-level
boxes of an MP4 file, to check that ``moov`` precedes ``mdat`` (faststart).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream

from reelforge.errors import UnreadableMediaError

__all__ = [
    "AudioStreamInfo",
    "MediaInfo",
    "VideoStreamInfo",
    "probe",
    "top_level_atoms",
]

# ISO-BMFF box header: 32-bit big-endian size, then a four-character type.
_BOX_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


@dataclass(frozen=True)
class VideoStreamInfo:
    codec: str
    width: int
    height: int
    fps: float
    pix_fmt: str | None
    frames: int | None  # None when the container does not say
    duration: float | None  # seconds; None when the stream does not say
    bit_rate: int | None


@dataclass(frozen=True)
class AudioStreamInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds; None when the stream does not say


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file; ``video`` is always set for a file that probes."""

    path: Path
    container: str  # the demuxer's name, narrowed by the file suffix: "mp4", "webm", "avi"
    duration: float  # seconds: the container's, else the longest stream's, else 0.0
    size_bytes: int
    bit_rate: int | None
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the path becomes a string, missing streams ``None``."""
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


async def probe(path: Path) -> MediaInfo:
    """Read the facts of ``path``; raise UnreadableMediaError if it is not usable video."""
    return await asyncio.to_thread(_probe_blocking, Path(path))


def top_level_atoms(path: Path) -> list[str]:
    """The types of the top-level ISO-BMFF boxes of ``path``, in file order.

    Only meaningful for MP4/MOV files. Reading stops at the end of the file or at a
    box header that cannot be right (truncated or too small); the box whose data
    runs past the end of a truncated file is still listed.
    """
    atoms: list[str] = []
    with _translate_errors(Path(path)), open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        offset = 0
        while offset + _BOX_HEADER.size <= file_size:
            file.seek(offset)
            size, kind = _BOX_HEADER.unpack(file.read(_BOX_HEADER.size))
            header_size = _BOX_HEADER.size
            if size == 1:  # the real size follows as a 64-bit number
                large = file.read(_LARGE_SIZE.size)
                if len(large) < _LARGE_SIZE.size:
                    break
                (size,) = _LARGE_SIZE.unpack(large)
                header_size += _LARGE_SIZE.size
            elif size == 0:  # the box runs to the end of the file
                size = file_size - offset
            if size < header_size:
                break
            atoms.append(kind.decode("latin-1"))
            offset += size
    return atoms


@contextlib.contextmanager
def _translate_errors(path: Path) -> Iterator[None]:
    """Map PyAV's and the OS's errors about ``path`` to UnreadableMediaError."""
    try:
        yield
    except av.error.FFmpegError as exc:
        # Checked before OSError: PyAV's FileNotFoundError etc. are both.
        reason = exc.strerror or str(exc)
        raise UnreadableMediaError(f"cannot read {path} as media: {reason}") from exc
    except FileNotFoundError as exc:
        raise UnreadableMediaError(f"no such file: {path}") from exc
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        # Garbage that half-parses as a container can carry undecodable metadata.
        raise UnreadableMediaError(f"cannot read {path} as media: {exc}") from exc


def _probe_blocking(path: Path) -> MediaInfo:
    with _translate_errors(path):
        file_stat = path.stat()
        # A FIFO or device would make the demuxer block or read forever.
        if not stat.S_ISREG(file_stat.st_mode):
            raise UnreadableMediaError(f"cannot read {path} as media: not a regular file")
        if file_stat.st_size == 0:
            raise UnreadableMediaError(f"cannot read {path} as media: the file is empty")
        # An absolute path keeps FFmpeg from reading "name:rest" as a protocol URL.
        with av.open(str(path.absolute()), mode="r") as container:
            return _describe(path, file_stat.st_size, container)


def _describe(path: Path, size_bytes: int, container: InputContainer) -> MediaInfo:
    video_stream = next(
        (
            s
            for s in container.streams.video
            # Cover art is stored as a one-frame video stream; it is not the video.
            if not s.disposition & Disposition.attached_pic
        ),
        None,
    )
    if video_stream is None:
        raise UnreadableMediaError(f"cannot read {path} as media: it has no video stream")
    video = _video_info(video_stream)
    if video.width <= 0 or video.height <= 0:
        raise UnreadableMediaError(
            f"cannot read {path} as media: the video stream has no usable frame size"
        )
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    audio = _audio_info(audio_stream) if audio_stream is not None else None

    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    else:
        known = [d for d in (video.duration, audio.duration if audio else None) if d is not None]
        duration = max(known, default=0.0)
    return MediaInfo(
        path=path,
        container=_container_name(container.format.name, path),
        duration=duration,
        size_bytes=size_bytes,
        bit_rate=container.bit_rate or None,
        video=video,
        audio=audio,
    )


def _video_info(stream: VideoStream) -> VideoStreamInfo:
    context = stream.codec_context
    # FFmpeg's best guess at the nominal rate: the average rate is skewed by any
    # gap (a dropped frame makes a 24 fps clip "23.93 fps").
    rate = stream.guessed_rate or stream.average_rate
    return VideoStreamInfo(
        # The codec's own name ("mp3"), not its decoder's ("mp3float").
        codec=context.codec.canonical_name,
        width=context.width,
        height=context.height,
        fps=float(rate) if rate else 0.0,
        pix_fmt=context.pix_fmt,
        frames=stream.frames or None,
        duration=_stream_seconds(stream.duration, stream.time_base),
        bit_rate=stream.bit_rate or None,
    )


def _audio_info(stream: AudioStream) -> AudioStreamInfo:
    context = stream.codec_context
    return AudioStreamInfo(
        codec=context.codec.canonical_name,
        sample_rate=context.sample_rate,
        channels=context.channels,
        duration=_stream_seconds(stream.duration, stream.time_base),
    )


def _stream_seconds(duration: int | None, time_base: Fraction | None) -> float | None:
    if duration is None or duration <= 0 or time_base is None:
        return None
    return float(duration * time_base)


def _container_name(demuxer: str, path: Path) -> str:
    # FFmpeg names demuxers by family ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm");
    # the file's own suffix says which member it is when it is one of them.
    names = demuxer.split(",")
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in names else names[0]
