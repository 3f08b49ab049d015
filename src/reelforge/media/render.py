"""The offline procedural renderer behind the ``local`` provider.

This module owns four things:

* :func:`scene_from_prompt` turns a prompt and a seed into a :class:`Scene`, a plain
  description (palette, subjects, motion, mood, caption, music) — no pixels yet.
  Named colours, shapes, motion words, time of day and mood each steer a field;
  words we do not know still move the scene through a hash of the prompt, so every
  prompt gets its own look, and the seed varies positions, phases, counts and hues.
* :class:`SceneRenderer` draws the frames of a scene with numpy array operations
  (everything static is drawn once into the background; moving shapes are drawn
  only inside their bounding boxes), and :func:`synthesize_soundtrack` makes its
  music.
* Reference images: :func:`decode_image` reads a PNG, JPEG or WebP still with PyAV
  (the API validates uploads with it, the renderer loads them with it);
  :func:`scene_with_reference` takes the image's colours into the scene's palette,
  and the renderer shows the image itself as a darkened background that pans
  slowly across the frame (a Ken Burns move), under the scene's moving layers.
* :func:`render_video` encodes both into a real MP4 (H.264 yuv420p + AAC,
  faststart) with the bundled ffmpeg. Frames are generated in a worker thread and
  piped to ffmpeg, so drawing and encoding overlap and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import colorsys
import contextlib
import dataclasses
import hashlib
import io
import math
import re
import subprocess
import tempfile
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Final, cast

import av
import av.error
import numpy as np
import numpy.typing as npt

from reelforge.errors import FFmpegError, UnreadableMediaError
from reelforge.media.ffmpeg import atomic_output, ffmpeg_command, stderr_tail
from reelforge.models import GenerationRequest

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "IMAGE_CODECS",
    "MAX_IMAGE_PIXELS",
    "Scene",
    "SceneRenderer",
    "decode_image",
    "encode_png",
    "fit_image",
    "render_video",
    "scene_from_prompt",
    "scene_with_reference",
    "synthesize_soundtrack",
]

AUDIO_SAMPLE_RATE: Final = 48_000

RGB = tuple[int, int, int]
# Frames are computed in float32; the stubs widen some results to float64, so accept any.
FloatArray = npt.NDArray[np.floating[Any]]
ImageArray = npt.NDArray[np.uint8]

# ---------------------------------------------------------------------------
# Vocabulary: prompt words -> scene fields
# ---------------------------------------------------------------------------

# Named colours as (hue degrees, saturation, value); HSV so that shades of the
# same colour (darker sky, lighter highlight) keep its hue.
_COLOURS: Final[dict[str, tuple[float, float, float]]] = {
    "red": (0.0, 0.85, 0.90),
    "crimson": (350.0, 0.85, 0.80),
    "scarlet": (5.0, 0.90, 0.95),
    "orange": (28.0, 0.90, 1.00),
    "amber": (38.0, 0.90, 1.00),
    "golden": (43.0, 0.85, 0.95),
    "gold": (43.0, 0.85, 0.95),
    "yellow": (53.0, 0.85, 1.00),
    "lime": (95.0, 0.80, 0.90),
    "green": (125.0, 0.70, 0.78),
    "emerald": (145.0, 0.75, 0.75),
    "teal": (178.0, 0.85, 0.65),
    "turquoise": (172.0, 0.70, 0.85),
    "cyan": (188.0, 0.80, 0.95),
    "blue": (218.0, 0.80, 0.92),
    "navy": (228.0, 0.85, 0.50),
    "indigo": (250.0, 0.75, 0.60),
    "violet": (268.0, 0.55, 0.92),
    "lavender": (270.0, 0.35, 0.95),
    "purple": (282.0, 0.70, 0.72),
    "magenta": (305.0, 0.85, 0.90),
    "pink": (335.0, 0.45, 1.00),
    "brown": (26.0, 0.65, 0.52),
    "white": (0.0, 0.0, 0.97),
    "silver": (210.0, 0.06, 0.80),
    "grey": (0.0, 0.0, 0.55),
    "gray": (0.0, 0.0, 0.55),
    "black": (0.0, 0.0, 0.10),
}

_SUBJECT_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("ball", "balls", "circle", "circles", "sphere", "spheres"), "ball"),
    **dict.fromkeys(("orb", "orbs", "bubble", "bubbles", "planet", "planets"), "ball"),
    **dict.fromkeys(("square", "squares", "box", "boxes", "cube", "cubes"), "square"),
    **dict.fromkeys(("block", "blocks", "tile", "tiles"), "square"),
    **dict.fromkeys(("star", "stars", "starry", "starfield", "galaxy", "space"), "stars"),
    **dict.fromkeys(("wave", "waves", "ocean", "oceans", "sea", "seas", "water"), "waves"),
    **dict.fromkeys(("beach", "lake", "river", "surf"), "waves"),
    **dict.fromkeys(("rain", "rainy", "raining", "rainfall", "drizzle", "storm"), "rain"),
    **dict.fromkeys(("city", "cities", "skyline", "skylines", "town", "buildings"), "city"),
    **dict.fromkeys(("skyscraper", "skyscrapers", "downtown", "street"), "city"),
}
_PLURAL_SUBJECT_WORDS: Final = frozenset(
    {"balls", "circles", "spheres", "orbs", "bubbles", "planets"}
    | {"squares", "boxes", "cubes", "blocks", "tiles"}
)
_SHAPES: Final = ("ball", "square")

_MOTION_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("bouncing", "bounce", "bounces", "bouncy", "jumping", "hopping"), "bouncing"),
    **dict.fromkeys(("spinning", "spin", "spins", "rotating", "rotate", "rotates"), "spinning"),
    **dict.fromkeys(("twirling", "turning", "whirling"), "spinning"),
    **dict.fromkeys(("drifting", "drift", "drifts", "floating", "float", "floats"), "drifting"),
    **dict.fromkeys(("flying", "gliding", "sailing", "moving"), "drifting"),
    **dict.fromkeys(("zoom", "zooming", "zooms", "growing", "approaching"), "zoom"),
    **dict.fromkeys(("orbit", "orbits", "orbiting", "circling", "swirling"), "orbit"),
}
_MOTIONS: Final = ("bouncing", "spinning", "drifting", "zoom", "orbit")

_TIME_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("night", "nighttime", "midnight", "moon", "moonlit", "nocturnal"), "night"),
    **dict.fromkeys(("sunset", "dusk", "evening", "twilight"), "sunset"),
    **dict.fromkeys(("dawn", "sunrise", "morning", "daybreak"), "dawn"),
    **dict.fromkeys(("day", "daytime", "noon", "sunny", "afternoon", "daylight"), "day"),
}

_MOOD_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("calm", "peaceful", "serene", "gentle", "relaxing", "quiet"), "calm"),
    **dict.fromkeys(("tranquil", "slow", "dreamy", "soft", "lazy"), "calm"),
    **dict.fromkeys(("dark", "gloomy", "moody", "ominous", "spooky", "eerie"), "dark"),
    **dict.fromkeys(("bright", "vivid", "shiny", "radiant", "glowing", "luminous"), "bright"),
    **dict.fromkeys(("happy", "joyful", "cheerful", "playful", "fun", "joy"), "happy"),
    **dict.fromkeys(("sad", "melancholy", "melancholic", "lonely", "somber", "sombre"), "sad"),
    **dict.fromkeys(("energetic", "fast", "exciting", "dynamic", "lively", "wild"), "energetic"),
    **dict.fromkeys(("frantic", "intense", "party", "dance", "dancing", "rush"), "energetic"),
}

_NUMBER_WORDS: Final[dict[str, int]] = {
    "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip

# Time of day: (sky hue when no colour is named, brightness).
_TIME_LOOK: Final[dict[str, tuple[float, float]]] = {
    "night": (230.0, 0.45),
    "sunset": (20.0, 0.78),
    "dawn": (340.0, 0.88),
    "day": (205.0, 1.0),
}
# Mood: (brightness factor, saturation factor, speed factor, tempo in bpm).
_MOOD_LOOK: Final[dict[str, tuple[float, float, float, float]]] = {
    "calm": (1.0, 0.85, 0.6, 72.0),
    "dark": (0.55, 0.9, 0.9, 84.0),
    "bright": (1.25, 1.1, 1.0, 112.0),
    "happy": (1.1, 1.1, 1.2, 124.0),
    "sad": (0.8, 0.65, 0.7, 66.0),
    "energetic": (1.05, 1.15, 1.7, 150.0),
    "neutral": (1.0, 1.0, 1.0, 100.0),
}

_CAPTION_MAX_CHARS: Final = 80
_CAPTION_PATTERN: Final = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')
_WORD_PATTERN: Final = re.compile(r"[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything a prompt decides about a clip, before any pixel is drawn.

    Colours are 0-255 RGB. ``colours`` lists the named colours in prompt order
    (the first one is the hue of the sky and of the first subject, so it dominates
    the frames); ``variation`` seeds positions and phases in the renderer.
    """

    prompt: str
    seed: int
    colours: tuple[str, ...]
    subjects: tuple[str, ...]
    motion: str
    time_of_day: str | None
    mood: str
    caption: str | None
    sky_top: RGB
    sky_bottom: RGB
    subject_colours: tuple[RGB, ...]  # one per subject, in ``subjects`` order
    brightness: float
    speed: float
    object_count: int
    tempo_bpm: float
    root_hz: float
    minor: bool
    variation: int


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(
        (hue / 360.0) % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0)
    )
    return (round(red * 255), round(green * 255), round(blue * 255))


