"""How long output assurance takes, against the clip's length and a plain decode.

The source is an 8 s 1280x720 24 fps H.264/AAC MP4 (test pattern and a tone), the
kind of file a provider returns. :func:`~reelforge.media.validate.validate_video`
is timed end to end (best of three); the target is at most a quarter of the
clip's duration. The baseline, measured in the same run and alternated with it,
is a plain PyAV decode of every video and audio frame of the same file with the
same decoder threading and no analysis: the ratio is what the analysis (scaling
to grey, black/frozen/flicker numbers, audio levels, judging) adds.

Run: ``.venv/bin/python benchmarks/bench_validate.py`` or ``python -m benchmarks validate``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import av

from reelforge.media.validate import Expectation, validate_video

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script, the tests package must be importable
    sys.path.insert(0, str(REPO))

__all__ = ["run"]

CLIP_SECONDS = 8
CLIP_WIDTH, CLIP_HEIGHT = 1280, 720
CLIP_FPS = 24
TRIALS = 3
TARGET_RATIO = 0.25


def _make_source(dest: Path) -> Path:
    from tests.clips import lavfi_clip

    source = f"testsrc2=size={CLIP_WIDTH}x{CLIP_HEIGHT}:rate={CLIP_FPS}:duration={CLIP_SECONDS}"
    return lavfi_clip(dest, source, seconds=CLIP_SECONDS)


def _time_validation(source: Path, expect: Expectation) -> float:
    async def timed() -> float:
        start = time.perf_counter()
        report = await validate_video(source, expect)
        elapsed = time.perf_counter() - start
        if not report.ok:
            raise RuntimeError(f"the benchmark clip failed validation: {report.problems}")
        return elapsed

    return asyncio.run(timed())


def _time_plain_decode(source: Path) -> float:
    start = time.perf_counter()
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"  # as validate_video decodes
        for packet in container.demux(video, container.streams.audio[0]):
            packet.decode()
    return time.perf_counter() - start


def run() -> list[str]:
    expect = Expectation(
        duration_seconds=CLIP_SECONDS,
        width=CLIP_WIDTH,
        height=CLIP_HEIGHT,
        fps=CLIP_FPS,
        audio=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_validate_") as tmp:
        source = _make_source(Path(tmp) / "provider.mp4")
        ours: list[float] = []
        plain: list[float] = []
        for _ in range(TRIALS):  # alternate, so drift in machine load hits both
            ours.append(_time_validation(source, expect))
            plain.append(_time_plain_decode(source))
    best, baseline = min(ours), min(plain)
    label = f"{CLIP_SECONDS}s {CLIP_WIDTH}x{CLIP_HEIGHT}@{CLIP_FPS}"
    return [
        f"validation {label}: {best:.2f} s, ratio to clip duration "
        f"{best / CLIP_SECONDS:.2f} (target <= {TARGET_RATIO})",
        f"plain PyAV decode {label}: {baseline:.2f} s; validation / decode {best / baseline:.2f}",
    ]


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
