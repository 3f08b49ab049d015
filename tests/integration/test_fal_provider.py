"""The ``fal`` provider against the fal queue emulator (TLS, trusted via SSL_CERT_FILE):
each row of its error table and each end state, driven directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelforge.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
)
from reelforge.media.probe import probe
from reelforge.models import GenerationRequest
from reelforge.providers import RemoteState, build_provider
from reelforge.providers.fal import FalProvider
from reelforge.retry import RetryPolicy, call_with_retries
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.fal import (
    CANCEL_ROUTE,
    SUBMIT_PATH_ROUTE,
    SUBMIT_ROUTE,
    FalConfig,
    FalEmulator,
    running_emulator,
)
from tests.service import wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "fal-adapter-key:secret"
REQUEST = GenerationRequest(prompt="a heron in the reeds", duration_seconds=4, size="1280x720")


@pytest.fixture(scope="session")
def fal_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fal-adapter-media")


@pytest.fixture
async def emulator(
    fal_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FalEmulator]:
    config = FalConfig(api_key=API_KEY, job_seconds=0.4, media_dir=fal_media)
    async with running_emulator(tmp_path, config) as emu:
        monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_file))
        yield emu


def settings_for(emu: FalEmulator, tmp_path: Path, key: str = API_KEY) -> Settings:
    config = ProviderConfig(
        kind="fal", base_url=emu.base_url, api_key=key, options={"model": "fal-ai/veo3.1"}
    )
    return Settings(data_dir=tmp_path / "data", providers={"fal": config})


@pytest.fixture
async def provider(emulator: FalEmulator, tmp_path: Path) -> AsyncIterator[FalProvider]:
    built = build_provider("fal", settings_for(emulator, tmp_path))
    assert isinstance(built, FalProvider)
    try:
        yield built
    finally:
        await built.aclose()


async def finish(provider: FalProvider, remote_id: str) -> RemoteState:
    states: list[RemoteState] = []

    async def ended() -> bool:
        states.append((await provider.poll(remote_id)).state)
        return states[-1].is_terminal

    await wait_until(ended, timeout=10, interval=0.05)
    return states[-1]


async def test_request_runs_to_a_downloaded_playable_video(
    provider: FalProvider, tmp_path: Path
) -> None:
    remote_id = await provider.submit(REQUEST, idempotency_key="video_1-1")

    assert remote_id.startswith("fal-ai/veo3.1/requests/")
    assert await finish(provider, remote_id) is RemoteState.SUCCEEDED
    info = await probe(await provider.download(remote_id, tmp_path / "raw.mp4"))
    assert info.video is not None
    assert (info.video.width, info.video.height) == (1280, 720)


async def test_request_reaches_fal_in_the_models_own_input_fields(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    request = REQUEST.model_copy(update={"seed": 3, "negative_prompt": "rain"})
    remote_id = await provider.submit(request, idempotency_key="k")

    job = emulator.state.jobs[remote_id.rsplit("/", 1)[1]]
    assert job.body == {  # type: ignore[attr-defined]
        "prompt": "a heron in the reeds",
        "negative_prompt": "rain",
        "duration": "4s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 3,
        "generate_audio": True,
    }
    assert emulator.state.requests[SUBMIT_ROUTE] == 1


async def test_image_input_goes_to_the_image_to_video_endpoint_as_a_data_uri(
    provider: FalProvider, emulator: FalEmulator, tmp_path: Path
) -> None:
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "first.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    remote_id = await provider.submit(
        REQUEST.model_copy(update={"image": "first.png"}), idempotency_key="k"
    )

    assert emulator.state.requests[SUBMIT_PATH_ROUTE] == 1
    assert emulator.state.log[0].path == "/fal-ai/veo3.1/image-to-video"
    job = emulator.state.jobs[remote_id.rsplit("/", 1)[1]]
    assert job.body["image_url"].startswith("data:image/png;base64,")  # type: ignore[attr-defined]
    # Status and result live under the app, without the endpoint path.
    assert await finish(provider, remote_id) is RemoteState.SUCCEEDED


async def test_running_request_reports_progress_from_its_logs(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    emulator.config.job_seconds = 4
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    async def running() -> bool:
        status = await provider.poll(remote_id)
        return status.state is RemoteState.RUNNING and status.progress > 0

    await wait_until(running, timeout=10)


async def test_bad_key_is_an_auth_error(emulator: FalEmulator, tmp_path: Path) -> None:
    provider = build_provider("fal", settings_for(emulator, tmp_path, key="fal-wrong"))
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await provider.submit(REQUEST, idempotency_key="k")
    finally:
        await provider.aclose()
    assert not caught.value.retryable
    assert "fal-wrong" not in caught.value.message


async def test_throttled_submit_is_a_rate_limit_with_retry_after(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    emulator.config.rate_limit_next = 1
    emulator.config.retry_after_seconds = 2

    with pytest.raises(RateLimitedError) as caught:
        await provider.submit(REQUEST, idempotency_key="k")
    assert caught.value.retry_after == 2


async def test_server_error_is_retryable(provider: FalProvider, emulator: FalEmulator) -> None:
    emulator.config.fail_next = 1

    with pytest.raises(ProviderUnavailableError) as caught:
        await provider.submit(REQUEST, idempotency_key="k")
    assert caught.value.retryable


async def test_invalid_input_is_rejected_without_retry(provider: FalProvider) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.submit(
            REQUEST.model_copy(update={"duration_seconds": 120}), idempotency_key="k"
        )
    assert "duration" in caught.value.message


async def test_flagged_request_fails_with_our_moderation_code(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    emulator.config.fail_jobs_with = "moderation_blocked"
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    assert await finish(provider, remote_id) is RemoteState.FAILED
    assert (await provider.poll(remote_id)).error_code == "moderation_blocked"


async def test_vanished_request_is_a_lost_remote_job(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    emulator.config.vanish_jobs = True
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    async def lost() -> bool:
        try:
            await provider.poll(remote_id)
        except RemoteJobLostError:
            return True
        return False

    await wait_until(lost, timeout=10)


async def test_cancel_reaches_fal_and_the_request_reads_cancelled(
    provider: FalProvider, emulator: FalEmulator
) -> None:
    emulator.config.job_seconds = 30
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    await provider.cancel(remote_id)
    await provider.cancel(remote_id)  # ALREADY_COMPLETED is not an error

    assert emulator.state.requests[CANCEL_ROUTE] == 2
    assert (await provider.poll(remote_id)).state is RemoteState.CANCELLED


@pytest.mark.parametrize("fault", ["cut_downloads_next", "expire_downloads_next"])
async def test_cut_or_expired_download_is_retried_to_a_whole_video(
    provider: FalProvider, emulator: FalEmulator, tmp_path: Path, fault: str
) -> None:
    remote_id = await provider.submit(REQUEST, idempotency_key="k")
    assert await finish(provider, remote_id) is RemoteState.SUCCEEDED
    setattr(emulator.config, fault, 1)
    dest = tmp_path / "raw.mp4"

    with pytest.raises(ProviderError) as caught:
        await provider.download(remote_id, dest)
    assert caught.value.retryable
    await call_with_retries(
        lambda: provider.download(remote_id, dest), RetryPolicy(initial=0.01, maximum=0.05)
    )
    assert (await probe(dest)).duration > 3.5


async def test_response_url_on_another_host_is_refused(provider: FalProvider) -> None:
    with pytest.raises(ProviderUnavailableError):
        provider._remote_id(
            {"request_id": "r", "response_url": "https://elsewhere.example/fal-ai/x/requests/r"}
        )