def _extract_caption(prompt: str) -> tuple[str | None, str]:
    """The first double-quoted text (straight or curly quotes) and the prompt without it."""
    match = _CAPTION_PATTERN.search(prompt)
    if match is None:
        return None, prompt
    caption = " ".join((match.group(1) or match.group(2)).split())[:_CAPTION_MAX_CHARS]
    rest = prompt[: match.start()] + " " + prompt[match.end() :]
    return caption or None, rest


def _first(words: list[str], table: dict[str, str]) -> str | None:
    return next((table[word] for word in words if word in table), None)


def scene_from_prompt(prompt: str, seed: int) -> Scene:
    """Describe the clip for ``prompt``; the same prompt and seed give the same scene."""
    caption, described = _extract_caption(prompt)
    words = _WORD_PATTERN.findall(described.lower())
    prompt_digest = hashlib.sha256(" ".join(prompt.lower().split()).encode()).digest()
    # Unknown words steer the scene through this stream; the seed does not, so a
    # prompt keeps its character across seeds.
    by_prompt = np.random.default_rng(list(prompt_digest[:16]))
    variation = int.from_bytes(
        hashlib.sha256(prompt_digest + seed.to_bytes(8, "big", signed=False)).digest()[:8], "big"
    )
    by_seed = np.random.default_rng(variation)

    colours = tuple(dict.fromkeys(word for word in words if word in _COLOURS))
    colours = tuple(c if c != "gray" else "grey" for c in colours)
    subjects = list(dict.fromkeys(_SUBJECT_WORDS[word] for word in words if word in _SUBJECT_WORDS))
    time_of_day = _first(words, _TIME_WORDS)
    mood = _first(words, _MOOD_WORDS) or "neutral"
    motion = _first(words, _MOTION_WORDS) or str(
        by_prompt.choice(["bouncing", "drifting", "spinning", "orbit"])
    )

    if not subjects:
        defaults = [["ball"], ["square"], ["waves", "ball"], ["stars", "ball"], ["ball", "square"]]
        subjects = list(defaults[int(by_prompt.integers(len(defaults)))])
    if time_of_day == "night" and "stars" not in subjects and "rain" not in subjects:
        subjects.append("stars")
    if not any(subject in _SHAPES for subject in subjects) and set(subjects) <= {"city", "rain"}:
        # A still skyline (or rain alone) needs something that moves in the frame.
        subjects.append("ball")

    count = _object_count(words, by_seed)

    time_hue, time_brightness = _TIME_LOOK.get(time_of_day or "", (0.0, 0.92))
    mood_brightness, mood_saturation, mood_speed, mood_tempo = _MOOD_LOOK[mood]
    brightness = min(max(time_brightness * mood_brightness, 0.25), 1.3)
    if "rain" in subjects:
        brightness *= 0.85

    hue_jitter = float(by_seed.uniform(-7.0, 7.0))
    if colours:
        hue, saturation, value = _COLOURS[colours[0]]
        hue += hue_jitter if saturation > 0.2 else 0.0
    else:
        hue = time_hue if time_of_day else float(by_prompt.uniform(0.0, 360.0))
        hue += hue_jitter
        saturation, value = 0.6, 0.9
    saturation *= mood_saturation
    sky_top, sky_bottom = _sky_colours(hue, saturation, value, brightness, time_of_day)
    subject_colours = _subject_colours(
        subjects, colours, hue, saturation, value, mood_saturation, by_prompt, by_seed
    )

    speed = mood_speed * float(by_seed.uniform(0.9, 1.1))
    tempo = mood_tempo + float(by_prompt.uniform(-6.0, 6.0))
    if motion == "bouncing":
        tempo += 16.0
    elif motion == "drifting":
        tempo -= 8.0
    minor = (
        mood in ("sad", "dark")
        or time_of_day == "night"
        or (
            mood not in ("happy", "bright", "energetic")
            and time_of_day not in ("day", "dawn")
            and bool(by_prompt.integers(2))
        )
    )
    # A semitone from the prompt hash, an octave lower for night and sad scenes.
    root_hz = 196.0 * 2.0 ** (int(by_prompt.integers(12)) / 12.0)
    if mood in ("sad", "dark") or time_of_day == "night":
        root_hz /= 2.0
    elif mood in ("happy", "bright", "energetic"):
        root_hz *= 1.26  # up a major third

    return Scene(
        prompt=prompt,
        seed=seed,
        colours=colours,
        subjects=tuple(subjects),
        motion=motion,
        time_of_day=time_of_day,
        mood=mood,
        caption=caption,
        sky_top=sky_top,
        sky_bottom=sky_bottom,
        subject_colours=subject_colours,
        brightness=round(brightness, 4),
        speed=round(speed, 4),
        object_count=count,
        tempo_bpm=round(tempo, 2),
        root_hz=round(root_hz, 3),
        minor=minor,
        variation=variation,
    )


