"""The media pipeline against the real bundled FFmpeg and PyAV.

Source clips are made once per session from FFmpeg's synthetic sources (a test
pattern and a sine tone), in the shapes we meet in practice: H.264/AAC MP4 as a
provider returns it (``moov`` last), legacy MPEG-4 Part 2/MP3 in AVI, VP9/Opus
WebM, H.264 with MP3 audio in Matroska, silent clips and very short ones.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from reelforge.errors import FFmpegError, UnreadableMediaError
from reelforge.media.ffmpeg import atomic_output, ffmpeg_command
from reelforge.media.probe import MediaInfo, probe, top_level_atoms
from reelforge.media.transcode import (
    make_spritesheet,
    make_thumbnail,
    transcode_to_mp4,
    transcode_to_webm,
)
from reelforge.settings import MediaSettings

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 24, 2.0
ONE_FRAME = 1.0 / FPS
SHORT_CLIP_FRAMES = 7


@dataclass(frozen=True)
class Clips:
    h264_aac_mp4: Path  # what a provider returns: moov after mdat
    h264_mp3_mkv: Path  # video can be copied into MP4, audio cannot
    h264_silent_mp4: Path
    mpeg4_mp3_avi: Path  # nothing can be copied into MP4
    vp9_opus_webm: Path
    short_h264_mp4: Path  # fewer frames than a spritesheet has tiles
    aac_only_m4a: Path
    video_ends_early_webm: Path  # the audio runs on after the last frame
    long_mpeg4_avi: Path  # long enough to interrupt mid-transcode


def _make_clip(dest: Path, inputs: Sequence[str], codecs: Sequence[str]) -> Path:
    subprocess.run(ffmpeg_command([*inputs, *codecs, str(dest)]), check=True, capture_output=True)
    return dest


def _test_pattern(seconds: float, size: str = f"{WIDTH}x{HEIGHT}") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"]


def _tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    root = tmp_path_factory.mktemp("sources")
    both = [*_test_pattern(SECONDS), *_tone(SECONDS)]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    return Clips(
        h264_aac_mp4=_make_clip(root / "provider.mp4", both, [*h264, "-c:a", "aac"]),
        h264_mp3_mkv=_make_clip(root / "h264_mp3.mkv", both, [*h264, "-c:a", "libmp3lame"]),
        h264_silent_mp4=_make_clip(root / "silent.mp4", _test_pattern(SECONDS), h264),
        mpeg4_mp3_avi=_make_clip(
            root / "legacy.avi", both, ["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"]
        ),
        vp9_opus_webm=_make_clip(
            root / "vp9.webm",
            both,
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        ),
        short_h264_mp4=_make_clip(
            root / "short.mp4", _test_pattern(1.0), [*h264, "-frames:v", str(SHORT_CLIP_FRAMES)]
        ),
        aac_only_m4a=_make_clip(root / "tone.m4a", _tone(SECONDS), ["-c:a", "aac"]),
        video_ends_early_webm=_make_clip(
            root / "lopsided.webm",
            [*_test_pattern(0.25), *_tone(SECONDS)],
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        ),
        long_mpeg4_avi=_make_clip(
            root / "long.avi",
            [*_test_pattern(20, size="640x360"), *_tone(20)],
            ["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"],
        ),
    )


@pytest.fixture
def media() -> MediaSettings:
    return MediaSettings()


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def _decoded_image_size(path: Path) -> tuple[str, int, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return (
            container.streams.video[0].codec_context.codec.canonical_name,
            frame.width,
            frame.height,
        )


def _assert_web_ready_mp4(out: MediaInfo) -> None:
    assert out.container == "mp4"
    assert out.video is not None
    assert out.video.codec == "h264"
    assert out.video.pix_fmt == "yuv420p"
    atoms = top_level_atoms(out.path)
    assert atoms.index("moov") < atoms.index("mdat"), atoms


def _assert_same_picture_and_length(out: MediaInfo, source: MediaInfo) -> None:
    assert out.video is not None and source.video is not None
    assert (out.video.width, out.video.height) == (source.video.width, source.video.height)
    assert out.video.fps == pytest.approx(source.video.fps)
    assert out.duration == pytest.approx(source.duration, abs=ONE_FRAME)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# probe


async def test_probe_reports_the_facts_of_a_known_clip(clips: Clips) -> None:
    info = await probe(clips.h264_aac_mp4)

    assert info.container == "mp4"
    assert info.duration == pytest.approx(SECONDS, abs=ONE_FRAME)
    assert info.size_bytes == clips.h264_aac_mp4.stat().st_size
    assert info.bit_rate is not None and info.bit_rate > 0
    assert info.video is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", WIDTH, HEIGHT)
    assert info.video.fps == FPS
    assert info.video.pix_fmt == "yuv420p"
    assert info.video.frames == int(SECONDS * FPS)
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 44100, 1)
    assert json.loads(json.dumps(info.to_dict()))["video"]["width"] == WIDTH


async def test_probe_names_codecs_not_decoders(clips: Clips) -> None:
    info = await probe(clips.mpeg4_mp3_avi)

    assert info.container == "avi"
    assert info.video is not None and info.video.codec == "mpeg4"
    assert info.audio is not None and info.audio.codec == "mp3"


@pytest.mark.parametrize("kind", ["text", "missing", "empty", "directory", "audio_only"])
async def test_probe_of_a_file_that_is_not_video_raises_unreadable_media(
    kind: str, clips: Clips, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"
    if kind == "text":
        path.write_text("not a video, just words\n" * 20)
    elif kind == "empty":
        path.touch()
    elif kind == "directory":
        path.mkdir()
    elif kind == "audio_only":
        path = clips.aac_only_m4a

    with pytest.raises(UnreadableMediaError) as caught:
        await probe(path)

    assert caught.value.code == "unreadable_media"
    assert str(path) in caught.value.message
    assert "\n" not in caught.value.message


def test_top_level_atoms_lists_boxes_in_file_order(tmp_path: Path) -> None:
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"12345"  # 64-bit size
    to_end = struct.pack(">I4s", 0, b"udta") + b"rest of file"  # size 0: runs to the end
    path = tmp_path / "boxes.mp4"
    path.write_bytes(box(b"ftyp", b"isom0000") + box(b"moov", b"\0" * 30) + large + to_end)

    assert top_level_atoms(path) == ["ftyp", "moov", "mdat", "udta"]


def test_top_level_atoms_shows_a_provider_file_is_not_faststart(clips: Clips) -> None:
    atoms = top_level_atoms(clips.h264_aac_mp4)

    assert atoms.index("mdat") < atoms.index("moov")


# MP4


async def test_mp4_from_h264_aac_source_is_an_exact_stream_copy_with_moov_first(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    source = await probe(clips.h264_aac_mp4)

    dest = await transcode_to_mp4(clips.h264_aac_mp4, tmp_path / "out.mp4", media)

    out = await probe(dest)
    _assert_web_ready_mp4(out)
    _assert_same_picture_and_length(out, source)
    assert out.audio is not None and out.audio.codec == "aac"
    assert _video_packets(dest) == _video_packets(clips.h264_aac_mp4)


@pytest.mark.parametrize("source_name", ["mpeg4_mp3_avi", "vp9_opus_webm"])
async def test_mp4_from_other_codecs_is_reencoded_to_h264_aac(
    source_name: str, clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    src = getattr(clips, source_name)
    source = await probe(src)

    dest = await transcode_to_mp4(src, tmp_path / "out.mp4", media)

    out = await probe(dest)
    _assert_web_ready_mp4(out)
    _assert_same_picture_and_length(out, source)
    assert out.audio is not None and out.audio.codec == "aac"


async def test_mp4_copies_h264_video_and_encodes_mp3_audio_to_aac(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    source = await probe(clips.h264_mp3_mkv)

    dest = await transcode_to_mp4(clips.h264_mp3_mkv, tmp_path / "out.mp4", media)

    out = await probe(dest)
    _assert_web_ready_mp4(out)
    _assert_same_picture_and_length(out, source)
    assert out.audio is not None and out.audio.codec == "aac"
    assert _video_packets(dest) == _video_packets(clips.h264_mp3_mkv)


async def test_mp4_of_a_silent_clip_has_no_audio_stream(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    dest = await transcode_to_mp4(clips.h264_silent_mp4, tmp_path / "out.mp4", media)

    out = await probe(dest)
    _assert_web_ready_mp4(out)
    assert out.audio is None


# WebM


async def test_webm_is_vp9_and_opus_with_the_source_size_and_duration(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    source = await probe(clips.h264_aac_mp4)

    dest = await transcode_to_webm(clips.h264_aac_mp4, tmp_path / "out.webm", media)

    out = await probe(dest)
    assert out.container == "webm"
    assert out.video is not None and out.video.codec == "vp9"
    assert (out.video.width, out.video.height) == (WIDTH, HEIGHT)
    assert out.video.pix_fmt == "yuv420p"
    assert out.audio is not None and out.audio.codec == "opus"
    assert out.duration == pytest.approx(source.duration, abs=0.1)


async def test_transcode_progress_never_decreases_and_ends_at_one(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    fractions: list[float] = []

    await transcode_to_webm(
        clips.h264_aac_mp4, tmp_path / "out.webm", media, on_progress=fractions.append
    )

    assert fractions, "no progress was reported"
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions[-1] == 1.0


# Thumbnail and spritesheet


@pytest.mark.parametrize(
    ("name", "configured", "codec"),
    [
        ("thumb.jpg", "webp", "mjpeg"),  # the suffix wins over the setting
        ("thumb.webp", "jpeg", "webp"),
        ("thumb.img", "webp", "webp"),  # no telling suffix: the setting decides
    ],
)
async def test_thumbnail_is_an_image_of_the_configured_width(
    name: str, configured: str, codec: str, clips: Clips, tmp_path: Path
) -> None:
    media = MediaSettings(thumbnail_format=configured, thumbnail_width=160)

    dest = await make_thumbnail(clips.h264_aac_mp4, tmp_path / name, media)

    assert _decoded_image_size(dest) == (codec, 160, 120)


@pytest.mark.parametrize("at_seconds", [None, 1000.0, -5.0])
async def test_thumbnail_of_a_very_short_clip_takes_a_frame_inside_it(
    at_seconds: float | None, clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    dest = await make_thumbnail(
        clips.short_h264_mp4, tmp_path / "thumb.jpg", media, at_seconds=at_seconds
    )

    assert _decoded_image_size(dest) == ("mjpeg", media.thumbnail_width, 480)


async def test_thumbnail_of_a_clip_whose_video_ends_early_falls_back_to_the_first_frame(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    dest = await make_thumbnail(clips.video_ends_early_webm, tmp_path / "thumb.jpg", media)

    assert _decoded_image_size(dest) == ("mjpeg", media.thumbnail_width, 480)
    assert _leftovers(tmp_path) == ["thumb.jpg"]


async def test_spritesheet_is_a_full_grid_with_the_recorded_geometry(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    info = await make_spritesheet(clips.h264_aac_mp4, tmp_path / "sprites.jpg", media)

    assert (info.columns, info.rows, info.count) == (5, 5, 25)
    assert (info.tile_width, info.tile_height) == (192, 144)  # 4:3 source
    assert info.interval_seconds == pytest.approx(SECONDS / 25)
    assert _decoded_image_size(info.path) == (
        "mjpeg",
        info.columns * info.tile_width,
        info.rows * info.tile_height,
    )
    assert json.loads(json.dumps(info.to_dict()))["path"] == str(tmp_path / "sprites.jpg")


async def test_spritesheet_of_a_clip_with_few_frames_has_fewer_rows(
    clips: Clips, media: MediaSettings, tmp_path: Path
) -> None:
    info = await make_spritesheet(clips.short_h264_mp4, tmp_path / "sprites.jpg", media)

    assert (info.columns, info.rows, info.count) == (5, 2, SHORT_CLIP_FRAMES)
    assert _decoded_image_size(info.path)[1:] == (5 * info.tile_width, 2 * info.tile_height)


# Failures and interruptions


async def test_ffmpeg_failure_raises_ffmpeg_error_with_its_stderr_and_leaves_nothing(
    clips: Clips, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    media = MediaSettings(mp4_preset="warp-speed")  # libx264 has no such preset

    with pytest.raises(FFmpegError) as caught:
        await transcode_to_mp4(clips.mpeg4_mp3_avi, out_dir / "out.mp4", media)

    assert caught.value.code == "ffmpeg_failed"
    assert caught.value.returncode not in (None, 0)
    assert "warp-speed" in caught.value.stderr_tail
    assert "warp-speed" in caught.value.message
    assert _leftovers(out_dir) == []


@pytest.mark.parametrize("make_output", [transcode_to_mp4, transcode_to_webm])
async def test_a_broken_mp4_raises_unreadable_media_before_ffmpeg_runs(
    make_output: Callable[[Path, Path, MediaSettings], Awaitable[Path]],
    clips: Clips,
    media: MediaSettings,
    tmp_path: Path,
) -> None:
    # The first kilobyte of a real MP4: a valid header, then the data cut off
    # before the index (moov) that would make it playable.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips.h264_aac_mp4.read_bytes()[:1024])
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    with pytest.raises(UnreadableMediaError, match=r"broken\.mp4"):
        await make_output(broken, out_dir / "out.bin", media)

    assert _leftovers(out_dir) == []


async def test_cancelled_transcode_leaves_no_file_and_no_temporary_file(
    clips: Clips, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    # A slow preset keeps ffmpeg busy well past its first progress report.
    media = MediaSettings(mp4_preset="veryslow")
    started = asyncio.Event()
    seen_while_running: list[str] = []

    def on_progress(_fraction: float) -> None:
        if not started.is_set():
            seen_while_running.extend(_leftovers(out_dir))
            started.set()

    task = asyncio.create_task(
        transcode_to_mp4(clips.long_mpeg4_avi, out_dir / "out.mp4", media, on_progress=on_progress)
    )
    async with asyncio.timeout(60):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(seen_while_running) == 1 and seen_while_running[0].startswith(".out.")
    assert _leftovers(out_dir) == []


async def test_atomic_output_leaves_nothing_behind_when_its_body_raises(tmp_path: Path) -> None:
    dest = tmp_path / "out.mp4"

    with pytest.raises(RuntimeError, match="encoder died"):
        async with atomic_output(dest) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("encoder died")

    assert _leftovers(tmp_path) == []


async def test_atomic_output_keeps_the_previous_file_when_its_body_raises(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"previous complete file")

    with pytest.raises(RuntimeError):
        async with atomic_output(dest) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("encoder died")

    assert _leftovers(tmp_path) == ["out.mp4"]
    assert dest.read_bytes() == b"previous complete file"
