"""Reelforge as a back-end of reelforge: one server's `openai` provider drives
another server's `/v1/videos`, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.media.probe import probe
from reelforge.settings import ProviderConfig, Settings
from tests.conftest import delete_prefix
from tests.service import running_service

pytestmark = pytest.mark.slow


async def test_reelforge_uses_another_reelforge_as_its_openai_provider(
    service_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    fast_local = ProviderConfig(
        kind="local", poll_interval_seconds=0.1, options={"preset": "ultrafast"}
    )
    downstream = service_settings.model_copy(
        update={"providers": {"local": fast_local}, "data_dir": tmp_path / "downstream"}
    )
    async with running_service(downstream) as inner:
        upstream_prefix = f"{service_settings.redis_prefix}-up"
        remote = ProviderConfig(
            kind="openai",
            base_url=f"{inner.base_url}/v1",
            api_key="unused-without-keys",  # type: ignore[arg-type]
            poll_interval_seconds=0.1,
        )
        upstream = service_settings.model_copy(
            update={
                "redis_prefix": upstream_prefix,
                "data_dir": tmp_path / "upstream",
                "providers": {"local": fast_local, "inner": remote},
                "default_provider": "inner",
            }
        )
        try:
            async with running_service(upstream) as outer:
                body = {"prompt": "teal waves at dawn", "duration_seconds": 4, "size": "1280x720"}
                created = (await outer.client.post("/api/videos/generate", json=body)).json()
                assert created["provider"] == "inner"
                video = await outer.wait_terminal(created["id"], timeout=90)
                assert video["status"] == "completed", video["error"]

                inner_videos = (await inner.client.get("/api/videos")).json()["data"]
                assert len(inner_videos) == 1  # submitted exactly once
                assert inner_videos[0]["prompt"] == "teal waves at dawn"
                assert inner_videos[0]["status"] == "completed"
                assert video["attempts"][0]["remote_id"] == inner_videos[0]["id"]

                content = await outer.client.get(f"/api/videos/{video['id']}/content")
                path = tmp_path / "chained.mp4"
                path.write_bytes(content.content)
                info = await probe(path)
                assert info.video is not None and info.audio is not None
                assert (info.video.width, info.video.height) == (1280, 720)
                assert abs(info.duration - 4.0) < 0.1
        finally:
            delete_prefix(redis_url, upstream_prefix)
