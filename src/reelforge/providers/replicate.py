"""The ``replicate`` provider: predictions on Replicate's HTTP API.

``POST /v1/models/{owner}/{name}/predictions`` (the catalogue entry's model, or its
``endpoint``), ``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``;
``Authorization: Bearer r8_…``. The output is a URL (``replicate.delivery``), fetched
without our credentials. Replicate's answers become our errors in one table
(:func:`_raise_for`):

    401/403         → ProviderAuthError (never retried on this provider)
    402             → ProviderAuthError provider_payment_required (out of credit)
    400/422         → ProviderRejectedError with Replicate's ``detail``
    404             → RemoteJobLostError (the prediction is gone)
    429             → RateLimitedError with Retry-After
    5xx, timeouts   → retryable provider errors

and a prediction's end state:

    succeeded → SUCCEEDED        canceled → CANCELLED
    failed    → FAILED, ``error`` flagged as sensitive (E005) → moderation_blocked,
                else generation_failed (retryable elsewhere)
    aborted   → FAILED prediction_aborted (its deadline passed before it started)

Progress comes from tqdm-style ``NN%|…|`` lines in ``logs``, as the SDK reads it.
With ``push`` (a ``public_url`` and a callback token) the prediction is created with
a ``webhook`` so Replicate calls reelforge back when it ends; polling stays on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from reelforge.errors import (
    CallbackRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
    ServiceUnavailableError,
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
from reelforge.uploads import Uploads

__all__ = ["DEFAULT_BASE_URL", "ReplicateProvider", "prediction_state"]

DEFAULT_BASE_URL = "https://api.replicate.com"
_STATES = {
    "starting": RemoteState.QUEUED,
    "processing": RemoteState.RUNNING,
    "succeeded": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
    "aborted": RemoteState.FAILED,
    "canceled": RemoteState.CANCELLED,
}
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|")
# Webhooks older (or newer) than this are refused: Standard Webhooks' replay window.
_WEBHOOK_TOLERANCE_SECONDS = 300
# Replicate's safety checker: "flagged as sensitive … (E005)".
_MODERATION = re.compile(r"\bE005\b|flagged as sensitive|\bnsfw\b", re.IGNORECASE)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
        if detail:
            return str(detail)
    return f"HTTP {response.status_code}"


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"{what}: {_detail(response)}"
    if status in (401, 403):
        raise ProviderAuthError(detail)
    if status == 402:
        raise ProviderAuthError(detail, code="provider_payment_required")
    if status in (400, 422):
        raise ProviderRejectedError(detail)
    if status == 404:
        raise RemoteJobLostError(detail)
    if status == 429:
        raise RateLimitedError(detail, retry_after=retry_after_seconds(response))
    raise ProviderUnavailableError(detail)


def _progress(logs: object) -> int:
    if not isinstance(logs, str):
        return 0
    for line in reversed(logs.splitlines()):
        match = _PROGRESS.match(line)
        if match:
            return max(0, min(100, int(match.group(1))))
    return 0


def prediction_state(prediction: dict[str, Any]) -> RemoteStatus:
    """Our view of a Prediction object (from a poll or a webhook)."""
    status = str(prediction.get("status"))
    state = _STATES.get(status)
    if state is None:
        raise ProviderUnavailableError(f"get prediction: unknown status {status!r}")
    if status == "aborted":
        return RemoteStatus(
            state=state,
            error_code="prediction_aborted",
            error_message="the prediction's deadline passed before it started",
        )
    if state is RemoteState.FAILED:
        error = str(prediction.get("error") or "the prediction failed")
        code = "moderation_blocked" if _MODERATION.search(error) else "generation_failed"
        return RemoteStatus(state=state, error_code=code, error_message=error)
    progress = 100 if state is RemoteState.SUCCEEDED else _progress(prediction.get("logs"))
    return RemoteStatus(state=state, progress=progress)


def _output_url(output: object) -> str | None:
    """A video model's output: a URL string, or a list whose first item is one."""
    if isinstance(output, list) and output:
        output = output[0]
    if isinstance(output, dict):
        output = output.get("url") or output.get("video")
    return output if isinstance(output, str) and output else None


