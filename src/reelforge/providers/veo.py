"""The ``veo`` provider: Google Veo on the Gemini API or on Vertex AI.

``options.api`` picks the surface (default ``gemini``):

* **Gemini API** (``https://generativelanguage.googleapis.com``, ``v1beta``, header
  ``x-goog-api-key``): ``POST v1beta/models/{model}:predictLongRunning`` returns an
  operation ``models/{model}/operations/{id}``; ``GET v1beta/{name}`` polls it; the
  finished operation's ``response.generateVideoResponse.generatedSamples[0].video.uri``
  names a file, downloaded from ``v1beta/files/{id}:download?alt=media`` on the same
  API, with the key (as the google-genai SDK does: it parses the file id out of the
  URI and fetches it from its own base URL).
* **Vertex AI** (``https://aiplatform.googleapis.com``, ``v1beta1``; ``x-goog-api-key``
  in express mode, or ``options.auth = "bearer"`` to send the key as an OAuth access
  token): ``POST v1beta1/[projects/P/locations/L/]publishers/google/models/{model}
  :predictLongRunning``; the operation is polled with ``POST v1beta1/{model resource}
  :fetchPredictOperation`` and body ``{"operationName": name}``. With no
  ``storageUri`` (we never send one) the video comes inline, ``response.videos[0]
  .bytesBase64Encoded``.

The request body is ``{"instances": [{prompt, image}], "parameters": {…}}``, the
fields from the catalogue entry named by ``options.model``. Seed and
``generateAudio`` exist only on Vertex; the Gemini entries do not map them.

Google's error body is ``{"error": {"code", "message", "status", "details"}}``:

    401/403, or 400 with reason API_KEY_INVALID → ProviderAuthError (never retried)
    other 400                                   → ProviderRejectedError
    404                                         → RemoteJobLostError
    429 RESOURCE_EXHAUSTED → RateLimitedError (RetryInfo.retryDelay, else Retry-After)
    5xx, timeouts, connection errors            → retryable provider errors

A finished operation with ``raiMediaFilteredCount`` > 0 and no video was blocked by
Google's safety filters: ``moderation_blocked`` (no fallback). One that ends with an
``error`` maps its status: INVALID_ARGUMENT/FAILED_PRECONDITION → ``invalid_request``
(no fallback), anything else → ``provider_internal_error`` (retried). Veo reports no
numeric progress. Cancelling posts the standard long-running ``{name}:cancel``; the
SDK has no cancel, so whether Google honours it is unconfirmed (it is best effort).

Push completion exists on the Gemini API only (:class:`GeminiVeoProvider`, which
:func:`veo_provider` builds for ``options.api = "gemini"``): the create body carries
``webhookConfig: {"uris": [callback URL]}``, the request-level ("dynamic") webhook of
ai.google.dev/gemini-api/docs/webhooks, sent as google-genai 2.34 sends its
``webhook_config``. Google signs those with an RS256 JWT whose exact claims we could
not confirm, so the callback is not verified: the per-attempt token in the URL guards
it, and it only makes the worker poll now. Vertex takes no ``webhookConfig`` (the SDK
refuses it there): Vertex jobs are polled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from reelforge.errors import (
    GenerationFailedError,
    ProviderAuthError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
    UnreadableMediaError,
)
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.probe import probe
from reelforge.models import GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.providers.catalogue import model_spec
from reelforge.providers.vendor_http import (
    VendorHttp,
    catalogue_capabilities,
    retry_after_seconds,
)
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads

__all__ = [
    "GEMINI_BASE_URL",
    "VERTEX_BASE_URL",
    "GeminiVeoProvider",
    "VeoProvider",
    "file_id",
    "veo_provider",
]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
VERTEX_BASE_URL = "https://aiplatform.googleapis.com"
# Fields of ``instances[0]``; every other catalogue field goes to ``parameters``.
_INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "video", "referenceImages"})
_REJECTED_STATUSES = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"})
_FILE_ID = re.compile(r"[a-z0-9]+")


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _reasons(error: dict[str, Any]) -> set[str]:
    details = error.get("details")
    return {
        str(d.get("reason"))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("reason")
    }


def _retry_delay(error: dict[str, Any], response: httpx.Response) -> float | None:
    for detail in error.get("details") or []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                return float(delay[:-1])
    return retry_after_seconds(response)


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    error = _error(response)
    detail = f"{what}: {error.get('message') or f'HTTP {status}'}"
    if status in (401, 403) or "API_KEY_INVALID" in _reasons(error):
        raise ProviderAuthError(detail)
    if status in (400, 422):
        raise ProviderRejectedError(detail)
    if status == 404:
        raise RemoteJobLostError(detail)
    if status == 429:
        raise RateLimitedError(detail, retry_after=_retry_delay(error, response))
    raise ProviderUnavailableError(detail, code="provider_unavailable" if status >= 500 else None)


def file_id(uri: str) -> str | None:
    """The file id in a Gemini video URI, parsed as the google-genai SDK parses it."""
    if uri.startswith("https://") and "files/" in uri:
        match = _FILE_ID.match(uri.split("files/")[1])
        return match.group(0) if match else None
    if uri.startswith("files/"):
        return uri.removeprefix("files/").split(":")[0] or None
    return None


class VeoProvider:
    """Drives Veo's long-running ``predictLongRunning`` operations for one model."""

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
        self._uploads = Uploads(settings)
        model = str(config.options.get("model", "veo-3.1-generate-preview"))
        self._spec = model_spec("veo", model, settings.catalogue)
        self._vertex = str(config.options.get("api", "gemini")) == "vertex"
        default_version = "v1beta1" if self._vertex else "v1beta"
        self._version = str(config.options.get("api_version", default_version))
        project, location = config.options.get("project"), config.options.get("location")
        scope = f"projects/{project}/locations/{location}/" if project and location else ""
        self._model_path = (
            f"{scope}publishers/google/models/{self._spec.endpoint or model}"
            if self._vertex
            else f"models/{self._spec.endpoint or model}"
        )
        headers: dict[str, str] = {}
        if config.api_key is not None:
            secret = config.api_key.get_secret_value()
            if str(config.options.get("auth", "api_key")) == "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            else:
                headers["x-goog-api-key"] = secret
        base = config.base_url or (VERTEX_BASE_URL if self._vertex else GEMINI_BASE_URL)
        self._http = VendorHttp(
            config.model_copy(update={"base_url": base}),
            headers=headers,
            raise_for=_raise_for,
            transport=transport,
        )

    def capabilities(self) -> Capabilities:
        return catalogue_capabilities(self._spec, self._config)

    async def _image(self, req: GenerationRequest) -> dict[str, str] | None:
        if req.image is None:
            return None
        data = await self._uploads.read(req.image)
        mime = "image/jpeg" if req.image.lower().endswith((".jpg", ".jpeg")) else "image/png"
        return {
            "bytesBase64Encoded": base64.b64encode(data).decode(),
            "mimeType": mime,
        }

    async def request_body(self, req: GenerationRequest) -> dict[str, Any]:
        fields = self._spec.build_input(req, image=await self._image(req))
        instance = {k: v for k, v in fields.items() if k in _INSTANCE_FIELDS}
        parameters = {k: v for k, v in fields.items() if k not in _INSTANCE_FIELDS}
        return {"instances": [instance], "parameters": {"sampleCount": 1, **parameters}}

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        return await self._create(await self.request_body(req))

    async def _create(self, body: dict[str, Any]) -> str:
        response = await self._http.request(
            "POST",
            f"{self._version}/{self._model_path}:predictLongRunning",
            what="generate videos",
            json=body,
        )
        name = response.json().get("name")
        if not isinstance(name, str) or "/operations/" not in name:
            raise ProviderUnavailableError("generate videos: the answer named no operation")
        return name

    async def _operation(self, name: str) -> dict[str, Any]:
        if self._vertex:
            resource = name.rpartition("/operations/")[0]
            response = await self._http.request(
                "POST",
                f"{self._version}/{resource}:fetchPredictOperation",
                what="fetch operation",
                json={"operationName": name},
            )
        else:
            response = await self._http.request(
                "GET", f"{self._version}/{name}", what="get operation"
            )
        operation = response.json()
        if not isinstance(operation, dict):
            raise ProviderUnavailableError("get operation: the answer was not an object")
        return operation

    async def poll(self, remote_id: str) -> RemoteStatus:
        operation = await self._operation(remote_id)
        if not operation.get("done"):
            return RemoteStatus(state=RemoteState.RUNNING, extra={"remote_status": "running"})
        error = operation.get("error")
        if isinstance(error, dict):
            status = str(error.get("status") or "")
            if status == "CANCELLED":
                return RemoteStatus(state=RemoteState.CANCELLED, extra={"remote_status": status})
            code = "invalid_request" if status in _REJECTED_STATUSES else "provider_internal_error"
            return RemoteStatus(
                state=RemoteState.FAILED,
                error_code=code,
                error_message=str(error.get("message") or "Veo failed the generation"),
                extra={"remote_status": status},
            )
        result = self._result(operation)
        if not self._videos(result):
            reasons = result.get("raiMediaFilteredReasons") or []
            filtered = int(result.get("raiMediaFilteredCount") or 0)
            message = "; ".join(map(str, reasons)) or "the operation finished without a video"
            return RemoteStatus(
                state=RemoteState.FAILED,
                error_code="moderation_blocked" if filtered else "output_missing",
                error_message=message,
                extra={"remote_status": "filtered" if filtered else "empty"},
            )
        return RemoteStatus(state=RemoteState.SUCCEEDED, progress=100)

    def _result(self, operation: dict[str, Any]) -> dict[str, Any]:
        response = operation.get("response") or {}
        if not self._vertex:
            response = response.get("generateVideoResponse") or {}
        return response if isinstance(response, dict) else {}

    def _videos(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        if self._vertex:
            videos = result.get("videos") or []
        else:
            videos = [s.get("video") for s in result.get("generatedSamples") or [] if s]
        return [v for v in videos if isinstance(v, dict)]

    async def download(self, remote_id: str, dest: Path) -> Path:
        videos = self._videos(self._result(await self._operation(remote_id)))
        if not videos:
            raise ProviderError(f"operation {remote_id} has no video", code="output_missing")
        video = videos[0]
        inline = video.get("bytesBase64Encoded") or video.get("encodedVideo")
        if isinstance(inline, str):
            return await self._write_inline(inline, dest, remote_id)
        uri = video.get("uri") or video.get("gcsUri")
        fid = file_id(uri) if isinstance(uri, str) else None
        if fid is None:
            # A gs:// result needs Cloud Storage credentials we do not hold.
            raise ProviderError(
                f"operation {remote_id} returned {uri!r}, which reelforge cannot fetch",
                code="output_unreachable",
            )
        url = f"{self._version}/files/{fid}:download?alt=media"
        try:
            return await self._http.download_video(
                str(self._http.api.base_url.join(url)),
                dest,
                what=f"download of {remote_id}",
                authenticated=True,
            )
        except (ProviderAuthError, RemoteJobLostError):
            raise ProviderError(
                f"the file of {remote_id} could not be fetched (expired?)", code="download_expired"
            ) from None

    async def _write_inline(self, data: str, dest: Path, remote_id: str) -> Path:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(
                f"operation {remote_id} carried invalid base64", code="corrupt_download"
            ) from None
        if len(raw) > self._http.max_download_bytes:
            raise GenerationFailedError(
                f"operation {remote_id}: video over the size cap", remote_code="download_too_large"
            )
        async with atomic_output(dest) as partial:
            await asyncio.to_thread(partial.write_bytes, raw)
            try:
                await probe(partial)
            except UnreadableMediaError as exc:
                raise ProviderError(
                    f"the video of {remote_id} is not readable ({exc.message})",
                    code="corrupt_download",
                ) from None
        return dest

    async def cancel(self, remote_id: str) -> None:
        # Best effort (see the module docstring): a vendor without cancel answers 404/400.
        with contextlib.suppress(RemoteJobLostError, ProviderRejectedError):
            await self._http.request(
                "POST", f"{self._version}/{remote_id}:cancel", what="cancel operation", json={}
            )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()


class GeminiVeoProvider(VeoProvider):
    """Veo on the Gemini API, with push completion (``webhookConfig``)."""

    async def submit(
        self,
        req: GenerationRequest,
        *,
        idempotency_key: str,
        callback_url: str | None = None,
    ) -> str:
        body = await self.request_body(req)
        if callback_url is not None:
            body["webhookConfig"] = {"uris": [callback_url]}
        return await self._create(body)

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None:
        """Accept (see the module docstring): the JWT Google signs these with is not
        checked, so the URL's per-attempt token is what guards the callback, and a
        forged one costs a single poll."""
        del headers, body


def veo_provider(
    *,
    name: str,
    config: ProviderConfig,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> VeoProvider:
    """The adapter for ``kind = "veo"``: on the Gemini API, one that takes callbacks."""
    vertex = str(config.options.get("api", "gemini")) == "vertex"
    cls = VeoProvider if vertex else GeminiVeoProvider
    return cls(name=name, config=config, settings=settings, transport=transport)
