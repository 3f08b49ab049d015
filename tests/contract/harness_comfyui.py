"""The ``comfyui`` provider under the contract, against the ComfyUI emulator built
from the recorded 0.3.64 exchange, with the shipped Wan 2.2 workflow and binding.

ComfyUI has no API keys, no rate limits, no moderation and no expiring links, so
those faults are skipped; it can fail with a 500, forget every prompt (a restart:
its queue and history live in memory) and drop a download.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import reelforge.providers
from reelforge.models import GenerationRequest
from reelforge.providers.base import Provider
from reelforge.providers.registry import build_provider
from reelforge.settings import ProviderConfig, Settings
from tests.contract.harness import PROVIDER_NAME, Fault
from tests.emulators.comfyui import ComfyConfig, ComfyEmulator, running_comfy_emulator

__all__ = ["ComfyUIHarness"]

WORKFLOWS = Path(reelforge.providers.__file__).parent / "comfyui_workflows"


class ComfyUIHarness:
    name = "comfyui"
    faults: ClassVar[frozenset[Fault]] = frozenset({"server_error", "vanish", "cut_download"})
    reports_progress = True
    retry_after_seconds = 0.0

    emulator: ComfyEmulator

    def request(self) -> GenerationRequest:
        return GenerationRequest(
            prompt="a lighthouse at dusk", duration_seconds=1, size="64x64", fps=16
        )

    @contextlib.asynccontextmanager
    async def start(self, settings: Settings) -> AsyncIterator[ProviderConfig]:
        async with running_comfy_emulator(ComfyConfig(step_seconds=0.02)) as emulator:
            self.emulator = emulator
            yield ProviderConfig(
                kind="comfyui",
                base_url=emulator.base_url,
                poll_interval_seconds=0.05,
                timeout_seconds=5.0,
                options={
                    "workflow": str(WORKFLOWS / "wan22_ti2v_5b.json"),
                    "binding": str(WORKFLOWS / "wan22_ti2v_5b.binding.json"),
                },
            )

    def provider(self, settings: Settings) -> Provider:
        return build_provider(PROVIDER_NAME, settings)

    def rate_limit(self, n: int = 1) -> None:
        raise NotImplementedError("ComfyUI has no rate limit")

    def server_error(self, n: int = 1) -> None:
        self.emulator.config.fail_next = n

    def moderation(self) -> None:
        raise NotImplementedError("ComfyUI has no moderation")

    def vanish(self) -> None:
        self.emulator.config.forget_prompts = True

    def cut_download(self) -> None:
        self.emulator.config.cut_views_next = 1

    def expired_download(self) -> None:
        raise NotImplementedError("ComfyUI's /view links do not expire")

    def bad_credentials(self) -> None:
        raise NotImplementedError("ComfyUI has no API keys")

    def slow_jobs(self) -> None:
        self.emulator.config.step_seconds = 2.0

    def heal(self) -> None:
        config = self.emulator.config
        config.fail_next = config.cut_views_next = 0
        config.forget_prompts = False

    @property
    def submits(self) -> int:
        return sum(self.emulator.state.submits.values())

    @property
    def submit_attempts(self) -> int:
        return self.emulator.state.prompt_requests

    @property
    def cancels(self) -> int:
        state = self.emulator.state
        return len(set(state.deleted) | {i for i in state.interrupts if i is not None})
