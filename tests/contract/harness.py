"""The provider contract harness: one small protocol every provider's test rig speaks.

A :class:`Harness` starts the thing a provider talks to (an emulator, or nothing for
``local``), says how to configure the provider to reach it, switches faults on, and
counts what reached the vendor. ``test_provider_contract.py`` runs the same
behaviours over every entry of :data:`HARNESSES`; a harness lists in ``faults`` the
faults its vendor can show (``local`` has no credentials to get wrong), and the
suite skips the rest, naming the reason.

Each vendor's harness lives in its own module (``harness_<vendor>.py``); add it to
:data:`HARNESSES` below.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import ClassVar, Literal, Protocol

from reelforge.models import GenerationRequest
from reelforge.providers.base import Provider
from reelforge.providers.registry import build_provider
from reelforge.settings import ProviderConfig, Settings
from tests.emulators.openai_videos import EmulatorConfig, EmulatorState

__all__ = ["ALL_FAULTS", "HARNESSES", "EmulatorHarness", "Fault", "Harness"]

Fault = Literal[
    "rate_limit",
    "server_error",
    "moderation",
    "vanish",
    "cut_download",
    "expired_download",
    "bad_credentials",
]
ALL_FAULTS: frozenset[Fault] = frozenset(
    {
        "rate_limit",
        "server_error",
        "moderation",
        "vanish",
        "cut_download",
        "expired_download",
        "bad_credentials",
    }
)
PROVIDER_NAME = "contract"


class Harness(Protocol):
    """A provider under contract test and the (emulated) vendor behind it."""

    name: str
    """The test id: the adapter kind (``ProviderConfig.kind``), plus a variant if any."""
    faults: frozenset[Fault]
    """The faults this vendor can show; the suite skips the others."""
    reports_progress: bool
    """Whether the vendor reports a numeric progress while running."""
    retry_after_seconds: float
    """The Retry-After that :meth:`rate_limit` answers carry."""

    def request(self) -> GenerationRequest:
        """A request the provider's model fits."""
        ...

    def start(self, settings: Settings) -> contextlib.AbstractAsyncContextManager[ProviderConfig]:
        """Start the vendor (emulator); yields the config that reaches it."""
        ...

    def provider(self, settings: Settings) -> Provider: ...

    def rate_limit(self, n: int = 1) -> None: ...
    def server_error(self, n: int = 1) -> None: ...
    def moderation(self) -> None: ...
    def vanish(self) -> None: ...
    def cut_download(self) -> None: ...
    def expired_download(self) -> None: ...
    def bad_credentials(self) -> None: ...
    def slow_jobs(self) -> None:
        """New jobs run long enough to be cancelled while running."""
        ...

    def heal(self) -> None:
        """Switch every fault off (the vendor recovers)."""
        ...

    @property
    def submits(self) -> int:
        """Create requests the vendor accepted (jobs it would bill)."""
        ...

    @property
    def submit_attempts(self) -> int:
        """Create requests that reached the vendor, refused ones included."""
        ...

    @property
    def cancels(self) -> int:
        """Unfinished jobs the vendor was asked to cancel."""
        ...


class EmulatorHarness:
    """What every emulator-backed harness shares: the emulators all take the OpenAI
    emulator's :class:`EmulatorConfig` switches and keep :class:`EmulatorState`."""

    name: ClassVar[str]
    faults: ClassVar[frozenset[Fault]] = ALL_FAULTS
    reports_progress: ClassVar[bool] = True
    retry_after_seconds: ClassVar[float] = 1.0
    moderation_code: ClassVar[str]
    create_routes: ClassVar[tuple[str, ...]]
    api_key: ClassVar[str] = "contract-test-key"

    config: EmulatorConfig
    state: EmulatorState

    def request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a lighthouse at dusk", duration_seconds=4, size="1280x720")

    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(
            api_key=self.api_key,
            job_seconds=1.0,
            retry_after_seconds=int(self.retry_after_seconds),
        )

    def provider_config(self, base_url: str) -> ProviderConfig:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def start(self, settings: Settings) -> AsyncIterator[ProviderConfig]:
        self.config = self.emulator_config()
        async with self.serve(self.config) as (base_url, state):
            self.state = state
            yield self.provider_config(base_url)

    def serve(
        self, config: EmulatorConfig
    ) -> contextlib.AbstractAsyncContextManager[tuple[str, EmulatorState]]:
        raise NotImplementedError

    def provider(self, settings: Settings) -> Provider:
        return build_provider(PROVIDER_NAME, settings)

    def rate_limit(self, n: int = 1) -> None:
        self.config.rate_limit_next = n

    def server_error(self, n: int = 1) -> None:
        self.config.fail_next = n

    def moderation(self) -> None:
        self.config.fail_jobs_with = self.moderation_code

    def vanish(self) -> None:
        self.config.vanish_jobs = True

    def cut_download(self) -> None:
        self.config.cut_content = True

    def expired_download(self) -> None:
        raise NotImplementedError(f"{self.name} downloads do not expire")

    def bad_credentials(self) -> None:
        self.config.unauthorized = True

    def slow_jobs(self) -> None:
        self.config.job_seconds = 60.0

    def heal(self) -> None:
        fresh = self.emulator_config()
        for name in (
            "rate_limit_next",
            "fail_next",
            "fail_jobs_with",
            "vanish_jobs",
            "cut_content",
            "unauthorized",
            "forbidden",
        ):
            setattr(self.config, name, getattr(fresh, name))
        for name in ("expire_downloads_next", "cut_downloads_next"):
            if hasattr(self.config, name):
                setattr(self.config, name, 0)

    @property
    def submits(self) -> int:
        return sum(self.state.submits_by_prompt.values())

    @property
    def submit_attempts(self) -> int:
        return sum(self.state.requests[route] for route in self.create_routes)

    @property
    def cancels(self) -> int:
        unfinished = {"queued", "in_progress", "PENDING", "THROTTLED", "RUNNING", "dreaming"}
        return sum(1 for status in self.state.deleted.values() if status in unfinished)


def _harnesses() -> tuple[Callable[[], Harness], ...]:
    from tests.contract.harness_comfyui import ComfyUIHarness
    from tests.contract.harness_fal import FalHarness
    from tests.contract.harness_local import LocalHarness
    from tests.contract.harness_luma import LumaHarness
    from tests.contract.harness_openai import OpenAIHarness
    from tests.contract.harness_replicate import ReplicateHarness
    from tests.contract.harness_runway import RunwayHarness
    from tests.contract.harness_veo import VeoHarness, VeoVertexHarness

    return (
        LocalHarness,
        OpenAIHarness,
        RunwayHarness,
        LumaHarness,
        VeoHarness,
        VeoVertexHarness,
        FalHarness,
        ReplicateHarness,
        ComfyUIHarness,
    )


# Factories, one per provider kind: each test gets a fresh harness.
HARNESSES: tuple[Callable[[], Harness], ...] = _harnesses()
