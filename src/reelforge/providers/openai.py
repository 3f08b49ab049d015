"""The ``openai`` provider: any OpenAI-compatible ``/v1/videos`` server.

LiteLLM's proxy, SGLang's diffusion server, Azure, another reelforge. Plain httpx
rather than the SDK, so that retries happen once, in our policy, and every HTTP
answer is translated to our errors in one table (:func:`_raise_for`):

    401/403 → ProviderAuthError (never retried)
    400/422 → ProviderRejectedError with the server's message and code;
              ProviderModerationError (prompt_rejected) for a moderation code
    404     → RemoteJobLostError (the remote job is gone)
    429     → RateLimitedError with Retry-After
    408/409/5xx, timeouts, connection errors → retryable provider errors

Open-model servers take more than OpenAI's fields: with ``options.server`` set to
``sglang`` (SGLang-Diffusion) or ``vllm-omni``, a submit also sends ``num_frames``,
``fps``, ``seed``, ``negative_prompt`` and, from ``options.steps`` /
``options.guidance_scale``, ``num_inference_steps`` / ``guidance_scale``; any size
and whole-second duration is allowed. vLLM-Omni takes multipart only, so its
submits are always form-encoded. (``server = "openai"``, the default, sends the
spec's fields only.)

OpenAI's own Sora API was shut down on 2026-09-24: pointing this provider at
api.openai.com fails at once with a clear error that names the alternatives.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import httpx

from reelforge.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderModerationError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
    UnreadableMediaError,
)
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.probe import probe
from reelforge.models import GenerationRequest
from reelforge.providers.base import (
    Capabilities,
    RemoteState,
    RemoteStatus,
    is_moderation_refusal,
)
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads

__all__ = ["SORA_SHUTDOWN_MESSAGE", "OpenAIVideosProvider"]

SPEC_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SPEC_SECONDS = (4.0, 8.0, 12.0)
SPEC_PROMPT_CHARS = 32_000
SORA_SHUTDOWN_MESSAGE = (
    "OpenAI shut its Sora video API down on 2026-09-24, so api.openai.com no longer "
    "generates videos. Point this provider's base_url at an OpenAI-compatible video "
    "server instead: a LiteLLM proxy (/v1/videos, routing to Veo, Runway and others), "
    "SGLang's diffusion server, Azure OpenAI, or another reelforge."
)
_CONNECTIONS = 16
# Servers whose /v1/videos takes the open-model generation fields.
OPEN_MODEL_SERVERS = ("sglang", "vllm-omni")
_STATES = {
    "queued": RemoteState.QUEUED,
    "in_progress": RemoteState.RUNNING,
    "completed": RemoteState.SUCCEEDED,
    "failed": RemoteState.FAILED,
}


def _error_fields(response: httpx.Response) -> tuple[str, str | None]:
    """The server's message and code from an OpenAI-shaped error body, if any."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = error.get("message") if isinstance(error, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(message or f"HTTP {response.status_code}"), (str(code) if code else None)


def _retry_after(response: httpx.Response) -> float | None:
    with contextlib.suppress(KeyError, ValueError):
        return float(response.headers["retry-after-ms"]) / 1000
    with contextlib.suppress(KeyError, ValueError):
        return float(response.headers["retry-after"])
    return None


