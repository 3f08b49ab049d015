"""Output assurance: catch a wrong, black, frozen, silent, cut-short or corrupt video.

:func:`validate_video` reads a file once: PyAV demuxes it and decodes every video
frame and every audio packet in a worker thread (the event loop stays free).
Each video frame is scaled down (area average, at most ``analysis_size`` pixels on
its long side) to full-range grey, and three numbers are kept per frame: its mean
luma, whether it is black, and whether it changed from the previous frame. Audio
is reduced to its mean square per 0.1 s window. Nothing else is kept, so memory
does not grow with the picture size. The numbers are then judged against
:class:`ValidationSettings` and, when given, an :class:`Expectation` (what was
asked for). The result is a :class:`ValidationReport`: ``ok``, the ``problems``
found and the measured ``facts``.

Problem codes (stable: clients and the README rely on them). Each code appears at
most once in a report. ``start``/``end`` are seconds from the start of the file,
``None`` (JSON ``null``) when the problem is not tied to a moment.

| code               | the file fails when                                | start .. end         |
|--------------------|----------------------------------------------------|----------------------|
| `unreadable_media` | it cannot be opened as media: missing, not a       | null                 |
|                    | regular file, empty, unknown format, or its index  |                      |
|                    | (`moov`) is missing (UnreadableMediaError's code)  |                      |
| `no_video_stream`  | it opens but holds no video (cover art is not      | null                 |
|                    | video)                                             |                      |
| `decode_error`     | packets fail to decode, frames come out corrupt,   | first .. last        |
|                    | or the data ends before the length its header      | failure; cut short:  |
|                    | states (cut short)                                 | end of data ..       |
|                    |                                                    | stated end           |
| `wrong_duration`   | the video is off the expected length by more than  | null                 |
|                    | max(0.25 s, 5 %, one frame)                        |                      |
| `wrong_size`       | the frames are not the expected width x height     | null                 |
| `wrong_fps`        | the frame rate is off by more than max(0.5, 2 %)   | null                 |
| `black_video`      | black frames make up >= 50 % of the clip, or one   | first .. last black  |
|                    | black run lasts >= 2 s                             | segment              |
| `frozen_video`     | still runs (>= 0.5 s each, black ones excluded)    | first .. last frozen |
|                    | make up >= 50 % of the clip, or one lasts >= 3 s   | segment              |
| `missing_audio`    | audio was expected and there is no audio stream    | null                 |
| `silent_audio`     | the audio is below -60 dBFS for >= 90 % of its     | the longest silent   |
|                    | length (checked unless audio is expected not to    | run                  |
|                    | be)                                                |                      |
| `flicker`          | mean luma swings by >= 10 % of its range more than | the worst one-second |
|                    | 6 times (> 3 flashes) within one second            | window               |

Why these thresholds (measured on the planted-defect corpus of
``tests/integration/test_validate.py``; luma in 0..255 full range, analysis picture
320 pixels on its long side):

* A frame is *black* when >= 98 % of its pixels are <= 10 % of the luma range
  (FFmpeg ``blackdetect``'s defaults). Dark scenes with visible content stay
  far below: a night render has at most 61-86 % such pixels, testsrc2 darkened
  by ``eq=brightness=-0.35`` 54 %; a 0.5 s fade from black has 2 black frames.
* A frame is *still* when no analysis pixel changed by more than 6 % of the range
  (~16 levels) *and* the mean absolute change is below 0.2 % (~0.5 levels).
  A frozen picture re-encoded by x264 or VP9 changes by at most 7 levels (max)
  and 0.06 levels (mean); a slow or dark render moves by >= 44 levels somewhere in
  every frame; a static scene with visible grain (``noise=alls=20``) changes by
  >= 1.4 levels on average (5 at 320x240). The mean test is what keeps a noisy
  still scene from counting as frozen, the max test what keeps a slow scene
  (a tiny mean change: 0.13 levels) from counting. FFmpeg ``freezedetect``'s
  default (mean change < 0.26 levels) would flag that slow scene. At a key frame
  only the mean test applies: an encoder refreshing a frozen picture changes
  fine detail everywhere a little (up to 53 levels max, under 1 level mean).
  Runs shorter than 0.5 s are holds or duplicated frames, not a freeze.
* Audio below -60 dBFS is silence (digital silence decodes to nothing at all;
  the quietest 0.1 s of a local render is -34 dBFS, a test tone -21 dBFS).
* Flicker follows WCAG 2.3.1: more than three flashes in any one second; a flash
  is a pair of opposite swings of the frame's mean luma by >= 10 % of its range.
  A hard cut is one swing; a fade in changes by ~4 % per frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter
from av.video.stream import VideoStream

from reelforge.models import GenerationRequest
from reelforge.settings import ValidationSettings

__all__ = [
    "Expectation",
    "MediaFacts",
    "Problem",
    "ProblemCode",
    "Segment",
    "ValidationReport",
    "ValidationSettings",
    "validate_video",
]

# Luma of the analysis picture: 8-bit full range, whatever the source's range.
_LUMA_RANGE = 255.0
# Audio is judged in windows this long: short enough to find a silent stretch,
# long enough that one window holds a few codec frames.
_AUDIO_WINDOW_SECONDS = 0.1
# A level for digital silence (log of zero): JSON has no -inf.
_FLOOR_DBFS = -120.0
# Reports list at most this many segments of one kind; the fractions count all.
_MAX_LISTED_SEGMENTS = 50
_MAX_SEGMENTS_IN_MESSAGE = 5


class ProblemCode(StrEnum):
    """The stable codes of :class:`Problem`; the table in the module docstring says when."""

    UNREADABLE_MEDIA = "unreadable_media"
    NO_VIDEO_STREAM = "no_video_stream"
    DECODE_ERROR = "decode_error"
    WRONG_DURATION = "wrong_duration"
    WRONG_SIZE = "wrong_size"
    WRONG_FPS = "wrong_fps"
    BLACK_VIDEO = "black_video"
    FROZEN_VIDEO = "frozen_video"
    MISSING_AUDIO = "missing_audio"
    SILENT_AUDIO = "silent_audio"
    FLICKER = "flicker"


@dataclass(frozen=True)
class Expectation:
    """What the video should be; ``None`` means "not checked".

    ``audio``: ``True`` requires an audio stream that is not silent, ``False``
    skips every audio check, ``None`` checks silence only if there is audio.
    """

    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio: bool | None = None

    @classmethod
    def from_request(cls, req: GenerationRequest, *, audio: bool | None = True) -> Expectation:
        """What ``req`` asked for; ``audio=False`` for a provider that makes no sound."""
        return cls(
            duration_seconds=req.duration_seconds,
            width=req.width,
            height=req.height,
            fps=float(req.fps),
            audio=audio,
        )


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip, in seconds from its start."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class Problem:
    """One reason a video fails; ``start``/``end`` locate it when it has a place in time."""

    code: ProblemCode
    message: str
    start: float | None = None
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "message": self.message,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class MediaFacts:
    """What was measured. Durations and times in seconds, luma in 0..1, levels in dBFS."""

    path: str
    size_bytes: int | None = None
    container: str | None = None
    container_duration: float | None = None  # what the header states
    duration: float | None = None  # decoded: first video frame to the end of the last
    video_codec: str | None = None
    pix_fmt: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # measured from frame timestamps
    nominal_fps: float | None = None  # what the stream header states
    frames_decoded: int = 0
    audio_present: bool = False
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None  # decoded
    audio_rms_dbfs: float | None = None
    audio_silent_fraction: float | None = None
    mean_luma: float | None = None
    black_fraction: float | None = None
    black_segments: list[Segment] = field(default_factory=list)
    frozen_fraction: float | None = None
    frozen_segments: list[Segment] = field(default_factory=list)
    max_flashes_per_second: float | None = None
    decode_errors: int = 0
    analysis_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["black_segments"] = [s.to_dict() for s in self.black_segments]
        data["frozen_segments"] = [s.to_dict() for s in self.frozen_segments]
        return data


@dataclass
class ValidationReport:
    """The verdict on one file: ``ok`` exactly when ``problems`` is empty."""

    ok: bool
    problems: list[Problem]
    facts: MediaFacts

    @property
    def codes(self) -> list[str]:
        return [p.code.value for p in self.problems]

    @property
    def readable(self) -> bool:
        """False when the file could not be opened as media at all."""
        return ProblemCode.UNREADABLE_MEDIA not in self.codes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"ok", "problems": [{code, message, start, end}], "facts"}``."""
        return {
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "facts": self.facts.to_dict(),
        }


