"""The ``luma`` provider under the contract, against the Luma Dream Machine emulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from reelforge.models import GenerationRequest
from reelforge.settings import ProviderConfig
from tests.contract.harness import EmulatorHarness
from tests.emulators.luma import CREATE_ROUTES, running_luma
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState
from tests.emulators.vendor_common import VendorConfig

__all__ = ["LumaHarness"]


class LumaHarness(EmulatorHarness):
    name = "luma"
    # Luma's legacy API reports no numeric progress, only queued/dreaming.
    reports_progress = False
    # The legacy API has no failure code; the reason text is all there is.
    moderation_code = "Prompt not allowed: it failed content moderation"
    create_routes = CREATE_ROUTES
    config: VendorConfig

    def request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a lighthouse at dusk", duration_seconds=5, size="1280x720")

    def emulator_config(self) -> VendorConfig:
        return VendorConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="luma",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
            options={"model": "ray-2"},
        )

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        assert isinstance(config, VendorConfig)
        async with running_luma(config) as emu:
            yield emu.base_url, emu.state

    def cut_download(self) -> None:
        self.config.cut_downloads_next = 1

    def expired_download(self) -> None:
        self.config.expire_downloads_next = 1
