"""The ``replicate`` provider against the Replicate emulator: each row of its error
table and each end state, driven directly (submit, poll, download, cancel)."""

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
from reelforge.providers.replicate import ReplicateProvider
from reelforge.retry import RetryPolicy, call_with_retries
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.replicate import (
    CANCEL_ROUTE,
    CREATE_ROUTE,
    DELIVERY_ROUTE,
    ReplicateConfig,
    ReplicateEmulator,
    running_emulator,
)
from tests.service import wait_until

pytestmark = pytest.mark.timeout(60)

API_KEY = "r8_adapter_test_key"
REQUEST = GenerationRequest(prompt="a red kite over a hill", duration_seconds=4, size="1280x720")


@pytest.fixture(scope="session")
def replicate_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicate-adapter-media")


@pytest.fixture
async def emulator(replicate_media: Path) -> AsyncIterator[ReplicateEmulator]:
    config = ReplicateConfig(api_key=API_KEY, job_seconds=0.4, media_dir=replicate_media)
    async with running_emulator(config) as emu:
        yield emu


def settings_for(emu: ReplicateEmulator, tmp_path: Path, key: str = API_KEY) -> Settings:
    config = ProviderConfig(
        kind="replicate",
        base_url=emu.base_url,
        api_key=key,
        options={"model": "google/veo-3.1-fast"},
    )
    return Settings(data_dir=tmp_path / "data", providers={"rep": config})


@pytest.fixture
async def provider(emulator: ReplicateEmulator, tmp_path: Path) -> AsyncIterator[ReplicateProvider]:
    built = build_provider("rep", settings_for(emulator, tmp_path))
    assert isinstance(built, ReplicateProvider)
    try:
        yield built
    finally:
        await built.aclose()


async def finish(provider: ReplicateProvider, remote_id: str) -> RemoteState:
    states: list[RemoteState] = []

    async def ended() -> bool:
        states.append((await provider.poll(remote_id)).state)
        return states[-1].is_terminal

    await wait_until(ended, timeout=10, interval=0.05)
    return states[-1]


async def test_prediction_runs_to_a_downloaded_playable_video(
    provider: ReplicateProvider, emulator: ReplicateEmulator, tmp_path: Path
) -> None:
    remote_id = await provider.submit(REQUEST, idempotency_key="video_1-1")

    assert await finish(provider, remote_id) is RemoteState.SUCCEEDED
    dest = await provider.download(remote_id, tmp_path / "raw.mp4")
    info = await probe(dest)
    assert info.video is not None
    assert (info.video.width, info.video.height) == (1280, 720)
    assert emulator.state.requests[DELIVERY_ROUTE] == 1


async def test_request_reaches_replicate_in_the_models_own_input_fields(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    request = REQUEST.model_copy(update={"seed": 7, "negative_prompt": "fog"})
    remote_id = await provider.submit(request, idempotency_key="video_1-1")

    job = emulator.state.jobs[remote_id]
    assert job.body["input"] == {  # type: ignore[attr-defined]
        "prompt": "a red kite over a hill",
        "negative_prompt": "fog",
        "duration": 4,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 7,
        "generate_audio": True,
    }
    assert emulator.state.requests[CREATE_ROUTE] == 1
    assert emulator.state.log[0].path == "/v1/models/google/veo-3.1-fast/predictions"


async def test_input_image_is_sent_as_a_data_uri(
    provider: ReplicateProvider, emulator: ReplicateEmulator, tmp_path: Path
) -> None:
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "frame.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    remote_id = await provider.submit(
        REQUEST.model_copy(update={"image": "frame.png"}), idempotency_key="k"
    )

    image = emulator.state.jobs[remote_id].body["input"]["image"]  # type: ignore[attr-defined]
    assert image.startswith("data:image/png;base64,")


async def test_running_prediction_reports_progress_from_its_logs(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    emulator.config.job_seconds = 4
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    async def running() -> bool:
        status = await provider.poll(remote_id)
        return status.state is RemoteState.RUNNING and status.progress > 0

    await wait_until(running, timeout=10)


async def test_bad_key_is_an_auth_error(emulator: ReplicateEmulator, tmp_path: Path) -> None:
    provider = build_provider("rep", settings_for(emulator, tmp_path, key="r8_wrong"))
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await provider.submit(REQUEST, idempotency_key="k")
    finally:
        await provider.aclose()
    assert not caught.value.retryable
    assert "r8_wrong" not in caught.value.message


async def test_throttled_create_carries_retry_after(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    emulator.config.rate_limit_next = 1
    emulator.config.retry_after_seconds = 3

    with pytest.raises(RateLimitedError) as caught:
        await provider.submit(REQUEST, idempotency_key="k")
    assert caught.value.retry_after == 3


async def test_server_error_is_retryable_and_a_retry_succeeds(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    emulator.config.fail_next = 1

    with pytest.raises(ProviderUnavailableError) as caught:
        await provider.submit(REQUEST, idempotency_key="k")
    assert caught.value.retryable
    assert await provider.submit(REQUEST, idempotency_key="k")


async def test_invalid_input_is_rejected_without_retry(provider: ReplicateProvider) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.submit(
            REQUEST.model_copy(update={"duration_seconds": 30}), idempotency_key="k"
        )
    assert "duration" in caught.value.message


async def test_flagged_prediction_fails_with_our_moderation_code(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    emulator.config.fail_jobs_with = "moderation_blocked"
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    assert await finish(provider, remote_id) is RemoteState.FAILED
    status = await provider.poll(remote_id)
    assert status.error_code == "moderation_blocked"


async def test_vanished_prediction_is_a_lost_remote_job(
    provider: ReplicateProvider, emulator: ReplicateEmulator
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


async def test_cancel_reaches_replicate(
    provider: ReplicateProvider, emulator: ReplicateEmulator
) -> None:
    emulator.config.job_seconds = 30
    remote_id = await provider.submit(REQUEST, idempotency_key="k")

    await provider.cancel(remote_id)

    assert emulator.state.requests[CANCEL_ROUTE] == 1
    assert (await provider.poll(remote_id)).state is RemoteState.CANCELLED


@pytest.mark.parametrize("fault", ["cut_downloads_next", "expire_downloads_next"])
async def test_cut_or_expired_download_is_retried_to_a_whole_video(
    provider: ReplicateProvider, emulator: ReplicateEmulator, tmp_path: Path, fault: str
) -> None:
    remote_id = await provider.submit(REQUEST, idempotency_key="k")
    assert await finish(provider, remote_id) is RemoteState.SUCCEEDED
    setattr(emulator.config, fault, 1)
    dest = tmp_path / "raw.mp4"

    with pytest.raises(ProviderError) as caught:
        await provider.download(remote_id, dest)
    assert caught.value.retryable
    assert not dest.exists()
    await call_with_retries(
        lambda: provider.download(remote_id, dest), RetryPolicy(initial=0.01, maximum=0.05)
    )
    assert (await probe(dest)).duration > 3.5
