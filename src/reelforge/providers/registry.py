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


# Built-in adapter kinds, as the ``module:Class`` a plugin kind names (or a function
# called like a class, as ``veo``'s picks its surface's class): imports are
# deferred, so building one adapter never imports the others (nor torch).
_BUILT_IN: dict[str, str] = {
    "local": "reelforge.providers.local:LocalProvider",
    "openai": "reelforge.providers.openai:OpenAIVideosProvider",
    "runway": "reelforge.providers.runway:RunwayProvider",
    "luma": "reelforge.providers.luma:LumaProvider",
    "veo": "reelforge.providers.veo:veo_provider",
    "diffusers": "reelforge.providers.diffusers:DiffusersProvider",
    "comfyui": "reelforge.providers.comfyui:ComfyUIProvider",
    "fal": "reelforge.providers.fal:FalProvider",
    "replicate": "reelforge.providers.replicate:ReplicateProvider",
}


def _plugin_factory(kind: str, *, built_in: bool = False) -> ProviderFactory | None:
    """``kind = "package.module:ClassName"`` loads an adapter that is not built in.

    The class is called like the built-ins: ``cls(name=, config=, settings=)``. A
    built-in that fails to import is a bug to surface, not an unknown kind.
    """
    module_name, sep, attr = kind.partition(":")
    if not sep:
        return None
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        if built_in:
            raise
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
    built_in = _BUILT_IN.get(config.kind)
    factory = _plugin_factory(built_in or config.kind, built_in=built_in is not None)
    if factory is None:
        raise UnknownProviderError(
            f"provider {name!r} has unknown kind {config.kind!r}", param="provider"
        )
    return factory(name, config, settings)
