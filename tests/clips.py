"""Small real clips for tests and benchmarks, made with the bundled ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reelforge.media.ffmpeg import ffmpeg_exe


def lavfi_clip(
    path: Path, video: str, *, seconds: float, tone_hz: int = 440, preset: str = "veryfast"
) -> Path:
    """An H.264/AAC MP4 from a lavfi ``video`` source with a sine tone, the kind of
    file a provider hands back."""
    subprocess.run(
        [
            ffmpeg_exe(), "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", video,
            "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:duration={seconds}",
            "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path
