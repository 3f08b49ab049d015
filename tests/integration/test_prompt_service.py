"""Prompt processing through the running service: the native API records what it
made of the prompt, refuses bad prompts before anything is queued or paid, and the
worker enhances and moderates through an OpenAI-compatible endpoint before submit.

Providers: the OpenAI-compatible emulator (it counts submits) and, where a test
needs to read exactly what a provider received, the fake remote provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelforge.settings import PolicyRule, PromptSettings, ProviderConfig, Settings, TenantPrompts
from tests.clips import lavfi_clip
from tests.emulators.chat_completions import ChatEmulator, running_chat_emulator
from tests.emulators.openai_videos import Emulator, EmulatorConfig, running_emulator
from tests.fakes import submits, submitted_prompts
from tests.service import Service, running_service

API_KEY = "sk-emulator"
BODY = {"prompt": "a lighthouse at night", "duration_seconds": 4, "size": "1280x720"}
# The fake provider hands back this clip: ask for what it is.
FAKE = {"provider": "fake", "duration_seconds": 1, "size": "160x90", "fps": 12}


@dataclass
class Setup:
    service: Service
    emulator: Emulator
    chat: ChatEmulator
    fake_dir: Path


@pytest.fixture
async def setup(service_settings: Settings, tmp_path: Path) -> AsyncIterator[Setup]:
    config = EmulatorConfig(api_key=API_KEY, job_seconds=0.3, poll_after_ms=50)
    clip = lavfi_clip(tmp_path / "clip.mp4", "testsrc2=size=160x90:rate=12:duration=1", seconds=1)
    fake_dir = tmp_path / "fake"
    async with running_emulator(config) as emu, running_chat_emulator() as chat:
        providers = {
            **service_settings.providers,
            "remote": ProviderConfig(
                kind="openai",
                base_url=emu.base_url,
                api_key=API_KEY,  # type: ignore[arg-type]
                poll_interval_seconds=0.05,
                timeout_seconds=2.0,
            ),
            "fake": ProviderConfig(
                kind="tests.fakes:FakeRemoteProvider",
                poll_interval_seconds=0.05,
                options={
                    "state_dir": str(fake_dir),
                    "clip": str(clip),
                    "seconds": 0.1,
                    "negative_prompt": False,
                },
            ),
        }
        prompts = PromptSettings.model_validate(
            {
                "rules": [PolicyRule(id="weapons", terms=["bomb"])],
                "tenants": {"default": TenantPrompts(moderation=False)},
                "enhance_endpoint": {"base_url": chat.base_url, "timeout_seconds": 0.5},
                "moderation_endpoint": {"base_url": chat.base_url, "timeout_seconds": 0.5},
            }
        )
        settings = service_settings.model_copy(update={"providers": providers, "prompts": prompts})
        async with running_service(settings) as svc:
            yield Setup(svc, emu, chat, fake_dir)


async def _create(setup: Setup, **fields: Any) -> dict[str, Any]:
    response = await setup.service.client.post(
        "/api/videos/generate", json={**BODY, "provider": "remote", **fields}
    )
    assert response.status_code == 202, response.text
    video: dict[str, Any] = response.json()
    return video


async def test_get_styles_lists_every_style_with_its_defaults_and_the_templates(
    setup: Setup,
) -> None:
    response = await setup.service.client.get("/api/styles")
    assert response.status_code == 200
    body = response.json()
    names = [s["name"] for s in body["data"]]
    for style in ("cinematic", "anime", "documentary", "product", "timelapse", "claymation"):
        assert style in names
    clay = next(s for s in body["data"] if s["name"] == "claymation")
    assert clay["fps"] == 12 and "plasticine models" in clay["additions"]
    explainer = next(t for t in body["templates"] if t["name"] == "explainer")
    assert explainer["placeholders"] == ["topic", "audience"]


async def test_the_video_records_the_prompt_as_typed_and_as_processed(setup: Setup) -> None:
    video = await _create(setup, prompt="a   lighthouse", style="cinematic")
    assert video["prompt"] == "a   lighthouse"
    assert video["processed_prompt"].startswith("a lighthouse, cinematic shot")
    steps = {s["step"]: s for s in video["prompt_steps"]}
    assert steps["normalize"]["changed"] and steps["style"]["changed"]
    # OpenAI's API takes no negative prompt: the style's is folded into the prompt.
    assert video["negative_prompt"] is None
    assert "Avoid: cartoon" in video["processed_prompt"]
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    sent = setup.emulator.state.submits_by_prompt
    assert list(sent) == [video["processed_prompt"]]


async def test_a_policy_rejection_is_a_400_with_the_rule_and_costs_nothing(setup: Setup) -> None:
    response = await setup.service.client.post(
        "/api/videos/generate", json={**BODY, "provider": "remote", "prompt": "a b\u043emb"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["rule"], error["param"]) == (
        "prompt_rejected",
        "weapons",
        "prompt",
    )
    assert setup.emulator.state.create_attempts == []
    listed = (await setup.service.client.get("/api/videos")).json()
    assert listed["data"] == []


async def test_a_prompt_too_long_for_the_model_is_a_400_naming_limit_and_model(
    setup: Setup,
) -> None:
    body = {**BODY, "provider": "remote", "prompt": "x" * 31_990, "style": "cinematic"}
    response = await setup.service.client.post("/api/videos/generate", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "prompt_too_long"
    assert "'remote' takes at most 32000" in error["message"]
    assert setup.emulator.state.create_attempts == []


async def test_template_errors_are_400s_naming_the_placeholder(setup: Setup) -> None:
    body = {**BODY, "template": "explainer", "template_vars": {"topic": "tides"}}
    response = await setup.service.client.post("/api/videos/generate", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("missing_template_var", "template_vars.audience")


async def test_the_provider_receives_the_processed_prompt_with_the_negative_folded_in(
    setup: Setup,
) -> None:
    video = await _create(setup, **FAKE, prompt="a quiet harbour", negative_prompt="seagulls")
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    assert submitted_prompts(setup.fake_dir) == [
        {"prompt": "a quiet harbour. Avoid: seagulls", "negative_prompt": None}
    ]


async def test_enhancement_through_the_chat_endpoint_happens_in_the_worker(setup: Setup) -> None:
    video = await _create(setup, prompt="a red fox", enhance=True)
    # The API answered before any chat request: the worker does the slow part.
    assert video["processed_prompt"] == "a red fox"
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    assert len(setup.chat.state.chat_requests) == 1
    assert done["processed_prompt"].startswith("a red fox, walking slowly through a misty")
    enhance = next(s for s in done["prompt_steps"] if s["step"] == "enhance")
    assert enhance["changed"] and "chat model" in enhance["why"]
    assert list(setup.emulator.state.submits_by_prompt) == [done["processed_prompt"]]


async def test_a_chat_endpoint_that_times_out_falls_back_to_the_unenhanced_prompt(
    setup: Setup,
) -> None:
    setup.chat.config.hang = True
    video = await _create(setup, prompt="a red fox", enhance=True)
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    assert done["processed_prompt"] == "a red fox"
    enhance = next(s for s in done["prompt_steps"] if s["step"] == "enhance")
    assert not enhance["changed"]
    assert "did not answer within 0.5s" in enhance["why"]
    assert list(setup.emulator.state.submits_by_prompt) == ["a red fox"]


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"malformed": True}, "has no message"),
        ({"reply": "a red fox near a b0mb"}, "was refused (prompt_rejected)"),
    ],
)
async def test_any_enhancement_failure_falls_back_and_is_recorded(
    setup: Setup, fault: dict[str, Any], why: str
) -> None:
    for name, value in fault.items():
        setattr(setup.chat.config, name, value)
    video = await _create(setup, **FAKE, prompt="a red fox", enhance=True)
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    enhance = next(s for s in done["prompt_steps"] if s["step"] == "enhance")
    assert why in enhance["why"] and not enhance["changed"]
    assert [p["prompt"] for p in submitted_prompts(setup.fake_dir)] == ["a red fox"]


async def test_a_prompt_flagged_by_the_moderation_endpoint_fails_and_is_never_submitted(
    setup: Setup,
) -> None:
    setup.service.runtime.settings.prompts.tenants["default"] = TenantPrompts(moderation=True)
    setup.chat.config.flag_terms = ("duel",)
    video = await _create(setup, prompt="a sword duel at dawn")
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "prompt_rejected"
    assert "rule moderation:violence" in done["error"]["message"]
    assert len(setup.chat.state.moderation_requests) == 1
    assert setup.emulator.state.create_attempts == []


async def test_a_prompt_the_moderation_endpoint_passes_is_submitted_and_recorded(
    setup: Setup,
) -> None:
    setup.service.runtime.settings.prompts.tenants["default"] = TenantPrompts(moderation=True)
    video = await _create(setup, **FAKE, prompt="a calm lake")
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "completed", done["error"]
    assert any(s["step"] == "moderation" for s in done["prompt_steps"])
    assert submits(setup.fake_dir) == [f"{video['id']}-1"]


async def test_a_providers_own_moderation_refusal_is_prompt_rejected_and_not_retried(
    setup: Setup,
) -> None:
    setup.emulator.config.fail_jobs_with = "moderation_blocked"
    video = await _create(setup)
    done = await setup.service.wait_terminal(video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "prompt_rejected"
    assert len(done["attempts"]) == 1
    assert dict(setup.emulator.state.submits_by_key) == {f"{video['id']}-1": 1}


async def test_v1_videos_uses_the_plain_prompt_with_the_tenants_default_style(
    setup: Setup,
) -> None:
    setup.service.runtime.settings.prompts.tenants["default"] = TenantPrompts(
        default_style="documentary"
    )
    response = await setup.service.client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "fishermen mending nets", "seconds": "4"}
    )
    assert response.status_code == 200, response.text
    video_id = response.json()["id"]
    native = (await setup.service.client.get(f"/api/videos/{video_id}")).json()
    assert native["prompt"] == "fishermen mending nets"
    assert "documentary footage" in native["processed_prompt"]
    assert response.json()["prompt"] == "fishermen mending nets"
