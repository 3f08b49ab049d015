"""Moving layers of many small parts: twinkling stars, falling rain and snow, rolling waves.

Each layer is planned once per clip (positions and rates from the renderer's seeded
generator) and then drawn into every frame by :meth:`draw` at time ``t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reelforge.media.render.arrays import FloatArray, ImageArray, Mask
from reelforge.media.render.drawing import Canvas

__all__ = ["Rain", "Snowfall", "Stars", "Waves"]

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Stars:
    """Star positions, arm lengths, brightness and twinkle (rate, phase in milli-units)."""

    canvas: Canvas
    xs: IntArray
    ys: IntArray
    arms: IntArray
    brightness: IntArray
    rate: IntArray
    phase: IntArray
    tint: FloatArray  # 0..1 RGB
    drift: float  # pixels per second the field slides sideways (0: fixed)

    @classmethod
    def place(
        cls,
        canvas: Canvas,
        rng: np.random.Generator,
        *,
        featured: bool,
        horizon: int,
        sky_mask: Mask,
        colour: FloatArray,
        drift: float,
    ) -> Stars:
        """A field denser when the stars are the scene's first subject, kept to open sky."""
        width, height = canvas.width, canvas.height
        count = int(rng.integers(90, 160) if featured else rng.integers(40, 80))
        count = max(8, count * width * height // (1280 * 720) + count // 3)
        sky_bottom = int(min(horizon, height) * (0.9 if horizon < height else 1.0))
        xs = rng.integers(0, width, count)
        ys = rng.integers(0, max(sky_bottom, 1), count)
        keep = sky_mask[ys, xs]
        scale = max(1, round(height / 360))
        arms = rng.choice([0, 0, 0, 1, 1, 2] if featured else [0, 0, 0, 0, 1], size=count) * scale
        # Brightness 0..255 and twinkle (rate, phase) packed as integer milli-units.
        brightness = rng.integers(150, 256, count)
        rate = rng.integers(300, 1500, count)
        phase = rng.integers(0, 1000, count)
        return cls(
            canvas=canvas,
            xs=xs[keep],
            ys=ys[keep],
            arms=arms[keep],
            brightness=brightness[keep],
            rate=rate[keep],
            phase=phase[keep],
            tint=colour / 255.0,
            drift=drift,
        )

    def draw(self, frame: ImageArray, t: float) -> None:
        width, height = self.canvas.width, self.canvas.height
        xs, ys, arms = self.xs, self.ys, self.arms
        if self.drift:
            xs = (xs + int(self.drift * t)) % width
        twinkle = 0.6 + 0.4 * np.sin(2 * np.pi * (self.phase / 1000.0 + self.rate / 1000.0 * t))
        level = (self.brightness * twinkle).astype(np.float32)
        colour = level[:, None] * (0.35 + 0.65 * self.tint[None, :])
        max_arm = int(arms.max(initial=0))
        offsets = [(0, 0, 1.0)] + [
            (dy * step, dx * step, 0.7 / step)
            for step in range(1, max_arm + 1)
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
        ]
        for dy, dx, weight in offsets:
            reach = max(abs(dy), abs(dx))
            chosen = arms >= reach
            py = np.clip(ys[chosen] + dy, 0, height - 1)
            px = np.clip(xs[chosen] + dx, 0, width - 1)
            current = frame[py, px]
            frame[py, px] = np.maximum(current, (colour[chosen] * weight).astype(np.uint8))


@dataclass(frozen=True, slots=True)
class Rain:
    """Drops (x, y, fall speed in px/s) drawn as slanted streaks of ``length`` pixels."""

    canvas: Canvas
    xs: FloatArray
    ys: FloatArray
    speeds: FloatArray
    length: int
    slant: float  # dx per dy
    colour: FloatArray
    speed: float  # the scene's speed factor

    @classmethod
    def place(
        cls, canvas: Canvas, rng: np.random.Generator, *, colour: FloatArray, speed: float
    ) -> Rain:
        width, height = canvas.width, canvas.height
        count = int(rng.integers(140, 220)) * width * height // (1280 * 720) + 30
        length = max(3, round(height * 0.045))
        slant = float(rng.uniform(0.1, 0.3))
        xs = rng.uniform(-slant * height, width, count).astype(np.float32)
        ys = rng.uniform(0, height, count).astype(np.float32)
        speeds = (rng.uniform(1.1, 1.6, count) * height).astype(np.float32)
        return cls(
            canvas=canvas,
            xs=xs,
            ys=ys,
            speeds=speeds,
            length=length,
            slant=slant,
            colour=0.5 * colour + 0.5 * 220.0,
            speed=speed,
        )

    def draw(self, frame: ImageArray, t: float) -> None:
        width, height, length = self.canvas.width, self.canvas.height, self.length
        span = height + length
        heads = (self.ys + self.speeds * t * self.speed) % span - length
        steps = np.arange(length, dtype=np.float32)
        py = (heads[:, None] + steps[None, :]).astype(np.intp)
        px = (self.xs[:, None] + (heads[:, None] + steps[None, :]) * self.slant).astype(np.intp)
        visible = (py >= 0) & (py < height) & (px >= 0) & (px < width)
        py, px = py[visible], px[visible]
        current = frame[py, px].astype(np.float32)
        frame[py, px] = (current * 0.45 + self.colour * 0.55).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Snowfall:
    """Flakes (x, y, fall speed in px/s) that sway sideways as they fall, in front of the scene."""

    canvas: Canvas
    xs: FloatArray
    ys: FloatArray
    speeds: FloatArray
    sway: FloatArray  # amplitude in pixels
    sway_rate: FloatArray  # cycles per second
    sway_phase: FloatArray  # 0..1
    big: npt.NDArray[np.bool_]  # flakes drawn as a small cross rather than one pixel
    speed: float  # the scene's speed factor

    @classmethod
    def place(cls, canvas: Canvas, rng: np.random.Generator, *, speed: float) -> Snowfall:
        width, height = canvas.width, canvas.height
        count = int(rng.integers(160, 240)) * width * height // (1280 * 720) + 40
        return cls(
            canvas=canvas,
            xs=rng.uniform(0, width, count).astype(np.float32),
            ys=rng.uniform(0, height, count).astype(np.float32),
            speeds=(rng.uniform(0.06, 0.16, count) * height).astype(np.float32),
            sway=(rng.uniform(0.004, 0.015, count) * width).astype(np.float32),
            sway_rate=rng.uniform(0.15, 0.45, count).astype(np.float32),
            sway_phase=rng.uniform(0.0, 1.0, count).astype(np.float32),
            big=rng.random(count) < 0.35,
            speed=speed,
        )

    def draw(self, frame: ImageArray, t: float) -> None:
        width, height = self.canvas.width, self.canvas.height
        ys = (self.ys + self.speeds * (t * self.speed)) % (height + 4) - 2
        swing = np.sin(2 * np.pi * (self.sway_phase + self.sway_rate * t))
        xs = (self.xs + self.sway * swing) % width
        py, px = ys.astype(np.intp), xs.astype(np.intp)
        scale = max(1, round(height / 360))
        offsets = [(0, 0)] + [
            (dy * step, dx * step)
            for step in range(1, scale + 1)
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
        ]
        for dy, dx in offsets:
            chosen = self.big if (dy, dx) != (0, 0) else slice(None)
            rows = np.clip(py[chosen] + dy, 0, height - 1)
            columns = np.clip(px[chosen] + dx, 0, width - 1)
            current = frame[rows, columns].astype(np.float32)
            frame[rows, columns] = (current * 0.2 + 252.0 * 0.8).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Waves:
    """Wave layers back to front: (base y, amplitude, wavenumber, rate, phase) each."""

    canvas: Canvas
    layers: tuple[tuple[float, float, float, float, float], ...]
    palette: ImageArray  # colour by depth: index n = covered by n layers
    crests: ImageArray  # one foam colour per layer
    crest_thickness: int
    speed: float  # the scene's speed factor

    @classmethod
    def plan(
        cls,
        canvas: Canvas,
        rng: np.random.Generator,
        *,
        horizon: int,
        colour: FloatArray,
        haze: FloatArray,
        speed: float,
    ) -> Waves:
        """Three layers below ``horizon``; far water takes on ``haze`` (the sky's colour)."""
        width, height = canvas.width, canvas.height
        layers = []
        palette = [np.zeros(3, dtype=np.float32)]  # depth 0: not water, never looked up
        crests = []
        for layer in range(3):
            # Layers are spaced wider than their swells, so nearer water is always lower.
            base = horizon + height * (0.02 + 0.12 * layer)
            amplitude = height * 0.022 * (1.0 + 0.45 * layer)
            wavelength = width * float(rng.uniform(0.3, 0.55)) * (1.0 + 0.3 * layer)
            rate = float(rng.uniform(0.25, 0.45)) * (1.0 + 0.3 * layer)
            phase = float(rng.uniform(0.0, 2 * math.pi))
            layers.append((base, amplitude, 2 * math.pi / wavelength, rate, phase))
            # Far water takes on the sky's haze; near water is deep and saturated.
            mix = (0.45, 0.2, 0.0)[layer]
            depth = (1.0, 0.78, 0.58)[layer]
            layer_colour = colour * depth * (1 - mix) + haze * mix
            palette.append(layer_colour)
            crests.append(layer_colour * 0.45 + 0.55 * 245.0)
        return cls(
            canvas=canvas,
            layers=tuple(layers),
            palette=np.clip(np.stack(palette), 0, 255).astype(np.uint8),
            crests=np.clip(np.stack(crests), 0, 255).astype(np.uint8),
            crest_thickness=max(1, height // 240),
            speed=speed,
        )

    def draw(self, frame: ImageArray, t: float) -> None:
        width, height = self.canvas.width, self.canvas.height
        surfaces = []
        for base, amplitude, wavenumber, rate, phase in self.layers:
            angle = wavenumber * self.canvas.xs
            offset = 2 * math.pi * rate * self.speed * t + phase
            swell = 0.65 * np.sin(angle + offset) + 0.35 * np.sin(1.9 * angle - offset)
            surfaces.append(np.clip(base + amplitude * swell, 0, height))
        # depth[y, x] = how many layers cover the pixel; only rows a surface crosses
        # need a comparison, rows below it are covered everywhere.
        top = int(surfaces[0].min())
        depth = np.zeros((height - top, width), dtype=np.uint8)
        for surface in surfaces:
            low, high = int(surface.min()), min(int(surface.max()) + 1, height)
            depth[high - top :] += 1
            depth[low - top : high - top] += self.canvas.ys[low:high, None] >= surface[None, :]
        mixed_rows = min(int(surfaces[0].max()) + 1, height) - top
        shore = frame[top : top + mixed_rows]
        water = depth[:mixed_rows] > 0
        shore[water] = self.palette[depth[:mixed_rows][water]]
        np.take(
            self.palette, depth[mixed_rows:], axis=0, out=frame[top + mixed_rows :], mode="clip"
        )
        columns = np.arange(width)
        for surface, crest in zip(surfaces, self.crests, strict=True):
            rows = surface.astype(np.intp)
            for thickness in range(self.crest_thickness):
                frame[np.minimum(rows + thickness, height - 1), columns] = crest
