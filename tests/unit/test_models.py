"""Input rules of DESIGN.md, enforced once in reelforge.models."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelforge.errors import InvalidRequestError
from reelforge.models import (
    PROMPT_PATTERN,
    SIZE_PATTERN,
    GenerationRequest,
    VideoStatus,
    parse_generation_request,
)


def _parse(**fields: Any) -> GenerationRequest:
    return parse_generation_request({"prompt": "a red ball", **fields})


def test_defaults_are_a_four_second_720p_mp4_at_24_fps() -> None:
    req = _parse()
    assert (req.duration_seconds, req.size, req.fps, req.formats) == (4.0, "1280x720", 24, ("mp4",))
    assert (req.width, req.height) == (1280, 720)


def test_prompt_is_stored_trimmed() -> None:
    assert _parse(prompt="  a red ball \n").prompt == "a red ball"


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"prompt": ""}, "invalid_prompt", "prompt"),
        ({"prompt": "   \n\t "}, "invalid_prompt", "prompt"),
        ({"prompt": "x" * 32_001}, "invalid_prompt", "prompt"),
        ({"prompt": "red\x00ball"}, "invalid_prompt", "prompt"),
        ({"prompt": "red\x1b[31mball"}, "invalid_prompt", "prompt"),
        ({"size": "1281x720"}, "invalid_size", "size"),
        ({"size": "1280x721"}, "invalid_size", "size"),
        ({"size": "1922x1080"}, "invalid_size", "size"),
        ({"size": "62x62"}, "invalid_size", "size"),
        ({"size": "big"}, "invalid_size", "size"),
        ({"duration_seconds": 0}, "invalid_duration", "duration_seconds"),
        ({"duration_seconds": -1}, "invalid_duration", "duration_seconds"),
        ({"duration_seconds": 60.5}, "invalid_duration", "duration_seconds"),
        ({"fps": 0}, "invalid_fps", "fps"),
        ({"fps": 61}, "invalid_fps", "fps"),
        ({"formats": ["mp4", "gif"]}, "invalid_format", "formats"),
        ({"formats": []}, "invalid_format", "formats"),
        ({"colour": "red"}, "unknown_field", "colour"),
        ({"seed": -1}, "invalid_seed", "seed"),
        ({"resolution": "4k", "aspect_ratio": "16:9"}, "invalid_size", None),
        ({"size": "640x360", "resolution": "720p"}, "invalid_size", None),
    ],
)
def test_bad_input_is_rejected_with_a_stable_code(
    fields: dict[str, Any], code: str, param: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _parse(**fields)
    assert caught.value.code == code
    assert caught.value.param == param


def test_missing_prompt_names_the_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request({})
    assert (caught.value.code, caught.value.param) == ("missing_field", "prompt")


def test_non_object_body_is_invalid_json() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_generation_request(["a red ball"])
    assert caught.value.code == "invalid_json"


def test_newlines_and_tabs_are_not_control_characters_for_prompts() -> None:
    assert _parse(prompt="line one\n\tline two").prompt == "line one\n\tline two"


def test_formats_accept_a_comma_list_and_drop_repeats() -> None:
    assert _parse(formats="webm, mp4,webm").formats == ("webm", "mp4")


@pytest.mark.parametrize(
    ("resolution", "aspect", "size"),
    [("720p", "16:9", "1280x720"), ("720p", "9:16", "720x1280"), ("480p", "1:1", "480x480")],
)
def test_resolution_and_aspect_ratio_give_a_size(resolution: str, aspect: str, size: str) -> None:
    assert _parse(resolution=resolution, aspect_ratio=aspect).size == size


def test_terminal_statuses() -> None:
    assert {s for s in VideoStatus if s.is_terminal} == {
        VideoStatus.COMPLETED,
        VideoStatus.FAILED,
        VideoStatus.CANCELLED,
    }


def test_a_request_made_from_resolution_validates_again_as_stored() -> None:
    req = _parse(resolution="480p", aspect_ratio="9:16")

    again = GenerationRequest.model_validate_json(req.model_dump_json())

    assert (again.size, again.resolution, again.aspect_ratio) == ("480x854", None, None)


def _parse_strict(**fields: Any) -> GenerationRequest:
    return parse_generation_request({"prompt": "a red ball", **fields}, strict=True)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"fps": "24"}, "invalid_fps"),
        ({"seed": "7"}, "invalid_seed"),
        ({"seed": 7.5}, "invalid_seed"),
        ({"duration_seconds": "4"}, "invalid_duration_seconds"),
        ({"duration_seconds": True}, "invalid_duration_seconds"),
        ({"regenerate_on_failure": "yes"}, "invalid_regenerate_on_failure"),
        ({"formats": "mp4,webm"}, "invalid_format"),
        ({"formats": ["MP4"]}, "invalid_format"),
        ({"formats": [{}]}, "invalid_format"),
        ({"size": "1280X720"}, "invalid_size"),
        ({"size": " 1280x720"}, "invalid_size"),
        ({"size": "01280x0720"}, "invalid_size"),
        ({"metadata": {"take": 2}}, "invalid_metadata"),
    ],
)
def test_a_strict_parse_takes_each_field_only_in_its_json_form(
    fields: dict[str, Any], code: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _parse_strict(**fields)
    assert caught.value.code == code


def test_a_strict_parse_takes_an_integral_float_as_an_integer() -> None:
    req = _parse_strict(seed=7.0, fps=30.0)
    assert (req.seed, req.fps) == (7, 30)


def _accepted_size(size: str) -> bool:
    try:
        _parse(size=size)
    except InvalidRequestError:
        return False
    return True


def test_size_pattern_matches_exactly_the_sizes_parse_size_takes() -> None:
    sizes = [f"{side}x{other}" for side in range(2000) for other in (side, 64, 1921)]
    disagree = [s for s in sizes if bool(re.fullmatch(SIZE_PATTERN, s)) != _accepted_size(s)]
    assert disagree == []


_PROMPT_CHARS = st.sampled_from(
    list("ab \t\n\r\x0b\x0c\x00\x1b\x1c\x1f\x7f\x85\x9f\xa0\u1680\u2000\u2028\u3000\u200b\ufeff")
)


@given(st.text(_PROMPT_CHARS, max_size=6) | st.text(max_size=8))
def test_prompt_pattern_matches_exactly_the_prompts_the_validator_takes(prompt: str) -> None:
    try:
        _parse(prompt=prompt)
        accepted = True
    except InvalidRequestError:
        accepted = False
    assert bool(re.fullmatch(PROMPT_PATTERN, prompt)) is accepted
