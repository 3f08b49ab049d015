"""The ``luma`` provider: Luma's Dream Machine API (``/dream-machine/v1``), the one the
``lumaai`` SDK (1.21) speaks.

``POST generations/video`` creates a generation (201), ``GET generations/{id}``
reads it, ``DELETE generations/{id}`` removes it (204; there is no separate cancel,
so deleting an unfinished generation is how it is stopped). The model's input
(``aspect_ratio``, ``resolution``, ``duration`` as ``"5s"``) comes from the catalogue
entry named by ``options.model`` (default ``ray-2``). Answers become our errors in one
table (:func:`_raise_for`); Luma's error body is ``{"detail": "…"}``:

    401/403 → ProviderAuthError (never retried)
    400/422 → ProviderRejectedError with Luma's ``detail``
    404     → RemoteJobLostError (the generation is gone)
    429     → RateLimitedError with Retry-After
    5xx, timeouts, connection errors → retryable provider errors

States: ``queued`` → queued, ``dreaming`` → running (Luma reports no numeric
progress), ``completed`` → succeeded (``assets.video`` is the file), ``failed`` →
failed. The legacy API has no failure code, only ``failure_reason``: a reason that
speaks of moderation or content policy becomes ``moderation_blocked`` (no fallback),
any other ``generation_failed``.

Luma takes input images only as URLs (``keyframes.frame0.url``): with ``s3``
storage the upload goes as a presigned URL (valid ``options.image_url_seconds``,
default one hour, enough for Luma's queue); otherwise ``options.image_base_url``
must name a public URL under which the uploads are served. Without either the
provider does not offer image input.

Push completion: with a callback URL the generation is created with
``callback_url``, which Luma POSTs the Generation object to when it starts dreaming,
completes or fails. Luma does not sign its callbacks, so any POST to the URL is
accepted (:meth:`LumaProvider.verify_callback`): what guards it is the URL itself, an
unguessable token issued for this one attempt, and that a callback only makes the
worker poll Luma now: the state is read back with our key, never taken from the body.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from reelforge.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
)
from reelforge.models import GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.providers.catalogue import model_spec
from reelforge.providers.vendor_http import (
    VendorHttp,
    catalogue_capabilities,
    retry_after_seconds,
)
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads, upload_key

__all__ = ["LUMA_BASE_URL", "LumaProvider", "failure_code"]

LUMA_BASE_URL = "https://api.lumalabs.ai/dream-machine/v1"
_STATES = {
    "queued": RemoteState.QUEUED,
    "dreaming": RemoteState.RUNNING,
    "completed": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
}
_MODERATION = re.compile(r"moderat|content polic|not allowed|unsafe|nsfw", re.IGNORECASE)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI-style validation errors
        detail = "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict))
    return str(detail or f"HTTP {response.status_code}")


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"{what}: {_detail(response)}"
    if status in (401, 403):
        raise ProviderAuthError(detail)
    if status in (400, 422):
        raise ProviderRejectedError(detail)
    if status == 404:
        raise RemoteJobLostError(detail)
    if status == 429:
        raise RateLimitedError(detail, retry_after=retry_after_seconds(response))
    raise ProviderUnavailableError(detail, code="provider_unavailable" if status >= 500 else None)


def failure_code(reason: str | None) -> str:
    """Luma's ``failure_reason`` (free text) as our error code."""
    return "moderation_blocked" if reason and _MODERATION.search(reason) else "generation_failed"


