"""The balls and squares of a scene and how they move: bouncing, spinning, drifting, zoom, orbit.

:func:`place_bodies` fixes each body's size, anchor, phase and rate once per clip;
:func:`pose` gives its position, size and rotation at any time ``t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reelforge.media.render.arrays import FloatArray
from reelforge.media.render.scene import Scene
from reelforge.media.render.vocabulary import SHAPES

__all__ = ["Body", "Pose", "ground_line", "place_bodies", "pose"]

# Centre x, centre y, size factor and rotation (radians).
Pose = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Body:
    """One moving ball or square and the fixed parameters of its motion."""

    kind: str
    colour: FloatArray
    radius: float
    anchor_x: float  # 0..1 of the frame
    anchor_y: float
    phase: float  # 0..1
    rate: float  # cycles per second
    direction: float  # +1 or -1


def place_bodies(scene: Scene, unit: int, rng: np.random.Generator) -> list[Body]:
    """The scene's balls and squares, sized from ``unit`` (the frame's shorter side)."""
    bodies: list[Body] = []
    shapes = [subject for subject in scene.subjects if subject in SHAPES]
    if not shapes:
        return bodies
    count = scene.object_count * len(shapes) if len(shapes) == 1 else scene.object_count + 1
    count = min(count, 9)
    base_radius = unit * (0.17 if count == 1 else 0.13 if count <= 3 else 0.09)
    for number in range(count):
        kind = shapes[number % len(shapes)]
        colour = scene.subject_colours[scene.subjects.index(kind)]
        bodies.append(
            Body(
                kind=kind,
                colour=np.array(colour, dtype=np.float32),
                radius=base_radius * float(rng.uniform(0.8, 1.15)),
                anchor_x=(number + float(rng.uniform(0.25, 0.75))) / count,
                anchor_y=float(rng.uniform(0.3, 0.6)),
                phase=float(rng.uniform(0.0, 1.0)),
                rate=float(rng.uniform(0.8, 1.2)),
                direction=1.0 if rng.integers(2) else -1.0,
            )
        )
    return bodies


def ground_line(horizon: int, height: int) -> float:
    """The row bouncing bodies land on (and cast their shadows at)."""
    return min(horizon + height * 0.08, height * 0.92)


def pose(
    scene: Scene,
    body: Body,
    number: int,
    t: float,
    *,
    width: int,
    height: int,
    horizon: int,
    duration_seconds: float,
    body_count: int,
) -> Pose:
    """Centre x, centre y, size factor and rotation (radians) of ``body`` at time ``t``."""
    speed, motion = scene.speed, scene.motion
    radius = body.radius
    cycle = body.phase + body.rate * speed * t
    if motion == "bouncing":
        ground = ground_line(horizon, height)
        hop = (cycle * 0.9) % 1.0
        lift = 4.0 * hop * (1.0 - hop)
        top_reach = height * (0.15 + 0.2 * body.anchor_y)
        cy = ground - radius - lift * max(ground - radius - top_reach, 0.0)
        cx = _bounce_between(
            body.anchor_x * width + body.direction * width * 0.12 * speed * t,
            radius,
            width - radius,
        )
        return cx, cy, 1.0, body.direction * cycle * 1.5
    if motion == "spinning":
        cx = body.anchor_x * width + radius * 0.2 * math.sin(2 * math.pi * cycle * 0.3)
        cy = height * (0.3 + 0.3 * body.anchor_y) + radius * 0.3 * math.sin(2 * math.pi * cycle)
        return cx, cy, 1.0, body.direction * 2 * math.pi * 0.45 * body.rate * speed * t
    if motion == "drifting":
        span = width + 2 * radius
        cx = (body.anchor_x * span + body.direction * width * 0.07 * speed * t) % span - radius
        cy = height * (0.2 + 0.5 * body.anchor_y) + height * 0.06 * math.sin(
            2 * math.pi * (body.phase + 0.25 * body.rate * speed * t)
        )
        return cx, cy, 1.0, 0.4 * math.sin(2 * math.pi * 0.1 * cycle)
    if motion == "zoom":
        progress = min(t / duration_seconds, 1.0)
        grow = 0.55 + 0.9 * progress * progress * (3 - 2 * progress)
        cx = width / 2 + (body.anchor_x - 0.5) * width * 0.7 * grow
        cy = height / 2 + (body.anchor_y - 0.45) * height * 0.6 * grow
        return cx, cy, grow, 0.3 * body.direction * cycle
    # orbit: around the frame centre, bodies spread evenly on the ellipse
    count = body_count or 1
    angle = 2 * math.pi * (number / count + 0.12 * body.direction * speed * t + body.phase * 0.1)
    depth = 0.85 + 0.15 * math.sin(angle)
    cx = width / 2 + width * 0.3 * math.cos(angle)
    cy = height / 2 + height * 0.22 * math.sin(angle)
    return cx, cy, depth, angle


def _bounce_between(position: float, low: float, high: float) -> float:
    """Reflect a free-running coordinate into [low, high] (a triangle wave)."""
    if high <= low:
        return (low + high) / 2
    span = high - low
    folded = (position - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)