def _raise_for(response: httpx.Response, *, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message, code = _error_fields(response)
    detail = f"{what}: {message}"
    if status in (401, 403):
        raise ProviderAuthError(detail)
    if status in (400, 422) and is_moderation_refusal(code):
        raise ProviderModerationError(f"{detail} (provider code {code})")
    if status in (400, 422):
        raise ProviderRejectedError(detail, code=code or "provider_rejected_request")
    if status == 404:
        raise RemoteJobLostError(detail)
    if status == 429:
        raise RateLimitedError(detail, retry_after=_retry_after(response))
    raise ProviderUnavailableError(detail, code="provider_unavailable" if status >= 500 else None)


class OpenAIVideosProvider:
    """Drives one OpenAI-compatible video server."""

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not config.base_url:
            raise ProviderRejectedError(
                f"provider {name!r} needs base_url (an OpenAI-compatible /v1 endpoint)",
                code="provider_misconfigured",
            )
        self.name = name
        self._config = config
        self._uploads = Uploads(settings)
        self._model = str(config.options.get("model", "sora-2"))
        self._server = str(config.options.get("server", "openai"))
        if self._server not in ("openai", *OPEN_MODEL_SERVERS):
            raise ProviderRejectedError(
                f"provider {name!r}: options.server must be openai, "
                f"{', '.join(OPEN_MODEL_SERVERS)}; got {self._server!r}",
                code="provider_misconfigured",
            )
        self._shut_down = (urlparse(config.base_url).hostname or "").endswith("api.openai.com")
        headers = {"User-Agent": "reelforge"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                config.timeout_seconds, connect=min(10.0, config.timeout_seconds)
            ),
            transport=transport,
            limits=httpx.Limits(
                max_connections=_CONNECTIONS, max_keepalive_connections=_CONNECTIONS
            ),
        )
        # Requests beyond the pool wait here, not in httpcore's queue, whose
        # bookkeeping grows with its length: with 1000 videos in flight that queue
        # cost ~40 ms of CPU per poll.
        self._slots = asyncio.Semaphore(_CONNECTIONS)

    def capabilities(self) -> Capabilities:
        if self._server in OPEN_MODEL_SERVERS:
            return Capabilities(
                max_duration_seconds=max(SPEC_SECONDS),
                audio=False,
                image_input=True,
                cost_per_second=self._config.price_per_second,
            )
        return Capabilities(
            max_duration_seconds=max(SPEC_SECONDS),
            durations=SPEC_SECONDS,
            sizes=SPEC_SIZES,
            audio=True,
            image_input=True,
            cost_per_second=self._config.price_per_second,
            honours_fps=False,
            # CreateVideoJsonBody.prompt: maxLength 32000; the spec has no negative prompt.
            max_prompt_length=SPEC_PROMPT_CHARS,
            negative_prompt=False,
        )

    async def _request(self, method: str, url: str, *, what: str, **kw: Any) -> httpx.Response:
        if self._shut_down:
            raise ProviderRejectedError(SORA_SHUTDOWN_MESSAGE, code="sora_api_shut_down")
        try:
            async with self._slots:
                response = await self._client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"{what}: timed out ({exc})", code="provider_timeout"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{what}: {exc}", code="provider_unreachable") from None
        _raise_for(response, what=what)
        return response

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        fields: dict[str, Any] = {
            "model": str(req.metadata.get("openai_model", self._model)),
            "prompt": req.prompt,
            "seconds": str(int(req.duration_seconds)),
            "size": req.size or "1280x720",
        }
        fields.update(self._open_model_fields(req))
        headers = {"Idempotency-Key": idempotency_key}
        if req.image is None and self._server != "vllm-omni":
            response = await self._request(
                "POST", "videos", what="create video", json=fields, headers=headers
            )
        else:
            files = {}
            if req.image is not None:
                image = await self._uploads.read(req.image)
                files = {"input_reference": (req.image, image, "application/octet-stream")}
            form = {key: str(value) for key, value in fields.items()}
            response = await self._request(
                "POST", "videos", what="create video", data=form, files=files, headers=headers
            )
        remote_id = response.json().get("id")
        if not isinstance(remote_id, str) or not remote_id:
            raise ProviderUnavailableError("create video: the answer had no video id")
        return remote_id

    def _open_model_fields(self, req: GenerationRequest) -> dict[str, Any]:
        if self._server not in OPEN_MODEL_SERVERS:
            return {}
        extra: dict[str, Any] = {
            "num_frames": max(1, round(req.duration_seconds * req.fps)),
            "fps": req.fps,
        }
        if req.seed is not None:
            extra["seed"] = req.seed
        if req.negative_prompt:
            extra["negative_prompt"] = req.negative_prompt
        options = self._config.options
        if "steps" in options:
            extra["num_inference_steps"] = int(options["steps"])
        if "guidance_scale" in options:
            extra["guidance_scale"] = float(options["guidance_scale"])
        return extra

    async def poll(self, remote_id: str) -> RemoteStatus:
        response = await self._request("GET", f"videos/{remote_id}", what="retrieve video")
        video = response.json()
        state = _STATES.get(str(video.get("status")))
        if state is None:
            raise ProviderUnavailableError(
                f"retrieve video: unknown status {video.get('status')!r}"
            )
        error = video.get("error") or {}
        return RemoteStatus(
            state=state,
            progress=max(0, min(100, int(video.get("progress") or 0))),
            error_code=error.get("code") if state is RemoteState.FAILED else None,
            error_message=error.get("message") if state is RemoteState.FAILED else None,
        )

    async def download(self, remote_id: str, dest: Path) -> Path:
        async with atomic_output(dest) as partial:
            await self._fetch(f"videos/{remote_id}/content", {"variant": "video"}, partial)
            try:
                await probe(partial)
            except UnreadableMediaError as exc:
                # A cut or garbled transfer: fetching again may well succeed.
                raise ProviderError(
                    f"download of {remote_id} is not a readable video ({exc.message})",
                    code="corrupt_download",
                ) from None
        return dest

    async def _fetch(self, url: str, params: dict[str, str], target: Path) -> None:
        if self._shut_down:
            raise ProviderRejectedError(SORA_SHUTDOWN_MESSAGE, code="sora_api_shut_down")
        try:
            async with self._slots, self._client.stream("GET", url, params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response, what="download video")
                expected = response.headers.get("content-length")
                received = 0
                with target.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        received += len(chunk)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"download: timed out ({exc})", code="provider_timeout"
            ) from None
        except httpx.TransportError as exc:
            _cut(f"download of {url} was cut off: {exc}")
        if expected is not None and expected.isdigit() and int(expected) != received:
            _cut(f"download of {url} got {received} of {expected} bytes")

    async def cancel(self, remote_id: str) -> None:
        with contextlib.suppress(RemoteJobLostError):
            await self._request("DELETE", f"videos/{remote_id}", what="delete video")

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._uploads.aclose()


def _cut(message: str) -> NoReturn:
    raise ProviderError(message, code="truncated_download")
