"""The still backdrop of a scene, painted once per clip: sky, sun or moon, setting, skyline.

The scene's ``backdrop`` picks the look: the default gradient in the prompt's
dominant hue, a named background colour (softly shaded, or one flat colour for
"plain"/"solid"), or a setting painted by :mod:`~reelforge.media.render.landscapes`.
:func:`paint_backdrop` returns the backdrop and a mask of where open sky remains
(stars are only placed there, never on a building, a tree or the ground).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from reelforge.media.render.arrays import FloatArray, ImageArray, Mask
from reelforge.media.render.drawing import Canvas
from reelforge.media.render.landscapes import (
    paint_clouds,
    paint_dunes,
    paint_forest,
    paint_sea,
    paint_space,
)
from reelforge.media.render.scene import Scene

__all__ = ["horizon_of", "paint_backdrop"]


# Where the land meets the sky in each landscape, as a share of the frame's height.
_LAND_HORIZON: Final[dict[str, float]] = {"forest": 0.7, "desert": 0.6, "snow": 0.66}
# How strongly the frame darkens towards its corners, per backdrop.
_VIGNETTE: Final[dict[str, float]] = {"gradient": 0.3, "colour": 0.12, "flat": 0.0}
_SETTING_VIGNETTE: Final = 0.15


def horizon_of(scene: Scene, height: int) -> int:
    """The row where the sky ends: above the water or the land, else the frame's bottom."""
    if "waves" in scene.subjects:
        return round(height * 0.62)
    if scene.backdrop in _LAND_HORIZON:
        return round(height * _LAND_HORIZON[scene.backdrop])
    return height


def paint_backdrop(
    scene: Scene, canvas: Canvas, rng: np.random.Generator, horizon: int
) -> tuple[ImageArray, Mask]:
    """The backdrop as uint8 RGB, and where it is open sky."""
    height, width = canvas.height, canvas.width
    sky_mask = np.ones((height, width), dtype=np.bool_)
    if scene.backdrop == "flat" and "city" not in scene.subjects:
        # One colour exactly: no gradient, no vignette, no dither.
        return np.full((height, width, 3), scene.sky_bottom, dtype=np.uint8), sky_mask
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top = np.array(scene.sky_top, dtype=np.float32)
    bottom = np.array(scene.sky_bottom, dtype=np.float32)
    column = top + (bottom - top) * rows
    sky = np.repeat(column[:, None, :], width, axis=1)
    vignette = _VIGNETTE.get(scene.backdrop, _SETTING_VIGNETTE)
    if vignette:
        # A soft vignette keeps the eye in the middle of the frame.
        nx = (canvas.xs - width / 2) / (width / 2)
        ny = (canvas.ys - height / 2) / (height / 2)
        falloff = np.clip((nx[None, :] ** 2 + ny[:, None] ** 2) / 2.0, 0.0, 1.0)
        sky *= (1.0 - vignette * falloff**1.5)[:, :, None]
    if scene.time_of_day is not None and scene.backdrop not in ("colour", "flat", "space"):
        _paint_sun(sky, scene, canvas, rng, horizon)
    _paint_setting(sky, sky_mask, scene, canvas, rng, horizon)
    if "city" in scene.subjects:
        _paint_skyline(sky, sky_mask, scene, canvas, rng, horizon)
    if scene.backdrop == "flat":
        return np.clip(sky + 0.5, 0, 255).astype(np.uint8), sky_mask
    # Noise of +-1 level breaks up gradient banding after 8-bit rounding.
    dither = rng.uniform(-1.0, 1.0, size=(height, width, 1)).astype(np.float32)
    background: ImageArray = np.clip(sky + dither + 0.5, 0, 255).astype(np.uint8)
    return background, sky_mask