class LumaProvider:
    """Drives Luma's Dream Machine generations for one catalogue model."""

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.name = name
        self._config = config
        self._spec = model_spec(
            "luma", str(config.options.get("model", "ray-2")), settings.catalogue
        )
        base = config.options.get("image_base_url")
        self._image_base_url = str(base).rstrip("/") if base else None
        self._presigned_images = self._image_base_url is None and settings.storage.kind == "s3"
        self._image_url_seconds = int(config.options.get("image_url_seconds", 3600))
        self._uploads = Uploads(settings)
        headers = {}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._http = VendorHttp(
            config.model_copy(update={"base_url": config.base_url or LUMA_BASE_URL}),
            headers=headers,
            raise_for=_raise_for,
            transport=transport,
        )

    def capabilities(self) -> Capabilities:
        caps = catalogue_capabilities(self._spec, self._config)
        offers = self._image_base_url is not None or self._presigned_images
        return caps if offers else replace(caps, image_input=False)

    async def _keyframes(self, req: GenerationRequest) -> dict[str, Any] | None:
        if req.image is None:
            return None
        if self._image_base_url is not None:
            url = f"{self._image_base_url}/{req.image}"
        elif self._presigned_images:
            presigned = await self._uploads.storage.presigned_url(
                upload_key(req.image), expires_seconds=self._image_url_seconds
            )
            if presigned is None:  # pragma: no cover - s3 storage always signs
                raise ProviderUnavailableError("storage gave no URL for the input image")
            url = presigned
        else:
            raise ProviderRejectedError(
                f"provider {self.name!r} (Luma) takes input images only as URLs: use s3 "
                "storage, or set options.image_base_url to where the uploads are served",
                code="image_input_needs_url",
            )
        return {"frame0": {"type": "image", "url": url}}

    async def submit(
        self,
        req: GenerationRequest,
        *,
        idempotency_key: str,
        callback_url: str | None = None,
    ) -> str:
        del idempotency_key  # Luma takes none: the worker's submit claim stands in
        body: dict[str, Any] = {
            "model": self._spec.endpoint or self._spec.model,
            **self._spec.build_input(req, image=await self._keyframes(req)),
        }
        if callback_url is not None:
            body["callback_url"] = callback_url
        response = await self._http.request(
            "POST", "generations/video", what="create generation", json=body
        )
        generation_id = response.json().get("id")
        if not isinstance(generation_id, str) or not generation_id:
            raise ProviderUnavailableError("create generation: the answer had no id")
        return generation_id

    async def _generation(self, remote_id: str) -> dict[str, Any]:
        response = await self._http.request(
            "GET", f"generations/{remote_id}", what="get generation"
        )
        generation = response.json()
        if not isinstance(generation, dict) or str(generation.get("state")) not in _STATES:
            state = generation.get("state") if isinstance(generation, dict) else None
            raise ProviderUnavailableError(f"get generation: unknown state {state!r}")
        return generation

    async def poll(self, remote_id: str) -> RemoteStatus:
        generation = await self._generation(remote_id)
        state = _STATES[str(generation["state"])]
        extra = {"remote_status": str(generation["state"])}
        if state is RemoteState.FAILED:
            reason = generation.get("failure_reason")
            return RemoteStatus(
                state=state,
                error_code=failure_code(reason),
                error_message=str(reason or "Luma failed the generation"),
                extra=extra,
            )
        return RemoteStatus(
            state=state, progress=100 if state is RemoteState.SUCCEEDED else 0, extra=extra
        )

    async def download(self, remote_id: str, dest: Path) -> Path:
        # Read the generation again: asset URLs are signed and may have expired.
        generation = await self._generation(remote_id)
        url = (generation.get("assets") or {}).get("video")
        if generation["state"] != "completed" or not isinstance(url, str) or not url:
            raise ProviderError(f"generation {remote_id} has no video", code="output_missing")
        try:
            return await self._http.download_video(
                url, dest, what=f"download of generation {remote_id}"
            )
        except (ProviderAuthError, RemoteJobLostError):
            raise ProviderError(
                f"the video link of generation {remote_id} has expired", code="download_expired"
            ) from None

    async def cancel(self, remote_id: str) -> None:
        with contextlib.suppress(RemoteJobLostError):
            await self._http.request("DELETE", f"generations/{remote_id}", what="delete generation")

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None:
        """Accept: Luma signs nothing (no signature header is documented). The token
        in the URL is the check (issued for one attempt, 32 random characters, known
        only to Luma and us, kept six hours); the callback is only a wake-up, so a
        forged one costs a single status request."""
        del headers, body

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()