async def validate_video(
    path: Path,
    expect: Expectation | None = None,
    settings: ValidationSettings | None = None,
) -> ValidationReport:
    """Decode ``path`` once and report every problem found; never raises for bad media.

    A file that cannot be opened gives a report with ``unreadable_media``. Without
    an expectation (``expect`` None, or its fields None) only the file's own
    soundness is checked: decoding, black, frozen, silence (if it has audio) and
    flicker. Cancelling the call stops the decoding thread at its next packet.
    """
    stop = threading.Event()
    try:
        return await asyncio.to_thread(
            _validate_blocking,
            Path(path),
            expect or Expectation(),
            settings or ValidationSettings(),
            stop,
        )
    except asyncio.CancelledError:
        stop.set()
        raise


class _Unreadable(Exception):
    """The file cannot be opened as media; carries the reason for people."""


class _Stopped(Exception):
    """The caller went away; the decoding thread ends early."""


def _validate_blocking(
    path: Path, expect: Expectation, settings: ValidationSettings, stop: threading.Event
) -> ValidationReport:
    started = time.perf_counter()
    facts = MediaFacts(path=str(path))
    problems: list[Problem] = []
    try:
        measured = _measure(path, facts, settings, stop)
    except _Unreadable as exc:
        problems.append(Problem(ProblemCode.UNREADABLE_MEDIA, str(exc)))
    else:
        if measured is None:
            problems.append(
                Problem(ProblemCode.NO_VIDEO_STREAM, f"{path.name} holds no video stream")
            )
        else:
            problems.extend(_judge(measured, facts, expect, settings))
    facts.analysis_seconds = _round(time.perf_counter() - started)
    return ValidationReport(ok=not problems, problems=problems, facts=facts)


