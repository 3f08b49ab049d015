"""The ``fal`` provider: fal's queue API (``https://queue.fal.run``).

``POST {model}`` (or the catalogue entry's ``image_endpoint`` for image-to-video)
with the model input as the body, then the URLs fal returns: ``status_url``
(``?logs=1``), ``response_url`` (the output), ``cancel_url`` (``PUT``). Those drop the
endpoint's sub-path (``fal-ai/veo3.1/image-to-video`` → ``fal-ai/veo3.1/requests/…``);
the remote id is ``response_url`` relative to the queue base, so a restarted worker
needs nothing else. ``Authorization: Key <FAL_KEY>``. Answers become our errors in
one table (:func:`_raise_for`):

    401/403         → ProviderAuthError (never retried on this provider)
    400/422         → ProviderRejectedError with fal's ``detail``;
                      a content-policy ``detail`` → moderation_blocked
    404             → RemoteJobLostError
    429             → RateLimitedError (Retry-After if sent)
    5xx, timeouts   → retryable provider errors

and the status: ``IN_QUEUE`` → QUEUED, ``IN_PROGRESS`` → RUNNING (a ``NN%`` in the
latest log line is the progress), ``COMPLETED`` → SUCCEEDED, or FAILED when it carries
``error``/``error_type`` (``content_policy_violation`` → moderation_blocked,
``request_cancelled`` → CANCELLED). fal has no idempotency key.

Push completion: the submit URL carries ``?fal_webhook=`` the callback URL, and a
callback is accepted only with fal's ED25519 signature (:mod:`.fal_webhooks`; the key
set from ``options.webhook_jwks_url``, cached ``options.webhook_jwks_ttl_seconds``,
timestamps within ``options.webhook_tolerance_seconds``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

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
from reelforge.providers.fal_webhooks import (
    DEFAULT_JWKS_TTL_SECONDS,
    DEFAULT_JWKS_URL,
    DEFAULT_TOLERANCE_SECONDS,
    FalWebhookVerifier,
)
from reelforge.providers.vendor_http import (
    VendorHttp,
    catalogue_capabilities,
    retry_after_seconds,
)
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads

__all__ = ["DEFAULT_BASE_URL", "FalProvider", "fal_state"]

DEFAULT_BASE_URL = "https://queue.fal.run"
_PERCENT = re.compile(r"(\d{1,3})\s*%")
_POLICY = re.compile(r"content[_ ]policy|flagged by a content checker|nsfw", re.IGNORECASE)


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """fal's ``detail`` (a string, or FastAPI's list of ``{loc, msg, type}``) and type."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error_type = response.headers.get("x-fal-error-type")
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}", error_type
    detail = body.get("detail")
    error_type = body.get("error_type") or error_type
    if isinstance(detail, list):
        items = [d for d in detail if isinstance(d, dict)]
        error_type = error_type or next((str(d["type"]) for d in items if "type" in d), None)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in items
        )
    return str(detail or f"HTTP {response.status_code}"), error_type


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail, error_type = _detail(response)
    message = f"{what}: {detail}"
    if status in (401, 403):
        raise ProviderAuthError(message)
    if status in (400, 422):
        flagged = _POLICY.search(f"{error_type} {detail}")
        raise ProviderRejectedError(message, code="moderation_blocked" if flagged else None)
    if status == 404:
        raise RemoteJobLostError(message)
    if status == 429:
        raise RateLimitedError(message, retry_after=retry_after_seconds(response))
    raise ProviderUnavailableError(message)


def fal_state(status: dict[str, Any]) -> RemoteStatus:
    """Our view of a queue status payload."""
    value = status.get("status")
    if value == "IN_QUEUE":
        return RemoteStatus(state=RemoteState.QUEUED)
    if value == "IN_PROGRESS":
        return RemoteStatus(state=RemoteState.RUNNING, progress=_progress(status.get("logs")))
    if value != "COMPLETED":
        raise ProviderUnavailableError(f"request status: unknown status {value!r}")
    error, error_type = status.get("error"), status.get("error_type")
    if not error and not error_type:
        return RemoteStatus(state=RemoteState.SUCCEEDED, progress=100)
    if error_type == "request_cancelled":
        return RemoteStatus(state=RemoteState.CANCELLED)
    text = f"{error_type or ''} {error or ''}"
    return RemoteStatus(
        state=RemoteState.FAILED,
        error_code="moderation_blocked" if _POLICY.search(text) else "generation_failed",
        error_message=str(error or error_type),
    )


