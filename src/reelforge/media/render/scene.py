"""Prompt and seed to :class:`Scene`: a plain description of a clip, no pixels yet.

:func:`scene_from_prompt` reads the palette, subjects, motion, mood, caption and
music from the prompt. Named colours, shapes, motion words, time of day and mood
each steer a field (the words are in :mod:`~reelforge.media.render.vocabulary`);
backgrounds and settings ("on a plain white background", "in a forest") pick the
backdrop and its colours (:mod:`~reelforge.media.render.phrases` tells their
colour words from the subject's); words we do not know still move the scene
through a hash of the prompt, so every prompt gets its own look, and the seed
varies positions, phases, counts and hues.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

import numpy as np

from reelforge.media.render.arrays import RGB
from reelforge.media.render.palette import (
    backdrop_palette,
    hsv,
    hue_of,
    setting_subject_colours,
    sky_colours,
)
from reelforge.media.render.phrases import find_backdrop
from reelforge.media.render.vocabulary import (
    COLOURS,
    MOOD_LOOK,
    MOOD_WORDS,
    MOTION_WORDS,
    NUMBER_WORDS,
    PLURAL_SUBJECT_WORDS,
    SETTING_LOOK,
    SHAPES,
    SUBJECT_WORDS,
    TIME_LOOK,
    TIME_WORDS,
)

__all__ = ["Scene", "scene_from_prompt"]

_CAPTION_MAX_CHARS: Final = 80
_CAPTION_PATTERN: Final = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')
_WORD_PATTERN: Final = re.compile(r"[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything a prompt decides about a clip, before any pixel is drawn.

    Colours are 0-255 RGB. ``colours`` lists the subjects' named colours in prompt
    order; with the default ``gradient`` backdrop the first one is the hue of the sky
    and of the first subject, so it dominates the frames. Any other ``backdrop``
    comes from the prompt's background or setting words: ``colour`` (a named
    background colour, softly shaded), ``flat`` (one colour, no gradient or texture)
    or a setting (``sky``, ``ocean``, ``forest``, ``desert``, ``snow``, ``space``)
    whose ``ground`` is what it is made of (clouds, water, trees, sand, snow,
    nebula). ``variation`` seeds positions and phases in the renderer.
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
    backdrop: str = "gradient"
    backdrop_colour: str | None = None  # the colour named for the background or setting
    ground: RGB = (0, 0, 0)  # the setting's material; the sky's bottom colour otherwise


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
    backdrop_words = find_backdrop(_WORD_PATTERN.findall(described.lower()))
    # The backdrop's colour and shade words are its own; the rest describe the subject.
    words = list(backdrop_words.rest)
    setting = backdrop_words.setting
    prompt_digest = hashlib.sha256(" ".join(prompt.lower().split()).encode()).digest()
    # Unknown words steer the scene through this stream; the seed does not, so a
    # prompt keeps its character across seeds.
    by_prompt = np.random.default_rng(list(prompt_digest[:16]))
    variation = int.from_bytes(
        hashlib.sha256(prompt_digest + seed.to_bytes(8, "big", signed=False)).digest()[:8], "big"
    )
    by_seed = np.random.default_rng(variation)

    colours = tuple(dict.fromkeys(word for word in words if word in COLOURS))
    colours = tuple(c if c != "gray" else "grey" for c in colours)
    subjects = list(dict.fromkeys(SUBJECT_WORDS[word] for word in words if word in SUBJECT_WORDS))
    time_of_day = _first(words, TIME_WORDS)
    mood = _first(words, MOOD_WORDS) or "neutral"
    motion = _first(words, MOTION_WORDS) or str(
        by_prompt.choice(["bouncing", "drifting", "spinning", "orbit"])
    )

    if not subjects:
        defaults = [["ball"], ["square"], ["waves", "ball"], ["stars", "ball"], ["ball", "square"]]
        if setting is not None:
            defaults = [["ball"], ["square"], ["ball", "square"]]  # the setting is the scenery
        subjects = list(defaults[int(by_prompt.integers(len(defaults)))])
    if setting == "ocean" and "waves" not in subjects:
        subjects.append("waves")
    if setting == "space" and "stars" not in subjects:
        subjects.append("stars")
    if time_of_day == "night" and "stars" not in subjects and "rain" not in subjects:
        subjects.append("stars")
    if not any(subject in SHAPES for subject in subjects) and set(subjects) <= {"city", "rain"}:
        # A still skyline (or rain alone) needs something that moves in the frame.
        subjects.append("ball")

    count = _object_count(words, by_seed)

    time_hue, time_brightness = TIME_LOOK.get(time_of_day or "", (0.0, 0.92))
    mood_brightness, mood_saturation, mood_speed, mood_tempo = MOOD_LOOK[mood]
    brightness = min(max(time_brightness * mood_brightness, 0.25), 1.3)
    if "rain" in subjects:
        brightness *= 0.85

    hue_jitter = float(by_seed.uniform(-7.0, 7.0))
    if colours:
        hue, saturation, value = COLOURS[colours[0]]
        hue += hue_jitter if saturation > 0.2 else 0.0
    else:
        hue = time_hue if time_of_day else float(by_prompt.uniform(0.0, 360.0))
        hue += hue_jitter
        saturation, value = 0.6, 0.9
    saturation *= mood_saturation
    backdrop = backdrop_palette(
        backdrop_words, time_of_day, brightness, mood_saturation, hue_jitter
    )
    if backdrop is None:
        kind = "gradient"
        sky_top, sky_bottom = sky_colours(hue, saturation, value, brightness, time_of_day)
        ground = water = sky_bottom
    else:
        kind, sky_top, sky_bottom, ground, water = backdrop
        if not colours:
            # Unnamed subjects take a hue opposite the backdrop's, so they stand out.
            hue = hue_of(sky_bottom) + hue_jitter
    subject_colours = _subject_colours(
        subjects, colours, hue, saturation, value, mood_saturation, by_prompt, by_seed
    )
    if kind in SETTING_LOOK:
        subject_colours = setting_subject_colours(
            kind, subjects, subject_colours, water, named_colours=bool(colours)
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
        backdrop=kind,
        backdrop_colour=backdrop_words.colour,
        ground=ground,
    )


def _object_count(words: list[str], by_seed: np.random.Generator) -> int:
    for word in words:
        if word.isdigit():
            return min(max(int(word), 1), 9)
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    if any(word in PLURAL_SUBJECT_WORDS for word in words):
        return 2 + int(by_seed.integers(4))
    if "a" in words or "an" in words:
        return 1
    return 1 + int(by_seed.integers(2))


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
            sub_hue, sub_saturation, sub_value = COLOURS[name]
            if index % len(colours) == 0:
                sub_hue = hue
            sub_saturation *= mood_saturation
        elif subject in ("stars", "rain"):
            sub_hue, sub_saturation, sub_value = hue, 0.15, 1.0
        else:
            sub_hue = contrast_hue + index * 40.0 + float(by_seed.uniform(-6.0, 6.0))
            sub_saturation, sub_value = 0.7 * mood_saturation, 0.95
        result.append(hsv(sub_hue, sub_saturation, max(sub_value, 0.12)))
    return tuple(result)
