"""Background and setting phrases: which words of a prompt describe what is behind the subject.

"a green square on a plain white background" names a subject colour (green) and a
backdrop (plain, white); "against a pale blue sky" names a setting (sky) and its
colour. :func:`find_backdrop` finds the backdrop nouns ("background", "wall",
"floor"...) and setting words ("sky", "ocean", "forest"...), and claims the colour,
shade and flatness words written next to them ("plain white background",
"background of deep blue"), so the scene does not also give those to the subject.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelforge.media.render.vocabulary import (
    BACKDROP_NOUNS,
    COLOURS,
    FLAT_WORDS,
    SETTING_WORDS,
    SHADE_WORDS,
)

__all__ = ["BackdropWords", "find_backdrop"]

# Words that may sit between a modifier and its noun without ending the phrase:
# "black and white", "a white studio background", "the green grass field".
_JOINERS = frozenset(
    {"and", "very", "soft", "smooth", "studio", "paper", "grass", "grassy", "stone", "wooden"}
    | {"concrete", "brick", "marble", "velvet", "fabric", "cloth", "painted", "coloured"}
)
# "a background of white", "the wall in pale grey", "the floor is black".
_TRAILING_LINKS = frozenset({"of", "in", "is", "all"})


@dataclass(frozen=True, slots=True)
class BackdropWords:
    """What a prompt says about its backdrop, and the words left for the rest of the scene."""

    setting: str | None  # "sky", "ocean", "forest", "desert", "snow", "space"
    colour: str | None  # the first colour named for the backdrop or setting
    shade: str | None  # "dark", "light", "pale", "deep", "bright" said of that colour
    flat: bool  # "plain", "solid", "flat": one colour, no gradient or texture
    rest: tuple[str, ...]  # the prompt's words without the backdrop's modifiers


def _is_modifier(word: str) -> bool:
    return word in COLOURS or word in FLAT_WORDS or word in SHADE_WORDS


def find_backdrop(words: list[str]) -> BackdropWords:
    """Read the backdrop from ``words`` (the prompt's lower-case words, in order)."""
    claimed: set[int] = set()
    setting: str | None = None
    for index, word in enumerate(words):
        is_setting = word in SETTING_WORDS
        if not is_setting and word not in BACKDROP_NOUNS:
            continue
        if is_setting and setting is None:
            setting = SETTING_WORDS[word]
        start = index
        while start > 0 and (
            _is_modifier(words[start - 1])
            or (words[start - 1] in _JOINERS and start > 1 and _is_modifier(words[start - 2]))
        ):
            start -= 1
        claimed.update(range(start, index))
        if index + 1 < len(words) and words[index + 1] in _TRAILING_LINKS:
            end = index + 2
            while end < len(words) and (_is_modifier(words[end]) or words[end] in _JOINERS):
                end += 1
            claimed.update(range(index + 1, end))
    modifiers = [words[index] for index in sorted(claimed)]
    colour = next((word for word in modifiers if word in COLOURS), None)
    return BackdropWords(
        setting=setting,
        colour="grey" if colour == "gray" else colour,
        shade=next((word for word in modifiers if word in SHADE_WORDS), None),
        flat=any(word in FLAT_WORDS for word in modifiers),
        rest=tuple(word for index, word in enumerate(words) if index not in claimed),
    )
