"""Prompt text rules: refused characters (named, with their position) and the
normal form, with properties over arbitrary Unicode."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reelforge.errors import InvalidRequestError
from reelforge.models import parse_generation_request
from reelforge.prompts.text import find_forbidden, is_emoji, normalize

INVISIBLE = [
    "\u202e",  # right-to-left override
    "\u202a",  # left-to-right embedding
    "\u2066",  # left-to-right isolate
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u2060",  # word joiner
    "\ufeff",  # BOM / zero-width no-break space
    "\u00ad",  # soft hyphen
    "\U000e0041",  # tag latin capital letter A (ASCII smuggling)
]


def _is_invisible_or_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in "\t\n\r\x0b\x0c\x85"


@pytest.mark.parametrize("char", INVISIBLE)
def test_invisible_characters_are_refused_with_their_name_and_position(char: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request({"prompt": f"a red{char} ball"})
    assert caught.value.code == "invalid_prompt"
    assert caught.value.param == "prompt"
    assert f"U+{ord(char):04X}" in caught.value.message
    assert "at character 6" in caught.value.message


def test_a_control_character_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request({"prompt": "bell\x07"})
    assert "U+0007 BELL" in caught.value.message
    assert "at character 5" in caught.value.message


def test_a_lone_surrogate_is_refused() -> None:
    bad = find_forbidden("ab\ud800c")
    assert bad is not None and bad.index == 2 and bad.kind == "lone surrogate"


def test_a_zero_width_joiner_inside_an_emoji_sequence_is_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
    technologist = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # woman, skin tone, ZWJ, laptop
    for text in (f"a {family} at the beach", f"{technologist} coding"):
        assert find_forbidden(text) is None


def test_a_zero_width_joiner_between_letters_is_refused() -> None:
    bad = find_forbidden("ab\u200dcd")
    assert bad is not None and bad.kind == "zero-width character" and bad.index == 2


def test_a_subdivision_flag_tag_sequence_is_kept_but_loose_tags_are_not() -> None:
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert find_forbidden(f"the {scotland} flag waving") is None
    assert find_forbidden("hello\U000e0068\U000e0069") is not None


def test_negative_prompt_and_template_vars_are_checked_too() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request({"prompt": "x", "negative_prompt": "blur\u200b"})
    assert caught.value.code == "invalid_negative_prompt"
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request(
            {"prompt": "x", "template": "explainer", "template_vars": {"topic": "\u202eabc"}}
        )
    assert caught.value.code == "invalid_template_vars"
    assert "template_vars.topic" in caught.value.message


def test_normalize_composes_and_collapses_whitespace() -> None:
    assert (
        normalize("  cafe\u0301 \t\u00a0 at   night \n\n\n  rain  ") == "caf\u00e9 at night\nrain"
    )


@given(st.text())
@example("e\u0301\u3000\u0301")
@example("\u2028 \u2029x")
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


# Arbitrary Unicode, with the characters we refuse (and lone surrogates) mixed in often.
PROMPT_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from([*INVISIBLE, "\u200d", "\ud800", "\x00", "\x1b", "\U0001f469"]),
    )
)


@given(PROMPT_TEXT)
@example("a\u202eb")
@example("\u200d\U0001f600")
@example("\U0001f600\u200d")
def test_parsing_never_raises_anything_but_our_error_nor_lets_invisibles_through(
    text: str,
) -> None:
    try:
        req = parse_generation_request({"prompt": text})
    except InvalidRequestError:
        return
    for index, ch in enumerate(req.prompt):
        if ch == "\u200d":  # kept only between two emoji
            assert is_emoji(req.prompt[index + 1])
            continue
        if 0xE0020 <= ord(ch) <= 0xE007F:  # kept only in a flag sequence
            continue
        assert not _is_invisible_or_control(ch), (index, hex(ord(ch)))
