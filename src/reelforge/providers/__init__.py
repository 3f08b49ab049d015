"""Generation back-ends behind one protocol, built by name from settings."""

from reelforge.providers.base import Capabilities, Provider, RemoteState, RemoteStatus
from reelforge.providers.registry import build_provider, provider_names

__all__ = [
    "Capabilities",
    "Provider",
    "RemoteState",
    "RemoteStatus",
    "build_provider",
    "provider_names",
]
