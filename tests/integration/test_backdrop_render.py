"""Backgrounds named in the prompt survive encoding: decoded MP4 frames show them.

The clips are rendered by the real encoder (ffmpeg, H.264 yuv420p) and decoded with
PyAV, so the colours checked are the ones a viewer sees.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from reelforge.media.render import render_video
from reelforge.models import GenerationRequest

pytestmark = pytest.mark.slow

Frame = npt.NDArray[np.uint8]


def rendered_middle_frame(prompt: str, dest: Path) -> Frame:
    req = GenerationRequest(prompt=prompt, duration_seconds=1.0, size="320x180", fps=24)
    asyncio.run(render_video(req, dest, seed=1))
    with av.open(str(dest)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[len(frames) // 2]


def test_green_square_on_plain_white_background_is_green_on_white(tmp_path: Path) -> None:
    frame = rendered_middle_frame(
        "a green square spinning on a plain white background", tmp_path / "white.mp4"
    )
    red, green, blue = (frame[..., channel].astype(np.int16) for channel in range(3))
    square = (green > red + 60) & (green > blue + 60)
    assert square.sum() > 500
    near_white = frame.min(axis=2) > 235
    assert near_white.sum() > 0.8 * frame.shape[0] * frame.shape[1]


def test_space_stays_dark_after_encoding(tmp_path: Path) -> None:
    frame = rendered_middle_frame("a red ball in space", tmp_path / "space.mp4")
    assert float(frame.mean()) < 50
