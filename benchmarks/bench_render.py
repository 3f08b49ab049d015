"""How fast the local renderer makes an 8 s 720p clip, against the clip's own duration.

Run ``python benchmarks/bench_render.py`` or ``python -m benchmarks render``. The
figure is the best of three full renders (frames + encode, wall clock); the target
is at most half the clip's duration, i.e. twice faster than real time.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from reelforge.media.render import render_video
from reelforge.models import GenerationRequest

__all__ = ["run"]

DURATION_SECONDS = 8.0
SIZE = "1280x720"
FPS = 24
RUNS = 3
TARGET_RATIO = 0.5
PROMPTS = {
    "": 'a red ball bouncing over golden waves at sunset, caption "Reelforge"',
    " busy scene": (
        'five red balls bouncing on waves in the rain over a city at night, caption "Busy"'
    ),
    " snow setting": "three red balls bouncing in the snow",
}


def _best_render_seconds(prompt: str, folder: Path) -> float:
    req = GenerationRequest(prompt=prompt, duration_seconds=DURATION_SECONDS, size=SIZE, fps=FPS)
    best = float("inf")
    for attempt in range(RUNS):
        started = time.perf_counter()
        asyncio.run(render_video(req, folder / f"clip-{attempt}.mp4", seed=attempt))
        best = min(best, time.perf_counter() - started)
    return best


def run() -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as folder:
        for label, prompt in PROMPTS.items():
            seconds = _best_render_seconds(prompt, Path(folder))
            ratio = seconds / DURATION_SECONDS
            lines.append(
                f"render {DURATION_SECONDS:g}s {SIZE}@{FPS}{label}: {seconds:.2f} s, "
                f"ratio to clip duration {ratio:.2f} (target <= {TARGET_RATIO:.2f})"
            )
    return lines


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