def _object_count(words: list[str], by_seed: np.random.Generator) -> int:
    for word in words:
        if word.isdigit():
            return min(max(int(word), 1), 9)
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    if any(word in _PLURAL_SUBJECT_WORDS for word in words):
        return 2 + int(by_seed.integers(4))
    if "a" in words or "an" in words:
        return 1
    return 1 + int(by_seed.integers(2))


def _sky_colours(
    hue: float, saturation: float, value: float, brightness: float, time_of_day: str | None
) -> tuple[RGB, RGB]:
    """A vertical gradient in the dominant hue, darker than the subjects so they stand out."""
    top_value, bottom_value = {
        "night": (0.18, 0.42),
        "sunset": (0.30, 0.72),
        "dawn": (0.45, 0.78),
        "day": (0.50, 0.80),
    }.get(time_of_day or "", (0.32, 0.66))
    if saturation < 0.2:
        # Achromatic colours: keep the sky near the colour's own lightness.
        top_value, bottom_value = value * 0.55 + 0.05, value * 0.8 + 0.1
    sky_saturation = saturation * 0.8
    top = _hsv(hue + 6.0, sky_saturation * 0.9, top_value * brightness)
    bottom = _hsv(hue - 4.0, sky_saturation, bottom_value * brightness)
    return top, bottom


def _subject_colours(
    subjects: list[str],
    colours: tuple[str, ...],
    hue: float,
    saturation: float,
    value: float,
    mood_saturation: float,
    by_prompt: np.random.Generator,
    by_seed: np.random.Generator,
) -> tuple[RGB, ...]:
    result: list[RGB] = []
    contrast_hue = hue + 180.0 + float(by_prompt.uniform(-35.0, 35.0))
    for index, subject in enumerate(subjects):
        if colours:
            # Subjects take the named colours in turn; the first keeps the sky's hue.
            name = colours[index % len(colours)]
            sub_hue, sub_saturation, sub_value = _COLOURS[name]
            if index % len(colours) == 0:
                sub_hue = hue
            sub_saturation *= mood_saturation
        elif subject in ("stars", "rain"):
            sub_hue, sub_saturation, sub_value = hue, 0.15, 1.0
        else:
            sub_hue = contrast_hue + index * 40.0 + float(by_seed.uniform(-6.0, 6.0))
            sub_saturation, sub_value = 0.7 * mood_saturation, 0.95
        result.append(_hsv(sub_hue, sub_saturation, max(sub_value, 0.12)))
    return tuple(result)


# ---------------------------------------------------------------------------
# A 5x7 bitmap font for captions (ASCII capitals, digits, punctuation)
# ---------------------------------------------------------------------------

_FONT_5X7: Final[dict[str, str]] = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "'": "..#.. ..#.. .#... ..... ..... ..... .....",
    '"': ".#.#. .#.#. .#.#. ..... ..... ..... .....",
    "-": "..... ..... ..... .###. ..... ..... .....",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "&": ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    "*": "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "$": "..#.. .#### #.#.. .###. ..#.# ####. ..#..",
    "@": ".###. #...# ....# .##.# #.#.# #.#.# .###.",
    "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
}
_GLYPH_WIDTH: Final = 5
_GLYPH_HEIGHT: Final = 7


@cache
def _glyph(char: str) -> npt.NDArray[np.bool_]:
    rows = _FONT_5X7.get(char.upper(), _FONT_5X7["?"]).split()
    return np.array([[cell == "#" for cell in row] for row in rows], dtype=np.bool_)


def _text_bitmap(lines: list[str]) -> npt.NDArray[np.bool_]:
    """Lines of text as one boolean bitmap: 1 column between glyphs, 2 rows between lines."""
    width = max(len(line) for line in lines) * (_GLYPH_WIDTH + 1) - 1
    height = len(lines) * (_GLYPH_HEIGHT + 2) - 2
    bitmap = np.zeros((height, width), dtype=np.bool_)
    for row, line in enumerate(lines):
        top = row * (_GLYPH_HEIGHT + 2)
        left = (width - (len(line) * (_GLYPH_WIDTH + 1) - 1)) // 2  # centre each line
        for column, char in enumerate(line):
            x = left + column * (_GLYPH_WIDTH + 1)
            bitmap[top : top + _GLYPH_HEIGHT, x : x + _GLYPH_WIDTH] = _glyph(char)
    return bitmap


