"""The ``replicate`` provider under the contract, against the Replicate emulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from reelforge.settings import ProviderConfig
from tests.contract.harness import EmulatorHarness
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState
from tests.emulators.replicate import (
    CREATE_ROUTE,
    VERSION_CREATE_ROUTE,
    ReplicateConfig,
    running_emulator,
)

__all__ = ["ReplicateHarness"]


class ReplicateHarness(EmulatorHarness):
    name = "replicate"
    moderation_code = "moderation_blocked"
    create_routes = (CREATE_ROUTE, VERSION_CREATE_ROUTE)
    api_key = "r8_contract_test_key"
    config: ReplicateConfig

    def emulator_config(self) -> ReplicateConfig:
        return ReplicateConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="replicate",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
            options={"model": "google/veo-3.1-fast"},
        )

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        assert isinstance(config, ReplicateConfig)
        async with running_emulator(config) as emu:
            yield emu.base_url, emu.state

    def cut_download(self) -> None:
        self.config.cut_downloads_next = 1

    def expired_download(self) -> None:
        self.config.expire_downloads_next = 1

    @property
    def cancels(self) -> int:
        # The emulator records a prediction in `deleted` only when a cancel stopped it.
        return len(self.state.deleted)
