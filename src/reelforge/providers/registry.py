"""Builds providers from settings by name.

``settings.providers`` maps a provider *name* (what requests and routes use) to a
:class:`~reelforge.settings.ProviderConfig` whose ``kind`` picks the adapter, so one
adapter can be configured twice (e.g. two OpenAI-compatible servers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from reelforge.errors import UnknownProviderError
from reelforge.providers.base import Provider
from reelforge.settings import ProviderConfig, Settings

__all__ = ["build_provider", "provider_names"]

ProviderFactory = Callable[[str, ProviderConfig, Settings], Provider]


def _build_local(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.local import LocalProvider

    provider: Provider = LocalProvider(name=name, config=config, settings=settings)
    return provider


def _build_openai(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.openai import OpenAIVideosProvider

    provider: Provider = OpenAIVideosProvider(name=name, config=config, settings=settings)
    return provider


def _build_runway(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.runway import RunwayProvider

    provider: Provider = RunwayProvider(name=name, config=config, settings=settings)
    return provider


def _build_luma(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.luma import LumaProvider

    provider: Provider = LumaProvider(name=name, config=config, settings=settings)
    return provider


def _build_veo(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.veo import VeoProvider

    provider: Provider = VeoProvider(name=name, config=config, settings=settings)
    return provider


def _build_diffusers(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.diffusers import DiffusersProvider

    provider: Provider = DiffusersProvider(name=name, config=config, settings=settings)
    return provider


def _build_comfyui(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.comfyui import ComfyUIProvider

    provider: Provider = ComfyUIProvider(name=name, config=config, settings=settings)
    return provider


def _build_fal(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.fal import FalProvider

    provider: Provider = FalProvider(name=name, config=config, settings=settings)
    return provider


def _build_replicate(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    from reelforge.providers.replicate import ReplicateProvider

    provider: Provider = ReplicateProvider(name=name, config=config, settings=settings)
    return provider


# Adapter kinds. Imports are deferred so building one adapter never imports the others.
_FACTORIES: dict[str, ProviderFactory] = {
    "local": _build_local,
    "openai": _build_openai,
    "runway": _build_runway,
    "luma": _build_luma,
    "veo": _build_veo,
    "diffusers": _build_diffusers,
    "comfyui": _build_comfyui,
    "fal": _build_fal,
    "replicate": _build_replicate,
}


def _plugin_factory(kind: str) -> ProviderFactory | None:
    """``kind = "package.module:ClassName"`` loads an adapter that is not built in.

    The class is called like the built-ins: ``cls(name=, config=, settings=)``.
    """
    module_name, sep, attr = kind.partition(":")
    if not sep:
        return None
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None

    def build(name: str, config: ProviderConfig, settings: Settings) -> Provider:
        provider: Provider = cls(name=name, config=config, settings=settings)
        return provider

    return build


def provider_names(settings: Settings) -> list[str]:
    return sorted(settings.providers)


def build_provider(name: str, settings: Settings) -> Provider:
    config = settings.providers.get(name)
    if config is None:
        known = ", ".join(provider_names(settings)) or "none"
        raise UnknownProviderError(
            f"unknown provider {name!r}; configured: {known}", param="provider"
        )
    factory = _FACTORIES.get(config.kind) or _plugin_factory(config.kind)
    if factory is None:
        raise UnknownProviderError(
            f"provider {name!r} has unknown kind {config.kind!r}", param="provider"
        )
    return factory(name, config, settings)
