"""Input rules of DESIGN.md, enforced once in reelforge.models."""

from __future__ import annotations

from typing import Any

import pytest

from reelforge.errors import InvalidRequestError
from reelforge.models import GenerationRequest, VideoStatus, parse_generation_request


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
