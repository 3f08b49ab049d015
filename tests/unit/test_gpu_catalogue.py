"""How a request maps onto an open model (size, frames, seed, steps)."""

from __future__ import annotations

import pytest

from reelforge.errors import ProviderRejectedError
from reelforge.gpu.catalogue import CATALOGUE, plan_generation, seed_from_key, spec_for
from reelforge.models import GenerationRequest

WAN = CATALOGUE["wan2.1-t2v-1.3b"]
LTX = CATALOGUE["ltx-video"]


def _plan(spec=WAN, options=None, **fields):  # type: ignore[no-untyped-def]
    req = GenerationRequest(prompt="a cat", **fields)
    return plan_generation(req, spec, options or {}, idempotency_key="video_1-1")


def test_a_size_off_the_models_multiple_is_rounded_down_and_recorded() -> None:
    plan = _plan(size="850x482")
    assert (plan.width, plan.height) == (848, 480)
    assert (plan.output_width, plan.output_height) == (850, 482)
    assert "850x482 -> 848x480" in plan.rounding["size"]


def test_a_size_on_the_multiple_is_kept_without_a_note() -> None:
    plan = _plan(size="832x480")
    assert (plan.width, plan.height) == (832, 480)
    assert "size" not in plan.rounding


def test_duration_times_fps_becomes_the_nearest_valid_frame_count() -> None:
    assert _plan(size="832x480", duration_seconds=5, fps=16).frames == 81  # 80 -> 4k+1
    assert _plan(LTX, size="704x512", duration_seconds=2, fps=24).frames == 49  # 48 -> 8k+1


def test_more_frames_than_the_model_makes_is_refused() -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        _plan(size="832x480", duration_seconds=20, fps=24)
    assert caught.value.code == "invalid_duration"


def test_the_requests_seed_is_kept_and_a_missing_one_derives_from_the_key() -> None:
    assert _plan(size="832x480", seed=5).seed == 5
    assert _plan(size="832x480").seed == seed_from_key("video_1-1")


def test_provider_options_override_the_models_steps_and_guidance() -> None:
    plan = _plan(options={"steps": 8, "guidance_scale": 1.0}, size="832x480")
    assert (plan.steps, plan.guidance_scale) == (8, 1.0)
    assert (_plan(size="832x480").steps, _plan(size="832x480").guidance_scale) == (50, 5.0)


def test_a_pipeline_class_without_a_model_gets_its_familys_rules() -> None:
    assert spec_for({"pipeline": "LTXPipeline"}, provider="p").frame_step == 8
    assert spec_for({"model": "wan2.2-ti2v-5b"}, provider="p").size_multiple == 32


def test_an_unknown_pipeline_or_model_is_a_configuration_error() -> None:
    for options in ({"pipeline": "StableDiffusionPipeline"}, {"model": "sora"}):
        with pytest.raises(ProviderRejectedError) as caught:
            spec_for(options, provider="p")
        assert caught.value.code == "provider_misconfigured"


def test_every_catalogue_default_is_a_valid_generation_for_its_model() -> None:
    for spec in CATALOGUE.values():
        assert (spec.frames - 1) % spec.frame_step == 0, spec.key
        assert spec.width % spec.size_multiple == 0 and spec.height % spec.size_multiple == 0
        assert spec.frames <= spec.max_frames