class ReplicateProvider:
    """One Replicate model, picked by ``options.model`` from the catalogue."""

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        model = str(config.options.get("model", "google/veo-3.1-fast"))
        self.name = name
        self._spec = model_spec("replicate", model, settings.catalogue)
        self._config = config
        self._uploads = Uploads(settings)
        secret = config.options.get("webhook_secret")
        self._webhook_secret = str(secret) if secret else None
        headers: dict[str, str] = {}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._http = VendorHttp(
            config.model_copy(update={"base_url": config.base_url or DEFAULT_BASE_URL}),
            headers=headers,
            raise_for=_raise_for,
            transport=transport,
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
        # Replicate has no idempotency key: a resubmit after a crash is prevented by
        # the worker storing the prediction id the moment this returns.
        del idempotency_key
        image = await self._uploads.data_uri(req.image) if req.image is not None else None
        body: dict[str, Any] = {"input": self._spec.build_input(req, image=image)}
        if callback_url is not None:
            body["webhook"] = callback_url
            body["webhook_events_filter"] = ["completed"]
        model = self._spec.endpoint or self._spec.model
        response = await self._http.request(
            "POST", f"v1/models/{model}/predictions", what="create prediction", json=body
        )
        prediction_id = _json(response).get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ProviderUnavailableError("create prediction: the answer had no id")
        return prediction_id

    async def _get(self, remote_id: str) -> dict[str, Any]:
        response = await self._http.request(
            "GET", f"v1/predictions/{remote_id}", what="get prediction"
        )
        return _json(response)

    async def poll(self, remote_id: str) -> RemoteStatus:
        return prediction_state(await self._get(remote_id))

    async def download(self, remote_id: str, dest: Path) -> Path:
        prediction = await self._get(remote_id)
        url = _output_url(prediction.get("output"))
        if url is None:
            raise ProviderUnavailableError(f"prediction {remote_id} has no output URL")
        try:
            return await self._http.download_video(url, dest, what=f"output of {remote_id}")
        except (ProviderAuthError, RemoteJobLostError) as exc:
            # The delivery URL (a signed link, about an hour long) expired or is not
            # there yet: not the API key's fault, and worth another try.
            raise ProviderError(exc.message, code="download_expired") from None

    async def cancel(self, remote_id: str) -> None:
        try:
            await self._http.request(
                "POST", f"v1/predictions/{remote_id}/cancel", what="cancel prediction"
            )
        except RemoteJobLostError:
            return

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check a webhook's Standard Webhooks signature (``webhook-signature: v1,…``,
        HMAC-SHA256 of ``id.timestamp.body`` keyed by the ``whsec_`` signing secret)."""
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("webhook-id", "")
        timestamp = lower.get("webhook-timestamp", "")
        signatures = lower.get("webhook-signature", "")
        if not (webhook_id and timestamp.isdigit() and signatures):
            raise CallbackRejectedError("the webhook carries no Standard Webhooks signature")
        if abs(time.time() - int(timestamp)) > _WEBHOOK_TOLERANCE_SECONDS:
            raise CallbackRejectedError("the webhook timestamp is outside the allowed window")
        key = await self._signing_key()
        expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
        for entry in signatures.split():
            version, _, value = entry.partition(",")
            try:
                candidate = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if version == "v1" and hmac.compare_digest(candidate, expected.digest()):
                return
        raise CallbackRejectedError("the webhook signature does not verify")

    async def _signing_key(self) -> bytes:
        if self._webhook_secret is None:
            try:
                response = await self._http.request(
                    "GET", "v1/webhooks/default/secret", what="get webhook signing secret"
                )
            except ProviderError as exc:
                # Cannot check now: the vendor retries, and polling covers it anyway.
                raise ServiceUnavailableError(
                    f"cannot check the webhook signature now ({exc.code})"
                ) from None
            secret = _json(response).get("key")
            if not isinstance(secret, str) or not secret.startswith("whsec_"):
                raise CallbackRejectedError("Replicate gave no webhook signing secret")
            self._webhook_secret = secret
        try:
            return base64.b64decode(self._webhook_secret.partition("_")[2], validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejectedError("the webhook signing secret is malformed") from None

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderUnavailableError(
            f"Replicate answered {response.status_code} without a JSON object"
        )
    return body