def _wrap(text: str, max_chars: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        while len(word) > max_chars:  # a word longer than a line is cut
            lines.append(word[:max_chars])
            word = word[max_chars:]
        if lines and len(lines[-1]) + 1 + len(word) <= max_chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _caption_mask(text: str, width: int, height: int) -> npt.NDArray[np.bool_]:
    """The caption scaled up in whole pixels to about 1/14 of the frame height."""
    scale = max(1, round(height / 14 / _GLYPH_HEIGHT))
    usable = int(width * 0.9)
    while True:
        max_chars = max(1, usable // ((_GLYPH_WIDTH + 1) * scale))
        lines = _wrap(text, max_chars)
        if len(lines) <= 2 or scale == 1:
            break
        scale -= 1
    if len(lines) > 3:
        lines = [*lines[:2], lines[2][: max(max_chars - 3, 0)] + "..."]
    bitmap = _text_bitmap(lines)
    return np.repeat(np.repeat(bitmap, scale, axis=0), scale, axis=1)


# ---------------------------------------------------------------------------
# Reference images
# ---------------------------------------------------------------------------

# Stills we accept as an input reference: what PyAV calls PNG, JPEG and WebP.
IMAGE_CODECS: Final = frozenset({"png", "mjpeg", "webp"})
# Refused before decoding: a small file can still declare an enormous canvas.
MAX_IMAGE_PIXELS: Final = 40_000_000
# How much larger than the frame the panned background is (per side, of the frame).
_PAN_MARGIN: Final = 0.06
# The image is darkened under the scene so shapes, waves and captions stay readable.
_REFERENCE_DIM: Final = 0.72


def decode_image(source: bytes | Path) -> ImageArray:
    """The first frame of a PNG, JPEG or WebP image as (height, width, 3) RGB.

    Anything else (other formats, videos, broken data, a missing file, a canvas
    over :data:`MAX_IMAGE_PIXELS`) is an :class:`UnreadableMediaError`; PyAV's and
    the OS's errors are translated here.
    """
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        with av.open(opened, mode="r") as container:
            if not container.streams.video:
                raise UnreadableMediaError("not an image: it has no picture")
            stream = container.streams.video[0]
            codec = stream.codec_context
            if codec.name not in IMAGE_CODECS:
                raise UnreadableMediaError(f"not a PNG, JPEG or WebP image (found {codec.name})")
            if not 0 < codec.width * codec.height <= MAX_IMAGE_PIXELS:
                raise UnreadableMediaError(
                    f"image of {codec.width}x{codec.height} pixels is empty or larger "
                    f"than {MAX_IMAGE_PIXELS:,} pixels"
                )
            frame = next(container.decode(stream), None)
            if frame is None:
                raise UnreadableMediaError("the image holds no decodable picture")
            # rgb24 is always uint8; the stubs list every format's dtype.
            return cast(ImageArray, frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableMediaError(f"cannot decode the image: {exc}") from None


def _resize(image: ImageArray, width: int, height: int) -> ImageArray:
    # swscale's area filter averages when shrinking (no aliasing) and is smooth when growing.
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    scaled = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return cast(ImageArray, scaled.to_ndarray(format="rgb24"))


def fit_image(image: ImageArray, max_side: int) -> ImageArray:
    """``image`` shrunk (aspect kept) so neither side exceeds ``max_side``."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    return _resize(image, max(1, round(width * scale)), max(1, round(height * scale)))


def encode_png(image: ImageArray) -> bytes:
    """``image`` (RGB) as PNG bytes: lossless, and free of the upload's metadata."""
    height, width = image.shape[:2]
    out = io.BytesIO()
    with av.open(out, mode="w", format="image2pipe") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def _cover(image: ImageArray, width: int, height: int) -> ImageArray:
    """Scale ``image`` to cover width x height, then crop the middle (no bars, no stretch)."""
    image_height, image_width = image.shape[:2]
    scale = max(width / image_width, height / image_height)
    scaled_width = max(width, math.ceil(image_width * scale))
    scaled_height = max(height, math.ceil(image_height * scale))
    scaled = _resize(image, scaled_width, scaled_height)
    top, left = (scaled_height - height) // 2, (scaled_width - width) // 2
    return scaled[top : top + height, left : left + width]


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
    top = image[:third].reshape(-1, 3).mean(axis=0) * _REFERENCE_DIM
    bottom = image[-third:].reshape(-1, 3).mean(axis=0) * _REFERENCE_DIM
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
            colours[index] = _hsv(hue, max(saturation, 0.6), max(value, 0.9))
        changes["subject_colours"] = tuple(colours)
    return dataclasses.replace(scene, **changes)


@dataclass(frozen=True, slots=True)
class _Pan:
    """The reference image as an oversized canvas, and the window's path across it."""

    canvas: ImageArray
    start: tuple[int, int]  # (x, y) of the window's top-left at the first frame
    end: tuple[int, int]  # ... and at the last


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    """One moving ball or square and the fixed parameters of its motion."""

    kind: str
    colour: FloatArray
    radius: float
    anchor_x: float  # 0..1 of the frame
    anchor_y: float
    phase: float  # 0..1
    rate: float  # cycles per second
    direction: float  # +1 or -1


@dataclass(frozen=True, slots=True)
class _Waves:
    """Wave layers back to front: (base y, amplitude, wavenumber, rate, phase) each."""

    layers: tuple[tuple[float, float, float, float, float], ...]
    palette: ImageArray  # colour by depth: index n = covered by n layers
    crests: ImageArray  # one foam colour per layer
    crest_thickness: int


# Stars: x, y, arm length, brightness, twinkle rate and phase (milli-units).
_Stars = tuple[
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
]
# Rain: drop x, drop y, fall speeds (px/s), streak length (px), slant (dx per dy).
_Rain = tuple[FloatArray, FloatArray, FloatArray, int, float]
# Caption: top, left, text mask, panel padding.
_Caption = tuple[int, int, npt.NDArray[np.bool_], int]


class SceneRenderer:
    """Draws the frames of one scene at one size.

    Construction precomputes everything static (sky, sun, skyline, caption bitmap,
    star and raindrop positions); :meth:`frame` then only draws what moves. With a
    ``reference`` image, the image (darkened, slightly larger than the frame) takes
    the place of sky, sun and skyline, and each frame is a window moving slowly
    across it: one slice copy per frame, as cheap as the plain background.
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
        self._rng = np.random.default_rng(scene.variation)
        self._xs = np.arange(width, dtype=np.float32)
        self._ys = np.arange(height, dtype=np.float32)
        self._unit = min(width, height)
        self._horizon = self._find_horizon()
        self._sky_mask = np.ones((height, width), dtype=np.bool_)
        self._pan = None if reference is None else self._plan_pan(reference)
        self._background = self._paint_background() if self._pan is None else self._pan_window(0)
        self._bodies = self._place_bodies()
        self._stars = self._place_stars()
        self._rain = self._place_rain()
        self._waves = self._plan_waves()
        self._caption = self._place_caption()

    # -- public -------------------------------------------------------------

    def frame(self, index: int, out: ImageArray | None = None) -> ImageArray:
        """Frame ``index`` as an (height, width, 3) uint8 RGB array, drawn into ``out``."""
        if out is None:
            out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        np.copyto(out, self._background if self._pan is None else self._pan_window(index))
        t = index / self.fps
        if self._stars is not None:
            self._draw_stars(out, t, self._stars)
        if self._waves is not None:
            self._draw_waves(out, t, self._waves)
        for number, body in enumerate(self._bodies):
            self._draw_body(out, body, number, t)
        if self._rain is not None:
            self._draw_rain(out, t, self._rain)
        if self._caption is not None:
            self._draw_caption(out, self._caption)
        return out

    # -- static layers ------------------------------------------------------

    def _colour_of(self, subject: str) -> FloatArray:
        index = self.scene.subjects.index(subject)
        return np.array(self.scene.subject_colours[index], dtype=np.float32)

    def _find_horizon(self) -> int:
        if "waves" in self.scene.subjects:
            return round(self.height * 0.62)
        return self.height

    def _paint_background(self) -> ImageArray:
        scene, height, width = self.scene, self.height, self.width
        rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        top = np.array(scene.sky_top, dtype=np.float32)
        bottom = np.array(scene.sky_bottom, dtype=np.float32)
        column = top + (bottom - top) * rows
        sky = np.repeat(column[:, None, :], width, axis=1)
        # A soft vignette keeps the eye in the middle of the frame.
        nx = (self._xs - width / 2) / (width / 2)
        ny = (self._ys - height / 2) / (height / 2)
        falloff = np.clip((nx[None, :] ** 2 + ny[:, None] ** 2) / 2.0, 0.0, 1.0)
        sky *= (1.0 - 0.3 * falloff**1.5)[:, :, None]
        if scene.time_of_day is not None:
            self._paint_sun(sky)
        if "city" in scene.subjects:
            self._paint_skyline(sky)
        # Noise of +-1 level breaks up gradient banding after 8-bit rounding.
        dither = self._rng.uniform(-1.0, 1.0, size=(height, width, 1)).astype(np.float32)
        background: ImageArray = np.clip(sky + dither + 0.5, 0, 255).astype(np.uint8)
        return background

    def _plan_pan(self, reference: ImageArray) -> _Pan:
        """The darkened, vignetted canvas and a corner-to-corner path chosen by the seed."""
        margin_x = max(1, round(self.width * _PAN_MARGIN))
        margin_y = max(1, round(self.height * _PAN_MARGIN))
        width, height = self.width + 2 * margin_x, self.height + 2 * margin_y
        canvas = _cover(reference, width, height).astype(np.float32)
        nx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
        ny = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
        falloff = np.clip((nx[None, :] ** 2 + ny[:, None] ** 2) / 2.0, 0.0, 1.0)
        canvas *= (_REFERENCE_DIM * (1.0 - 0.3 * falloff**1.5))[:, :, None]
        corners = [(0, 0), (2 * margin_x, 0), (0, 2 * margin_y), (2 * margin_x, 2 * margin_y)]
        first = int(self._rng.integers(len(corners)))
        return _Pan(
            canvas=np.clip(canvas + 0.5, 0, 255).astype(np.uint8),
            start=corners[first],
            end=corners[len(corners) - 1 - first],  # the opposite corner
        )

    def _pan_window(self, index: int) -> ImageArray:
        assert self._pan is not None  # noqa: S101 - only called with a reference image
        progress = min(index / self.fps / self.duration_seconds, 1.0)
        eased = progress * progress * (3 - 2 * progress)  # start and stop gently
        (start_x, start_y), (end_x, end_y) = self._pan.start, self._pan.end
        x = round(start_x + (end_x - start_x) * eased)
        y = round(start_y + (end_y - start_y) * eased)
        return self._pan.canvas[y : y + self.height, x : x + self.width]

    def _paint_sun(self, sky: FloatArray) -> None:
        time_of_day, height = self.scene.time_of_day, self.height
        glow_colour, disc_colour, disc, glow, strength = {
            "night": ((170.0, 185.0, 255.0), (235.0, 238.0, 250.0), 0.055, 0.16, 0.25),
            "sunset": ((255.0, 150.0, 80.0), (255.0, 205.0, 140.0), 0.08, 0.42, 0.45),
            "dawn": ((255.0, 190.0, 170.0), (255.0, 232.0, 205.0), 0.07, 0.38, 0.38),
            "day": ((255.0, 250.0, 225.0), (255.0, 252.0, 235.0), 0.06, 0.30, 0.30),
        }[time_of_day or "day"]
        horizon = min(self._horizon, height)
        low = time_of_day in ("sunset", "dawn")
        cy = horizon - height * 0.1 if low else height * float(self._rng.uniform(0.14, 0.26))
        cx = self.width * float(self._rng.uniform(0.2, 0.8))
        distance = np.sqrt((self._xs[None, :] - cx) ** 2 + (self._ys[:horizon, None] - cy) ** 2)
        glow_alpha = strength * np.clip(1.0 - distance / (glow * height), 0.0, 1.0) ** 2
        disc_alpha = np.clip(disc * height - distance + 0.5, 0.0, 1.0) * 0.9
        upper = sky[:horizon]
        upper += glow_alpha[:, :, None] * (np.array(glow_colour, dtype=np.float32) - upper)
        upper += disc_alpha[:, :, None] * (np.array(disc_colour, dtype=np.float32) - upper)

    def _paint_skyline(self, sky: FloatArray) -> None:
        height, width, rng = self.height, self.width, self._rng
        ground = self._horizon
        dim = self.scene.time_of_day in ("night", "sunset") or self.scene.mood == "dark"
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
                self._sky_mask[top:ground, left:right] = False
            x += building_width + int(rng.integers(0, cell * 2))

    def _place_caption(self) -> _Caption | None:
        if not self.scene.caption:
            return None
        mask = _caption_mask(self.scene.caption, self.width, self.height)
        if mask.shape[0] >= self.height or mask.shape[1] >= self.width:
            return None  # a frame too small for any legible text
        pad = max(2, mask.shape[0] // 6)
        top = max(self.height - mask.shape[0] - pad - round(self.height * 0.06), pad)
        left = (self.width - mask.shape[1]) // 2
        return top, left, mask, pad

    # -- moving layers ------------------------------------------------------

    def _place_bodies(self) -> list[_Body]:
        rng, scene = self._rng, self.scene
        bodies: list[_Body] = []
        shapes = [subject for subject in scene.subjects if subject in _SHAPES]
        if not shapes:
            return bodies
        count = scene.object_count * len(shapes) if len(shapes) == 1 else scene.object_count + 1
        count = min(count, 9)
        base_radius = self._unit * (0.17 if count == 1 else 0.13 if count <= 3 else 0.09)
        for number in range(count):
            kind = shapes[number % len(shapes)]
            bodies.append(
                _Body(
                    kind=kind,
                    colour=self._colour_of(kind),
                    radius=base_radius * float(rng.uniform(0.8, 1.15)),
                    anchor_x=(number + float(rng.uniform(0.25, 0.75))) / count,
                    anchor_y=float(rng.uniform(0.3, 0.6)),
                    phase=float(rng.uniform(0.0, 1.0)),
                    rate=float(rng.uniform(0.8, 1.2)),
                    direction=1.0 if rng.integers(2) else -1.0,
                )
            )
        return bodies

    def _pose(self, body: _Body, number: int, t: float) -> tuple[float, float, float, float]:
        """Centre x, centre y, size factor and rotation (radians) of a body at time t."""
        width, height, speed = self.width, self.height, self.scene.speed
        motion = self.scene.motion
        radius = body.radius
        cycle = body.phase + body.rate * speed * t
        if motion == "bouncing":
            ground = min(self._horizon + height * 0.08, height * 0.92)
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
            progress = min(t / self.duration_seconds, 1.0)
            grow = 0.55 + 0.9 * progress * progress * (3 - 2 * progress)
            cx = width / 2 + (body.anchor_x - 0.5) * width * 0.7 * grow
            cy = height / 2 + (body.anchor_y - 0.45) * height * 0.6 * grow
            return cx, cy, grow, 0.3 * body.direction * cycle
        # orbit: around the frame centre, bodies spread evenly on the ellipse
        count = len(self._bodies) or 1
        angle = (
            2 * math.pi * (number / count + 0.12 * body.direction * speed * t + body.phase * 0.1)
        )
        depth = 0.85 + 0.15 * math.sin(angle)
        cx = width / 2 + width * 0.3 * math.cos(angle)
        cy = height / 2 + height * 0.22 * math.sin(angle)
        return cx, cy, depth, angle

    def _draw_body(self, frame: ImageArray, body: _Body, number: int, t: float) -> None:
        cx, cy, size, angle = self._pose(body, number, t)
        radius = body.radius * size
        if self.scene.motion == "bouncing":
            self._draw_shadow(frame, body, cx, radius)
        if body.kind == "ball":
            spin = angle if self.scene.motion in ("spinning", "orbit", "bouncing") else None
            self._draw_ball(frame, cx, cy, radius, body.colour, spin)
        else:
            self._draw_square(frame, cx, cy, radius * 0.9, angle, body.colour)

    def _box(self, cx: float, cy: float, half: float) -> tuple[int, int, int, int] | None:
        x0, x1 = max(int(cx - half) - 1, 0), min(int(cx + half) + 2, self.width)
        y0, y1 = max(int(cy - half) - 1, 0), min(int(cy + half) + 2, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1

    def _draw_ball(
        self,
        frame: ImageArray,
        cx: float,
        cy: float,
        radius: float,
        colour: FloatArray,
        spin: float | None,
    ) -> None:
        box = self._box(cx, cy, radius)
        if box is None or radius < 1:
            return
        x0, x1, y0, y1 = box
        nx = (self._xs[x0:x1] - cx) / radius
        ny = (self._ys[y0:y1] - cy) / radius
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
        _blend(frame[y0:y1, x0:x1], body_colour, alpha)

    def _draw_square(
        self,
        frame: ImageArray,
        cx: float,
        cy: float,
        half: float,
        angle: float,
        colour: FloatArray,
    ) -> None:
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        box = self._box(cx, cy, half * (abs(cos_a) + abs(sin_a)))
        if box is None or half < 1:
            return
        x0, x1, y0, y1 = box
        dx = self._xs[x0:x1] - cx
        dy = self._ys[y0:y1] - cy
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
        _blend(frame[y0:y1, x0:x1], colour[None, None, :] * shade[:, :, None], alpha)

    def _draw_shadow(self, frame: ImageArray, body: _Body, cx: float, radius: float) -> None:
        ground = min(self._horizon + self.height * 0.08, self.height * 0.92)
        rx, ry = radius * 0.9, radius * 0.18
        box = self._box(cx, ground, rx)
        if box is None:
            return
        x0, x1, _, _ = box
        y0, y1 = max(int(ground - ry) - 1, 0), min(int(ground + ry) + 2, self.height)
        if y0 >= y1:
            return
        q2 = ((self._xs[x0:x1] - cx) / rx)[None, :] ** 2 + ((self._ys[y0:y1] - ground) / ry)[
            :, None
        ] ** 2
        alpha = np.clip(1.0 - q2, 0.0, 1.0) * 0.35
        _blend(frame[y0:y1, x0:x1], np.zeros(3, dtype=np.float32), alpha)

    def _place_stars(self) -> _Stars | None:
        if "stars" not in self.scene.subjects:
            return None
        rng, width, height = self._rng, self.width, self.height
        featured = self.scene.subjects.index("stars") == 0
        count = int(rng.integers(90, 160) if featured else rng.integers(40, 80))
        count = max(8, count * width * height // (1280 * 720) + count // 3)
        sky_bottom = int(min(self._horizon, height) * (0.9 if self._horizon < height else 1.0))
        xs = rng.integers(0, width, count)
        ys = rng.integers(0, max(sky_bottom, 1), count)
        keep = self._sky_mask[ys, xs]
        scale = max(1, round(height / 360))
        arms = rng.choice([0, 0, 0, 1, 1, 2] if featured else [0, 0, 0, 0, 1], size=count) * scale
        # Brightness 0..255 and twinkle (rate, phase) packed as integer milli-units.
        brightness = rng.integers(150, 256, count)
        rate = rng.integers(300, 1500, count)
        phase = rng.integers(0, 1000, count)
        return xs[keep], ys[keep], arms[keep], brightness[keep], rate[keep], phase[keep]

    def _draw_stars(self, frame: ImageArray, t: float, stars: _Stars) -> None:
        xs, ys, arms, brightness, rate, phase = stars
        if self.scene.motion == "drifting":
            xs = (xs + int(self.width * 0.02 * self.scene.speed * t)) % self.width
        twinkle = 0.6 + 0.4 * np.sin(2 * np.pi * (phase / 1000.0 + rate / 1000.0 * t))
        level = (brightness * twinkle).astype(np.float32)
        tint = self._colour_of("stars") / 255.0
        colour = level[:, None] * (0.35 + 0.65 * tint[None, :])
        max_arm = int(arms.max(initial=0))
        offsets = [(0, 0, 1.0)] + [
            (dy * step, dx * step, 0.7 / step)
            for step in range(1, max_arm + 1)
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
        ]
        for dy, dx, weight in offsets:
            reach = max(abs(dy), abs(dx))
            chosen = arms >= reach
            py = np.clip(ys[chosen] + dy, 0, self.height - 1)
            px = np.clip(xs[chosen] + dx, 0, self.width - 1)
            current = frame[py, px]
            frame[py, px] = np.maximum(current, (colour[chosen] * weight).astype(np.uint8))

    def _place_rain(self) -> _Rain | None:
        if "rain" not in self.scene.subjects:
            return None
        rng, width, height = self._rng, self.width, self.height
        count = int(rng.integers(140, 220)) * width * height // (1280 * 720) + 30
        length = max(3, round(height * 0.045))
        slant = float(rng.uniform(0.1, 0.3))
        xs = rng.uniform(-slant * height, width, count).astype(np.float32)
        ys = rng.uniform(0, height, count).astype(np.float32)
        speeds = (rng.uniform(1.1, 1.6, count) * height).astype(np.float32)
        return xs, ys, speeds, length, slant

    def _draw_rain(self, frame: ImageArray, t: float, rain: _Rain) -> None:
        xs, ys, speeds, length, slant = rain
        span = self.height + length
        heads = (ys + speeds * t * self.scene.speed) % span - length
        steps = np.arange(length, dtype=np.float32)
        py = (heads[:, None] + steps[None, :]).astype(np.intp)
        px = (xs[:, None] + (heads[:, None] + steps[None, :]) * slant).astype(np.intp)
        visible = (py >= 0) & (py < self.height) & (px >= 0) & (px < self.width)
        py, px = py[visible], px[visible]
        colour = 0.5 * self._colour_of("rain") + 0.5 * 220.0
        current = frame[py, px].astype(np.float32)
        frame[py, px] = (current * 0.45 + colour * 0.55).astype(np.uint8)

    def _plan_waves(self) -> _Waves | None:
        if "waves" not in self.scene.subjects:
            return None
        rng, width, height = self._rng, self.width, self.height
        colour = self._colour_of("waves")
        haze = np.array(self.scene.sky_bottom, dtype=np.float32)
        layers = []
        palette = [np.zeros(3, dtype=np.float32)]  # depth 0: not water, never looked up
        crests = []
        for layer in range(3):
            # Layers are spaced wider than their swells, so nearer water is always lower.
            base = self._horizon + height * (0.02 + 0.12 * layer)
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
        return _Waves(
            layers=tuple(layers),
            palette=np.clip(np.stack(palette), 0, 255).astype(np.uint8),
            crests=np.clip(np.stack(crests), 0, 255).astype(np.uint8),
            crest_thickness=max(1, self.height // 240),
        )

    def _draw_waves(self, frame: ImageArray, t: float, waves: _Waves) -> None:
        height = self.height
        surfaces = []
        for base, amplitude, wavenumber, rate, phase in waves.layers:
            angle = wavenumber * self._xs
            offset = 2 * math.pi * rate * self.scene.speed * t + phase
            swell = 0.65 * np.sin(angle + offset) + 0.35 * np.sin(1.9 * angle - offset)
            surfaces.append(np.clip(base + amplitude * swell, 0, height))
        # depth[y, x] = how many layers cover the pixel; only rows a surface crosses
        # need a comparison, rows below it are covered everywhere.
        top = int(surfaces[0].min())
        depth = np.zeros((height - top, self.width), dtype=np.uint8)
        for surface in surfaces:
            low, high = int(surface.min()), min(int(surface.max()) + 1, height)
            depth[high - top :] += 1
            depth[low - top : high - top] += self._ys[low:high, None] >= surface[None, :]
        mixed_rows = min(int(surfaces[0].max()) + 1, height) - top
        shore = frame[top : top + mixed_rows]
        water = depth[:mixed_rows] > 0
        shore[water] = waves.palette[depth[:mixed_rows][water]]
        np.take(
            waves.palette, depth[mixed_rows:], axis=0, out=frame[top + mixed_rows :], mode="clip"
        )
        columns = np.arange(self.width)
        for surface, crest in zip(surfaces, waves.crests, strict=True):
            rows = surface.astype(np.intp)
            for thickness in range(waves.crest_thickness):
                frame[np.minimum(rows + thickness, height - 1), columns] = crest

    def _draw_caption(self, frame: ImageArray, caption: _Caption) -> None:
        top, left, mask, pad = caption
        height, width = mask.shape
        panel = frame[top - pad : top + height + pad, left - pad : left + width + pad]
        np.right_shift(panel, 1, out=panel)  # a half-dark panel keeps the text readable
        panel[pad : pad + height, pad : pad + width][mask] = (255, 250, 235)


def _bounce_between(position: float, low: float, high: float) -> float:
    """Reflect a free-running coordinate into [low, high] (a triangle wave)."""
    if high <= low:
        return (low + high) / 2
    span = high - low
    folded = (position - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


def _blend(region: ImageArray, colour: FloatArray, alpha: FloatArray) -> None:
    """Alpha-blend ``colour`` (broadcastable to region) over ``region`` in place."""
    base = region.astype(np.float32)
    base += alpha[:, :, None] * (colour - base)
    np.clip(base, 0.0, 255.0, out=base)
    region[...] = base


# ---------------------------------------------------------------------------
# Sound
# ---------------------------------------------------------------------------

_MAJOR: Final = (0, 2, 4, 5, 7, 9, 11)
_MINOR: Final = (0, 2, 3, 5, 7, 8, 10)


def _scale_tone(scale: tuple[int, ...], degree: int) -> int:
    return scale[degree % 7] + 12 * (degree // 7)


def synthesize_soundtrack(
    scene: Scene, duration_seconds: float, sample_rate: int = AUDIO_SAMPLE_RATE
) -> FloatArray:
    """A stereo (samples, 2) float32 sound bed: pad chords, an arpeggio and a bass pulse.

    Key, mode and tempo come from the scene; it fades in and out and is never silent.
    """
    samples = max(1, round(duration_seconds * sample_rate))
    t = np.arange(samples, dtype=np.float64) / sample_rate
    rng = np.random.default_rng(scene.variation ^ 0x5EED)
    scale = _MINOR if scene.minor else _MAJOR
    beat = 60.0 / scene.tempo_bpm
    chord_seconds = 8 * beat
    progression = (0, 5, 2, 6) if scene.minor else (0, 5, 3, 4)
    chord_tones = np.array(
        [[_scale_tone(scale, degree + 2 * k) for k in range(3)] for degree in progression],
        dtype=np.float64,
    )

    chord_at = (t // chord_seconds).astype(np.intp) % len(progression)
    frequencies = scene.root_hz * 2.0 ** (chord_tones[chord_at] / 12.0)  # (samples, 3)
    phases = 2 * np.pi * np.cumsum(frequencies, axis=0) / sample_rate
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * t / (2 * chord_seconds))
    pad_left = (np.sin(phases) + 0.3 * np.sin(2 * phases)).sum(axis=1) * swell
    # A slightly detuned right channel widens the pad.
    pad_right = (np.sin(phases * 1.003) + 0.3 * np.sin(2.006 * phases)).sum(axis=1) * swell

    left = 0.12 * pad_left
    right = 0.12 * pad_right
    step_seconds = beat / 2 if scene.tempo_bpm >= 96 else beat
    decay = 5.0 + scene.tempo_bpm / 30.0
    note_samples = round(min(0.7, 4 * step_seconds) * sample_rate)
    for step in range(math.ceil(duration_seconds / step_seconds)):
        start = round(step * step_seconds * sample_rate)
        if start >= samples:
            break
        length = min(samples - start, note_samples)
        local = np.arange(length, dtype=np.float64) / sample_rate
        chord = chord_tones[int(chord_at[start])]
        tone = chord[int(rng.integers(3))] + 12 * int(rng.integers(1, 3))
        frequency = scene.root_hz * 2.0 ** (tone / 12.0)
        envelope = np.exp(-local * decay) * (1.0 - np.exp(-local * 300.0))
        note = np.sin(2 * np.pi * frequency * local) + 0.25 * np.sin(4 * np.pi * frequency * local)
        note *= envelope * 0.22
        pan = 0.5 + (0.3 if step % 2 else -0.3)
        left[start : start + length] += note * (1.0 - pan)
        right[start : start + length] += note * pan
        if step_seconds == beat or step % 2 == 0:
            bass_frequency = scene.root_hz / 2 * 2.0 ** (chord[0] / 12.0)
            bass = np.sin(2 * np.pi * bass_frequency * local) * np.exp(-local * 7.0)
            bass *= (1.0 - np.exp(-local * 200.0)) * 0.25
            left[start : start + length] += bass
            right[start : start + length] += bass

    mix = np.stack([left, right], axis=1)
    fade = min(0.3, duration_seconds / 4)
    fade_samples = max(1, round(fade * sample_rate))
    ramp = np.linspace(0.0, 1.0, fade_samples + 2)[1:-1] if fade_samples < samples else None
    if ramp is not None:
        mix[: len(ramp)] *= ramp[:, None]
        mix[-len(ramp) :] *= ramp[::-1, None]
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix *= 0.5 / peak
    return mix.astype(np.float32)


def _write_wav(path: Path, sound: FloatArray, sample_rate: int) -> None:
    pcm = (np.clip(sound, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(sound.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


class _RenderCancelled(Exception):
    """The worker thread stopped because the awaiting coroutine was cancelled."""


class _Encoder:
    """Runs in a worker thread: draws frames and feeds them to one ffmpeg process.

    ``abort`` may be called from any thread; it kills ffmpeg at once, which also
    unblocks a pipe write the worker may be stuck in.
    """

    def __init__(
        self,
        *,
        scene: Scene,
        req: GenerationRequest,
        frame_count: int,
        preset: str,
        crf: int,
        report_frames: Callable[[int], None],
        reference_image: Path | None = None,
    ) -> None:
        self._scene = scene
        self._req = req
        self._reference_image = reference_image
        self._frame_count = frame_count
        self._preset = preset
        self._crf = crf
        self._report_frames = report_frames
        self._lock = threading.Lock()
        self._aborted = False
        self._process: subprocess.Popen[bytes] | None = None

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

    def _ffmpeg_args(self, video_path: Path, audio_path: Path) -> list[str]:
        req = self._req
        return [
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s:v", f"{req.width}x{req.height}", "-framerate", str(req.fps),
            "-i", "pipe:0",
            "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0",
            # Convert with the BT.709 matrix and say so, so players show our colours.
            "-vf", "scale=out_color_matrix=bt709:out_range=tv",
            "-c:v", "libx264", "-preset", self._preset, "-crf", str(self._crf),
            "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
            "-color_range", "tv",
            "-r", str(req.fps), "-frames:v", str(self._frame_count),
            "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE),
            "-movflags", "+faststart",
            "-f", "mp4", str(video_path),
        ]  # fmt: skip

    def run(self, video_path: Path) -> None:
        req, fps = self._req, self._req.fps
        duration = self._frame_count / fps
        audio_path = video_path.with_name(video_path.name + ".wav")
        if self._aborted:  # cancelled while this call waited for a free worker thread
            raise _RenderCancelled
        scene, reference = self._scene, None
        if self._reference_image is not None:
            # Decoded here, in the worker thread: it blocks, and a bad image fails the
            # render before any audio or frames are made.
            reference = decode_image(self._reference_image)
            scene = scene_with_reference(scene, reference)
        try:
            _write_wav(audio_path, synthesize_soundtrack(scene, duration), AUDIO_SAMPLE_RATE)
            renderer = SceneRenderer(
                scene, req.width, req.height, fps, duration, reference=reference
            )
            with tempfile.TemporaryFile() as stderr_file:
                self._pipe_frames(renderer, video_path, audio_path, stderr_file)
        finally:
            audio_path.unlink(missing_ok=True)

    def _pipe_frames(
        self,
        renderer: SceneRenderer,
        video_path: Path,
        audio_path: Path,
        stderr_file: IO[bytes],
    ) -> None:
        with self._lock:
            if self._aborted:
                raise _RenderCancelled
            # stderr goes to a file: a pipe nobody reads could fill and stall ffmpeg.
            process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary, no shell
                ffmpeg_command(self._ffmpeg_args(video_path, audio_path)),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
            )
            self._process = process
        stdin = cast(IO[bytes], process.stdin)  # always set: stdin=PIPE
        buffer = np.empty((renderer.height, renderer.width, 3), dtype=np.uint8)
        try:
            try:
                for index in range(self._frame_count):
                    if self._aborted:
                        raise _RenderCancelled
                    stdin.write(renderer.frame(index, out=buffer).data)
                    self._report_frames(index + 1)
                stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg exited early; its exit status and stderr say why
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        if self._aborted:
            raise _RenderCancelled
        if returncode != 0:
            stderr_file.seek(0)
            raise FFmpegError(
                "ffmpeg failed to encode the rendered frames",
                stderr_tail=stderr_tail(stderr_file.read()),
                returncode=returncode,
            )


class _ProgressReporter:
    """Turns frame counts from the worker thread into percents on the event loop."""

    _STEP: Final = 2  # report about every 2 %, so the callback stays cheap

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[int], None] | None,
        frame_count: int,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._frame_count = frame_count
        self._last = -self._STEP

    def frames_done(self, frames: int) -> None:
        if self._callback is None:
            return
        # 100 is kept for "the file is complete", after ffmpeg has finished.
        percent = min(frames * 99 // self._frame_count, 99)
        if percent - self._last >= self._STEP or (
            frames == self._frame_count and percent > self._last
        ):
            self._last = percent
            self._loop.call_soon_threadsafe(self._callback, percent)


async def render_video(
    req: GenerationRequest,
    dest: Path,
    *,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
    preset: str = "veryfast",
    crf: int = 20,
    reference_image: Path | None = None,
) -> Path:
    """Render ``req`` into an MP4 at ``dest`` and return ``dest``.

    H.264 yuv420p + AAC 48 kHz stereo, ``+faststart``, exactly ``req.width`` x
    ``req.height`` at ``req.fps`` with ``round(duration_seconds * fps)`` frames.
    ``on_progress`` receives never-decreasing percents on the event loop thread
    (0-99 while frames are drawn, 100 once the file is in place). Cancelling the
    call kills ffmpeg and leaves neither ``dest`` nor temporary files behind.
    ``reference_image`` (a PNG, JPEG or WebP file) becomes the panned background and
    lends the scene its colours; one that does not decode is an UnreadableMediaError.
    """
    frame_count = max(1, round(req.duration_seconds * req.fps))
    scene = scene_from_prompt(req.prompt, seed)
    progress = _ProgressReporter(asyncio.get_running_loop(), on_progress, frame_count)
    encoder = _Encoder(
        scene=scene,
        req=req,
        frame_count=frame_count,
        preset=preset,
        crf=crf,
        report_frames=progress.frames_done,
        reference_image=reference_image,
    )
    async with atomic_output(dest) as partial:
        worker = asyncio.create_task(asyncio.to_thread(encoder.run, partial))
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            encoder.abort()
            # Wait for the thread to let go of ffmpeg and its files before the
            # partial output is removed; its _RenderCancelled is expected.
            await asyncio.wait([worker])
            if not worker.cancelled():
                worker.exception()
            raise
    if on_progress is not None:
        on_progress(100)
    return dest
