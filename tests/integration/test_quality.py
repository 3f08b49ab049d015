"""Output assurance in the service: a result that fails validation is generated
again, and the video keeps every attempt's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelforge.settings import ProviderConfig, Settings
from tests.clips import lavfi_clip
from tests.fakes import submits
from tests.service import running_service

pytestmark = pytest.mark.slow


def _clip(path: Path, video: str) -> Path:
    return lavfi_clip(path, video, seconds=2, tone_hz=330)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quality")
    return {
        "good": _clip(folder / "good.mp4", "testsrc2=size=160x90:rate=12:duration=2"),
        # One picture for two seconds: a frozen result.
        "frozen": _clip(folder / "frozen.mp4", "color=c=teal:size=160x90:rate=12:duration=2"),
    }


def _settings(service_settings: Settings, tmp_path: Path, **options: Any) -> Settings:
    fake = ProviderConfig(
        kind="tests.fakes:FakeRemoteProvider",
        poll_interval_seconds=0.05,
        options={"state_dir": str(tmp_path / "remote"), "seconds": 0.2, **options},
    )
    return service_settings.model_copy(
        update={"providers": {**service_settings.providers, "fake": fake}}
    )


BODY = {
    "prompt": "anything",
    "duration_seconds": 2,
    "size": "160x90",
    "fps": 12,
    "provider": "fake",
}


async def test_a_frozen_result_is_regenerated_once_and_both_reports_are_kept(
    service_settings: Settings, tmp_path: Path, clips: dict[str, Path]
) -> None:
    settings = _settings(
        service_settings, tmp_path, clip=str(clips["good"]), first_clip=str(clips["frozen"])
    )
    async with running_service(settings) as svc:
        created = (await svc.client.post("/api/videos/generate", json=BODY)).json()
        video = await svc.wait_terminal(created["id"], timeout=60)
    assert video["status"] == "completed", video["error"]
    first, second = video["attempts"]
    assert first["error"]["code"] == "quality_check_failed"
    assert [p["code"] for p in first["validation"]["problems"]] == ["frozen_video"]
    assert second["error"] is None and second["validation"]["ok"] is True
    assert video["validation"]["ok"] is True
    assert set(video["validation"]["conversions"]) == {"mp4"}
    assert video["validation"]["conversions"]["mp4"]["ssim"] >= 0.95
    assert video["seed"] != created["seed"]  # a new take
    assert submits(tmp_path / "remote") == [f"{video['id']}-1", f"{video['id']}-2"]


async def test_after_the_last_regeneration_the_video_fails_with_the_reasons(
    service_settings: Settings, tmp_path: Path, clips: dict[str, Path]
) -> None:
    settings = _settings(service_settings, tmp_path, clip=str(clips["frozen"]))
    settings = settings.model_copy(update={"max_quality_regenerations": 1})
    async with running_service(settings) as svc:
        created = (await svc.client.post("/api/videos/generate", json=BODY)).json()
        video = await svc.wait_terminal(created["id"], timeout=60)
    assert video["status"] == "failed"
    assert video["error"]["code"] == "quality_check_failed"
    assert "frozen" in video["error"]["message"]
    assert len(video["attempts"]) == 2
    assert all(a["validation"]["ok"] is False for a in video["attempts"])


async def test_regeneration_can_be_turned_off_per_request(
    service_settings: Settings, tmp_path: Path, clips: dict[str, Path]
) -> None:
    settings = _settings(service_settings, tmp_path, clip=str(clips["frozen"]))
    async with running_service(settings) as svc:
        body = {**BODY, "regenerate_on_failure": False}
        created = (await svc.client.post("/api/videos/generate", json=body)).json()
        video = await svc.wait_terminal(created["id"], timeout=60)
    assert video["status"] == "failed" and video["error"]["code"] == "quality_check_failed"
    assert len(video["attempts"]) == 1
    assert video["validation"]["problems"][0]["code"] == "frozen_video"
