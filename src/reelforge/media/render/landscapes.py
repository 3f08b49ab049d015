"""Procedural settings painted into a backdrop: clouds, open sea, forest, dunes, snowfields, space.

Each painter draws in place into the float32 sky (already holding the sky's
gradient) with numpy operations over the rows or boxes it covers, once per clip;
all randomness comes from the renderer's seeded generator, so a seed always gives
the same landscape. Painters that cover the sky clear ``sky_mask`` there, so
stars are only placed in open sky.
"""

from __future__ import annotations

import math

import numpy as np

from reelforge.media.render.arrays import FloatArray, Mask
from reelforge.media.render.drawing import Canvas

__all__ = ["paint_clouds", "paint_dunes", "paint_forest", "paint_sea", "paint_space"]


def paint_clouds(
    sky: FloatArray,
    canvas: Canvas,
    rng: np.random.Generator,
    colour: FloatArray,
    *,
    count: int,
    lowest: float,
    opacity: float,
) -> None:
    """``count`` soft clouds of overlapping puffs, their centres above ``lowest`` (0..1)."""
    width, height = canvas.width, canvas.height
    for _ in range(count):
        cx = width * float(rng.uniform(-0.05, 1.05))
        cy = height * float(rng.uniform(0.08, lowest))
        size = height * float(rng.uniform(0.05, 0.1))
        puffs = int(rng.integers(4, 7))
        puff_x = cx + size * rng.uniform(-1.6, 1.6, puffs)
        puff_y = cy + size * rng.uniform(-0.4, 0.15, puffs)
        puff_r = size * rng.uniform(0.6, 1.0, puffs)
        x0, x1 = max(int(cx - 2.7 * size), 0), min(int(cx + 2.7 * size) + 1, width)
        y0, y1 = max(int(cy - 1.3 * size), 0), min(int(cy + 0.9 * size) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        xs, ys = canvas.xs[x0:x1], canvas.ys[y0:y1]
        alpha = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        for px, py, radius in zip(puff_x, puff_y, puff_r, strict=True):
            q2 = ((xs - px) / radius)[None, :] ** 2 + ((ys - py) / (0.8 * radius))[:, None] ** 2
            np.maximum(alpha, np.clip(1.3 * (1.0 - q2), 0.0, 1.0), out=alpha)
        # Lit from above: the underside of a cloud is a little greyer.
        underside = np.clip((ys - (cy - size)) / (2.0 * size), 0.0, 1.0)[:, None, None]
        shaded = colour * (1.0 - 0.14 * underside)
        region = sky[y0:y1, x0:x1]
        region += (opacity * alpha)[:, :, None] * (shaded - region)


def paint_sea(sky: FloatArray, canvas: Canvas, horizon: int, water: FloatArray) -> None:
    """Open water from the horizon down: hazy far away, deeper near; a bright horizon line."""
    height = canvas.height
    if horizon >= height:
        return
    haze = sky[max(horizon - 1, 0)].mean(axis=0)
    depth = np.linspace(0.0, 1.0, height - horizon, dtype=np.float32)[:, None, None]
    mix = 0.55 * (1.0 - depth) ** 2
    sky[horizon:] = (water * (1.0 - 0.3 * depth)) * (1.0 - mix) + haze * mix
    line = max(1, height // 360)
    sky[horizon : horizon + line] += 0.35 * (250.0 - sky[horizon : horizon + line])


def paint_forest(
    sky: FloatArray,
    sky_mask: Mask,
    canvas: Canvas,
    rng: np.random.Generator,
    horizon: int,
    trees: FloatArray,
) -> None:
    """A forest floor and three rows of conifer silhouettes, hazier with distance."""
    width, height = canvas.width, canvas.height
    haze = sky[max(horizon - 1, 0)].mean(axis=0)
    floor = np.linspace(0.75, 0.5, height - horizon, dtype=np.float32)[:, None, None]
    sky[horizon:] = trees * floor
    sky_mask[horizon:] = False
    for row in range(3):  # far to near, so nearer trees are drawn over farther ones
        base = horizon + height * (0.0, 0.05, 0.12)[row]
        mix = (0.5, 0.25, 0.0)[row]
        colour = trees * (0.95, 0.72, 0.5)[row] * (1.0 - mix) + haze * mix
        x = width * float(rng.uniform(-0.08, 0.0))
        while x < width * 1.05:
            tree_height = height * (0.2, 0.28, 0.4)[row] * float(rng.uniform(0.75, 1.2))
            half = tree_height * float(rng.uniform(0.2, 0.28))
            _paint_conifer(sky, sky_mask, canvas, x, base, tree_height, half, colour)
            x += half * float(rng.uniform(0.9, 1.5))


def _paint_conifer(
    sky: FloatArray,
    sky_mask: Mask,
    canvas: Canvas,
    cx: float,
    base: float,
    tree_height: float,
    half: float,
    colour: FloatArray,
) -> None:
    top = base - tree_height
    x0, x1 = max(int(cx - half) - 1, 0), min(int(cx + half) + 2, canvas.width)
    y0, y1 = max(int(top), 0), min(int(base) + 1, canvas.height)
    if x0 >= x1 or y0 >= y1:
        return
    t = np.clip((canvas.ys[y0:y1] - top) / tree_height, 0.0, 1.0)
    tier = (t * 3.0) % 1.0  # three tiers of branches, each widening downwards
    reach = half * (0.25 + 0.75 * t) * (0.5 + 0.5 * tier)
    alpha = np.clip(reach[:, None] - np.abs(canvas.xs[x0:x1] - cx)[None, :] + 0.5, 0.0, 1.0)
    region = sky[y0:y1, x0:x1]
    region += alpha[:, :, None] * (colour - region)
    sky_mask[y0:y1, x0:x1] &= alpha < 0.5


def paint_dunes(
    sky: FloatArray,
    sky_mask: Mask,
    canvas: Canvas,
    rng: np.random.Generator,
    horizon: int,
    material: FloatArray,
    *,
    layers: int,
    relief: float,
    contrast: float,
) -> None:
    """Rolling ridges (sand dunes, snowy hills), lit from the left, hazier with distance.

    ``relief`` scales their height (about 1 for dunes, less for gentle snowfields);
    ``contrast`` how much lit and shaded faces differ, strongest along the crests.
    """
    width, height = canvas.width, canvas.height
    haze = sky[max(horizon - 1, 0)].mean(axis=0)
    for layer in range(layers):  # far to near
        base = horizon + height * 0.11 * layer
        amplitude = height * 0.035 * relief * (1.0 + 0.5 * layer)
        wavenumber = 2 * math.pi / (width * float(rng.uniform(0.45, 0.8)) * (1.0 + 0.4 * layer))
        phase, phase2 = (float(p) for p in rng.uniform(0.0, 2 * math.pi, 2))
        angle = wavenumber * canvas.xs
        ridge = np.sin(angle + phase) + 0.45 * np.sin(2.3 * angle + phase2)
        slope = np.cos(angle + phase) + 1.035 * np.cos(2.3 * angle + phase2)
        surface = np.clip(base - amplitude * (ridge + 1.45), 0.0, height)
        # Slopes rising to the right face the light: -1 (shaded) .. +1 (lit).
        facing = np.tanh(2.0 * slope)
        mix = 0.45 * (1.0 - layer / max(layers - 1, 1))
        near = 1.0 - 0.12 * layer
        top = int(surface.min())
        below = canvas.ys[top:, None] - surface[None, :]
        alpha = np.clip(below + 0.5, 0.0, 1.0)
        crest = np.exp(-np.maximum(below, 0.0) / (0.06 * height))
        depth = np.clip(below / (0.5 * height), 0.0, 1.0)
        shade = (0.95 + contrast * facing[None, :] * (0.35 + 0.65 * crest)) * (1.0 - 0.18 * depth)
        colour = (material * near) * shade[:, :, None] * (1.0 - mix) + haze * mix
        region = sky[top:]
        region += alpha[:, :, None] * (colour - region)
        sky_mask[top:] &= alpha < 0.5


def paint_space(
    sky: FloatArray, canvas: Canvas, rng: np.random.Generator, nebula: FloatArray
) -> None:
    """Faint glowing clouds of gas and a dust of tiny fixed stars on the dark sky."""
    width, height = canvas.width, canvas.height
    for _ in range(3):
        cx, cy = width * float(rng.uniform(0.1, 0.9)), height * float(rng.uniform(0.1, 0.9))
        sx, sy = width * float(rng.uniform(0.12, 0.28)), height * float(rng.uniform(0.1, 0.25))
        tint = np.roll(nebula, int(rng.integers(3))) * 0.35 + nebula * 0.65
        glow = (
            np.exp(-(((canvas.xs - cx) / sx) ** 2))[None, :]
            * np.exp(-(((canvas.ys - cy) / sy) ** 2))[:, None]
        )
        sky += (0.3 * glow)[:, :, None] * tint
    count = max(20, width * height // 700)
    xs = rng.integers(0, width, count)
    ys = rng.integers(0, height, count)
    level = rng.uniform(70.0, 190.0, count).astype(np.float32)
    sky[ys, xs] = np.maximum(sky[ys, xs], level[:, None])
