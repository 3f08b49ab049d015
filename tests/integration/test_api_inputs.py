"""Bad input gets a 4xx with a machine-readable code, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from reelforge.settings import Settings
from tests.service import Service, running_service


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings, workers=0) as svc:
        yield svc


async def _nothing_written(svc: Service) -> bool:
    keys = [k async for k in svc.runtime.redis.scan_iter(match=svc.runtime.keys.video("*"))]
    queued = await svc.runtime.queues.depth()
    return keys == [] and queued == {"generate": 0, "process": 0}


GOOD = {"prompt": "a red ball", "duration_seconds": 1, "size": "160x90"}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({**GOOD, "colour": "red"}, 400, "unknown_field", "colour"),
        ({**GOOD, "size": "1281x720"}, 400, "invalid_size", "size"),
        ({**GOOD, "size": "4000x4000"}, 400, "invalid_size", "size"),
        ({**GOOD, "size": 5}, 400, "invalid_size", "size"),
        ({**GOOD, "duration_seconds": 0}, 400, "invalid_duration", "duration_seconds"),
        ({**GOOD, "duration_seconds": 61}, 400, "invalid_duration", "duration_seconds"),
        ({**GOOD, "duration_seconds": "long"}, 400, "invalid_duration_seconds", "duration_seconds"),
        ({**GOOD, "fps": 0}, 400, "invalid_fps", "fps"),
        ({**GOOD, "fps": 120}, 400, "invalid_fps", "fps"),
        ({**GOOD, "formats": ["gif"]}, 400, "invalid_format", "formats"),
        ({**GOOD, "prompt": "   "}, 400, "invalid_prompt", "prompt"),
        ({**GOOD, "prompt": "x" * 32_001}, 400, "invalid_prompt", "prompt"),
        ({**GOOD, "prompt": "bell\x07"}, 400, "invalid_prompt", "prompt"),
        ({"size": "160x90"}, 400, "missing_field", "prompt"),
        ({**GOOD, "provider": "sora"}, 400, "unknown_provider", "provider"),
        ({**GOOD, "metadata": {"k": 5}}, 400, "invalid_metadata", "metadata.k"),
        ([GOOD], 400, "invalid_json", None),
        ("a red ball", 400, "invalid_json", None),
    ],
)
async def test_bad_generate_bodies_are_rejected_and_nothing_is_written(
    service: Service, body: Any, status: int, code: str, param: str | None
) -> None:
    response = await service.client.post("/api/videos/generate", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == param
    assert await _nothing_written(service)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"prompt": "a red ball",', "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
async def test_malformed_json_is_a_400(service: Service, content: bytes, code: str) -> None:
    response = await service.client.post(
        "/api/videos/generate", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert await _nothing_written(service)


async def test_oversized_body_is_a_413(service: Service, service_settings: Settings) -> None:
    big = b'{"prompt": "' + b"a" * (service_settings.max_body_bytes + 1) + b'"}'
    response = await service.client.post(
        "/api/videos/generate", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert await _nothing_written(service)


async def test_oversized_chunked_body_is_a_413(
    service: Service, service_settings: Settings
) -> None:
    async def chunks() -> Any:
        yield b'{"prompt": "'
        for _ in range(service_settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = await service.client.post("/api/videos/generate", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert await _nothing_written(service)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/videos/nonsense", 400, "invalid_id"),
        ("GET", "/api/videos/video_" + "0" * 24, 404, "not_found"),
        ("GET", "/api/videos/status/../../etc", 404, "not_found"),
        ("GET", "/api/videos/status/video_xyz", 400, "invalid_id"),
        ("POST", "/api/videos/video_" + "0" * 24 + "/cancel", 404, "not_found"),
        ("DELETE", "/api/videos/VIDEO_1", 400, "invalid_id"),
        ("GET", "/api/videos/video_" + "0" * 24 + "/content?format=gif", 400, "invalid_format"),
        ("GET", "/api/videos?limit=0", 400, "invalid_limit"),
        ("GET", "/api/videos?limit=abc", 400, "invalid_limit"),
        ("GET", "/api/videos?status=done", 400, "invalid_status"),
        ("GET", "/api/videos?after=video_" + "1" * 24, 404, "cursor_not_found"),
        ("GET", "/api/videos?after=nonsense", 400, "invalid_cursor"),
        ("GET", "/v1/videos?after=video_" + "1" * 24, 404, "cursor_not_found"),
        ("GET", "/api/videos/generate", 405, "method_not_allowed"),
        ("GET", "/api/nothing-here", 404, "not_found"),
        ("PUT", "/api/videos/generate", 405, "method_not_allowed"),
    ],
)
async def test_bad_ids_and_parameters_are_4xx_with_a_code(
    service: Service, method: str, path: str, status: int, code: str
) -> None:
    response = await service.client.request(method, path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_regenerate_rejects_unknown_overrides(service: Service) -> None:
    created = await service.client.post("/api/videos/generate", json=GOOD)
    video_id = created.json()["id"]
    response = await service.client.post(
        f"/api/videos/{video_id}/regenerate", json={"colour": "blue"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"
    bad_json = await service.client.post(
        f"/api/videos/{video_id}/regenerate",
        content=b"{oops",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/videos/video_" + "0" * 24, "DELETE, GET, HEAD"),
        ("PUT", "/v1/videos", "GET, HEAD, POST"),
        ("DELETE", "/api/videos/generate", "POST"),
        ("PATCH", "/v1/videos/video_" + "0" * 24, "DELETE, GET, HEAD"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    service: Service, method: str, path: str, allow: str
) -> None:
    response = await service.client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