# ---------------------------------------------------------------------------
# Measuring: one pass over the file
# ---------------------------------------------------------------------------


@dataclass
class _DecodeFailures:
    """Where decoding went wrong: counted, and the first and last moment."""

    count: int = 0
    first: float | None = None
    last: float | None = None
    reasons: list[str] = field(default_factory=list)
    # Truncation: where the data ends, and where the header says it should.
    ends_at: float | None = None
    stated_end: float | None = None

    def add(self, at: float, reason: str) -> None:
        self.count += 1
        self.first = at if self.first is None else min(self.first, at)
        self.last = at if self.last is None else max(self.last, at)
        if reason not in self.reasons:
            self.reasons.append(reason)


@dataclass
class _VideoMeasure:
    """Per-frame numbers of the video stream, in decode (presentation) order."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    mean_luma: list[float] = field(default_factory=list)  # 0..255
    black: list[bool] = field(default_factory=list)
    # Same picture as the frame before (see ValidationSettings.frozen_*).
    still: list[bool] = field(default_factory=list)


@dataclass
class _AudioMeasure:
    """Sum of squared samples and sample count per audio window."""

    sums: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    end: float = 0.0  # decoded end, seconds from the file's start


@dataclass
class _Measured:
    video: _VideoMeasure
    audio: _AudioMeasure | None
    failures: _DecodeFailures


def _measure(
    path: Path, facts: MediaFacts, settings: ValidationSettings, stop: threading.Event
) -> _Measured | None:
    """Decode everything once; ``None`` when the file has no video stream."""
    try:
        file_stat = path.stat()
    except FileNotFoundError:
        raise _Unreadable(f"no such file: {path}") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    # A FIFO or device would make the demuxer block or read forever.
    if not stat.S_ISREG(file_stat.st_mode):
        raise _Unreadable(f"cannot read {path} as media: not a regular file")
    if file_stat.st_size == 0:
        raise _Unreadable(f"cannot read {path} as media: the file is empty")
    facts.size_bytes = file_stat.st_size
    try:
        # An absolute path keeps FFmpeg from reading "name:rest" as a protocol URL.
        container = av.open(str(path.absolute()), mode="r")
    except av.error.FFmpegError as exc:
        raise _Unreadable(f"cannot read {path} as media: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:  # undecodable metadata in garbage
        raise _Unreadable(f"cannot read {path} as media: {exc}") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    with container:
        return _measure_container(container, path, facts, settings, stop)


def _measure_container(
    container: InputContainer,
    path: Path,
    facts: MediaFacts,
    settings: ValidationSettings,
    stop: threading.Event,
) -> _Measured | None:
    facts.container = _container_name(container.format.name, path)
    if container.duration is not None and container.duration > 0:
        facts.container_duration = _round(container.duration / av.time_base)
    video_stream = next(
        (s for s in container.streams.video if not s.disposition & Disposition.attached_pic),
        None,
    )
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    if audio_stream is not None:
        _describe_audio(audio_stream, facts)
    if video_stream is None:
        return None
    _describe_video(video_stream, facts)
    # Frame threads: several times faster on multi-core machines, and only the
    # frame-threaded H.264 decoder marks concealed (corrupt) frames reliably.
    video_stream.thread_type = "AUTO"
    origin = container.start_time / av.time_base if container.start_time is not None else 0.0

    video_meter = _VideoMeter(video_stream, settings, origin)
    audio_meter = _AudioMeter(origin) if audio_stream is not None else None
    failures = _DecodeFailures()
    streams = [s for s in (video_stream, audio_stream) if s is not None]
    for packet in _packets(container, streams, failures, video_meter):
        if stop.is_set():
            raise _Stopped
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            failures.add(_packet_time(packet, origin, video_meter), _reason(exc))
            continue
        for frame in frames:
            try:
                if isinstance(frame, VideoFrame):
                    video_meter.add(frame, failures)
                elif isinstance(frame, AudioFrame) and audio_meter is not None:
                    audio_meter.add(frame)
            except av.error.FFmpegError as exc:  # a frame FFmpeg cannot convert
                failures.add(_packet_time(packet, origin, video_meter), _reason(exc))

    video = video_meter.result()
    if video_meter.frame_size is not None:  # what was decoded, over what the header says
        facts.width, facts.height = video_meter.frame_size
    _check_truncation(
        container,
        (video_stream, video.ends[-1] if video.ends else 0.0),
        (audio_stream, audio_meter.measure.end if audio_meter is not None else None),
        origin,
        failures,
        tolerance=settings.truncation_tolerance_seconds,
    )
    return _Measured(
        video=video,
        audio=audio_meter.measure if audio_meter is not None else None,
        failures=failures,
    )


def _packets(
    container: InputContainer,
    streams: Sequence[VideoStream | AudioStream],
    failures: _DecodeFailures,
    video_meter: _VideoMeter,
) -> Iterator[Packet[Any]]:
    """Demux ``streams``; a container error ends the file here, recorded as a failure."""
    demuxer = container.demux(list(streams))
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            failures.add(video_meter.last_end, f"the container breaks off: {_reason(exc)}")
            return
        yield packet


class _VideoMeter:
    """Turns decoded frames into the numbers of :class:`_VideoMeasure`."""

    def __init__(self, stream: VideoStream, settings: ValidationSettings, origin: float):
        self._analysis_size = settings.analysis_size
        # Set from the first decoded frame: the header's size may be missing (0x0).
        self.frame_size: tuple[int, int] | None = None
        self._size = (0, 0)
        self._origin = origin
        rate = stream.guessed_rate or stream.average_rate
        self._nominal_step = 1.0 / float(rate) if rate else None
        self._black_level = settings.black_pixel_luma * _LUMA_RANGE
        self._black_ratio = settings.black_frame_pixel_ratio
        self._still_max = settings.frozen_pixel_change * _LUMA_RANGE
        self._still_mean = settings.frozen_mean_change * _LUMA_RANGE
        # One reformatter for the whole stream: it keeps its scaler between frames.
        self._reformatter = VideoReformatter()
        self._previous: npt.NDArray[np.int16] | None = None
        self._durations: list[float | None] = []
        self.measure = _VideoMeasure()

    @property
    def last_end(self) -> float:
        """Where the decoded video ends so far (a best guess while decoding)."""
        if not self.measure.starts:
            return 0.0
        return self.measure.starts[-1] + (self._durations[-1] or self._nominal_step or 0.0)

    def add(self, frame: VideoFrame, failures: _DecodeFailures) -> None:
        measure = self.measure
        at = frame.time - self._origin if frame.pts is not None else self.last_end
        if frame.is_corrupt:
            failures.add(max(0.0, at), "a frame decoded with errors (damaged data)")
        if self.frame_size is None:
            self.frame_size = (frame.width, frame.height)
            scale = min(1.0, self._analysis_size / max(frame.width, frame.height, 1))
            self._size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        grey = self._reformatter.reformat(
            frame,
            width=self._size[0],
            height=self._size[1],
            format="gray",
            interpolation=Interpolation.AREA,
        ).to_ndarray()
        luma = grey.astype(np.int16)
        measure.starts.append(at)
        measure.mean_luma.append(float(luma.mean()))
        black_pixels = np.count_nonzero(grey <= self._black_level)
        measure.black.append(bool(black_pixels >= self._black_ratio * grey.size))
        if self._previous is None or self._previous.shape != luma.shape:
            measure.still.append(False)
        else:
            change = np.abs(luma - self._previous)
            broad_change = float(change.mean()) > self._still_mean
            # An encoder refreshing a still picture at a key frame redraws fine
            # detail everywhere: only a broad change counts there.
            local_change = not frame.key_frame and float(change.max()) > self._still_max
            measure.still.append(not (broad_change or local_change))
        self._previous = luma
        time_base = frame.time_base
        duration = float(frame.duration * time_base) if frame.duration and time_base else None
        self._durations.append(duration)

    def result(self) -> _VideoMeasure:
        """The measure, with each frame's end: the next frame's start, or its duration."""
        measure = self.measure
        starts = measure.starts
        steps = [b - a for a, b in itertools.pairwise(starts) if b > a]
        typical = float(np.median(steps)) if steps else None
        ends: list[float] = []
        for index, start in enumerate(starts):
            if index + 1 < len(starts) and starts[index + 1] > start:
                ends.append(starts[index + 1])
            else:
                step = self._durations[index] or typical or self._nominal_step or 0.0
                ends.append(start + step)
        measure.ends = ends
        return measure


class _AudioMeter:
    """Sums squared samples per window of :data:`_AUDIO_WINDOW_SECONDS`."""

    def __init__(self, origin: float):
        self._origin = origin
        self.measure = _AudioMeasure()

    def add(self, frame: AudioFrame) -> None:
        measure = self.measure
        at = frame.time - self._origin if frame.time is not None else measure.end
        samples = _normalised_samples(frame)
        window = max(0, math.floor(at / _AUDIO_WINDOW_SECONDS))
        flat = samples.ravel()
        measure.sums[window] = measure.sums.get(window, 0.0) + float(np.dot(flat, flat))
        measure.counts[window] = measure.counts.get(window, 0) + flat.size
        if frame.sample_rate:
            measure.end = max(measure.end, at + frame.samples / frame.sample_rate)


def _normalised_samples(frame: AudioFrame) -> npt.NDArray[np.float64]:
    """The frame's samples as floats in -1..1, whatever the sample format."""
    samples = frame.to_ndarray()
    if samples.dtype.kind == "f":
        return samples.astype(np.float64, copy=False)
    if samples.dtype.kind == "u":  # unsigned 8-bit: silence is 128
        return (samples.astype(np.float64) - 128.0) / 128.0
    # Signed integers: full scale is 2 ** (bits - 1).
    full_scale = float(2 ** (8 * samples.dtype.itemsize - 1))
    return samples.astype(np.float64) / full_scale


