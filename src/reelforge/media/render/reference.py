"""Reference images in a scene: their colours in the palette, their pixels as a panned backdrop.

:func:`scene_with_reference` takes the image's colours into the scene's palette;
:class:`Pan` is the image, darkened and slightly larger than the frame, and the
window that moves slowly across it (a Ken Burns move) under the scene's moving layers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from reelforge.media.image import ImageArray, cover_image
from reelforge.media.render.palette import hsv
from reelforge.media.render.scene import Scene

__all__ = ["REFERENCE_DIM", "Pan", "plan_pan", "scene_with_reference"]

# How much larger than the frame the panned background is (per side, of the frame).
_PAN_MARGIN: Final = 0.06
# The image is darkened under the scene so shapes, waves and captions stay readable.
REFERENCE_DIM: Final = 0.72


def _dominant_hues(image: ImageArray, count: int = 3) -> list[tuple[float, float, float]]:
    """The fullest 30-degree hue bins among clearly coloured pixels, as (hue, sat, value).

    Each bin reports its pixels' mean saturation and value; greyish images have none.
    """
    step = max(1, max(image.shape[:2]) // 96)  # ~96 px a side is plenty for a palette
    rgb = image[::step, ::step].reshape(-1, 3).astype(np.float32) / 255.0
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    delta = high - low
    saturation = delta / np.maximum(high, 1e-6)
    coloured = (saturation > 0.25) & (high > 0.15)
    if not coloured.any():
        return []
    r, g, b = rgb[coloured].T
    d, h = delta[coloured], high[coloured]
    hue = 60.0 * np.where(
        h == r, ((g - b) / d) % 6, np.where(h == g, (b - r) / d + 2, (r - g) / d + 4)
    )
    bins = (hue // 30.0).astype(np.intp) % 12
    counts = np.bincount(bins, minlength=12)
    result = []
    for index in np.argsort(counts)[::-1][:count]:
        members = bins == index
        if counts[index] < 0.05 * coloured.sum():
            break  # a stray bin is not part of the palette
        # Circular mean, so a bin's hue is not dragged by its wrap-around neighbours.
        angle = np.deg2rad(hue[members])
        mean_hue = math.degrees(math.atan2(np.sin(angle).mean(), np.cos(angle).mean())) % 360
        result.append(
            (mean_hue, float(saturation[coloured][members].mean()), float(h[members].mean()))
        )
    return result


def scene_with_reference(scene: Scene, image: ImageArray) -> Scene:
    """``scene`` recoloured from a reference image.

    The sky colours become the image's (dimmed) top and bottom, which tints what is
    drawn from them (the haze of the waves). Unless the prompt named colours, balls,
    squares and waves take the image's dominant hues, bright enough to stand out on
    the darkened image; stars and rain keep their pale colours.
    """
    third = max(1, image.shape[0] // 3)
    top = image[:third].reshape(-1, 3).mean(axis=0) * REFERENCE_DIM
    bottom = image[-third:].reshape(-1, 3).mean(axis=0) * REFERENCE_DIM
    changes: dict[str, Any] = {
        "sky_top": tuple(round(float(c)) for c in top),
        "sky_bottom": tuple(round(float(c)) for c in bottom),
    }
    hues = _dominant_hues(image)
    if hues and not scene.colours:
        colours = list(scene.subject_colours)
        shaped = [i for i, subject in enumerate(scene.subjects) if subject not in ("stars", "rain")]
        for turn, index in enumerate(shaped):
            hue, saturation, value = hues[turn % len(hues)]
            colours[index] = hsv(hue, max(saturation, 0.6), max(value, 0.9))
        changes["subject_colours"] = tuple(colours)
    return dataclasses.replace(scene, **changes)


@dataclass(frozen=True, slots=True)
class Pan:
    """The reference image as an oversized canvas, and the window's path across it."""

    canvas: ImageArray
    start: tuple[int, int]  # (x, y) of the window's top-left at the first frame
    end: tuple[int, int]  # ... and at the last
    width: int  # of the window, i.e. the frame
    height: int

    def window(self, progress: float) -> ImageArray:
        """The frame-sized view at ``progress`` (0 at the first frame, 1 at the last)."""
        eased = progress * progress * (3 - 2 * progress)  # start and stop gently
        (start_x, start_y), (end_x, end_y) = self.start, self.end
        x = round(start_x + (end_x - start_x) * eased)
        y = round(start_y + (end_y - start_y) * eased)
        return self.canvas[y : y + self.height, x : x + self.width]


def plan_pan(reference: ImageArray, width: int, height: int, rng: np.random.Generator) -> Pan:
    """The darkened, vignetted canvas and a corner-to-corner path chosen by ``rng``."""
    margin_x = max(1, round(width * _PAN_MARGIN))
    margin_y = max(1, round(height * _PAN_MARGIN))
    canvas_width, canvas_height = width + 2 * margin_x, height + 2 * margin_y
    canvas = cover_image(reference, canvas_width, canvas_height).astype(np.float32)
    nx = (np.arange(canvas_width, dtype=np.float32) - canvas_width / 2) / (canvas_width / 2)
    ny = (np.arange(canvas_height, dtype=np.float32) - canvas_height / 2) / (canvas_height / 2)
    falloff = np.clip((nx[None, :] ** 2 + ny[:, None] ** 2) / 2.0, 0.0, 1.0)
    canvas *= (REFERENCE_DIM * (1.0 - 0.3 * falloff**1.5))[:, :, None]
    corners = [(0, 0), (2 * margin_x, 0), (0, 2 * margin_y), (2 * margin_x, 2 * margin_y)]
    first = int(rng.integers(len(corners)))
    return Pan(
        canvas=np.clip(canvas + 0.5, 0, 255).astype(np.uint8),
        start=corners[first],
        end=corners[len(corners) - 1 - first],  # the opposite corner
        width=width,
        height=height,
    )
