"""The provider contract: the same behaviours, asserted for every provider kind.

Each test drives one provider directly (submit, poll, download, cancel) against its
vendor's emulator, through our one retry policy (:mod:`reelforge.retry`) and the
worker's fallback rule (:func:`reelforge.worker.falls_over`), so what is asserted is
what a worker would do. Faults a vendor cannot show are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from reelforge.errors import (
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    RemoteJobLostError,
)
from reelforge.media.probe import probe
from reelforge.providers.base import Provider, RemoteState, RemoteStatus
from reelforge.retry import RetryPolicy, call_with_retries
from reelforge.settings import Settings
from reelforge.worker import falls_over
from tests.contract.harness import HARNESSES, PROVIDER_NAME, Fault, Harness
from tests.service import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

POLICY = RetryPolicy(attempts=4, initial=0.05, maximum=1.0, total_seconds=30)


@pytest.fixture(params=HARNESSES, ids=lambda factory: factory().name)
def harness(request: pytest.FixtureRequest) -> Harness:
    factory: Callable[[], Harness] = request.param
    return factory()


@pytest.fixture
async def provider(harness: Harness, settings: Settings) -> AsyncIterator[Provider]:
    async with harness.start(settings) as config:
        configured = settings.model_copy(update={"providers": {PROVIDER_NAME: config}})
        built = harness.provider(configured)
        try:
            yield built
        finally:
            await built.aclose()


def _needs(harness: Harness, fault: Fault) -> None:
    if fault not in harness.faults:
        pytest.skip(f"{harness.name} cannot show {fault}")


async def _submit(provider: Provider, harness: Harness, key: str = "video_contract-1") -> str:
    return await call_with_retries(
        lambda: provider.submit(harness.request(), idempotency_key=key), POLICY
    )


async def _until_terminal(provider: Provider, remote_id: str) -> list[RemoteStatus]:
    seen: list[RemoteStatus] = []

    async def terminal() -> bool:
        seen.append(await call_with_retries(lambda: provider.poll(remote_id), POLICY))
        return seen[-1].state.is_terminal

    await wait_until(terminal, timeout=60, interval=0.05)
    return seen


async def _retried_errors(
    harness: Harness, call: Callable[[], object], *, heal: bool
) -> tuple[object, list[BaseException]]:
    errors: list[BaseException] = []

    async def on_retry(exc: BaseException, attempt: int) -> None:
        errors.append(exc)
        if heal:
            harness.heal()

    result = await call_with_retries(call, POLICY, on_retry=on_retry)  # type: ignore[arg-type]
    return result, errors


async def test_a_submitted_job_progresses_and_downloads_as_a_valid_video(
    harness: Harness, provider: Provider, tmp_path: Path
) -> None:
    remote_id = await _submit(provider, harness)
    seen = await _until_terminal(provider, remote_id)
    assert seen[-1].state is RemoteState.SUCCEEDED
    progress = [status.progress for status in seen]
    assert progress == sorted(progress)
    if harness.reports_progress:
        assert any(0 < p < 100 for p in progress), progress
    dest = await provider.download(remote_id, tmp_path / "out.mp4")
    info = await probe(dest)
    req = harness.request()
    assert info.video is not None
    assert (info.video.width, info.video.height) == (req.width, req.height)
    assert info.duration == pytest.approx(req.duration_seconds, abs=0.5)
    assert harness.submits == 1


async def test_cancel_reaches_the_vendor(harness: Harness, provider: Provider) -> None:
    harness.slow_jobs()
    remote_id = await _submit(provider, harness)
    await provider.cancel(remote_id)
    assert harness.cancels == 1


async def test_bad_credentials_fail_with_a_clear_code_and_no_retry(
    harness: Harness, provider: Provider
) -> None:
    _needs(harness, "bad_credentials")
    harness.bad_credentials()
    with pytest.raises(ProviderAuthError) as raised:
        await _submit(provider, harness)
    assert raised.value.code == "provider_auth_failed"
    assert not raised.value.retryable
    secret = getattr(harness, "api_key", None)
    assert secret
    assert secret not in str(raised.value.to_dict())
    assert harness.submit_attempts == 1
    assert harness.submits == 0


async def test_a_429_is_retried_after_its_retry_after_and_submits_once(
    harness: Harness, provider: Provider
) -> None:
    _needs(harness, "rate_limit")
    harness.rate_limit(1)
    _, errors = await _retried_errors(
        harness,
        lambda: provider.submit(harness.request(), idempotency_key="video_contract-429"),
        heal=False,
    )
    assert len(errors) == 1
    assert isinstance(errors[0], RateLimitedError)
    assert errors[0].retry_after == harness.retry_after_seconds
    assert (harness.submit_attempts, harness.submits) == (2, 1)


async def test_moderation_fails_with_our_moderation_code_and_no_fallback(
    harness: Harness, provider: Provider
) -> None:
    _needs(harness, "moderation")
    harness.moderation()
    remote_id = await _submit(provider, harness)
    final = (await _until_terminal(provider, remote_id))[-1]
    assert final.state is RemoteState.FAILED
    assert final.error_code is not None
    assert "moderation" in final.error_code
    # What the worker raises for a failed remote job, and its fallback rule.
    assert not falls_over(ProviderError(final.error_message or "", code=final.error_code))


async def test_a_vendor_5xx_is_retried(harness: Harness, provider: Provider) -> None:
    _needs(harness, "server_error")
    harness.server_error(1)
    _, errors = await _retried_errors(
        harness,
        lambda: provider.submit(harness.request(), idempotency_key="video_contract-500"),
        heal=False,
    )
    assert [type(e).__name__ for e in errors] == ["ProviderUnavailableError"]
    assert harness.submits == 1


async def test_a_vendor_that_keeps_failing_falls_over_to_the_next_provider(
    harness: Harness, provider: Provider
) -> None:
    _needs(harness, "server_error")
    harness.server_error(100)
    with pytest.raises(ProviderError) as raised:
        await _submit(provider, harness)
    assert raised.value.retryable
    assert falls_over(raised.value)
    assert harness.submits == 0


async def test_a_vanished_job_is_reported_lost(harness: Harness, provider: Provider) -> None:
    _needs(harness, "vanish")
    harness.vanish()
    remote_id = await _submit(provider, harness)
    with pytest.raises(RemoteJobLostError):
        await _until_terminal(provider, remote_id)


@pytest.mark.parametrize("fault", ["cut_download", "expired_download"])
async def test_a_bad_download_is_retried_and_then_valid(
    harness: Harness, provider: Provider, fault: Fault, tmp_path: Path
) -> None:
    _needs(harness, fault)
    remote_id = await _submit(provider, harness)
    assert (await _until_terminal(provider, remote_id))[-1].state is RemoteState.SUCCEEDED
    getattr(harness, fault)()
    dest, errors = await _retried_errors(
        harness, lambda: provider.download(remote_id, tmp_path / "out.mp4"), heal=True
    )
    assert len(errors) == 1
    assert isinstance(errors[0], ProviderError)
    assert errors[0].retryable
    info = await probe(dest)  # type: ignore[arg-type]
    assert info.video is not None
    assert info.video.width == harness.request().width
