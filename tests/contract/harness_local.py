"""The ``local`` renderer under the contract: no vendor behind it, so no faults.

The provider *is* the service, so its counters come from a thin counting wrapper
around the real :class:`~reelforge.providers.local.LocalProvider`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

from reelforge.models import GenerationRequest
from reelforge.providers.base import Capabilities, Provider, RemoteState, RemoteStatus
from reelforge.providers.registry import build_provider
from reelforge.settings import ProviderConfig, Settings
from tests.contract.harness import PROVIDER_NAME, Fault

__all__ = ["LocalHarness"]


class _CountingProvider:
    """Delegates to the real provider; counts submits and cancels of running jobs."""

    def __init__(self, inner: Provider, harness: LocalHarness) -> None:
        self.name = inner.name
        self._inner = inner
        self._harness = harness

    def capabilities(self) -> Capabilities:
        return self._inner.capabilities()

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        self._harness.submit_attempts += 1
        remote_id = await self._inner.submit(req, idempotency_key=idempotency_key)
        self._harness.submits += 1
        return remote_id

    async def poll(self, remote_id: str) -> RemoteStatus:
        return await self._inner.poll(remote_id)

    async def download(self, remote_id: str, dest: Path) -> Path:
        return await self._inner.download(remote_id, dest)

    async def cancel(self, remote_id: str) -> None:
        before = await self._inner.poll(remote_id)
        await self._inner.cancel(remote_id)
        after = await self._inner.poll(remote_id)
        if not before.state.is_terminal and after.state is RemoteState.CANCELLED:
            self._harness.cancels += 1

    async def aclose(self) -> None:
        await self._inner.aclose()


class LocalHarness:
    name = "local"
    faults: ClassVar[frozenset[Fault]] = frozenset()
    reports_progress = True
    retry_after_seconds = 0.0

    def __init__(self) -> None:
        self.submits = 0
        self.submit_attempts = 0
        self.cancels = 0
        self._delay = 0.0

    def request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a lighthouse at dusk", duration_seconds=1, size="320x240")

    @contextlib.asynccontextmanager
    async def start(self, settings: Settings) -> AsyncIterator[ProviderConfig]:
        yield ProviderConfig(kind="local", options={"preset": "ultrafast"})

    def provider(self, settings: Settings) -> Provider:
        config = settings.providers[PROVIDER_NAME]
        if self._delay:
            options = {**config.options, "delay_seconds": self._delay}
            config = config.model_copy(update={"options": options})
            settings = settings.model_copy(
                update={"providers": {**settings.providers, PROVIDER_NAME: config}}
            )
        return _CountingProvider(build_provider(PROVIDER_NAME, settings), self)

    def slow_jobs(self) -> None:
        self._delay = 60.0

    def heal(self) -> None:
        self._delay = 0.0

    def _no(self, fault: str) -> None:
        raise NotImplementedError(f"the local renderer cannot show {fault}")

    def rate_limit(self, n: int = 1) -> None:
        self._no("rate limits")

    def server_error(self, n: int = 1) -> None:
        self._no("server errors")

    def moderation(self) -> None:
        self._no("moderation")

    def vanish(self) -> None:
        self._no("vanishing jobs")

    def cut_download(self) -> None:
        self._no("cut downloads")

    def expired_download(self) -> None:
        self._no("expired downloads")

    def bad_credentials(self) -> None:
        self._no("bad credentials")