def _progress(logs: object) -> int:
    if not isinstance(logs, list):
        return 0
    for entry in reversed(logs):
        message = entry.get("message") if isinstance(entry, dict) else None
        match = _PERCENT.search(message) if isinstance(message, str) else None
        if match:
            return max(0, min(100, int(match.group(1))))
    return 0


class FalProvider:
    """One fal model, picked by ``options.model`` from the catalogue."""

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        model = str(config.options.get("model", "fal-ai/veo3.1"))
        self.name = name
        self._spec = model_spec("fal", model, settings.catalogue)
        self._config = config
        self._uploads = Uploads(settings)
        self._base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        headers: dict[str, str] = {}
        if config.api_key is not None:
            headers["Authorization"] = f"Key {config.api_key.get_secret_value()}"
        self._http = VendorHttp(
            config.model_copy(update={"base_url": self._base}),
            headers=headers,
            raise_for=_raise_for,
            transport=transport,
        )
        options = config.options
        self.webhooks = FalWebhookVerifier(
            self._http.downloads,  # no credentials: the key set is public
            jwks_url=str(options.get("webhook_jwks_url", DEFAULT_JWKS_URL)),
            ttl_seconds=float(options.get("webhook_jwks_ttl_seconds", DEFAULT_JWKS_TTL_SECONDS)),
            tolerance_seconds=float(
                options.get("webhook_tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
            ),
        )

    def capabilities(self) -> Capabilities:
        return catalogue_capabilities(self._spec, self._config)

    @property
    def model(self) -> str:
        return self._spec.model

    async def submit(
        self,
        req: GenerationRequest,
        *,
        idempotency_key: str,
        callback_url: str | None = None,
    ) -> str:
        del idempotency_key  # fal takes none; the worker stores the request id at once
        image = await self._uploads.data_uri(req.image) if req.image is not None else None
        endpoint = (
            self._spec.image_endpoint if req.image is not None else self._spec.endpoint
        ) or self._spec.model
        url = endpoint
        if callback_url is not None:
            url += "?" + urlencode({"fal_webhook": callback_url})
        response = await self._http.request(
            "POST", url, what="submit request", json=self._spec.build_input(req, image=image)
        )
        return self._remote_id(_json(response))

    def _remote_id(self, body: dict[str, Any]) -> str:
        response_url = body.get("response_url")
        if not isinstance(response_url, str) or not isinstance(body.get("request_id"), str):
            raise ProviderUnavailableError("submit request: the answer had no request id")
        base, target = urlsplit(self._base + "/"), urlsplit(response_url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc) or not (
            target.path.startswith(base.path)
        ):
            # Our key goes only to the configured queue host.
            raise ProviderUnavailableError(
                f"submit request: fal gave a response_url on another host ({target.netloc})"
            )
        return target.path[len(base.path) :].strip("/")

    async def poll(self, remote_id: str) -> RemoteStatus:
        response = await self._http.request(
            "GET", f"{remote_id}/status", what="request status", params={"logs": "1"}
        )
        return fal_state(_json(response))

    async def download(self, remote_id: str, dest: Path) -> Path:
        result = _json(await self._http.request("GET", remote_id, what="request result"))
        video = result.get("video")
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url:
            raise ProviderUnavailableError(f"the result of {remote_id} has no video URL")
        try:
            return await self._http.download_video(url, dest, what=f"output of {remote_id}")
        except (ProviderAuthError, RemoteJobLostError) as exc:
            # fal's CDN links are signed and expire: not the key's fault, try again.
            raise ProviderError(exc.message, code="download_expired") from None

    async def cancel(self, remote_id: str) -> None:
        try:
            await self._http.request("PUT", f"{remote_id}/cancel", what="cancel request")
        except (RemoteJobLostError, ProviderRejectedError):
            return  # NOT_FOUND or ALREADY_COMPLETED: nothing left to stop

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None:
        """Refuse a webhook without fal's valid ED25519 signature (see the module)."""
        await self.webhooks.verify(headers, body)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderUnavailableError(f"fal answered {response.status_code} without a JSON object")
    return body
