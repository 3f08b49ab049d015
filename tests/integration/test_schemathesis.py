"""Both APIs answer exactly as their OpenAPI document says.

Schemathesis (``run --checks all``: every check it has, every phase: examples,
coverage, fuzzing and the stateful phase that chains calls through the links it
infers) against the real service: the app under uvicorn on 127.0.0.1, a real
worker, real Redis; each API twice: single-tenant (no keys, loopback) and with API
keys on (the multi-tenant mode a team runs: every request carries a tenant's key,
as a client would). Settings (seed, example
counts) are in ``schemathesis.toml`` beside this file; the image strategies are in
``tests/schemathesis_hooks.py``.

A failure prints schemathesis' report: each problem with a ``curl`` line that
reproduces it against a running server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelforge.settings import Settings
from tests.service import REPO, Service, running_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    # Generated requests ask for long, large videos. One job at a time, each given
    # 10 s: every video reaches a terminal state soon (completed, or failed with
    # deadline_exceeded), so an event stream the fuzzer opens always ends.
    settings = service_settings.model_copy(
        update={
            "generate_concurrency": 1,
            "process_concurrency": 1,
            "job_deadline_seconds": 10.0,
            "provider_deadline_seconds": 10.0,
            "fetch_allow_hosts": ["localhost"],  # webhook_url (see schemathesis_hooks)
            # The fuzzer creates hundreds of videos a minute; the rate limit itself
            # is tested in test_quotas, here it would only hide the create routes.
            "api_creates_per_minute": None,
        }
    )
    async with running_service(settings) as svc:
        yield svc


MODES = ["single-tenant", "api-keys"]


async def run_schemathesis(svc: Service, *, include_path_regex: str, mode: str) -> tuple[int, str]:
    auth = []
    if mode == "api-keys":
        key = (await svc.runtime.tenants.create_key("fuzz", name="schemathesis")).secret
        auth = ["--header", f"Authorization: Bearer {key}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{svc.base_url}/openapi.json",
        "--checks",
        "all",
        "--include-path-regex",
        include_path_regex,
        "--workers",
        "1",
        *auth,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    report = output.decode(errors="replace")
    # The whole report (its curl lines can be long) is kept for reading after a failure.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = "native" if include_path_regex.startswith("^/(api") else "openai"
    (ARTIFACTS / f"schemathesis-{name}-{mode}.txt").write_text(report)
    return await proc.wait(), report


@pytest.mark.parametrize("mode", MODES)
async def test_the_native_api_answers_as_its_openapi_document_says(
    service: Service, mode: str
) -> None:
    code, report = await run_schemathesis(
        service, include_path_regex="^/(api/|healthz$|readyz$|metrics$)", mode=mode
    )

    assert code == 0, report[-20_000:]
    await _made_videos_as(service, "fuzz" if mode == "api-keys" else "default")


@pytest.mark.parametrize("mode", MODES)
async def test_the_openai_compatible_api_answers_as_its_openapi_document_says(
    service: Service, mode: str
) -> None:
    code, report = await run_schemathesis(service, include_path_regex="^/v1/", mode=mode)

    assert code == 0, report[-20_000:]
    await _made_videos_as(service, "fuzz" if mode == "api-keys" else "default")


async def _made_videos_as(svc: Service, tenant: str) -> None:
    # The requests were admitted as that tenant (a run whose every request got 401
    # would pass the checks too, since 401 is documented).
    records, _ = await svc.runtime.store.page(tenant, limit=1)
    assert records
