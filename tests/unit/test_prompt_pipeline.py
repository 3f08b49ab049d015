"""The prompt pipeline as a specification: styles, templates, fitting each model,
rule-based enhancement, the policy pre-check, and its properties over Unicode."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelforge.errors import InvalidRequestError, PromptError, PromptRejectedError
from reelforge.models import parse_generation_request
from reelforge.prompts.pipeline import (
    FOLD_PREFIX,
    ProcessedPrompt,
    apply_style_defaults,
    fit_route,
    process_prompt,
)
from reelforge.prompts.policy import skeleton
from reelforge.prompts.text import find_forbidden
from reelforge.providers.base import Capabilities
from reelforge.settings import PolicyRule, PromptSettings, TenantPrompts

TAKES_NEGATIVE = Capabilities(max_duration_seconds=60)
NO_NEGATIVE = Capabilities(max_duration_seconds=60, negative_prompt=False)
SHORT = Capabilities(max_duration_seconds=60, max_prompt_length=60)


def _process(
    body: dict[str, Any],
    prompts: PromptSettings | None = None,
    *,
    caps: Capabilities = TAKES_NEGATIVE,
    provider: str = "model-x",
    owner: str = "default",
) -> ProcessedPrompt:
    req = parse_generation_request(body)
    return process_prompt(
        req, prompts or PromptSettings(), caps=caps, provider=provider, owner=owner
    )


def _steps(processed: ProcessedPrompt) -> dict[str, tuple[bool, str]]:
    return {s.step: (s.changed, s.why) for s in processed.steps}


# --- normalisation -------------------------------------------------------------


def test_a_plain_prompt_is_sent_as_typed_with_every_step_recorded() -> None:
    processed = _process({"prompt": "a red ball bouncing"})
    assert processed.text == "a red ball bouncing"
    assert [s.step for s in processed.steps] == ["normalize", "length", "policy"]
    assert not any(s.changed for s in processed.steps)


def test_messy_whitespace_and_decomposed_accents_are_normalised_and_recorded() -> None:
    processed = _process({"prompt": "cafe\u0301   at\u00a0night"})
    assert processed.text == "caf\u00e9 at night"
    assert _steps(processed)["normalize"][0] is True


# --- styles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "addition", "negative", "fps", "size"),
    [
        ("cinematic", "anamorphic lens", "flat lighting", 24, "1280x720"),
        ("anime", "cel shading", "photorealistic", 24, "1280x720"),
        ("documentary", "steady handheld camera", "oversaturated", 30, "1280x720"),
        ("product", "studio product shot", "watermark", 30, "720x1280"),
        ("timelapse", "time-lapse", "camera shake", 30, "1280x720"),
        ("claymation", "plasticine models", "smooth cgi", 12, "1280x720"),
    ],
)
def test_each_style_adds_its_words_negative_prompt_and_defaults(
    style: str, addition: str, negative: str, fps: int, size: str
) -> None:
    processed = _process({"prompt": "a lighthouse", "style": style})
    assert processed.text.startswith("a lighthouse, ")
    assert addition in processed.text
    assert processed.negative is not None and negative in processed.negative
    assert _steps(processed)["style"][0] is True
    req = apply_style_defaults(
        parse_generation_request({"prompt": "a lighthouse", "style": style}),
        PromptSettings(),
        "default",
    )
    assert (req.fps, req.size) == (fps, size)


def test_a_style_never_overrides_the_fps_and_size_the_request_chose() -> None:
    req = parse_generation_request(
        {"prompt": "x", "style": "claymation", "fps": 30, "resolution": "480p"}
    )
    styled = apply_style_defaults(req, PromptSettings(), "default")
    assert (styled.fps, styled.size) == (30, req.size)


def test_an_unknown_style_is_refused_with_the_choices() -> None:
    with pytest.raises(PromptError) as caught:
        _process({"prompt": "x", "style": "vaporwave"})
    assert caught.value.code == "unknown_style" and caught.value.param == "style"
    assert "cinematic" in caught.value.message


def test_a_style_adds_only_what_the_prompt_does_not_already_say() -> None:
    processed = _process({"prompt": "an anime style fox, cel shading", "style": "anime"})
    assert processed.text.count("cel shading") == 1
    assert processed.text.count("anime style") == 1


def test_the_tenants_default_style_applies_when_the_request_names_none() -> None:
    prompts = PromptSettings(tenants={"acme": TenantPrompts(default_style="product")})
    assert "studio product shot" in _process({"prompt": "a mug"}, prompts, owner="acme").text
    assert "studio product shot" not in _process({"prompt": "a mug"}, prompts).text


def test_a_style_table_is_configurable() -> None:
    prompts = PromptSettings.model_validate(
        {"styles": {"noir": {"description": "Film noir.", "additions": ["black and white"]}}}
    )
    assert _process({"prompt": "a detective", "style": "noir"}, prompts).text == (
        "a detective, black and white"
    )


# --- templates -------------------------------------------------------------------


def test_a_template_is_filled_from_template_vars_and_the_prompt() -> None:
    processed = _process(
        {
            "prompt": "slow drone flight",
            "template": "travel_postcard",
            "template_vars": {"place": "Lofoten", "time_of_day": "dusk"},
        }
    )
    assert processed.text == "a sweeping view of Lofoten at dusk, slow drone flight"
    assert _steps(processed)["template"] == (True, "filled template 'travel_postcard'")


def test_a_template_var_that_looks_like_a_placeholder_is_not_filled_again() -> None:
    processed = _process(
        {
            "prompt": "p",
            "template": "travel_postcard",
            "template_vars": {"place": "{time_of_day}", "time_of_day": "noon"},
        }
    )
    assert processed.text.startswith("a sweeping view of {time_of_day} at noon")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"template": "nope"}, "unknown_template", "template"),
        ({"template": "explainer", "template_vars": {"topic": "tides"}}, "missing_template_var",
         "template_vars.audience"),
        ({"template": "explainer", "template_vars": {"topic": "t", "audience": "a", "tone": "x"}},
         "unknown_template_var", "template_vars.tone"),
        ({"template": "explainer", "template_vars": {"topic": "t", "audience": "a", "prompt": "x"}},
         "unknown_template_var", "template_vars.prompt"),
        ({"template_vars": {"topic": "tides"}}, "unknown_template_var", "template_vars"),
    ],
)  # fmt: skip
def test_template_errors_name_the_placeholder(body: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(PromptError) as caught:
        _process({"prompt": "x", **body})
    assert (caught.value.code, caught.value.param) == (code, param)


def test_configured_templates_must_take_the_prompt_and_only_name_placeholders() -> None:
    with pytest.raises(ValueError, match="must contain"):
        PromptSettings(templates={"bad": "a {thing} alone"})
    with pytest.raises(ValueError, match="braces"):
        PromptSettings(templates={"bad": "{prompt} {a.b}"})


# --- fitting the model -------------------------------------------------------------


def test_a_prompt_over_the_models_limit_is_refused_naming_the_limit_and_model() -> None:
    with pytest.raises(PromptError) as caught:
        _process({"prompt": "x" * 61}, caps=SHORT, provider="tiny-model")
    assert caught.value.code == "prompt_too_long"
    assert "61 characters" in caught.value.message
    assert "'tiny-model' takes at most 60" in caught.value.message


def test_a_style_that_pushes_the_prompt_over_the_limit_is_refused_not_truncated() -> None:
    _process({"prompt": "x" * 50}, caps=SHORT)
    with pytest.raises(PromptError) as caught:
        _process({"prompt": "x" * 50, "style": "cinematic"}, caps=SHORT)
    assert caught.value.code == "prompt_too_long"


def test_a_style_may_take_a_full_length_prompt_past_the_request_limit() -> None:
    processed = _process({"prompt": "x" * 32_000, "style": "cinematic"})
    assert len(processed.text) > 32_000


def test_our_global_limit_on_the_processed_prompt_holds_whatever_the_model_takes() -> None:
    huge = PromptSettings(templates={"huge": "{prompt} " + "y " * 64_000})
    with pytest.raises(PromptError) as caught:
        _process({"prompt": "x", "template": "huge"}, huge)
    assert caught.value.code == "prompt_too_long" and "128000" in caught.value.message


def test_a_negative_prompt_is_sent_apart_to_a_model_that_takes_one() -> None:
    processed = _process({"prompt": "a beach", "negative_prompt": "people"})
    assert (processed.text, processed.negative) == ("a beach", "people")


def test_a_negative_prompt_is_folded_in_for_a_model_that_takes_none() -> None:
    processed = _process(
        {"prompt": "a beach", "negative_prompt": "people, boats"}, caps=NO_NEGATIVE
    )
    assert processed.text == f"a beach. {FOLD_PREFIX}people, boats"
    assert processed.negative is None
    changed, why = _steps(processed)["negative_prompt"]
    assert changed and "folded" in why


def test_a_negative_prompt_is_dropped_where_settings_say_so_and_recorded() -> None:
    prompts = PromptSettings(negative_fallback_by_provider={"local": "drop"})
    processed = _process(
        {"prompt": "a beach", "negative_prompt": "rain"},
        prompts,
        caps=NO_NEGATIVE,
        provider="local",
    )
    assert (processed.text, processed.negative) == ("a beach", None)
    assert "dropped (rain)" in _steps(processed)["negative_prompt"][1]


def test_a_route_skips_the_providers_whose_prompt_limit_the_prompt_passes() -> None:
    caps = {"short": SHORT, "long": TAKES_NEGATIVE}
    req = parse_generation_request({"prompt": "y" * 100})
    processed, route = fit_route(
        req, PromptSettings(), ["short", "long"], caps_of=caps.__getitem__, owner="default"
    )
    assert route == ["long"] and processed.provider == "long"
    with pytest.raises(PromptError, match="'short' takes at most 60"):
        fit_route(req, PromptSettings(), ["short"], caps_of=caps.__getitem__, owner="default")


# --- enhancement (rule-based) -----------------------------------------------------------


def test_enhancement_is_off_by_default() -> None:
    assert _process({"prompt": "a fox"}).text == "a fox"


def test_rule_based_enhancement_adds_the_missing_aspects_of_a_shot() -> None:
    processed = _process({"prompt": "a fox", "enhance": True})
    assert processed.text.startswith("a fox, ")
    for word in ("motion", "setting", "camera", "lighting"):
        assert word in processed.text
    changed, why = _steps(processed)["enhance"]
    assert changed and why == "rule-based: added action, setting, camera, lighting"


def test_rule_based_enhancement_leaves_a_detailed_prompt_alone() -> None:
    text = "a fox running through snow at dusk, wide aerial shot, soft moonlight"
    processed = _process({"prompt": text, "enhance": True})
    assert processed.text == text
    assert _steps(processed)["enhance"][0] is False


def test_enhancement_that_would_pass_the_limit_is_skipped_not_refused() -> None:
    processed = _process({"prompt": "a small red fox", "enhance": True}, caps=SHORT)
    assert processed.text == "a small red fox"
    assert "skipped" in _steps(processed)["enhance"][1]


def test_with_a_chat_endpoint_enhancement_is_left_to_the_worker() -> None:
    prompts = PromptSettings.model_validate(
        {"enhance_endpoint": {"base_url": "http://127.0.0.1:9/v1"}}
    )
    processed = _process({"prompt": "a fox", "enhance": True}, prompts)
    assert processed.text == "a fox" and processed.pending == ("enhance",)


# --- policy -------------------------------------------------------------------------


POLICY = PromptSettings(
    rules=[
        PolicyRule(id="weapons", terms=["bomb", "assault rifle"]),
        PolicyRule(id="ssn", pattern=r"\b\d{3}-\d{2}-\d{4}\b"),
    ],
    tenants={"kids": TenantPrompts(rules=[PolicyRule(id="scary", terms=["zombie"])])},
)


@pytest.mark.parametrize(
    "prompt",
    [
        "a bomb explodes",
        "A BOMB!",
        "a b\u043emb",  # Cyrillic o
        "a b\u03bfmb",  # Greek omicron
        "a \uff42\uff4f\uff4d\uff42",  # fullwidth
        "a b0mb",  # leetspeak
        "an assault   rifle",
        "an assault-rifle",
        "b\u00f3mb",  # accented
    ],
)
def test_blocked_terms_are_refused_with_the_rule_id_however_they_are_spelled(
    prompt: str,
) -> None:
    with pytest.raises(PromptRejectedError) as caught:
        _process({"prompt": prompt}, POLICY)
    assert caught.value.code == "prompt_rejected"
    assert caught.value.rule == "weapons"
    assert caught.value.to_dict()["rule"] == "weapons"


@pytest.mark.parametrize("prompt", ["bombastic fireworks", "a bombe glac\u00e9e", "riflemen"])
def test_blocked_terms_match_whole_words_only(prompt: str) -> None:
    _process({"prompt": prompt}, POLICY)


def test_a_blocked_pattern_is_refused_with_its_rule_id() -> None:
    with pytest.raises(PromptRejectedError) as caught:
        _process({"prompt": "show the card 123-45-6789"}, POLICY)
    assert caught.value.rule == "ssn"


def test_a_tenants_own_rules_apply_to_that_tenant_only() -> None:
    _process({"prompt": "a zombie parade"}, POLICY, owner="default")
    with pytest.raises(PromptRejectedError) as caught:
        _process({"prompt": "a z\u03bfmbie parade"}, POLICY, owner="kids")
    assert caught.value.rule == "scary"


def test_the_negative_prompt_and_template_vars_are_checked_by_the_policy() -> None:
    with pytest.raises(PromptRejectedError) as caught:
        _process({"prompt": "a beach", "negative_prompt": "bomb"}, POLICY)
    assert caught.value.param == "negative_prompt"
    with pytest.raises(PromptRejectedError):
        _process(
            {
                "prompt": "p",
                "template": "travel_postcard",
                "template_vars": {"place": "a b0mb site", "time_of_day": "noon"},
            },
            POLICY,
        )


def test_skeleton_folds_case_accents_compatibility_forms_and_look_alikes() -> None:
    assert skeleton("\uff22\u00d3\u041c\u0412") == "bomb"


def test_a_bad_policy_pattern_is_refused_when_settings_load() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        PolicyRule(id="bad", pattern="(")


# --- properties ---------------------------------------------------------------------


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "style": st.sampled_from(
            ["cinematic", "anime", "documentary", "product", "timelapse", "claymation"]
        ),
        "enhance": st.booleans(),
        "negative_prompt": st.text(max_size=40),
    },
)
CAPS = st.sampled_from([TAKES_NEGATIVE, NO_NEGATIVE, Capabilities(60, max_prompt_length=400)])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), options=OPTIONS, caps=CAPS)
def test_the_pipeline_raises_only_our_errors_is_idempotent_and_lets_no_invisibles_through(
    text: str, options: dict[str, Any], caps: Capabilities
) -> None:
    try:
        once = _process({"prompt": text, **options}, POLICY, caps=caps)
    except InvalidRequestError:
        return
    for sent in (once.text, once.negative or ""):
        bad = find_forbidden(sent)
        assert bad is None, bad
    # Processing the processed prompt (and negative prompt) changes nothing.
    again_body = {**options, "prompt": once.text}
    if once.negative is not None or "negative_prompt" in options:
        again_body["negative_prompt"] = once.negative or options.get("negative_prompt")
    twice = _process(again_body, POLICY, caps=caps)
    assert (twice.text, twice.negative) == (once.text, once.negative)
