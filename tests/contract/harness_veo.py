"""The ``veo`` provider under the contract, on the Gemini API and on Vertex."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from reelforge.settings import ProviderConfig
from tests.contract.harness import ALL_FAULTS, EmulatorHarness, Fault
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState
from tests.emulators.vendor_common import VendorConfig
from tests.emulators.veo import CREATE_ROUTE, Surface, running_veo

__all__ = ["VeoHarness", "VeoVertexHarness"]


class VeoHarness(EmulatorHarness):
    name = "veo"
    surface: ClassVar[Surface] = "gemini"
    model: ClassVar[str] = "veo-3.1-generate-preview"
    # Veo reports no numeric progress; safety filtering is raiMediaFilteredCount.
    reports_progress = False
    moderation_code = "RAI"
    create_routes = (CREATE_ROUTE,)
    config: VendorConfig

    def emulator_config(self) -> VendorConfig:
        return VendorConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="veo",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
            options={"model": self.model, "api": self.surface},
        )

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        assert isinstance(config, VendorConfig)
        async with running_veo(config, surface=self.surface) as emu:
            yield emu.base_url, emu.state

    def cut_download(self) -> None:
        self.config.cut_downloads_next = 1

    def expired_download(self) -> None:
        self.config.expire_downloads_next = 1

    @property
    def cancels(self) -> int:
        return len(self.state.deleted)


class VeoVertexHarness(VeoHarness):
    name = "veo-vertex"
    surface = "vertex"
    model = "veo-3.1-generate-001"
    # Vertex returns the video inline in the operation: there is no download to cut.
    faults: ClassVar[frozenset[Fault]] = ALL_FAULTS - {"cut_download", "expired_download"}
