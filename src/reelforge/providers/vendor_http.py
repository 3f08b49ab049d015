"""The HTTP plumbing every vendor adapter shares: one client per adapter, transport
errors translated at one boundary, and verified, size-capped downloads.

What stays in each adapter is its own error table (a ``raise_for`` function that
turns a vendor answer into our errors) and its status strings. This module only
knows the translation that is the same for every vendor:

    httpx timeout            → ProviderUnavailableError  provider_timeout
    httpx transport error    → ProviderUnavailableError  provider_unreachable
    body cut / short         → ProviderError             truncated_download (retryable)
    body over the size cap   → ProviderError             download_too_large (not retried)
    not a readable video     → ProviderError             corrupt_download (retryable)

Vendor output URLs (signed CDN links) are fetched by a second client that carries
no credentials, so an API key is never sent to a host other than the vendor's API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import httpx

from reelforge.errors import (
    GenerationFailedError,
    ProviderError,
    ProviderUnavailableError,
    UnreadableMediaError,
)
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.probe import probe
from reelforge.providers.base import Capabilities
from reelforge.providers.catalogue import ModelSpec
from reelforge.settings import ProviderConfig

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "RaiseFor",
    "VendorHttp",
    "catalogue_capabilities",
    "retry_after_seconds",
]

RaiseFor = Callable[[httpx.Response, str], None]
DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024**3
_CONNECTIONS = 16


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds), as Stainless SDKs read them."""
    with contextlib.suppress(KeyError, ValueError):
        return float(response.headers["retry-after-ms"]) / 1000
    with contextlib.suppress(KeyError, ValueError):
        return float(response.headers["retry-after"])
    return None


def catalogue_capabilities(
    spec: ModelSpec, config: ProviderConfig, *, idempotent_submit: bool = False
) -> Capabilities:
    """The catalogue entry's capabilities; the config's ``price_per_second`` wins if set.

    ``idempotent_submit``: whether the vendor dedupes creates by an idempotency key
    (Runway, Luma and Veo take none).
    """
    caps = replace(spec.capabilities(), idempotent_submit=idempotent_submit)
    if config.price_per_second:
        caps = replace(caps, cost_per_second=config.price_per_second)
    return caps


class VendorHttp:
    """One vendor's HTTP clients: ``api`` (authenticated) and ``downloads`` (bare)."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        headers: Mapping[str, str],
        raise_for: RaiseFor,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not config.base_url:
            raise ValueError("VendorHttp needs a base_url")
        timeout = httpx.Timeout(config.timeout_seconds, connect=min(10.0, config.timeout_seconds))
        limits = httpx.Limits(max_connections=_CONNECTIONS, max_keepalive_connections=_CONNECTIONS)
        self._raise_for = raise_for
        self.api = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers={"User-Agent": "reelforge", **headers},
            timeout=timeout,
            transport=transport,
            limits=limits,
        )
        self.downloads = httpx.AsyncClient(
            headers={"User-Agent": "reelforge"},
            timeout=timeout,
            transport=transport,
            limits=limits,
            follow_redirects=True,
        )
        self.max_download_bytes = int(
            config.options.get("max_download_bytes", DEFAULT_MAX_DOWNLOAD_BYTES)
        )
        # Requests beyond the pool wait here rather than in httpcore's queue.
        self._slots = asyncio.Semaphore(_CONNECTIONS)

    async def request(self, method: str, url: str, *, what: str, **kw: Any) -> httpx.Response:
        """One API call; a vendor error answer is raised through the adapter's table."""
        try:
            async with self._slots:
                response = await self.api.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"{what}: timed out ({exc})", code="provider_timeout"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{what}: {exc}", code="provider_unreachable") from None
        self._raise_for(response, what)
        return response

    async def download_video(
        self, url: str, dest: Path, *, what: str, authenticated: bool = False
    ) -> Path:
        """Stream ``url`` to ``dest`` (atomically), capped in size, then probe it.

        ``authenticated`` sends the API credentials (for URLs on the vendor's own
        API, like Gemini's ``files/…:download``); vendor CDN links get none.
        """
        client = self.api if authenticated else self.downloads
        async with atomic_output(dest) as partial:
            await self._stream(client, url, partial, what=what)
            try:
                await probe(partial)
            except UnreadableMediaError as exc:
                # A garbled transfer: fetching again may well succeed.
                raise ProviderError(
                    f"{what} is not a readable video ({exc.message})", code="corrupt_download"
                ) from None
        return dest

    async def _stream(
        self, client: httpx.AsyncClient, url: str, target: Path, *, what: str
    ) -> None:
        expected: str | None = None
        received = 0
        try:
            async with self._slots, client.stream("GET", url) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response, what)
                expected = response.headers.get("content-length")
                if expected is not None and expected.isdigit():
                    self._check_size(int(expected), what)
                with target.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        self._check_size(received, what)
                        out.write(chunk)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"{what}: timed out ({exc})", code="provider_timeout"
            ) from None
        except httpx.TransportError as exc:
            _cut(f"{what} was cut off: {exc}")
        if expected is not None and expected.isdigit() and int(expected) != received:
            _cut(f"{what} got {received} of {expected} bytes")

    def _check_size(self, size: int, what: str) -> None:
        if size > self.max_download_bytes:
            # The same output would be as large again: not worth a retry here.
            raise GenerationFailedError(
                f"{what} is larger than the {self.max_download_bytes}-byte cap",
                remote_code="download_too_large",
            )

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.downloads.aclose()


def _cut(message: str) -> NoReturn:
    raise ProviderError(message, code="truncated_download")
