"""`reelforge prompt`: what a provider would receive, without generating; refused
text is one line and exit 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from tests.emulators.chat_completions import running_chat_emulator

runner = CliRunner()


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_DATA_DIR", str(tmp_path / "data"))


def _prompt(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["prompt", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_shows_the_processed_prompt_negative_prompt_and_steps() -> None:
    code, stdout, stderr = _prompt("a  red fox", "--style", "anime", "--json")
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert shown["prompt"] == "a  red fox"
    assert shown["processed_prompt"].startswith("a red fox, anime style, clean line art")
    assert shown["provider"] == "local"
    # The local renderer takes no negative prompt and drops it (see docs/prompts.md).
    assert shown["negative_prompt"] is None
    steps = {s["step"]: s for s in shown["steps"]}
    assert steps["normalize"]["changed"] and steps["style"]["changed"]
    assert "dropped" in steps["negative_prompt"]["why"]


def test_enhance_expands_a_short_prompt() -> None:
    code, stdout, stderr = _prompt("a lighthouse", "--enhance", "--json")
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert "camera" in shown["processed_prompt"] and "lighting" in shown["processed_prompt"]


def test_plain_output_prints_the_text_that_would_be_sent(tmp_path: Path) -> None:
    code, stdout, stderr = _prompt("a red fox", "--style", "timelapse")
    assert code == 0, stderr
    assert stdout.strip().startswith("a red fox, time-lapse, locked-off camera")
    assert "style" in stderr  # the steps table


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["abc\u202edef"], "invalid_prompt"),
        (["a fox", "--style", "vaporwave"], "unknown_style"),
        (["a fox", "--provider", "nope"], "unknown_provider"),
    ],
)
def test_refused_text_is_one_line_and_exit_2(args: list[str], code: str) -> None:
    exit_code, stdout, stderr = _prompt(*args)
    assert exit_code == 2
    assert f"[{code}]" in stderr
    assert stderr.strip().count("\n") == 0
    assert "Traceback" not in stdout + stderr


def test_a_policy_rejection_names_the_rule_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_PROMPTS__RULES", '[{"id": "weapons", "terms": ["bomb"]}]')
    exit_code, _, stderr = _prompt("a b0mb")
    assert exit_code == 2
    assert "[prompt_rejected]" in stderr and "rule weapons" in stderr


async def test_enhance_uses_the_chat_endpoint_when_one_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_chat_emulator() as chat:
        monkeypatch.setenv("REELFORGE_PROMPTS__ENHANCE_ENDPOINT__BASE_URL", chat.base_url)
        # The CLI runs its own event loop: run it off this one.
        result = await asyncio.to_thread(
            runner.invoke, app, ["prompt", "a red fox", "--enhance", "--json"]
        )
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["processed_prompt"].startswith("a red fox, walking slowly through a misty")
    assert len(chat.state.chat_requests) == 1
