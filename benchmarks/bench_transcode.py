"""How much reelforge's media pipeline costs over plain ffmpeg, and how fast it is.

The source is an 8 s 1280x720 24 fps H.264/AAC MP4, the kind of file a provider
returns. The WebM transcode is timed against the very same argument list
(:func:`~reelforge.media.transcode.webm_args`) run by plain ``subprocess`` with the
same ffmpeg binary, alternating the two, best of three each: the ratio is our
overhead (probe, process handling, the atomic rename). MP4, thumbnail and
spritesheet are reported in seconds and as a fraction of the clip's duration.

Run: ``.venv/bin/python benchmarks/bench_transcode.py`` or ``python -m benchmarks transcode``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from reelforge.media.ffmpeg import ffmpeg_command
from reelforge.media.transcode import (
    make_spritesheet,
    make_thumbnail,
    transcode_to_mp4,
    transcode_to_webm,
    webm_args,
)
from reelforge.settings import MediaSettings

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script, the tests package must be importable
    sys.path.insert(0, str(REPO))

__all__ = ["run"]

CLIP_SECONDS = 8
CLIP_SIZE = "1280x720"
CLIP_FPS = 24
TRIALS = 3
TARGET_RATIO = 1.05


def _make_source(dest: Path) -> Path:
    from tests.clips import lavfi_clip

    source = f"testsrc2=size={CLIP_SIZE}:rate={CLIP_FPS}:duration={CLIP_SECONDS}"
    return lavfi_clip(dest, source, seconds=CLIP_SECONDS)


def _time_async(make: Callable[[], Awaitable[Any]]) -> float:
    async def timed() -> float:
        start = time.perf_counter()
        await make()
        return time.perf_counter() - start

    return asyncio.run(timed())


def _time_plain_ffmpeg(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(ffmpeg_command(args), check=True, capture_output=True)
    return time.perf_counter() - start


def _best(make: Callable[[], float]) -> float:
    return min(make() for _ in range(TRIALS))


def _per_clip_second(seconds: float) -> str:
    return f"{seconds:.2f} s ({seconds / CLIP_SECONDS:.3f} x clip duration)"


def run() -> list[str]:
    media = MediaSettings()
    with tempfile.TemporaryDirectory(prefix="bench_transcode_") as tmp:
        work = Path(tmp)
        source = _make_source(work / "provider.mp4")
        ours_webm, plain_webm = work / "ours.webm", work / "plain.webm"

        ours: list[float] = []
        plain: list[float] = []
        for _ in range(TRIALS):  # alternate, so drift in machine load hits both
            ours.append(_time_async(lambda: transcode_to_webm(source, ours_webm, media)))
            plain.append(_time_plain_ffmpeg(webm_args(source, plain_webm, media)))
        ratio = min(ours) / min(plain)

        remux = _best(lambda: _time_async(lambda: transcode_to_mp4(source, work / "a.mp4", media)))
        reencode = _best(
            lambda: _time_async(lambda: transcode_to_mp4(ours_webm, work / "b.mp4", media))
        )

        async def stills() -> None:
            await make_thumbnail(source, work / "thumb.jpg", media)
            await make_spritesheet(source, work / "sprites.jpg", media)

        previews = _best(lambda: _time_async(stills))

    return [
        f"webm transcode {CLIP_SECONDS}s 720p: reelforge {min(ours):.2f} s, "
        f"plain ffmpeg {min(plain):.2f} s, ratio {ratio:.3f} (target <= {TARGET_RATIO})",
        f"mp4 from H.264/AAC (stream copy): {_per_clip_second(remux)}",
        f"mp4 from VP9/Opus (re-encode, preset {media.mp4_preset}): {_per_clip_second(reencode)}",
        f"thumbnail + spritesheet: {_per_clip_second(previews)}",
    ]


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
