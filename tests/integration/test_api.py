"""The native API end to end: real app under uvicorn, real Redis, real workers,
the offline `local` provider rendering tiny clips."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from reelforge.media.probe import probe
from reelforge.settings import Settings
from tests.service import Service, running_service, wait_until

SMALL = {"duration_seconds": 1, "size": "160x90", "fps": 12}


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings) as svc:
        yield svc


async def _submit(svc: Service, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a red ball bouncing", **SMALL, **fields}
    response = await svc.client.post("/api/videos/generate", json=body)
    assert response.status_code == 202, response.text
    video: dict[str, Any] = response.json()
    return video


async def _sse_events(svc: Service, video_id: str, **headers: str) -> list[dict[str, Any]]:
    events = []
    async with svc.client.stream("GET", f"/api/videos/{video_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


async def test_generate_streams_stages_in_order_and_delivers_every_format(
    service: Service, tmp_path: Path
) -> None:
    response = await service.client.post(
        "/api/videos/generate",
        json={"prompt": "teal waves at sunset", **SMALL, "formats": ["mp4", "webm"]},
    )
    assert response.status_code == 202
    video = response.json()
    assert response.headers["location"] == f"/api/videos/{video['id']}"
    assert video["status"] == "queued" and video["seed"] is not None

    sse, ws = await asyncio.gather(
        _sse_events(service, video["id"]), _ws_events(service, video["id"])
    )
    assert sse == ws
    assert [e["seq"] for e in sse] == list(range(1, len(sse) + 1))
    stages = list(dict.fromkeys(e["stage"] for e in sse))
    assert stages == [
        "queued",
        "submitting",
        "generating",
        "downloading",
        "processing",
        "validating",
        "completed",
    ]
    progress = [e["progress"] for e in sse]
    assert progress == sorted(progress) and progress[-1] == 100
    assert sse[-1]["type"] == "completed"

    done = (await service.client.get(f"/api/videos/{video['id']}")).json()
    assert done["status"] == "completed"
    assert {f["format"] for f in done["files"]} == {"mp4", "webm", "thumbnail", "spritesheet"}
    expected = {"mp4": ("h264", "aac"), "webm": ("vp9", "opus")}
    for entry in done["files"]:
        r = await service.client.get(entry["url"])
        assert r.status_code == 200 and len(r.content) == entry["bytes"]
        path = tmp_path / f"out.{entry['format']}"
        path.write_bytes(r.content)
        if entry["format"] in expected:
            info = await probe(path)
            assert info.video is not None and info.audio is not None
            assert (info.video.codec, info.audio.codec) == expected[entry["format"]]
            assert (info.video.width, info.video.height) == (160, 90)
            assert abs(info.duration - 1.0) < 0.15
    assert done["attempts"][0]["remote_id"]
    assert done["attempts"][0]["ended_at"] >= done["attempts"][0]["started_at"]


async def _ws_events(svc: Service, video_id: str, after: int = 0) -> list[dict[str, Any]]:
    url = svc.base_url.replace("http", "ws") + f"/api/videos/{video_id}/ws?after={after}"
    async with websockets.connect(url) as ws:
        return [json.loads(message) async for message in ws]


async def test_range_requests_return_the_right_bytes(service: Service) -> None:
    video = await _submit(service)
    await service.wait_terminal(video["id"])
    url = f"/api/videos/{video['id']}/content?format=mp4"
    whole = await service.client.get(url)
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["etag"]
    size = len(whole.content)

    part = await service.client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.content == whole.content[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{size}"

    tail = await service.client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]

    beyond = await service.client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


async def test_reconnecting_with_after_or_last_event_id_yields_exactly_the_missed_events(
    service: Service,
) -> None:
    video = await _submit(service)
    full = await _sse_events(service, video["id"])
    assert full[-1]["type"] == "completed"
    missed_sse = await _sse_events(service, video["id"], **{"Last-Event-ID": "3"})
    assert missed_sse == full[3:]
    missed_ws = await _ws_events(service, video["id"], after=3)
    assert missed_ws == full[3:]


async def test_status_endpoint_reports_stage_and_progress(service: Service) -> None:
    video = await _submit(service)
    await service.wait_terminal(video["id"])
    status = (await service.client.get(f"/api/videos/status/{video['id']}")).json()
    assert (status["id"], status["status"], status["stage"], status["progress"]) == (
        video["id"],
        "completed",
        "completed",
        100,
    )


async def test_list_is_newest_first_with_cursor_pages_and_status_filter(service: Service) -> None:
    ids = [(await _submit(service))["id"] for _ in range(5)]
    for video_id in ids:
        await service.wait_terminal(video_id)
    cancelled = await _submit(service)
    await service.client.post(f"/api/videos/{cancelled['id']}/cancel")
    await service.wait_terminal(cancelled["id"])

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "completed"}
        if cursor:
            params["after"] = cursor
        page = (await service.client.get("/api/videos", params=params)).json()
        seen += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    everything = (await service.client.get("/api/videos", params={"limit": 100})).json()
    assert everything["data"][0]["id"] == cancelled["id"]


async def test_regenerate_makes_a_linked_job_with_overrides(service: Service) -> None:
    video = await _submit(service, seed=5)
    await service.wait_terminal(video["id"])
    response = await service.client.post(
        f"/api/videos/{video['id']}/regenerate", json={"prompt": "a blue square spinning"}
    )
    assert response.status_code == 202
    again = response.json()
    assert again["regenerated_from"] == video["id"] and again["id"] != video["id"]
    assert again["prompt"] == "a blue square spinning"
    assert again["seed"] != 5  # a new take unless a seed is given
    assert again["request"]["size"] == "160x90"
    done = await service.wait_terminal(again["id"])
    assert done["status"] == "completed"
    same_seed = (
        await service.client.post(f"/api/videos/{video['id']}/regenerate", json={"seed": 5})
    ).json()
    assert same_seed["seed"] == 5


async def test_cancel_a_running_video_ends_cancelled_and_keeps_no_files(
    service: Service,
) -> None:
    video = await _submit(service, duration_seconds=20, size="640x360", fps=24)
    events = service.runtime.store

    async def generating() -> bool:
        return (await events.get(video["id"])).stage.value == "generating"

    from tests.service import wait_until

    await wait_until(generating, timeout=20)
    response = await service.client.post(f"/api/videos/{video['id']}/cancel")
    assert response.status_code in (200, 202)
    done = await service.wait_terminal(video["id"], timeout=20)
    assert done["status"] == "cancelled" and done["stage"] == "cancelled"
    assert done["attempts"][-1]["error"]["code"] == "cancelled"
    again = await service.client.post(f"/api/videos/{video['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    content = await service.client.get(f"/api/videos/{video['id']}/content")
    assert content.status_code == 409 and content.json()["error"]["code"] == "video_not_ready"


async def test_cancel_of_a_completed_video_is_a_conflict(service: Service) -> None:
    video = await _submit(service)
    await service.wait_terminal(video["id"])
    response = await service.client.post(f"/api/videos/{video['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "video_not_cancellable"


async def test_delete_removes_the_record_and_its_files(
    service: Service, service_settings: Settings
) -> None:
    video = await _submit(service)
    await service.wait_terminal(video["id"])
    files_dir = service_settings.videos_dir / video["id"]
    assert any(files_dir.iterdir())
    response = await service.client.delete(f"/api/videos/{video['id']}")
    assert response.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
    assert not files_dir.exists()
    gone = await service.client.get(f"/api/videos/{video['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_idempotency_key_returns_the_same_video_and_409_for_another_body(
    service: Service,
) -> None:
    body = {"prompt": "golden stars drifting", **SMALL}
    headers = {"Idempotency-Key": "order-42"}
    first = await service.client.post("/api/videos/generate", json=body, headers=headers)
    second = await service.client.post("/api/videos/generate", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = await service.client.post(
        "/api/videos/generate", json={**body, "prompt": "something else"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    listing = (await service.client.get("/api/videos")).json()
    assert [v["id"] for v in listing["data"]] == [first.json()["id"]]


@pytest.mark.timeout(300)  # 50 real renders on 2 cores; generous when the machine is busy
async def test_fifty_concurrent_submissions_all_complete(service: Service) -> None:
    async def submit(i: int) -> str:
        body = {
            "prompt": f"scene {i} with stars",
            "duration_seconds": 0.5,
            "size": "64x64",
            "fps": 8,
        }
        r = await service.client.post("/api/videos/generate", json=body)
        assert r.status_code == 202
        video_id: str = r.json()["id"]
        return video_id

    ids = await asyncio.gather(*(submit(i) for i in range(50)))
    assert len(set(ids)) == 50
    # One poller for all fifty (fifty pollers at 10 Hz would load the server more
    # than the videos do).
    finals: dict[str, str] = {}

    async def all_ended() -> bool:
        for video_id in [i for i in ids if i not in finals]:
            status = (await service.client.get(f"/api/videos/{video_id}")).json()["status"]
            if status in ("completed", "failed", "cancelled"):
                finals[video_id] = status
        return len(finals) == len(ids)

    await wait_until(all_ended, timeout=240, interval=0.5)
    assert set(finals.values()) == {"completed"}


async def test_health_readiness_and_metrics(service: Service) -> None:
    assert (await service.client.get("/healthz")).json() == {"status": "ok"}
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"] >= 1
    video = await _submit(service)
    await service.wait_terminal(video["id"])
    completed = 'reelforge_jobs_total{provider="local",status="completed"} 1.0'

    async def counted() -> bool:  # the worker counts it just after the video completes
        return completed in (await service.client.get("/metrics")).text

    await wait_until(counted, timeout=10)
    metrics = (await service.client.get("/metrics")).text
    assert 'reelforge_stage_duration_seconds_bucket{le="+Inf",stage="generating"}' in metrics
    assert "reelforge_queue_depth" in metrics


async def test_openapi_and_docs_are_served(service: Service) -> None:
    spec = (await service.client.get("/openapi.json")).json()
    assert "/api/videos/generate" in spec["paths"]
    assert (await service.client.get("/docs")).status_code == 200


async def test_readyz_without_workers_is_not_ready(service_settings: Settings) -> None:
    async with running_service(service_settings, workers=0) as svc:
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"redis": True, "storage": True, "workers": 0}


async def test_cli_generate_with_server_follows_events_and_downloads_files(
    service: Service, tmp_path: Path
) -> None:
    out = tmp_path / "downloads"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelforge",
        "generate",
        "golden stars drifting at night",
        "--server",
        service.base_url,
        "--duration",
        "1",
        "--size",
        "160x90",
        "--fps",
        "12",
        "--format",
        "mp4,webm",
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert "completed" in stderr.decode()  # the progress bar shows the stages
    names = sorted(p.name.split(".", 1)[1] for p in out.iterdir())
    assert names == ["mp4", "sprites.jpg", "thumb.jpg", "webm"]
    info = await probe(next(out.glob("*.mp4")))
    assert info.video is not None and (info.video.width, info.video.height) == (160, 90)
    video_id = next(out.glob("*.mp4")).name.split(".")[0]

    status = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelforge",
        "status",
        video_id,
        "--server",
        service.base_url,
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    printed, _ = await status.communicate()
    assert status.returncode == 0
    assert json.loads(printed)["status"] == "completed"
    assert "mp4" in stdout.decode()
