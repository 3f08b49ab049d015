"""The words the renderer knows, and what each one steers in a scene.

Plain data: :mod:`reelforge.media.render.scene` reads these tables to turn a
prompt's words into a :class:`~reelforge.media.render.scene.Scene`.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BACKDROP_NOUNS",
    "COLOURS",
    "FLAT_WORDS",
    "MOOD_LOOK",
    "MOOD_WORDS",
    "MOTIONS",
    "MOTION_WORDS",
    "NUMBER_WORDS",
    "PLURAL_SUBJECT_WORDS",
    "SETTING_LOOK",
    "SETTING_WORDS",
    "SHADE_WORDS",
    "SHAPES",
    "SUBJECT_WORDS",
    "TIME_LOOK",
    "TIME_WORDS",
]

# Named colours as (hue degrees, saturation, value); HSV so that shades of the
# same colour (darker sky, lighter highlight) keep its hue.
COLOURS: Final[dict[str, tuple[float, float, float]]] = {
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

SUBJECT_WORDS: Final[dict[str, str]] = {
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
PLURAL_SUBJECT_WORDS: Final = frozenset(
    {"balls", "circles", "spheres", "orbs", "bubbles", "planets"}
    | {"squares", "boxes", "cubes", "blocks", "tiles"}
)
SHAPES: Final = ("ball", "square")

MOTION_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("bouncing", "bounce", "bounces", "bouncy", "jumping", "hopping"), "bouncing"),
    **dict.fromkeys(("spinning", "spin", "spins", "rotating", "rotate", "rotates"), "spinning"),
    **dict.fromkeys(("twirling", "turning", "whirling"), "spinning"),
    **dict.fromkeys(("drifting", "drift", "drifts", "floating", "float", "floats"), "drifting"),
    **dict.fromkeys(("flying", "gliding", "sailing", "moving"), "drifting"),
    **dict.fromkeys(("zoom", "zooming", "zooms", "growing", "approaching"), "zoom"),
    **dict.fromkeys(("orbit", "orbits", "orbiting", "circling", "swirling"), "orbit"),
}
MOTIONS: Final = ("bouncing", "spinning", "drifting", "zoom", "orbit")

TIME_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("night", "nighttime", "midnight", "moon", "moonlit", "nocturnal"), "night"),
    **dict.fromkeys(("sunset", "dusk", "evening", "twilight"), "sunset"),
    **dict.fromkeys(("dawn", "sunrise", "morning", "daybreak"), "dawn"),
    **dict.fromkeys(("day", "daytime", "noon", "sunny", "afternoon", "daylight"), "day"),
}

MOOD_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("calm", "peaceful", "serene", "gentle", "relaxing", "quiet"), "calm"),
    **dict.fromkeys(("tranquil", "slow", "dreamy", "soft", "lazy"), "calm"),
    **dict.fromkeys(("dark", "gloomy", "moody", "ominous", "spooky", "eerie"), "dark"),
    **dict.fromkeys(("bright", "vivid", "shiny", "radiant", "glowing", "luminous"), "bright"),
    **dict.fromkeys(("happy", "joyful", "cheerful", "playful", "fun", "joy"), "happy"),
    **dict.fromkeys(("sad", "melancholy", "melancholic", "lonely", "somber", "sombre"), "sad"),
    **dict.fromkeys(("energetic", "fast", "exciting", "dynamic", "lively", "wild"), "energetic"),
    **dict.fromkeys(("frantic", "intense", "party", "dance", "dancing", "rush"), "energetic"),
}

NUMBER_WORDS: Final[dict[str, int]] = {
    "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip

# Time of day: (sky hue when no colour is named, brightness).
TIME_LOOK: Final[dict[str, tuple[float, float]]] = {
    "night": (230.0, 0.45),
    "sunset": (20.0, 0.78),
    "dawn": (340.0, 0.88),
    "day": (205.0, 1.0),
}
# Mood: (brightness factor, saturation factor, speed factor, tempo in bpm).
MOOD_LOOK: Final[dict[str, tuple[float, float, float, float]]] = {
    "calm": (1.0, 0.85, 0.6, 72.0),
    "dark": (0.55, 0.9, 0.9, 84.0),
    "bright": (1.25, 1.1, 1.0, 112.0),
    "happy": (1.1, 1.1, 1.2, 124.0),
    "sad": (0.8, 0.65, 0.7, 66.0),
    "energetic": (1.05, 1.15, 1.7, 150.0),
    "neutral": (1.0, 1.0, 1.0, 100.0),
}

# Nouns for what is behind the subject; colour and flatness words next to them
# describe the backdrop, not the subject ("a green square on a white background").
BACKDROP_NOUNS: Final = frozenset(
    {"background", "backgrounds", "backdrop", "backdrops", "field", "wall", "walls"}
    | {"floor", "floors", "surface", "canvas", "ground", "tabletop"}
)
# One flat colour: no gradient, vignette or texture.
FLAT_WORDS: Final = frozenset({"plain", "solid", "flat", "uniform", "blank", "simple", "pure"})
# Shade of a backdrop colour: (saturation factor, value factor).
SHADE_WORDS: Final[dict[str, tuple[float, float]]] = {
    "dark": (1.0, 0.45),
    "deep": (1.1, 0.7),
    "light": (0.55, 1.15),
    "pale": (0.4, 1.15),
    "bright": (1.1, 1.15),
}

# Settings: words that put the subject somewhere, drawn as a procedural scene.
SETTING_WORDS: Final[dict[str, str]] = {
    **dict.fromkeys(("sky", "skies", "cloud", "clouds", "cloudy", "heavens"), "sky"),
    **dict.fromkeys(("ocean", "oceans", "sea", "seas", "seascape", "seaside"), "ocean"),
    **dict.fromkeys(("forest", "forests", "woods", "woodland", "jungle", "trees"), "forest"),
    **dict.fromkeys(("desert", "deserts", "dune", "dunes", "sand", "sandy", "sahara"), "desert"),
    **dict.fromkeys(("snow", "snowy", "snowing", "snowfall", "snowflakes", "winter"), "snow"),
    **dict.fromkeys(("blizzard", "snowfield", "snowstorm"), "snow"),
    **dict.fromkeys(("space", "cosmos", "cosmic", "nebula", "universe", "galaxy"), "space"),
}
# Setting: (sky top, sky bottom, material) as HSV; the material is what the setting
# is made of: clouds, water, trees, sand, snow, nebula.
SETTING_LOOK: Final[dict[str, tuple[tuple[float, float, float], ...]]] = {
    "sky": ((212.0, 0.62, 0.88), (198.0, 0.28, 0.98), (210.0, 0.03, 1.0)),
    "ocean": ((210.0, 0.55, 0.86), (195.0, 0.22, 0.96), (200.0, 0.78, 0.70)),
    "forest": ((195.0, 0.35, 0.86), (110.0, 0.15, 0.90), (135.0, 0.55, 0.42)),
    "desert": ((208.0, 0.45, 0.92), (42.0, 0.22, 0.98), (36.0, 0.55, 0.90)),
    "snow": ((212.0, 0.18, 0.86), (210.0, 0.06, 0.96), (210.0, 0.04, 0.98)),
    "space": ((245.0, 0.55, 0.05), (265.0, 0.45, 0.12), (275.0, 0.60, 0.55)),
}
