"""The ``fal`` provider under the contract, against the fal queue emulator (TLS)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from reelforge.settings import ProviderConfig, Settings
from tests.contract.harness import EmulatorHarness
from tests.emulators.fal import SUBMIT_PATH_ROUTE, SUBMIT_ROUTE, FalConfig, running_emulator
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState

__all__ = ["FalHarness"]


@contextlib.contextmanager
def trusting(ca_file: Path) -> Iterator[None]:
    """httpx clients made meanwhile trust the emulator's test CA (``SSL_CERT_FILE``)."""
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(ca_file)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = before


class FalHarness(EmulatorHarness):
    name = "fal"
    moderation_code = "moderation_blocked"
    create_routes = (SUBMIT_ROUTE, SUBMIT_PATH_ROUTE)
    api_key = "fal-contract-key:secret"
    config: FalConfig
    # fal has no numeric progress; the emulator logs "NN%" lines as its models do.
    reports_progress = True

    def emulator_config(self) -> FalConfig:
        return FalConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        return ProviderConfig(
            kind="fal",
            base_url=base_url,
            api_key=self.api_key,  # type: ignore[arg-type]
            timeout_seconds=10,
            options={"model": "fal-ai/veo3.1"},
        )

    @contextlib.asynccontextmanager
    async def start(self, settings: Settings) -> AsyncIterator[ProviderConfig]:
        with tempfile.TemporaryDirectory(prefix="fal-ca-") as directory:
            self._ca_dir = Path(directory)
            async with super().start(settings) as config:
                # The provider is built inside this block, so it trusts the test CA.
                yield config

    @contextlib.asynccontextmanager
    async def serve(self, config: EmulatorConfig) -> AsyncIterator[tuple[str, EmulatorState]]:
        assert isinstance(config, FalConfig)
        async with running_emulator(self._ca_dir, config) as emu:
            with trusting(emu.ca_file):
                yield emu.base_url, emu.state

    def cut_download(self) -> None:
        self.config.cut_downloads_next = 1

    def expired_download(self) -> None:
        self.config.expire_downloads_next = 1

    @property
    def cancels(self) -> int:
        return len(self.state.deleted)
