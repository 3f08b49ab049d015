"""Captions: a 5x7 bitmap font (ASCII capitals, digits, punctuation) and its layout.

:func:`caption_mask` wraps and scales a caption to the frame as a boolean mask;
the renderer paints the mask's pixels over a half-dark panel.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np

from reelforge.media.render.arrays import Mask

__all__ = ["FONT_5X7", "caption_mask"]

FONT_5X7: Final[dict[str, str]] = {
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
def _glyph(char: str) -> Mask:
    rows = FONT_5X7.get(char.upper(), FONT_5X7["?"]).split()
    return np.array([[cell == "#" for cell in row] for row in rows], dtype=np.bool_)


def _text_bitmap(lines: list[str]) -> Mask:
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


def caption_mask(text: str, width: int, height: int) -> Mask:
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
