"""Pixel primitives: shaded balls, bevelled squares, soft shadows, alpha blending.

Everything draws into a uint8 RGB frame in place, with numpy operations limited
to the shape's bounding box, so a small shape costs little on a large frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reelforge.media.render.arrays import FloatArray, ImageArray

__all__ = ["Canvas", "blend", "draw_ball", "draw_shadow", "draw_square"]


@dataclass(frozen=True, slots=True)
class Canvas:
    """A frame's size and its pixel coordinates, shared by everything that draws."""

    width: int
    height: int
    xs: FloatArray  # 0 .. width-1, float32
    ys: FloatArray  # 0 .. height-1, float32

    @classmethod
    def of_size(cls, width: int, height: int) -> Canvas:
        return cls(
            width=width,
            height=height,
            xs=np.arange(width, dtype=np.float32),
            ys=np.arange(height, dtype=np.float32),
        )

    def box(self, cx: float, cy: float, half: float) -> tuple[int, int, int, int] | None:
        """(x0, x1, y0, y1) of the square of half-side ``half`` around (cx, cy), clipped."""
        x0, x1 = max(int(cx - half) - 1, 0), min(int(cx + half) + 2, self.width)
        y0, y1 = max(int(cy - half) - 1, 0), min(int(cy + half) + 2, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1


def blend(region: ImageArray, colour: FloatArray, alpha: FloatArray) -> None:
    """Alpha-blend ``colour`` (broadcastable to region) over ``region`` in place."""
    base = region.astype(np.float32)
    base += alpha[:, :, None] * (colour - base)
    np.clip(base, 0.0, 255.0, out=base)
    region[...] = base


def draw_ball(
    frame: ImageArray,
    canvas: Canvas,
    cx: float,
    cy: float,
    radius: float,
    colour: FloatArray,
    spin: float | None,
) -> None:
    """A shaded sphere; with ``spin`` (radians), alternating segments show its rotation."""
    box = canvas.box(cx, cy, radius)
    if box is None or radius < 1:
        return
    x0, x1, y0, y1 = box
    nx = (canvas.xs[x0:x1] - cx) / radius
    ny = (canvas.ys[y0:y1] - cy) / radius
    q2 = ny[:, None] ** 2 + nx[None, :] ** 2
    alpha = np.clip((1.0 - np.sqrt(q2)) * radius + 0.5, 0.0, 1.0)
    # Lambert shading of a sphere lit from the upper left, plus a specular spot.
    nz = np.sqrt(np.clip(1.0 - q2, 0.0, 1.0))
    diffuse = np.clip(-0.42 * nx[None, :] - 0.5 * ny[:, None] + 0.76 * nz, 0.0, 1.0)
    shade = 0.3 + 0.8 * diffuse
    body_colour = colour[None, None, :] * shade[:, :, None]
    if spin is not None:
        # Alternating segments make the rotation visible.
        segment = (np.arctan2(ny[:, None], nx[None, :]) + spin) % (math.pi / 2) < math.pi / 4
        body_colour = np.where(
            segment[:, :, None],
            body_colour,
            body_colour * 0.55 + 0.45 * 255 * shade[:, :, None],
        )
    highlight = diffuse**24 * 200.0
    body_colour = body_colour + highlight[:, :, None]
    blend(frame[y0:y1, x0:x1], body_colour, alpha)


def draw_square(
    frame: ImageArray,
    canvas: Canvas,
    cx: float,
    cy: float,
    half: float,
    angle: float,
    colour: FloatArray,
) -> None:
    """A bevelled square of half-side ``half``, turned by ``angle`` radians."""
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    box = canvas.box(cx, cy, half * (abs(cos_a) + abs(sin_a)))
    if box is None or half < 1:
        return
    x0, x1, y0, y1 = box
    dx = canvas.xs[x0:x1] - cx
    dy = canvas.ys[y0:y1] - cy
    u = cos_a * dx[None, :] + sin_a * dy[:, None]
    v = -sin_a * dx[None, :] + cos_a * dy[:, None]
    inside = half - np.maximum(np.abs(u), np.abs(v))
    alpha = np.clip(inside + 0.5, 0.0, 1.0)
    # A bevel lit from the top left, and a dark rim so the square stands out
    # against a sky of its own hue.
    bevel = np.clip(inside / (0.22 * half), 0.0, 1.0)
    light = np.clip(0.5 - 0.35 * (u + v) / half, 0.0, 1.0)
    rim = np.clip(inside / max(half * 0.06, 1.0), 0.0, 1.0)
    shade = (0.7 + 0.45 * light + 0.35 * (1.0 - bevel)) * (0.35 + 0.65 * rim)
    blend(frame[y0:y1, x0:x1], colour[None, None, :] * shade[:, :, None], alpha)


def draw_shadow(frame: ImageArray, canvas: Canvas, cx: float, ground: float, radius: float) -> None:
    """A soft elliptical shadow on the ground line under a body of ``radius``."""
    rx, ry = radius * 0.9, radius * 0.18
    box = canvas.box(cx, ground, rx)
    if box is None:
        return
    x0, x1, _, _ = box
    y0, y1 = max(int(ground - ry) - 1, 0), min(int(ground + ry) + 2, canvas.height)
    if y0 >= y1:
        return
    q2 = ((canvas.xs[x0:x1] - cx) / rx)[None, :] ** 2 + ((canvas.ys[y0:y1] - ground) / ry)[
        :, None
    ] ** 2
    alpha = np.clip(1.0 - q2, 0.0, 1.0) * 0.35
    blend(frame[y0:y1, x0:x1], np.zeros(3, dtype=np.float32), alpha)
