"""``reelforge keys``: create (the key printed once), list (never the key), revoke,
limits; and ``serve`` refusing a public bind without keys. Real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.errors import AuthenticationError, InvalidRequestError
from reelforge.runtime import Runtime
from reelforge.server import _check_bind
from reelforge.settings import Settings
from tests.service import REPO, running_service

runner = CliRunner()


@pytest.fixture(autouse=True)
def _redis_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REELFORGE_REDIS_PREFIX", redis_prefix)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["keys", *args])
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_and_list_never_shows_it() -> None:
    code, key, stderr = _invoke(
        "create", "--tenant", "acme", "--name", "ci", "--videos-per-day", "3"
    )
    assert code == 0, stderr
    key = key.strip()
    assert key.startswith("rf_") and len(key) == 46
    assert "videos-per-day=3" in stderr and "whsec_" in stderr

    code, listing, _ = _invoke("list", "--json")
    rows = json.loads(listing)
    assert code == 0
    assert [(r["tenant"], r["name"], r["revoked_at"]) for r in rows] == [("acme", "ci", None)]
    assert key not in listing and key[3:] not in listing


def test_a_revoked_key_no_longer_authenticates(service_settings: Settings) -> None:
    # The CLI runs its own event loop, so this test is synchronous around it.
    code, key, _ = _invoke("create", "--tenant", "acme")
    assert code == 0
    key_id = json.loads(_invoke("list", "--json")[1])[0]["id"]

    async def authenticate() -> str:
        rt = await Runtime.open(service_settings)
        try:
            return (await rt.tenants.authenticate(key.strip())).tenant
        finally:
            await rt.close()

    assert asyncio.run(authenticate()) == "acme"
    code, _, stderr = _invoke("revoke", key_id)
    assert code == 0, stderr
    with pytest.raises(AuthenticationError):
        asyncio.run(authenticate())


def test_limits_change_and_remove_quotas() -> None:
    assert _invoke("create", "--tenant", "acme", "--max-concurrent", "1")[0] == 0
    code, out, stderr = _invoke(
        "limits", "--tenant", "acme", "--monthly-budget", "25", "--unlimited", "max-concurrent"
    )
    assert code == 0, stderr
    assert "max-concurrent=unlimited" in out and "monthly-budget=25.0" in out


def test_a_bad_tenant_name_is_one_line_and_exit_2() -> None:
    code, _, stderr = _invoke("create", "--tenant", "Not A Name")
    assert code == 2
    assert "invalid_tenant" in stderr and "Traceback" not in stderr


async def test_serve_refuses_a_public_bind_without_keys_but_not_with_one(
    service_settings: Settings,
) -> None:
    public = service_settings.model_copy(update={"host": "0.0.0.0"})
    rt = await Runtime.open(public)
    try:
        with pytest.raises(InvalidRequestError) as refused:
            await _check_bind(public, rt)
        assert refused.value.code == "insecure_bind"
        await _check_bind(public.model_copy(update={"insecure": True}), rt)  # warns, allows
        await rt.tenants.create_key("team")
        await _check_bind(public, rt)
    finally:
        await rt.close()


async def _status(video_id: str, server: str, key: str | None) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    if key is not None:
        env["REELFORGE_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelforge",
        "status",
        video_id,
        "--server",
        server,
        "--json",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def test_status_sends_the_key_from_reelforge_api_key(service_settings: Settings) -> None:
    async with running_service(service_settings, workers=0) as svc:
        key = (await svc.runtime.tenants.create_key("cli")).secret
        svc.client.headers["Authorization"] = f"Bearer {key}"
        video_id = (
            await svc.client.post(
                "/api/videos/generate", json={"prompt": "cli", "duration_seconds": 1}
            )
        ).json()["id"]
        with_key = await _status(video_id, svc.base_url, key)
        without = await _status(video_id, svc.base_url, None)
    assert with_key[0] == 0, with_key[2]
    assert json.loads(with_key[1])["id"] == video_id
    assert without[0] == 1 and b"missing_api_key" in without[2]


def test_webhook_secret_prints_a_new_secret_each_time() -> None:
    first = _invoke("webhook-secret", "--tenant", "default")
    second = _invoke("webhook-secret", "--tenant", "default")
    assert first[0] == second[0] == 0
    assert first[1].startswith("whsec_") and second[1].startswith("whsec_")
    assert first[1] != second[1]
