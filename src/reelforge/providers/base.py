"""The provider protocol: the one shape every generation back-end has.

A provider is a remote job service, even when it runs in-process (``local``):
``submit`` returns a remote id at once, ``poll`` reports state and progress,
``download`` fetches the finished file, ``cancel`` stops it. The service stores the
remote id the moment ``submit`` returns, so a restarted worker resumes by polling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from reelforge.models import GenerationRequest

__all__ = [
    "CallbackProvider",
    "Capabilities",
    "Provider",
    "RemoteState",
    "RemoteStatus",
    "WaitsForWorkers",
    "is_moderation_refusal",
]

# Codes vendors use when their own moderation refuses a prompt (OpenAI's
# ``moderation_blocked``, ``content_policy_violation``; ``safety`` filters).
_MODERATION_MARKERS = ("moderation", "content_policy", "safety", "prompt_rejected")


def is_moderation_refusal(code: str | None) -> bool:
    """Whether a provider's error code means its moderation refused the prompt: that
    maps to our ``prompt_rejected``, never retried and never failed over."""
    return code is not None and any(marker in code.lower() for marker in _MODERATION_MARKERS)


__all__ = ["CallbackProvider", "Capabilities", "Provider", "RemoteState", "RemoteStatus"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can make; the router checks requests against this."""

    max_duration_seconds: float
    durations: tuple[float, ...] | None = None  # None: any duration up to the maximum
    sizes: tuple[str, ...] | None = None  # None: any size within our global limits
    max_fps: int = 60
    audio: bool = True
    image_input: bool = False
    cost_per_second: float = 0.0
    # Whether the provider takes the frame rate we ask for (OpenAI's API has no fps):
    # results of one that does not are not held to the request's fps.
    honours_fps: bool = True
    max_prompt_length: int | None = None  # characters; None: only our global limit
    negative_prompt: bool = True  # whether the model takes a separate negative prompt
    # Whether a repeated submit with the same idempotency key finds the first job. A
    # vendor without idempotency keys (Runway, Luma, Veo) would make and bill a second
    # one, so the worker lets only one run submit each attempt (a claim in Redis).
    idempotent_submit: bool = True
    # Jobs run inside the worker process (the local renderer): they end with it, so
    # a job lost after its worker died is our loss, not the provider's failure.
    in_process: bool = False

    def fits(self, req: GenerationRequest) -> bool:
        if req.duration_seconds > self.max_duration_seconds or req.fps > self.max_fps:
            return False
        if req.image is not None and not self.image_input:
            return False
        if self.durations is not None and req.duration_seconds not in self.durations:
            return False
        return self.sizes is None or req.size in self.sizes


class RemoteState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RemoteState.SUCCEEDED, RemoteState.FAILED, RemoteState.CANCELLED)


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    state: RemoteState
    progress: int = 0  # 0..100 as the provider reports it
    error_code: str | None = None
    error_message: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    name: str

    def capabilities(self) -> Capabilities: ...

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str: ...

    async def poll(self, remote_id: str) -> RemoteStatus: ...

    async def download(self, remote_id: str, dest: Path) -> Path: ...

    async def cancel(self, remote_id: str) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class WaitsForWorkers(Protocol):
    """A provider served by workers of ours (``diffusers``' GPU workers): while it has
    none, new videos wait in ``queued`` with ``waiting_for`` set to the reason."""

    async def waiting_for(self) -> str | None: ...


@runtime_checkable
class CallbackProvider(Provider, Protocol):
    """A provider whose vendor can call back when a job ends (push completion).

    ``submit`` also takes ``callback_url``; ``verify_callback`` raises
    :class:`~reelforge.errors.CallbackRejectedError` for a callback that does not
    carry the vendor's valid signature (vendors that do not sign accept any: the
    callback only makes the worker poll at once).
    """

    async def submit(
        self, req: GenerationRequest, *, idempotency_key: str, callback_url: str | None = None
    ) -> str: ...

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None: ...
