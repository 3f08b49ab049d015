"""The ``runway`` provider: Runway's developer API (``X-Runway-Version: 2024-11-06``).

``POST /v1/text_to_video`` or ``/v1/image_to_video`` creates a task, ``GET
/v1/tasks/{id}`` reads it, ``DELETE /v1/tasks/{id}`` cancels it (204). The model's
input (``promptText``, ``ratio`` as ``"1280:720"``, ``duration``…) comes from the
catalogue entry named by ``options.model`` (default ``gen4.5``). Answers become our
errors in one table (:func:`_raise_for`):

    401/403 → ProviderAuthError (never retried)
    400/422 → ProviderRejectedError with Runway's ``error`` message
    404     → RemoteJobLostError (the task is gone)
    429     → RateLimitedError with Retry-After
    5xx, timeouts, connection errors → retryable provider errors

Task states:

    PENDING, THROTTLED → queued (THROTTLED adds ``waiting_for=vendor_concurrency``)
    RUNNING            → running, ``progress`` (0-1) times 100
    SUCCEEDED          → succeeded; ``output[0]`` is the video URL (expires in 24-48 h)
    FAILED             → failed; ``failureCode`` SAFETY.* → ``moderation_blocked`` (no
                         fallback), INTERNAL.* → ``provider_internal_error`` (retried),
                         anything else → ``generation_failed``
    CANCELLED          → cancelled

Runway has no idempotency key: a create that timed out may have made a task. Output
URLs are signed CDN links, fetched without our credentials; an expired one (403/404
on download) is fetched again through a fresh ``GET /v1/tasks/{id}``.
"""

from __future__ import annotations

import contextlib
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
from reelforge.uploads import Uploads

__all__ = ["RUNWAY_API_VERSION", "RUNWAY_BASE_URL", "RunwayProvider", "failure_code"]

RUNWAY_BASE_URL = "https://api.dev.runwayml.com"
RUNWAY_API_VERSION = "2024-11-06"
_MAX_DATA_URI = 5 * 1024 * 1024  # Runway's documented limit for data: URIs
_STATES = {
    "PENDING": RemoteState.QUEUED,
    "THROTTLED": RemoteState.QUEUED,
    "RUNNING": RemoteState.RUNNING,
    "SUCCEEDED": RemoteState.SUCCEEDED,
    "FAILED": RemoteState.FAILED,
    "CANCELLED": RemoteState.CANCELLED,
}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or f"HTTP {response.status_code}")


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = f"{what}: {_message(response)}"
    if status in (401, 403):
        raise ProviderAuthError(detail)
    if status in (400, 422):
        raise ProviderRejectedError(detail)
    if status == 404:
        raise RemoteJobLostError(detail)
    if status == 429:
        raise RateLimitedError(detail, retry_after=retry_after_seconds(response))
    raise ProviderUnavailableError(detail, code="provider_unavailable" if status >= 500 else None)


def failure_code(code: str | None) -> str:
    """Runway's ``failureCode`` as our error code (the worker's fallback reads it)."""
    code = code or ""
    if code.startswith("SAFETY.") or ".SAFETY." in code:
        return "moderation_blocked"
    if code.startswith("INTERNAL") or code.endswith(".INTERNAL"):
        return "provider_internal_error"
    return "generation_failed"


class RunwayProvider:
    """Drives Runway's task API for one catalogue model."""

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
        self._spec = model_spec(
            "runway", str(config.options.get("model", "gen4.5")), settings.catalogue
        )
        headers = {"X-Runway-Version": str(config.options.get("api_version", RUNWAY_API_VERSION))}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._http = VendorHttp(
            config.model_copy(update={"base_url": config.base_url or RUNWAY_BASE_URL}),
            headers=headers,
            raise_for=_raise_for,
            transport=transport,
        )

    def capabilities(self) -> Capabilities:
        return catalogue_capabilities(self._spec, self._config)

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        image = None
        if req.image is not None:
            image = await self._uploads.data_uri(req.image)
            if len(image) > _MAX_DATA_URI:
                raise ProviderRejectedError(
                    f"Runway takes inline images up to 5 MB as data URIs; {req.image} is larger",
                    code="image_too_large",
                    param="image",
                )
        body: dict[str, Any] = {
            "model": self._spec.endpoint or self._spec.model,
            **self._spec.build_input(req, image=image),
        }
        path = "v1/image_to_video" if image is not None else "v1/text_to_video"
        response = await self._http.request("POST", path, what="create task", json=body)
        task_id = response.json().get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailableError("create task: the answer had no task id")
        return task_id

    async def _task(self, remote_id: str) -> dict[str, Any]:
        response = await self._http.request("GET", f"v1/tasks/{remote_id}", what="get task")
        task = response.json()
        if not isinstance(task, dict) or str(task.get("status")) not in _STATES:
            status = task.get("status") if isinstance(task, dict) else None
            raise ProviderUnavailableError(f"get task: unknown status {status!r}")
        return task

    async def poll(self, remote_id: str) -> RemoteStatus:
        task = await self._task(remote_id)
        status = str(task["status"])
        state = _STATES[status]
        extra = {"remote_status": status}
        if status == "THROTTLED":
            extra["waiting_for"] = "vendor_concurrency"
        progress = 100 if state is RemoteState.SUCCEEDED else 0
        if state is RemoteState.RUNNING:
            with contextlib.suppress(TypeError, ValueError):
                progress = max(0, min(99, int(float(task.get("progress") or 0) * 100)))
        if state is RemoteState.FAILED:
            remote_code = task.get("failureCode")
            extra["failure_code"] = str(remote_code or "")
            return RemoteStatus(
                state=state,
                error_code=failure_code(remote_code),
                error_message=str(task.get("failure") or "Runway failed the task"),
                extra=extra,
            )
        return RemoteStatus(state=state, progress=progress, extra=extra)

    async def download(self, remote_id: str, dest: Path) -> Path:
        # Read the task again: its output URLs are signed and expire.
        task = await self._task(remote_id)
        output = task.get("output") or []
        if task["status"] != "SUCCEEDED" or not output or not isinstance(output[0], str):
            raise ProviderError(
                f"task {remote_id} has no output to download", code="output_missing"
            )
        try:
            return await self._http.download_video(
                output[0], dest, what=f"download of task {remote_id}"
            )
        except (ProviderAuthError, RemoteJobLostError):
            # A signed link that expired: the next attempt reads a fresh one.
            raise ProviderError(
                f"the output link of task {remote_id} has expired", code="download_expired"
            ) from None

    async def cancel(self, remote_id: str) -> None:
        with contextlib.suppress(RemoteJobLostError):
            await self._http.request("DELETE", f"v1/tasks/{remote_id}", what="cancel task")

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()