def _check_truncation(
    container: InputContainer,
    video: tuple[VideoStream, float],
    audio: tuple[AudioStream | None, float | None],
    origin: float,
    failures: _DecodeFailures,
    *,
    tolerance: float,
) -> None:
    """Record where the data ends if that is before the end the header states.

    ``video`` and ``audio`` pair each stream with where its decoded data ends. A
    file cut short after its index (an MP4 with ``moov`` first) still opens and
    decodes cleanly up to the cut: only comparing with the stated length tells.
    Each stream is held to its own stated length; where no stream states one
    (Matroska), the longest stream is held to the container's.
    """
    stated: list[tuple[float, float]] = []  # (stated end, decoded end)
    for stream, decoded_end in (video, audio):
        if stream is None or decoded_end is None or not stream.duration:
            continue
        if stream.time_base is not None:
            begin = float((stream.start_time or 0) * stream.time_base) - origin
            stated.append((begin + float(stream.duration * stream.time_base), decoded_end))
    if not stated and container.duration:
        longest = max(video[1], audio[1] or 0.0)
        stated.append((container.duration / av.time_base, longest))
    for stated_end, decoded_end in stated:
        if stated_end - decoded_end > tolerance:
            ends_at = _round(decoded_end)
            if failures.ends_at is None or ends_at < failures.ends_at:
                failures.ends_at = ends_at
                failures.stated_end = _round(stated_end)


