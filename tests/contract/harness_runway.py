"""The ``runway`` provider under the contract, against the Runway emulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from reelforge.models import GenerationRequest
from reelforge.settings import ProviderConfig
from tests.contract.harness import EmulatorHarness
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState
from tests.emulators.runway import CREATE_ROUTES, running_runway
from tests.emulators.vendor_common import VendorConfig

__all__ = ["RunwayHarness"]


class RunwayHarness(EmulatorHarness):
    name = "runway"
    moderation_code = "SAFETY.INPUT.TEXT"
    create_routes = CREATE_ROUTES
    api_key = "key_" + "ab" * 64
    config: VendorConfig

    def request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a lighthouse at dusk", duration_seconds=2, size="1280x720")

    def emulator_config(self) -> VendorConfig:
        return VendorConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="runway",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
            options={"model": "gen4.5"},
        )

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        assert isinstance(config, VendorConfig)
        async with running_runway(config) as emu:
            yield emu.base_url, emu.state

    def cut_download(self) -> None:
        self.config.cut_downloads_next = 1

    def expired_download(self) -> None:
        self.config.expire_downloads_next = 1
