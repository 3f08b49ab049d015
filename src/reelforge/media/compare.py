"""Conversion checks: a transcoded file must still be its source.

Every delivered file is probed and compared with the file it was made from: same
duration (within a frame or two), same picture size, and pictures that still look
the same — SSIM >= 0.95 on frames sampled through the clip. A conversion that fails
is an error, never a delivered file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from reelforge.errors import UnreadableMediaError
from reelforge.media.probe import probe

__all__ = ["ConversionCheck", "check_conversion", "ssim"]

_SAMPLES = (0.2, 0.5, 0.8)  # where in the clip frames are compared
_ANALYSIS_WIDTH = 320
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


@dataclass(frozen=True, slots=True)
class ConversionCheck:
    ok: bool
    problems: list[str]
    ssim: float | None

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "problems": self.problems, "ssim": self.ssim}


def _box(image: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Mean over size x size windows (valid region), with summed-area tables."""
    table = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    total = (
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    )
    mean: NDArray[np.float64] = total / (size * size)
    return mean


def ssim(a: NDArray[np.uint8], b: NDArray[np.uint8], window: int = 8) -> float:
    """Mean structural similarity of two grayscale images of one size."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    mx, my = _box(x, window), _box(y, window)
    vx = _box(x * x, window) - mx * mx
    vy = _box(y * y, window) - my * my
    cxy = _box(x * y, window) - mx * my
    score = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return float(score.mean())


def _frames_at(path: Path, times: list[float], width: int, height: int) -> list[NDArray[np.uint8]]:
    """Grayscale frames nearest to each time, all scaled to width x height."""
    found: list[NDArray[np.uint8]] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            wanted = iter(times)
            target = next(wanted, None)
            for frame in container.decode(stream):
                if target is None:
                    break
                if frame.time is not None and frame.time + 1e-6 >= target:
                    gray = frame.reformat(width=width, height=height, format="gray")
                    found.append(np.asarray(gray.to_ndarray(), dtype=np.uint8))
                    target = next(wanted, None)
    except (av.FFmpegError, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableMediaError(f"cannot decode {path.name} to compare it: {exc}") from None
    return found


async def check_conversion(
    source: Path, output: Path, *, min_ssim: float = 0.95
) -> ConversionCheck:
    """Compare ``output`` with the ``source`` it was transcoded from."""
    src, out = await probe(source), await probe(output)
    problems: list[str] = []
    if src.video is None or out.video is None:
        return ConversionCheck(False, ["no video stream to compare"], None)
    fps = src.video.fps or 24.0
    if abs(src.duration - out.duration) > max(2.0 / fps, 0.1):
        problems.append(f"duration {out.duration:.3f} s, source {src.duration:.3f} s")
    if (src.video.width, src.video.height) != (out.video.width, out.video.height):
        got, want = (out.video.width, out.video.height), (src.video.width, src.video.height)
        problems.append(f"size {got[0]}x{got[1]}, source {want[0]}x{want[1]}")
    width = min(_ANALYSIS_WIDTH, src.video.width) // 2 * 2
    height = max(16, round(width * src.video.height / src.video.width) // 2 * 2)
    times = [fraction * src.duration for fraction in _SAMPLES]
    a, b = await asyncio.gather(
        asyncio.to_thread(_frames_at, source, times, width, height),
        asyncio.to_thread(_frames_at, output, times, width, height),
    )
    pairs = list(zip(a, b, strict=False))
    score = min((ssim(x, y) for x, y in pairs), default=None)
    if score is None:
        problems.append("no frames to compare")
    elif score < min_ssim:
        problems.append(f"SSIM {score:.3f} below {min_ssim}")
    return ConversionCheck(not problems, problems, None if score is None else round(score, 4))
