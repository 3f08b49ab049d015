"""Output assurance against a planted-defect corpus made with the bundled FFmpeg.

The corpus is rendered once per session from FFmpeg's synthetic sources (test
pattern, plain colours, noise, a sine tone, digital silence), a few clips at a
time. Each defective clip carries one planted defect; every one must be reported
with its code. The good clips include the hard cases that must *not* be flagged:
a fade from black, a dark scene, a static but noisy scene and the local
renderer's night sky.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.media.ffmpeg import ffmpeg_command
from reelforge.media.render import render_video
from reelforge.media.validate import (
    Expectation,
    ProblemCode,
    ValidationReport,
    ValidationSettings,
    validate_video,
)
from reelforge.models import GenerationRequest

runner = CliRunner()

FPS = 24
NIGHT_REQUEST = GenerationRequest(
    prompt="a quiet night sky over a still lake",
    duration_seconds=2,
    size="320x180",
    fps=FPS,
    seed=5,
)
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "96k"]
FASTSTART = ["-movflags", "+faststart"]


@dataclass(frozen=True)
class Corpus:
    # Good: must pass with the expectations they were made with.
    good_320x240_2s: Path  # moov after mdat, as a provider returns it
    good_640x360_3s: Path  # faststart: the source of the cut and damaged copies
    good_1280x720_2s: Path
    good_vp9_webm_2s: Path  # Matroska: no per-stream durations
    fade_in_3s: Path
    dark_3s: Path
    noisy_static_640x360_2s: Path
    night_render_2s: Path
    # Defective: one planted defect each.
    all_black_2s: Path
    black_middle_3s: Path  # black from 0.6 s to 2.4 s: 60 % of the clip
    frozen_after_1s_3s: Path
    silent_2s: Path
    no_audio_2s: Path
    flicker_2s: Path
    truncated_faststart: Path  # the index survives, half the data does not
    truncated_no_index: Path  # moov was at the end, and is gone
    damaged_middle: Path  # 8 KiB of garbage in the middle of mdat
    audio_only_m4a: Path


def _testsrc(seconds: float, size: str = "320x240") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"]


def _colour(colour: str, seconds: float, size: str = "320x240") -> list[str]:
    return ["-f", "lavfi", "-i", f"color=c={colour}:size={size}:rate={FPS}:duration={seconds}"]


def _tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]


def _ffmpeg(dest: Path, *args: str | Sequence[str]) -> Callable[[], Path]:
    flat = [part for arg in args for part in ([arg] if isinstance(arg, str) else arg)]

    def make() -> Path:
        subprocess.run(ffmpeg_command([*flat, str(dest)]), check=True, capture_output=True)
        return dest

    return make


def _render_night(dest: Path) -> Callable[[], Path]:
    return lambda: asyncio.run(render_video(NIGHT_REQUEST, dest, seed=5))


def _cut_in_half(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _damage_middle(src: Path, dest: Path) -> Path:
    # Faststart: moov is a small box at the front, so the middle of the file is the
    # middle of mdat. Seeded, so every run damages the same bytes.
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = random.Random(7).randbytes(8192)
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("validate_corpus")
    jobs: dict[str, Callable[[], Path]] = {
        "good_320x240_2s": _ffmpeg(root / "good_320.mp4", _testsrc(2), _tone(2), H264, AAC),
        "good_640x360_3s": _ffmpeg(
            root / "good_640.mp4", _testsrc(3, "640x360"), _tone(3), H264, AAC, FASTSTART
        ),
        "good_1280x720_2s": _ffmpeg(
            root / "good_1280.mp4", _testsrc(2, "1280x720"), _tone(2), H264, AAC
        ),
        "good_vp9_webm_2s": _ffmpeg(
            root / "good.webm",
            _testsrc(2),
            _tone(2),
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        ),
        "fade_in_3s": _ffmpeg(
            root / "fade_in.mp4", _testsrc(3), _tone(3), "-vf", "fade=t=in:d=0.5", H264, AAC
        ),
        "dark_3s": _ffmpeg(
            root / "dark.mp4", _testsrc(3), _tone(3), "-vf", "eq=brightness=-0.35", H264, AAC
        ),
        "noisy_static_640x360_2s": _ffmpeg(
            root / "noisy.mp4",
            _colour("gray", 2, "640x360"),
            _tone(2),
            ["-vf", "noise=alls=20:allf=t+u"],
            H264,
            AAC,
        ),
        "night_render_2s": _render_night(root / "night.mp4"),
        "all_black_2s": _ffmpeg(root / "black.mp4", _colour("black", 2), _tone(2), H264, AAC),
        "black_middle_3s": _ffmpeg(
            root / "black_middle.mp4",
            _testsrc(3),
            _tone(3),
            ["-vf", "drawbox=w=iw:h=ih:color=black:t=fill:enable='between(t,0.6,2.4)'"],
            H264,
            AAC,
        ),
        "frozen_after_1s_3s": _ffmpeg(
            root / "frozen.mp4",
            _testsrc(1),
            _tone(3),
            ["-vf", "tpad=stop_mode=clone:stop_duration=2"],
            H264,
            AAC,
        ),
        "silent_2s": _ffmpeg(
            root / "silent.mp4",
            _testsrc(2),
            ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "2"],
            H264,
            AAC,
        ),
        "no_audio_2s": _ffmpeg(root / "no_audio.mp4", _testsrc(2), H264),
        "flicker_2s": _ffmpeg(
            root / "flicker.mp4",
            _testsrc(2),
            _tone(2),
            # Every other frame dark, the rest bright: twelve flashes a second.
            ["-vf", "eq=brightness='if(mod(n,2),-0.6,0.3)':eval=frame"],
            H264,
            AAC,
        ),
        "audio_only_m4a": _ffmpeg(root / "tone.m4a", _tone(2), AAC),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(make) for name, make in jobs.items()}
        made = {name: future.result() for name, future in futures.items()}
    return Corpus(
        **made,
        truncated_faststart=_cut_in_half(made["good_640x360_3s"], root / "cut_faststart.mp4"),
        truncated_no_index=_cut_in_half(made["good_320x240_2s"], root / "cut_no_index.mp4"),
        damaged_middle=_damage_middle(made["good_640x360_3s"], root / "damaged.mp4"),
    )


def _validate(
    path: Path, expect: Expectation | None = None, **thresholds: float
) -> ValidationReport:
    return asyncio.run(validate_video(path, expect, ValidationSettings(**thresholds)))


def _expect(seconds: float, width: int, height: int) -> Expectation:
    return Expectation(duration_seconds=seconds, width=width, height=height, fps=FPS, audio=True)


def _problem(report: ValidationReport, code: ProblemCode) -> tuple[float | None, float | None]:
    found = [p for p in report.problems if p.code is code]
    assert found, f"{code} not reported; got {report.problems}"
    return found[0].start, found[0].end


# Good clips pass


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("good_320x240_2s", _expect(2, 320, 240)),
        ("good_640x360_3s", _expect(3, 640, 360)),
        ("good_1280x720_2s", _expect(2, 1280, 720)),
        ("good_vp9_webm_2s", _expect(2, 320, 240)),
        ("fade_in_3s", _expect(3, 320, 240)),
        ("dark_3s", _expect(3, 320, 240)),
        ("noisy_static_640x360_2s", _expect(2, 640, 360)),
        ("night_render_2s", Expectation.from_request(NIGHT_REQUEST)),
    ],
)
def test_good_clip_passes_with_what_was_asked_for(
    name: str, expect: Expectation, corpus: Corpus
) -> None:
    report = _validate(getattr(corpus, name), expect)

    assert report.problems == []
    assert report.ok
    assert report.facts.frames_decoded == round(expect.duration_seconds or 0) * FPS


def test_fade_from_black_is_measured_but_not_a_problem(corpus: Corpus) -> None:
    report = _validate(corpus.fade_in_3s)

    assert report.ok
    assert report.facts.black_segments, "the first frames of the fade are black"
    assert report.facts.black_segments[0].start == 0.0
    assert report.facts.black_segments[-1].end < 0.5


def test_clip_without_audio_passes_when_no_audio_is_asked_for(corpus: Corpus) -> None:
    assert _validate(corpus.no_audio_2s).ok
    assert _validate(corpus.no_audio_2s, Expectation(audio=False)).ok


def test_silence_is_not_checked_when_audio_is_expected_not_to_matter(corpus: Corpus) -> None:
    assert _validate(corpus.silent_2s, Expectation(audio=False)).ok


# Each planted defect is found, with its code


def test_all_black_clip_is_black_video_and_not_also_frozen(corpus: Corpus) -> None:
    report = _validate(corpus.all_black_2s)

    assert report.codes == ["black_video"]
    assert _problem(report, ProblemCode.BLACK_VIDEO) == (0.0, 2.0)
    assert report.facts.black_fraction == 1.0


def test_black_middle_is_black_video_located_in_time(corpus: Corpus) -> None:
    report = _validate(corpus.black_middle_3s)

    assert report.codes == ["black_video"]
    start, end = _problem(report, ProblemCode.BLACK_VIDEO)
    assert start == pytest.approx(0.6, abs=0.1)
    assert end == pytest.approx(2.4, abs=0.1)
    assert report.facts.black_fraction == pytest.approx(0.6, abs=0.05)


def test_picture_frozen_after_the_first_second_is_frozen_video(corpus: Corpus) -> None:
    report = _validate(corpus.frozen_after_1s_3s)

    assert report.codes == ["frozen_video"]
    start, end = _problem(report, ProblemCode.FROZEN_VIDEO)
    assert start == pytest.approx(1.0, abs=0.1)
    assert end == pytest.approx(3.0, abs=0.05)


def test_digital_silence_is_silent_audio(corpus: Corpus) -> None:
    report = _validate(corpus.silent_2s)

    assert report.codes == ["silent_audio"]
    assert report.facts.audio_rms_dbfs == -120.0
    assert report.facts.audio_silent_fraction == 1.0


def test_no_audio_stream_is_missing_audio_when_audio_is_expected(corpus: Corpus) -> None:
    report = _validate(corpus.no_audio_2s, _expect(2, 320, 240))

    assert report.codes == ["missing_audio"]


def test_alternating_bright_and_dark_frames_are_flicker(corpus: Corpus) -> None:
    report = _validate(corpus.flicker_2s)

    assert "flicker" in report.codes
    assert (report.facts.max_flashes_per_second or 0) > 3


def test_mp4_cut_short_after_its_index_is_a_decode_error_where_the_data_ends(
    corpus: Corpus,
) -> None:
    report = _validate(corpus.truncated_faststart)

    start, end = _problem(report, ProblemCode.DECODE_ERROR)
    assert start is not None and 0.5 < start < 2.5
    assert end == pytest.approx(3.0, abs=0.05)
    assert "cut short" in report.problems[0].message


def test_mp4_cut_short_before_its_index_is_unreadable(corpus: Corpus) -> None:
    report = _validate(corpus.truncated_no_index)

    assert report.codes == ["unreadable_media"]
    assert not report.readable


def test_garbage_in_the_middle_of_the_data_is_a_decode_error_at_that_time(
    corpus: Corpus,
) -> None:
    report = _validate(corpus.damaged_middle)

    start, end = _problem(report, ProblemCode.DECODE_ERROR)
    assert start is not None and end is not None
    assert 0.5 < start <= end < 2.5
    assert report.facts.decode_errors >= 1


@pytest.mark.parametrize(
    ("expect", "code"),
    [
        (Expectation(duration_seconds=4.0), "wrong_duration"),
        (Expectation(duration_seconds=1.5), "wrong_duration"),
        (Expectation(width=640, height=360), "wrong_size"),
        (Expectation(width=320, height=180), "wrong_size"),
        (Expectation(fps=30), "wrong_fps"),
        (Expectation(fps=12), "wrong_fps"),
    ],
)
def test_clip_that_differs_from_what_was_asked_for_is_reported(
    expect: Expectation, code: str, corpus: Corpus
) -> None:
    report = _validate(corpus.good_320x240_2s, expect)

    assert report.codes == [code]


def test_duration_within_tolerance_is_accepted(corpus: Corpus) -> None:
    # 2.0 s against 2.2 s: inside max(0.25 s, 5 %).
    assert _validate(corpus.good_320x240_2s, Expectation(duration_seconds=2.2)).ok


def test_audio_only_file_has_no_video_stream(corpus: Corpus) -> None:
    report = _validate(corpus.audio_only_m4a)

    assert report.codes == ["no_video_stream"]
    assert report.readable


@pytest.mark.parametrize("make", ["text", "missing", "empty", "directory"])
def test_what_is_not_media_is_unreadable(make: str, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    if make == "text":
        path.write_text("this is not a video")
    elif make == "empty":
        path.touch()
    elif make == "directory":
        path.mkdir()

    report = _validate(path)

    assert report.codes == ["unreadable_media"]
    assert not report.ok


def test_thresholds_come_from_the_settings(corpus: Corpus) -> None:
    # The fade from black is 3 % black: fine by default, not with a 1 % limit.
    report = _validate(corpus.fade_in_3s, black_max_fraction=0.01)

    assert report.codes == ["black_video"]


# The report


def test_report_round_trips_through_json(corpus: Corpus) -> None:
    report = _validate(corpus.black_middle_3s, _expect(4, 640, 360))

    data = report.to_dict()

    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert set(data) == {"ok", "problems", "facts"}
    assert data["ok"] is False
    assert [p["code"] for p in data["problems"]] == ["wrong_duration", "wrong_size", "black_video"]
    assert all(set(p) == {"code", "message", "start", "end"} for p in data["problems"])
    assert data["facts"]["black_segments"][0].keys() == {"start", "end"}
    assert data["facts"]["width"] == 320


def test_expectation_from_request_is_what_was_asked_for() -> None:
    expect = Expectation.from_request(NIGHT_REQUEST)

    assert expect == Expectation(duration_seconds=2.0, width=320, height=180, fps=24.0, audio=True)


async def test_validation_decodes_off_the_event_loop(corpus: Corpus) -> None:
    task = asyncio.create_task(validate_video(corpus.good_1280x720_2s))
    # Two turns of the loop: the task reaches its first suspension; had it decoded
    # on the loop, it would have finished within that first turn.
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    assert not task.done()
    assert (await task).ok


# The command line


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_passes_a_good_clip_with_exit_0_and_a_table(corpus: Corpus) -> None:
    code, stdout, _ = _cli(
        str(corpus.good_320x240_2s), "--duration", "2", "--size", "320x240", "--fps", "24"
    )

    assert code == 0
    for word in ("container", "duration", "h264 320x240", "aac", "PASS"):
        assert word in stdout


def test_cli_fails_a_defective_clip_with_exit_1_and_names_the_problem(corpus: Corpus) -> None:
    code, stdout, _ = _cli(str(corpus.frozen_after_1s_3s))

    assert code == 1
    assert "frozen_video" in stdout and "FAIL" in stdout


def test_cli_json_has_ok_problems_and_facts(corpus: Corpus) -> None:
    code, stdout, _ = _cli(str(corpus.good_320x240_2s), "--json", "--size", "640x360")

    report = json.loads(stdout)
    assert code == 1
    assert report["ok"] is False
    assert report["problems"] == [
        {
            "code": "wrong_size",
            "message": "the frames are 320x240; 640x360 was expected",
            "start": None,
            "end": None,
        }
    ]
    assert report["facts"]["fps"] == 24.0
    assert report["probe"]["video"]["width"] == 320


def test_cli_requires_sound_with_audio_and_skips_it_with_no_audio(corpus: Corpus) -> None:
    assert _cli(str(corpus.no_audio_2s), "--audio")[0] == 1
    assert _cli(str(corpus.silent_2s), "--no-audio")[0] == 0


def test_cli_exits_2_for_a_file_it_cannot_read(corpus: Corpus) -> None:
    code, stdout, stderr = _cli(str(corpus.truncated_no_index))
    assert code == 2
    assert "[unreadable_media]" in stderr and "Traceback" not in stderr + stdout

    code, stdout, _ = _cli(str(corpus.truncated_no_index), "--json")
    assert code == 2
    assert json.loads(stdout)["problems"][0]["code"] == "unreadable_media"


def test_cli_rejects_a_malformed_expected_size_with_exit_2(corpus: Corpus) -> None:
    code, _, stderr = _cli(str(corpus.good_320x240_2s), "--size", "wide")

    assert code == 2
    assert "[invalid_size]" in stderr


def test_corpus_is_complete(corpus: Corpus) -> None:
    for item in fields(corpus):
        assert getattr(corpus, item.name).stat().st_size > 0, item.name
