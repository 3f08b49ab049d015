"""The ``openai`` provider under the contract, against the OpenAI Videos emulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from reelforge.settings import ProviderConfig
from tests.contract.harness import ALL_FAULTS, EmulatorHarness, Fault
from tests.emulators.openai_videos import (
    CREATE_ROUTE,
    EmulatorConfig,
    EmulatorState,
    running_emulator,
)

__all__ = ["OpenAIHarness"]


class OpenAIHarness(EmulatorHarness):
    name = "openai"
    # Content is served by the API itself, behind the key: there is no link to expire.
    faults: ClassVar[frozenset[Fault]] = ALL_FAULTS - {"expired_download"}
    moderation_code = "moderation_blocked"
    create_routes = (CREATE_ROUTE,)

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="openai",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
        )

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        async with running_emulator(config) as emu:
            yield emu.base_url, emu.state
