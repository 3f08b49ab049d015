"""Colours of a scene's backdrop: the default sky, a named background, a setting's palette.

Pure functions from hues and brightness to 0-255 RGB; :mod:`~reelforge.media.render.scene`
calls them once it has read the prompt's words.
"""

from __future__ import annotations

import colorsys
from typing import Final, NamedTuple

from reelforge.media.render.arrays import RGB
from reelforge.media.render.phrases import BackdropWords
from reelforge.media.render.vocabulary import COLOURS, SETTING_LOOK, SHADE_WORDS, TIME_LOOK

__all__ = [
    "BackdropPalette",
    "backdrop_palette",
    "hsv",
    "hue_of",
    "setting_subject_colours",
    "sky_colours",
]


class BackdropPalette(NamedTuple):
    """The colours of a named background or setting (see :class:`~.scene.Scene`)."""

    kind: str  # "colour", "flat" or a setting
    sky_top: RGB
    sky_bottom: RGB
    ground: RGB  # the setting's material; the background's colour otherwise
    water: RGB  # the colour of the setting's lakes and seas (an ocean's ground)


def hsv(hue: float, saturation: float, value: float) -> RGB:
    """RGB of a hue in degrees and a saturation and value in 0..1 (clamped)."""
    red, green, blue = colorsys.hsv_to_rgb(
        (hue / 360.0) % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0)
    )
    return (round(red * 255), round(green * 255), round(blue * 255))


def sky_colours(
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
    top = hsv(hue + 6.0, sky_saturation * 0.9, top_value * brightness)
    bottom = hsv(hue - 4.0, sky_saturation, bottom_value * brightness)
    return top, bottom


# A "plain background" with no colour named: a light, neutral grey.
_NEUTRAL_BACKDROP: Final = (0.0, 0.0, 0.86)
# The default backdrop's brightness (no time of day, neutral mood): settings are
# drawn at their own brightness there, darker at night or in a dark mood.
_NEUTRAL_BRIGHTNESS: Final = 0.92


def hue_of(rgb: RGB) -> float:
    hue, _, _ = colorsys.rgb_to_hsv(*(channel / 255.0 for channel in rgb))
    return hue * 360.0


def backdrop_palette(
    words: BackdropWords,
    time_of_day: str | None,
    brightness: float,
    mood_saturation: float,
    jitter: float,
) -> BackdropPalette | None:
    """The palette of the background or setting in ``words``; None if they name neither."""
    setting, colour = words.setting, words.colour
    if setting is None and colour is None and words.shade is None and not words.flat:
        return None
    shade_saturation, shade_value = SHADE_WORDS.get(words.shade or "", (1.0, 1.0))
    named = None
    if colour is not None:
        hue, saturation, value = COLOURS[colour]
        named = (hue, saturation * shade_saturation, min(value * shade_value, 1.0))
    if setting is None or words.flat:
        if named is None:
            if setting is not None:  # "a plain sky": the setting's sky as one colour
                hue, saturation, value = SETTING_LOOK[setting][1]
            else:
                hue, saturation, value = _NEUTRAL_BACKDROP
            named = (hue, saturation * shade_saturation, min(value * shade_value, 1.0))
        hue, saturation, value = named
        bottom = hsv(hue, saturation, value)
        if words.flat:
            return BackdropPalette("flat", bottom, bottom, bottom, bottom)
        # Named colours are the user's: no mood or time of day dims them.
        top = hsv(hue + 4.0, saturation * 0.95, value * 0.86)
        return BackdropPalette("colour", top, bottom, bottom, bottom)
    top_look, bottom_look, material = SETTING_LOOK[setting]
    factor = 1.0 if setting == "space" else min(max(brightness / _NEUTRAL_BRIGHTNESS, 0.3), 1.1)
    factor *= shade_value
    saturation_factor = mood_saturation * shade_saturation
    if named is not None:
        if setting == "sky":  # "a pink sky": the sky takes the hue (or greyness) named
            if named[1] > 0.2:
                top_look = (named[0] + 6.0, top_look[1], top_look[2])
                bottom_look = (named[0] - 4.0, bottom_look[1], bottom_look[2])
            else:
                top_look = (0.0, named[1], named[2] * 0.85)
                bottom_look = (0.0, named[1], named[2])
        elif named[1] > 0.2:  # "a red desert", "a purple nebula": the material's hue
            material = (named[0], material[1], material[2])
        else:  # "a black forest", "white sand": the material's lightness
            material = named
    if time_of_day in ("night", "sunset", "dawn") and setting != "space":
        top, bottom = sky_colours(
            TIME_LOOK[time_of_day][0] + jitter, 0.6 * mood_saturation, 0.9, brightness, time_of_day
        )
    else:
        top = hsv(top_look[0] + jitter / 2, top_look[1] * saturation_factor, top_look[2] * factor)
        bottom = hsv(
            bottom_look[0] + jitter / 2, bottom_look[1] * saturation_factor, bottom_look[2] * factor
        )
    ground = hsv(material[0] + jitter / 2, material[1] * saturation_factor, material[2] * factor)
    sea = SETTING_LOOK["ocean"][2]
    water = hsv(sea[0] + jitter / 2, sea[1] * saturation_factor, sea[2] * factor)
    return BackdropPalette(setting, top, bottom, ground, ground if setting == "ocean" else water)


def setting_subject_colours(
    setting: str,
    subjects: list[str],
    colours: tuple[RGB, ...],
    water: RGB,
    *,
    named_colours: bool,
) -> tuple[RGB, ...]:
    """A setting's own subjects look the part: its waves are water, the stars of space white.

    The ocean's waves are always its water (colour the sea by naming its colour,
    "a green sea"); a lake elsewhere is water unless the prompt named colours.
    """
    owned: dict[str, RGB] = {}
    if setting == "ocean" or not named_colours:
        owned["waves"] = water
    if setting == "space":
        owned["stars"] = hsv(220.0, 0.08, 1.0)
    return tuple(owned.get(name, colour) for name, colour in zip(subjects, colours, strict=True))