# ---------------------------------------------------------------------------
# Judging: numbers against thresholds and expectations
# ---------------------------------------------------------------------------


def _judge(
    measured: _Measured, facts: MediaFacts, expect: Expectation, settings: ValidationSettings
) -> list[Problem]:
    video = measured.video
    facts.frames_decoded = len(video.starts)
    if video.starts:
        facts.duration = _round(video.ends[-1] - video.starts[0])
        facts.fps = _measured_fps(video.starts) or facts.nominal_fps
        facts.mean_luma = _round(float(np.mean(video.mean_luma)) / _LUMA_RANGE)
    problems: list[Problem] = []
    decode = _decode_problem(measured.failures, facts)
    if decode is not None:
        problems.append(decode)
    problems.extend(_expectation_problems(facts, expect, settings))
    problems.extend(_audio_problems(measured.audio, facts, expect, settings))
    if video.starts:
        problems.extend(_picture_problems(video, facts, settings))
    return problems


def _measured_fps(starts: Sequence[float]) -> float | None:
    """Frames per second from the timestamps, blind to gaps (dropped frames).

    The mean of the regular steps, not their median: Matroska stores milliseconds,
    so a 24 fps clip steps by 41 and 42 ms, and only the mean gives 24.
    """
    steps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    if not steps:
        return None
    typical = float(np.median(steps))
    regular = [step for step in steps if step <= 1.5 * typical]
    return _round(1.0 / float(np.mean(regular)))


