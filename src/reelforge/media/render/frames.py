"""Frames of a scene: :class:`SceneRenderer` composes the backdrop, layers, bodies and caption.

Everything static is drawn once into the backdrop; moving shapes are drawn only
inside their bounding boxes, so a frame costs one copy plus what moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelforge.media.render.arrays import FloatArray, ImageArray, Mask
from reelforge.media.render.backdrop import horizon_of, paint_backdrop
from reelforge.media.render.drawing import Canvas, draw_ball, draw_shadow, draw_square
from reelforge.media.render.layers import Rain, Snowfall, Stars, Waves
from reelforge.media.render.motion import Body, ground_line, place_bodies, pose
from reelforge.media.render.reference import plan_pan
from reelforge.media.render.scene import Scene
from reelforge.media.render.text import caption_mask

__all__ = ["SceneRenderer"]


@dataclass(frozen=True, slots=True)
class _Caption:
    """The caption's text mask, where it sits, and the padding of its dark panel."""

    top: int
    left: int
    mask: Mask
    pad: int


class SceneRenderer:
    """Draws the frames of one scene at one size.

    Construction precomputes everything static (sky, sun, setting, skyline, caption
    bitmap, star, raindrop and snowflake positions); :meth:`frame` then only draws
    what moves. With a ``reference`` image, the image (darkened, slightly larger than
    the frame) takes the place of sky, sun, setting and skyline, and each frame is a
    window moving slowly across it: one slice copy per frame, as cheap as a plain
    background.
    """

    def __init__(
        self,
        scene: Scene,
        width: int,
        height: int,
        fps: float,
        duration_seconds: float,
        *,
        reference: ImageArray | None = None,
    ) -> None:
        self.scene = scene
        self.width = width
        self.height = height
        self.fps = fps
        self.duration_seconds = max(duration_seconds, 1.0 / fps)
        # One generator, drawn from in a fixed order: the same seed gives the same frames.
        rng = np.random.default_rng(scene.variation)
        self._canvas = canvas = Canvas.of_size(width, height)
        self._horizon = horizon_of(scene, height)
        self._pan = None if reference is None else plan_pan(reference, width, height, rng)
        if self._pan is None:
            self._background, sky_mask = paint_backdrop(scene, canvas, rng, self._horizon)
        else:
            self._background = self._pan.window(0.0)
            sky_mask = np.ones((height, width), dtype=np.bool_)
        self._bodies = place_bodies(scene, min(width, height), rng)
        self._stars = (
            Stars.place(
                canvas,
                rng,
                featured=scene.subjects.index("stars") == 0 or scene.backdrop == "space",
                horizon=self._horizon,
                sky_mask=sky_mask,
                colour=self._colour_of("stars"),
                drift=width * 0.02 * scene.speed if scene.motion == "drifting" else 0.0,
            )
            if "stars" in scene.subjects
            else None
        )
        self._rain = (
            Rain.place(canvas, rng, colour=self._colour_of("rain"), speed=scene.speed)
            if "rain" in scene.subjects
            else None
        )
        self._waves = (
            Waves.plan(
                canvas,
                rng,
                horizon=self._horizon,
                colour=self._colour_of("waves"),
                haze=np.array(scene.sky_bottom, dtype=np.float32),
                speed=scene.speed,
            )
            if "waves" in scene.subjects
            else None
        )
        self._snowfall = (
            Snowfall.place(canvas, rng, speed=scene.speed) if scene.backdrop == "snow" else None
        )
        self._caption = self._place_caption()

    def frame(self, index: int, out: ImageArray | None = None) -> ImageArray:
        """Frame ``index`` as an (height, width, 3) uint8 RGB array, drawn into ``out``."""
        if out is None:
            out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        if self._pan is None:
            np.copyto(out, self._background)
        else:
            np.copyto(out, self._pan.window(min(index / self.fps / self.duration_seconds, 1.0)))
        t = index / self.fps
        if self._stars is not None:
            self._stars.draw(out, t)
        if self._waves is not None:
            self._waves.draw(out, t)
        for number, body in enumerate(self._bodies):
            self._draw_body(out, body, number, t)
        if self._rain is not None:
            self._rain.draw(out, t)
        if self._snowfall is not None:
            self._snowfall.draw(out, t)
        if self._caption is not None:
            self._draw_caption(out, self._caption)
        return out

    def _colour_of(self, subject: str) -> FloatArray:
        index = self.scene.subjects.index(subject)
        return np.array(self.scene.subject_colours[index], dtype=np.float32)

    def _place_caption(self) -> _Caption | None:
        if not self.scene.caption:
            return None
        mask = caption_mask(self.scene.caption, self.width, self.height)
        if mask.shape[0] >= self.height or mask.shape[1] >= self.width:
            return None  # a frame too small for any legible text
        pad = max(2, mask.shape[0] // 6)
        top = max(self.height - mask.shape[0] - pad - round(self.height * 0.06), pad)
        left = (self.width - mask.shape[1]) // 2
        return _Caption(top=top, left=left, mask=mask, pad=pad)

    def _draw_body(self, frame: ImageArray, body: Body, number: int, t: float) -> None:
        cx, cy, size, angle = pose(
            self.scene,
            body,
            number,
            t,
            width=self.width,
            height=self.height,
            horizon=self._horizon,
            duration_seconds=self.duration_seconds,
            body_count=len(self._bodies),
        )
        radius = body.radius * size
        motion = self.scene.motion
        if motion == "bouncing":
            ground = ground_line(self._horizon, self.height)
            draw_shadow(frame, self._canvas, cx, ground, radius)
        if body.kind == "ball":
            spin = angle if motion in ("spinning", "orbit", "bouncing") else None
            draw_ball(frame, self._canvas, cx, cy, radius, body.colour, spin)
        else:
            draw_square(frame, self._canvas, cx, cy, radius * 0.9, angle, body.colour)

    def _draw_caption(self, frame: ImageArray, caption: _Caption) -> None:
        top, left, mask, pad = caption.top, caption.left, caption.mask, caption.pad
        height, width = mask.shape
        panel = frame[top - pad : top + height + pad, left - pad : left + width + pad]
        np.right_shift(panel, 1, out=panel)  # a half-dark panel keeps the text readable
        panel[pad : pad + height, pad : pad + width][mask] = (255, 250, 235)
