"""Prompt text rules: which characters we refuse, and the normal form we keep.

Refused, never silently dropped (each names the character and its position):

- control characters (category ``Cc``) other than tab, newline and carriage return,
  which are whitespace and get collapsed;
- format characters (category ``Cf``): bidi overrides, embeddings, isolates and marks
  (the "Trojan Source" characters), zero-width spaces and joiners, the BOM, soft
  hyphens, invisible operators and tag characters. Two emoji sequences are kept: a
  zero-width joiner *between* two emoji (👩‍💻) and the tag characters of a flag
  sequence after U+1F3F4 (🏴 + tags + cancel tag);
- lone surrogates (a JSON ``"\\ud800"`` decodes to one; nothing can encode it).

Normal form: Unicode NFC; runs of whitespace become one space, or one newline when
the run held a line break; no leading or trailing whitespace. ``normalize`` is
idempotent: the normal form of a normal form is itself.

This module depends on nothing else in reelforge, so ``reelforge.models`` checks
prompts with it at parse time.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["ForbiddenCharacter", "find_forbidden", "is_emoji", "normalize"]

_ZWJ = "\u200d"
_VS16 = "\ufe0f"
_BLACK_FLAG = 0x1F3F4
_TAG_FIRST, _TAG_CANCEL = 0xE0020, 0xE007F
_LINE_BREAKS = "\n\r\u2028\u2029\x85\x0b\x0c"
# A run of whitespace with a line break in it becomes one newline; any other run
# becomes one space (the first pass leaves no whitespace next to a newline).
_BROKEN_RUN = re.compile(rf"\s*[{_LINE_BREAKS}]\s*")
_SPACE_RUN = re.compile(r"[^\S\n]+")

_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_ZERO_WIDTH = frozenset([0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF])

# Extended_Pictographic, approximately: the blocks emoji live in.
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2300, 0x23FF),
    (0x2B00, 0x2BFF),
    (0x2190, 0x21FF),
    (0x1F1E6, 0x1F1FF),
)
_EMOJI_SINGLES = frozenset([0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x3030, 0x303D, 0x3297])
# Skin tones and the emoji presentation selector sit between an emoji and a ZWJ.
_EMOJI_MODIFIERS = frozenset([0xFE0F, *range(0x1F3FB, 0x1F400)])


# Unicode gives control characters no names; these are their ISO 6429 names.
_C0_NAMES = (
    "NULL", "START OF HEADING", "START OF TEXT", "END OF TEXT", "END OF TRANSMISSION",
    "ENQUIRY", "ACKNOWLEDGE", "BELL", "BACKSPACE", "CHARACTER TABULATION", "LINE FEED",
    "LINE TABULATION", "FORM FEED", "CARRIAGE RETURN", "SHIFT OUT", "SHIFT IN",
    "DATA LINK ESCAPE", "DEVICE CONTROL ONE", "DEVICE CONTROL TWO", "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR", "NEGATIVE ACKNOWLEDGE", "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK", "CANCEL", "END OF MEDIUM", "SUBSTITUTE", "ESCAPE",
    "INFORMATION SEPARATOR FOUR", "INFORMATION SEPARATOR THREE",
    "INFORMATION SEPARATOR TWO", "INFORMATION SEPARATOR ONE",
)  # fmt: skip


def _name(char: str) -> str:
    if ord(char) < len(_C0_NAMES):
        return _C0_NAMES[ord(char)]
    if char == "\x7f":
        return "DELETE"
    return unicodedata.name(char, "unnamed")


@dataclass(frozen=True, slots=True)
class ForbiddenCharacter:
    """A character we refuse, where it is (0-based index), and what kind it is."""

    char: str
    index: int
    kind: str  # "control character", "bidi control", "zero-width character", ...

    @property
    def codepoint(self) -> str:
        return f"U+{ord(self.char):04X}"

    def describe(self, field: str = "prompt") -> str:
        return (
            f"{field} contains a {self.kind}, {self.codepoint} {_name(self.char)}, at character "
            f"{self.index + 1}; remove it (invisible characters can hide text)"
        )


def is_emoji(char: str) -> bool:
    cp = ord(char)
    return cp in _EMOJI_SINGLES or any(lo <= cp <= hi for lo, hi in _EMOJI_RANGES)


def _emoji_before(text: str, index: int) -> bool:
    i = index - 1
    while i >= 0 and ord(text[i]) in _EMOJI_MODIFIERS:
        i -= 1
    return i >= 0 and is_emoji(text[i])


def _in_flag_tag_sequence(text: str, index: int) -> bool:
    """Tag characters are kept only as 🏴 + tag letters + cancel tag (a subdivision flag)."""
    start = index
    while start > 0 and _TAG_FIRST <= ord(text[start - 1]) <= _TAG_CANCEL:
        start -= 1
    if start == 0 or ord(text[start - 1]) != _BLACK_FLAG:
        return False
    end = index
    while end < len(text) and _TAG_FIRST <= ord(text[end]) < _TAG_CANCEL:
        end += 1
    return end < len(text) and ord(text[end]) == _TAG_CANCEL and end > start


def _kind(text: str, index: int) -> str | None:
    """Why the character at ``index`` is refused, or None when it is fine."""
    char = text[index]
    cp = ord(char)
    category = unicodedata.category(char)
    if category == "Cc":
        return None if char in "\t\n\r" or char in _LINE_BREAKS else "control character"
    if category == "Cs":
        return "lone surrogate"
    if category != "Cf":
        return None
    if cp in _BIDI:
        return "bidi control"
    if cp == ord(_ZWJ):
        follows = index + 1 < len(text) and is_emoji(text[index + 1])
        return None if follows and _emoji_before(text, index) else "zero-width character"
    if cp in _ZERO_WIDTH:
        return "zero-width character"
    if _TAG_FIRST - 0x20 <= cp <= _TAG_CANCEL:
        return None if _in_flag_tag_sequence(text, index) else "tag character"
    return "invisible format character"


def find_forbidden(text: str) -> ForbiddenCharacter | None:
    """The first character of ``text`` we refuse, or None."""
    for index, char in enumerate(text):
        # Fast path: printable ASCII and most letters are never refused.
        if " " <= char <= "~":
            continue
        kind = _kind(text, index)
        if kind is not None:
            return ForbiddenCharacter(char, index, kind)
    return None


def normalize(text: str) -> str:
    """NFC, whitespace runs collapsed, trimmed. Check ``find_forbidden`` first."""
    text = unicodedata.normalize("NFC", text)
    return _SPACE_RUN.sub(" ", _BROKEN_RUN.sub("\n", text)).strip()