def _decode_problem(failures: _DecodeFailures, facts: MediaFacts) -> Problem | None:
    facts.decode_errors = failures.count
    parts: list[str] = []
    start = end = None
    if facts.frames_decoded == 0:
        parts.append("no video frame could be decoded")
        start = end = 0.0
    if failures.count:
        first, last = _round(failures.first or 0.0), _round(failures.last or 0.0)
        where = f"at {first:.2f} s" if first == last else f"between {first:.2f} and {last:.2f} s"
        parts.append(f"{failures.count} decoding error(s) {where}: {'; '.join(failures.reasons)}")
        start, end = first, last
    if failures.ends_at is not None and failures.stated_end is not None:
        parts.append(
            f"the data ends at {failures.ends_at:.2f} s although the header says "
            f"{failures.stated_end:.2f} s (the file was cut short)"
        )
        if start is None or end is None:
            start, end = failures.ends_at, failures.stated_end
        else:
            start, end = min(start, failures.ends_at), max(end, failures.stated_end)
    if not parts:
        return None
    return Problem(ProblemCode.DECODE_ERROR, "; ".join(parts), start, end)


def _expectation_problems(
    facts: MediaFacts, expect: Expectation, settings: ValidationSettings
) -> list[Problem]:
    problems: list[Problem] = []
    if expect.duration_seconds is not None and facts.duration is not None:
        wanted = expect.duration_seconds
        frame = 1.0 / expect.fps if expect.fps else (1.0 / facts.fps if facts.fps else 0.0)
        allowed = max(
            settings.duration_tolerance_seconds, settings.duration_tolerance_ratio * wanted, frame
        )
        if abs(facts.duration - wanted) > allowed:
            problems.append(
                Problem(
                    ProblemCode.WRONG_DURATION,
                    f"the video lasts {facts.duration:.2f} s; {wanted:g} s was expected "
                    f"(± {allowed:.2f} s)",
                )
            )
    wrong_width = expect.width is not None and expect.width != facts.width
    wrong_height = expect.height is not None and expect.height != facts.height
    if wrong_width or wrong_height:
        want = f"{expect.width or '*'}x{expect.height or '*'}"
        problems.append(
            Problem(
                ProblemCode.WRONG_SIZE,
                f"the frames are {facts.width}x{facts.height}; {want} was expected",
            )
        )
    if expect.fps is not None and facts.fps is not None:
        allowed = max(settings.fps_tolerance, settings.fps_tolerance_ratio * expect.fps)
        if abs(facts.fps - expect.fps) > allowed:
            problems.append(
                Problem(
                    ProblemCode.WRONG_FPS,
                    f"the video runs at {facts.fps:g} fps; {expect.fps:g} fps was expected "
                    f"(± {allowed:g})",
                )
            )
    return problems