def _paint_setting(
    sky: FloatArray,
    sky_mask: Mask,
    scene: Scene,
    canvas: Canvas,
    rng: np.random.Generator,
    horizon: int,
) -> None:
    ground = np.array(scene.ground, dtype=np.float32)
    setting = scene.backdrop
    # Clouds thin out in the dark, so a night sky stays a night sky.
    opacity = 0.9 * min(scene.brightness / 0.92, 1.0)
    if setting == "sky":
        count = int(rng.integers(4, 8)) * canvas.width // max(canvas.height, 1) // 2 + 2
        lowest = min(0.75, horizon / canvas.height - 0.15)  # clouds stay above any water
        paint_clouds(sky, canvas, rng, ground, count=count, lowest=lowest, opacity=opacity)
    elif setting == "ocean":
        clouds = np.array(scene.sky_bottom, dtype=np.float32) * 0.3 + 0.7 * 250.0
        count = int(rng.integers(2, 5))
        paint_clouds(sky, canvas, rng, clouds, count=count, lowest=0.4, opacity=opacity)
        paint_sea(sky, canvas, horizon, ground)
        sky_mask[horizon:] = False
    elif setting == "forest":
        paint_forest(sky, sky_mask, canvas, rng, horizon, ground)
    elif setting == "desert":
        paint_dunes(
            sky, sky_mask, canvas, rng, horizon, ground, layers=3, relief=1.0, contrast=0.16
        )
    elif setting == "snow":
        paint_dunes(
            sky, sky_mask, canvas, rng, horizon, ground, layers=2, relief=0.6, contrast=0.05
        )
    elif setting == "space":
        paint_space(sky, canvas, rng, ground)


def _paint_sun(
    sky: FloatArray, scene: Scene, canvas: Canvas, rng: np.random.Generator, horizon: int
) -> None:
    time_of_day, height = scene.time_of_day, canvas.height
    glow_colour, disc_colour, disc, glow, strength = {
        "night": ((170.0, 185.0, 255.0), (235.0, 238.0, 250.0), 0.055, 0.16, 0.25),
        "sunset": ((255.0, 150.0, 80.0), (255.0, 205.0, 140.0), 0.08, 0.42, 0.45),
        "dawn": ((255.0, 190.0, 170.0), (255.0, 232.0, 205.0), 0.07, 0.38, 0.38),
        "day": ((255.0, 250.0, 225.0), (255.0, 252.0, 235.0), 0.06, 0.30, 0.30),
    }[time_of_day or "day"]
    horizon = min(horizon, height)
    low = time_of_day in ("sunset", "dawn")
    cy = horizon - height * 0.1 if low else height * float(rng.uniform(0.14, 0.26))
    cx = canvas.width * float(rng.uniform(0.2, 0.8))
    distance = np.sqrt((canvas.xs[None, :] - cx) ** 2 + (canvas.ys[:horizon, None] - cy) ** 2)
    glow_alpha = strength * np.clip(1.0 - distance / (glow * height), 0.0, 1.0) ** 2
    disc_alpha = np.clip(disc * height - distance + 0.5, 0.0, 1.0) * 0.9
    upper = sky[:horizon]
    upper += glow_alpha[:, :, None] * (np.array(glow_colour, dtype=np.float32) - upper)
    upper += disc_alpha[:, :, None] * (np.array(disc_colour, dtype=np.float32) - upper)


def _paint_skyline(
    sky: FloatArray,
    sky_mask: Mask,
    scene: Scene,
    canvas: Canvas,
    rng: np.random.Generator,
    ground: int,
) -> None:
    height, width = canvas.height, canvas.width
    dim = scene.time_of_day in ("night", "sunset") or scene.mood == "dark"
    window_colour = np.array(
        (255.0, 205.0, 120.0) if dim else (225.0, 235.0, 245.0), dtype=np.float32
    )
    lit_share = 0.4 if dim else 0.18
    cell = max(3, round(height * 0.03))
    pane = max(1, round(cell * 0.5))
    x = int(rng.integers(-cell * 2, 1))
    while x < width:
        building_width = int(width * rng.uniform(0.05, 0.11)) + cell
        building_height = int(height * rng.uniform(0.14, 0.42))
        left, right = max(x, 0), min(x + building_width, width)
        top = max(ground - building_height, 0)
        if right > left:
            block = sky[top:ground, left:right]
            shade = float(rng.uniform(0.25, 0.4))
            block *= shade  # silhouettes keep a trace of the sky's hue
            rows, cols = block.shape[0], block.shape[1]
            lit = rng.random((rows // cell + 1, cols // cell + 1)) < lit_share
            lit = np.repeat(np.repeat(lit, cell, axis=0), cell, axis=1)[:rows, :cols]
            pane_rows = (np.arange(rows) % cell) >= cell - pane
            pane_cols = (np.arange(cols) % cell) >= cell - pane
            windows = lit & pane_rows[:, None] & pane_cols[None, :]
            windows[:cell, :] = False  # a roof line without windows
            block[windows] = window_colour
            sky_mask[top:ground, left:right] = False
        x += building_width + int(rng.integers(0, cell * 2))
