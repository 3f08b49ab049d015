"""The model catalogue: shipped entries parse, requests map onto each model's input."""

from __future__ import annotations

import pytest

from reelforge.errors import ReelforgeError
from reelforge.models import GenerationRequest
from reelforge.providers.catalogue import builtin_catalogue, catalogue, model_spec


def _request(**kw: object) -> GenerationRequest:
    return GenerationRequest.model_validate({"prompt": "a red fox", **kw})


def test_every_shipped_entry_has_durations_sizes_and_a_prompt_field() -> None:
    entries = builtin_catalogue()
    assert {kind for kind, _ in entries} >= {"runway", "veo", "luma", "fal", "replicate"}
    for spec in entries.values():
        assert spec.durations and spec.sizes
        assert "prompt" in spec.fields or not spec.text_input


def test_runway_takes_ratio_and_integer_duration() -> None:
    spec = model_spec("runway", "veo3.1")
    body = spec.build_input(
        _request(duration_seconds=8, size="720x1280", seed=7, negative_prompt="blur")
    )
    assert body == {
        "promptText": "a red fox",
        "negativePrompt": "blur",
        "duration": 8,
        "ratio": "720:1280",
        "seed": 7,
        "audio": True,
    }


def test_luma_takes_seconds_suffix_and_aspect_ratio_without_seed() -> None:
    body = model_spec("luma", "ray-2").build_input(_request(duration_seconds=5, seed=3))
    assert body == {
        "prompt": "a red fox",
        "duration": "5s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }


def test_aspect_ratio_is_the_nearest_named_ratio() -> None:
    spec = model_spec("replicate", "bytedance/seedance-1-pro")
    assert spec.build_input(_request(duration_seconds=5, size="864x480"))["aspect_ratio"] == "16:9"
    assert spec.build_input(_request(duration_seconds=5, size="1440x1440"))["aspect_ratio"] == "1:1"


def test_capabilities_come_from_the_entry() -> None:
    caps = model_spec("runway", "gen4.5").capabilities()
    assert caps.fits(_request(duration_seconds=4, size="1280x720"))
    assert not caps.fits(_request(duration_seconds=4, size="640x360"))
    assert not caps.fits(_request(duration_seconds=12, size="1280x720"))
    assert caps.max_prompt_length == 1000
    assert not caps.negative_prompt


def test_price_with_audio_is_used_for_models_that_make_sound() -> None:
    spec = model_spec("fal", "fal-ai/veo3.1")
    assert spec.capabilities().cost_per_second == pytest.approx(0.40)
    assert spec.estimate_cost(_request(duration_seconds=8)) == pytest.approx(3.2)


def test_image_only_model_refuses_text_only_request() -> None:
    with pytest.raises(ReelforgeError) as info:
        model_spec("runway", "gen4_turbo").build_input(_request(duration_seconds=5))
    assert info.value.code == "unsupported_input"


def test_settings_entry_adds_a_model_without_code() -> None:
    overrides = {
        "fal": {
            "acme/new-model": {
                "durations": [3],
                "sizes": ["640x360"],
                "duration_format": "string",
                "fields": {"prompt": "text", "duration": "len"},
                "price_per_second": 0.01,
            }
        }
    }
    spec = model_spec("fal", "acme/new-model", overrides)
    assert spec.build_input(_request(duration_seconds=3, size="640x360")) == {
        "text": "a red fox",
        "len": "3",
    }
    assert ("fal", "fal-ai/veo3.1") in catalogue(overrides)


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ReelforgeError) as info:
        model_spec("luma", "ray-9")
    assert info.value.code == "unknown_model"
    assert "ray-2" in info.value.message


def test_entry_with_an_unknown_field_is_refused() -> None:
    bad = {"fal": {"x/y": {"durations": [1], "sizes": ["64x64"], "fields": {"colour": "c"}}}}
    with pytest.raises(ValueError, match="unknown request fields"):
        catalogue(bad)