def _audio_problems(
    audio: _AudioMeasure | None,
    facts: MediaFacts,
    expect: Expectation,
    settings: ValidationSettings,
) -> list[Problem]:
    if audio is None:
        if expect.audio:
            return [Problem(ProblemCode.MISSING_AUDIO, "the file has no audio stream")]
        return []
    facts.audio_duration = _round(audio.end)
    total = sum(audio.counts.values())
    if total == 0:
        return []  # nothing decoded: a decoding problem, reported as such
    facts.audio_rms_dbfs = _dbfs(sum(audio.sums.values()) / total)
    threshold = 10 ** (settings.silence_dbfs / 10)  # as a mean square
    windows = sorted(audio.counts)
    silent = [audio.sums[w] / audio.counts[w] < threshold for w in windows]
    silent_samples = sum(audio.counts[w] for w, quiet in zip(windows, silent, strict=True) if quiet)
    fraction = silent_samples / total
    facts.audio_silent_fraction = _round(fraction)
    if expect.audio is False or fraction < settings.silence_max_fraction:
        return []
    longest = max(
        (
            Segment(
                windows[first] * _AUDIO_WINDOW_SECONDS,
                min(audio.end, (windows[last] + 1) * _AUDIO_WINDOW_SECONDS),
            )
            for first, last in _runs(silent)
        ),
        key=lambda s: s.seconds,
    )
    return [
        Problem(
            ProblemCode.SILENT_AUDIO,
            f"the audio is below {settings.silence_dbfs:g} dBFS for {fraction:.0%} of its "
            f"length (overall {facts.audio_rms_dbfs:g} dBFS)",
            _round(longest.start),
            _round(longest.end),
        )
    ]


def _picture_problems(
    video: _VideoMeasure, facts: MediaFacts, settings: ValidationSettings
) -> list[Problem]:
    problems: list[Problem] = []
    length = max(video.ends[-1] - video.starts[0], 1e-9)

    black = [Segment(video.starts[a], video.ends[b]) for a, b in _runs(video.black)]
    facts.black_fraction, facts.black_segments, problem = _judge_segments(
        ProblemCode.BLACK_VIDEO,
        "black",
        black,
        length,
        settings.black_max_fraction,
        settings.black_max_run_seconds,
    )
    if problem is not None:
        problems.append(problem)

    facts.frozen_fraction, facts.frozen_segments, problem = _judge_segments(
        ProblemCode.FROZEN_VIDEO,
        "frozen",
        _frozen_segments(video, settings),
        length,
        settings.frozen_max_fraction,
        settings.frozen_max_run_seconds,
    )
    if problem is not None:
        problems.append(problem)

    flicker = _flicker(video, facts, settings)
    if flicker is not None:
        problems.append(flicker)
    return problems


def _frozen_segments(video: _VideoMeasure, settings: ValidationSettings) -> list[Segment]:
    """Runs of still frames long enough to be a freeze; black stills are black, not frozen.

    A still frame repeats the frame before it, so a run of still frames ``i..j``
    shows one picture from the start of frame ``i - 1`` to the end of frame ``j``.
    """
    still = [
        s and not b and not video.black[i - 1] if i > 0 else False
        for i, (s, b) in enumerate(zip(video.still, video.black, strict=True))
    ]
    # A still frame is never the first one, so ``first - 1`` is a frame.
    segments = [Segment(video.starts[first - 1], video.ends[last]) for first, last in _runs(still)]
    return [s for s in segments if s.seconds >= settings.frozen_min_run_seconds]


def _flicker(
    video: _VideoMeasure, facts: MediaFacts, settings: ValidationSettings
) -> Problem | None:
    """Count opposite swings of mean luma per second (WCAG 2.3.1: at most 3 flashes)."""
    swing = settings.flicker_luma_change * _LUMA_RANGE
    transitions: list[float] = []
    direction = 0
    for index in range(1, len(video.mean_luma)):
        delta = video.mean_luma[index] - video.mean_luma[index - 1]
        if abs(delta) < swing:
            continue
        sign = 1 if delta > 0 else -1
        # Swings the same way are one ramp (a fast fade), not a flash.
        if sign != direction:
            transitions.append(video.starts[index])
            direction = sign
    most, window_start, window_end = 0, 0.0, 0.0
    first = 0
    for last, at in enumerate(transitions):
        while at - transitions[first] >= 1.0:
            first += 1
        if last - first + 1 > most:
            most, window_start, window_end = last - first + 1, transitions[first], at
    flashes = most / 2
    facts.max_flashes_per_second = flashes
    if flashes <= settings.flicker_max_flashes_per_second:
        return None
    return Problem(
        ProblemCode.FLICKER,
        f"the picture flashes {flashes:g} times within one second (at most "
        f"{settings.flicker_max_flashes_per_second:g} is safe)",
        _round(window_start),
        _round(window_end),
    )


def _judge_segments(
    code: ProblemCode,
    what: str,
    segments: list[Segment],
    length: float,
    max_fraction: float,
    max_run_seconds: float,
) -> tuple[float, list[Segment], Problem | None]:
    """Share of the clip, listed segments, and the problem if too much or too long."""
    total = sum(s.seconds for s in segments)
    longest = max((s.seconds for s in segments), default=0.0)
    listed = [_rounded(s) for s in segments[:_MAX_LISTED_SEGMENTS]]
    failed = total / length >= max_fraction or longest >= max_run_seconds
    problem = _segments_problem(code, what, segments, total, length, longest) if failed else None
    return _round(total / length), listed, problem


def _segments_problem(
    code: ProblemCode,
    what: str,
    segments: list[Segment],
    total: float,
    length: float,
    longest: float,
) -> Problem:
    listed = ", ".join(f"{s.start:.2f}-{s.end:.2f} s" for s in segments[:_MAX_SEGMENTS_IN_MESSAGE])
    more = len(segments) - _MAX_SEGMENTS_IN_MESSAGE
    if more > 0:
        listed += f" and {more} more"
    return Problem(
        code,
        f"the picture is {what} for {total:.2f} s of {length:.2f} s ({total / length:.0%}), "
        f"longest {longest:.2f} s: {listed}",
        _round(segments[0].start),
        _round(segments[-1].end),
    )


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs of true ``flags`` as (first index, last index)."""
    runs: list[tuple[int, int]] = []
    run_start: int | None = None
    for index, flag in enumerate(flags):
        if flag and run_start is None:
            run_start = index
        elif not flag and run_start is not None:
            runs.append((run_start, index - 1))
            run_start = None
    if run_start is not None:
        runs.append((run_start, len(flags) - 1))
    return runs


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _describe_video(stream: VideoStream, facts: MediaFacts) -> None:
    context = stream.codec_context
    facts.video_codec = context.codec.canonical_name
    facts.pix_fmt = context.pix_fmt
    facts.width, facts.height = context.width, context.height
    # FFmpeg's best guess at the nominal rate; the average is skewed by gaps.
    rate = stream.guessed_rate or stream.average_rate
    facts.nominal_fps = _round(float(rate)) if rate else None


def _describe_audio(stream: AudioStream, facts: MediaFacts) -> None:
    context = stream.codec_context
    facts.audio_present = True
    facts.audio_codec = context.codec.canonical_name
    facts.audio_sample_rate = context.sample_rate
    facts.audio_channels = context.channels


def _container_name(demuxer: str, path: Path) -> str:
    # The same rule as probe: FFmpeg names demuxers by family
    # ("mov,mp4,m4a,3gp,3g2,mj2"); the file's suffix says which member it is.
    names = demuxer.split(",")
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in names else names[0]


def _packet_time(packet: Packet[Any], origin: float, video_meter: _VideoMeter) -> float:
    if packet.pts is not None and packet.time_base is not None:
        return max(0.0, float(packet.pts * packet.time_base) - origin)
    return video_meter.last_end


def _reason(exc: av.error.FFmpegError) -> str:
    return str(exc.strerror or exc)


def _dbfs(mean_square: float) -> float:
    if mean_square <= 0:
        return _FLOOR_DBFS
    return _round(max(_FLOOR_DBFS, 10 * math.log10(mean_square)), 1)


def _round(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


def _rounded(segment: Segment) -> Segment:
    return Segment(_round(segment.start), _round(segment.end))
