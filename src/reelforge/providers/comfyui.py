"""The ``comfyui`` provider: a ComfyUI server running an API-format workflow.

Configuration: ``base_url`` (e.g. ``http://127.0.0.1:8188``), ``options.workflow``
(a workflow exported with "Save (API)") and ``options.binding``, a small JSON file
naming the node input each of our fields goes to (see
``reelforge/providers/comfyui_workflows/``)::

    {"inputs": {"prompt": ["6", "text"], "negative_prompt": ["7", "text"],
                "seed": ["3", "seed"], "width": ["55", "width"], ...},
     "frame_step": 4, "size_multiple": 32, "max_frames": 121, "output_node": "58"}

The protocol (ComfyUI 0.3.64; recorded in tests/reference):

* submit: ``POST /prompt {prompt, client_id, prompt_id}``, with a ``prompt_id``
  derived from the idempotency key, after checking ``/history`` and ``/queue`` for it
  (ComfyUI would run a resubmitted id twice); an input image goes up first through
  ``POST /upload/image``;
* progress: one WebSocket per provider (``/ws?clientId=``): ``progress`` (sampler
  steps) and ``progress_state`` (nodes finished), ``execution_error``,
  ``execution_interrupted``; completion is ``executing`` with ``node: null``;
* poll: the WebSocket's view while a prompt runs; ``/history/{id}`` (the truth once
  it ended) and ``/queue`` otherwise, so a restarted worker resumes without it;
* download: the output listed in the history entry (videos appear under ``images``
  with ``animated``; custom nodes use ``gifs`` or ``videos``), fetched with ``/view``;
* cancel: ``POST /queue {delete: [id]}`` and a targeted ``POST /interrupt``.

Errors, in one place (:func:`_raise_for`, :func:`_rejected`):

    400 prompt_outputs_failed_validation → ProviderRejectedError comfyui_validation_failed
        (every node error, with its node id, class and input, in the message)
    400 other (invalid_prompt, prompt_no_outputs) → ProviderRejectedError comfyui_invalid_prompt
    404 (/view)                          → RemoteJobLostError
    5xx, timeouts, connection errors     → ProviderUnavailableError (retried)
    execution_error                      → failed, comfyui_execution_error + the exception
    execution_interrupted                → cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

import httpx
import structlog

from reelforge.errors import (
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RemoteJobLostError,
    UnreadableMediaError,
)
from reelforge.loops import Loop, spawn_loop, stop_loop
from reelforge.media.ffmpeg import atomic_output
from reelforge.media.probe import probe
from reelforge.models import MAX_FPS, GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.settings import ProviderConfig, Settings
from reelforge.uploads import Uploads

__all__ = ["BINDABLE", "ComfyUIProvider", "comfy_prompt_id", "load_binding"]

BINDABLE: Final = (
    "prompt",
    "negative_prompt",
    "seed",
    "width",
    "height",
    "frames",
    "fps",
    "image",
)
_VIDEO_SUFFIXES: Final = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".webp")
_NAMESPACE: Final = uuid.UUID("6f1c2a4e-9b7d-4c1e-8a53-2d0f5e7b9c31")
# A running prompt the WebSocket said nothing about for this long is checked over
# HTTP (messages sent while we were reconnecting are lost).
_WS_TRUST_SECONDS: Final = 5.0
_log = structlog.get_logger(__name__)


def comfy_prompt_id(idempotency_key: str) -> str:
    """The prompt id a submit with ``idempotency_key`` uses, always the same one."""
    return str(uuid.uuid5(_NAMESPACE, idempotency_key))


@dataclass(frozen=True, slots=True)
class Binding:
    inputs: dict[str, tuple[str, str]]
    frame_step: int = 1
    size_multiple: int = 8
    max_frames: int = 241
    max_duration_seconds: float = 10.0
    output_node: str | None = None
    audio: bool = False


def load_binding(path: Path, workflow: dict[str, Any]) -> Binding:
    """Read a binding file and check every input it names exists in ``workflow``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProviderRejectedError(
            f"cannot read ComfyUI binding {path}: {exc}", code="provider_misconfigured"
        ) from None
    inputs: dict[str, tuple[str, str]] = {}
    for name, target in dict(raw.get("inputs", {})).items():
        if name not in BINDABLE:
            raise ProviderRejectedError(
                f"binding {path}: {name!r} is not one of {', '.join(BINDABLE)}",
                code="provider_misconfigured",
            )
        node, input_name = str(target[0]), str(target[1])
        if node not in workflow or "inputs" not in workflow[node]:
            raise ProviderRejectedError(
                f"binding {path}: {name} -> node {node!r}, which the workflow lacks",
                code="provider_misconfigured",
            )
        inputs[name] = (node, input_name)
    if "prompt" not in inputs:
        raise ProviderRejectedError(
            f"binding {path} must bind at least the prompt", code="provider_misconfigured"
        )
    return Binding(
        inputs=inputs,
        frame_step=int(raw.get("frame_step", 1)),
        size_multiple=int(raw.get("size_multiple", 8)),
        max_frames=int(raw.get("max_frames", 241)),
        max_duration_seconds=float(raw.get("max_duration_seconds", 10.0)),
        output_node=str(raw["output_node"]) if raw.get("output_node") else None,
        audio=bool(raw.get("audio", False)),
    )


def _load_workflow(path: Path) -> dict[str, Any]:
    try:
        workflow = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProviderRejectedError(
            f"cannot read ComfyUI workflow {path}: {exc}", code="provider_misconfigured"
        ) from None
    if not isinstance(workflow, dict) or not all(
        isinstance(node, dict) and "class_type" in node for node in workflow.values()
    ):
        raise ProviderRejectedError(
            f"{path} is not an API-format workflow (export it with 'Save (API)')",
            code="provider_misconfigured",
        )
    return workflow


def _node_errors_message(body: dict[str, Any]) -> str:
    parts = []
    node_errors = body.get("node_errors") or {}
    for node_id, entry in node_errors.items() if isinstance(node_errors, dict) else ():
        for error in entry.get("errors", []):
            parts.append(
                f"node {node_id} ({entry.get('class_type')}): {error.get('message')}"
                + (f" [{error.get('details')}]" if error.get("details") else "")
            )
    return "; ".join(parts)


def _rejected(response: httpx.Response) -> NoReturn:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "invalid_prompt")
    detail = _node_errors_message(body) if isinstance(body, dict) else ""
    message = f"ComfyUI refused the workflow: {error.get('message') or kind}"
    if error.get("details"):
        message += f" ({error['details']})"
    if detail:
        message += f": {detail}"
    code = (
        "comfyui_validation_failed"
        if kind == "prompt_outputs_failed_validation"
        else "comfyui_invalid_prompt"
    )
    raise ProviderRejectedError(message, code=code)


def _raise_for(response: httpx.Response, *, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status == 400 and what == "queue prompt":
        _rejected(response)
    if status == 404:
        raise RemoteJobLostError(f"{what}: not found on the ComfyUI server")
    if status >= 500:
        raise ProviderUnavailableError(f"{what}: HTTP {status}", code="provider_unavailable")
    raise ProviderRejectedError(f"{what}: HTTP {status}", code="provider_rejected_request")


@dataclass
class _Live:
    """What the WebSocket told us about one prompt."""

    state: RemoteState = RemoteState.QUEUED
    progress: int = 0
    error_message: str | None = None
    nodes_done: int = 0
    nodes_total: int = 0
    sampler: tuple[int, int] | None = None
    seen_at: float = field(default_factory=time.monotonic)


class ComfyUIProvider:
    """Drives one ComfyUI server with one workflow."""

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
                f"provider {name!r} needs base_url (the ComfyUI server)",
                code="provider_misconfigured",
            )
        workflow_path = config.options.get("workflow")
        binding_path = config.options.get("binding")
        if not workflow_path or not binding_path:
            raise ProviderRejectedError(
                f"provider {name!r} needs options.workflow and options.binding",
                code="provider_misconfigured",
            )
        self.name = name
        self._config = config
        self._uploads = Uploads(settings)
        self.workflow = _load_workflow(Path(str(workflow_path)))
        self.binding = load_binding(Path(str(binding_path)), self.workflow)
        self._base = config.base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self._base + "/",
            timeout=httpx.Timeout(
                config.timeout_seconds, connect=min(10.0, config.timeout_seconds)
            ),
            transport=transport,
            headers={"User-Agent": "reelforge"},
        )
        self.client_id = f"reelforge-{uuid.uuid4().hex[:12]}"
        self._live: dict[str, _Live] = {}
        self._listener: Loop | None = None
        self._connected = asyncio.Event()

    def capabilities(self) -> Capabilities:
        fps_bound = "fps" in self.binding.inputs
        return Capabilities(
            max_duration_seconds=self.binding.max_duration_seconds,
            max_fps=MAX_FPS,
            audio=self.binding.audio,
            image_input="image" in self.binding.inputs,
            cost_per_second=self._config.price_per_second,
            honours_fps=fps_bound,
            # The prompt id is derived from the key and checked before queueing, but two
            # runs checking at once could both queue it: let the worker's claim decide.
            idempotent_submit=False,
        )

    async def _request(self, method: str, url: str, *, what: str, **kw: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"{what}: timed out ({exc})", code="provider_timeout"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{what}: {exc}", code="provider_unreachable") from None
        _raise_for(response, what=what)
        return response

    # -- the WebSocket ------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.task.done():
            self._connected.clear()
            self._listener = spawn_loop(self._listen, name=f"comfyui-ws-{self.name}")

    async def _listen(self, stopping: asyncio.Event) -> None:
        """Read the WebSocket, reconnecting; ``stopping`` ends it even when a cancel
        is swallowed by the connect timeout (see :mod:`reelforge.loops`)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        url = self._base.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        delay = 0.2
        while not stopping.is_set():
            try:
                async with connect(url, open_timeout=10, max_size=None) as ws:
                    self._connected.set()
                    delay = 0.2
                    async for message in ws:
                        if isinstance(message, str):
                            self._on_message(message)
                        # binary frames are previews: not ours to keep
            except (OSError, TimeoutError, WebSocketException) as exc:
                _log.info("comfyui_ws_reconnecting", provider=self.name, error=str(exc))
            self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def _on_message(self, text: str) -> None:
        try:
            message = json.loads(text)
            kind, data = message["type"], message.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return
        live = self._live.get(str(data.get("prompt_id")))
        if live is None:
            return
        live.seen_at = time.monotonic()
        if kind == "execution_start":
            live.state = RemoteState.RUNNING
        elif kind == "progress":
            live.state = RemoteState.RUNNING
            live.sampler = (int(data.get("value", 0)), max(1, int(data.get("max", 1))))
        elif kind == "progress_state":
            nodes = data.get("nodes") or {}
            live.nodes_total = max(live.nodes_total, len(nodes))
            live.nodes_done = sum(1 for n in nodes.values() if n.get("state") == "finished")
        elif kind == "execution_error":
            live.state = RemoteState.FAILED
            live.error_message = (
                f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                f"{data.get('exception_type')}: {data.get('exception_message')}"
            )
        elif kind == "execution_interrupted":
            live.state = RemoteState.CANCELLED
        elif kind == "execution_success":
            live.state = RemoteState.SUCCEEDED
        elif kind == "executing" and data.get("node") is None and not live.state.is_terminal:
            # The sentinel without a verdict first: /history decides.
            live.state = RemoteState.SUCCEEDED
        live.progress = max(live.progress, self._percent(live))

    def _percent(self, live: _Live) -> int:
        total = max(live.nodes_total, len(self.workflow))
        share = live.nodes_done / total if total else 0.0
        if live.sampler is not None:
            # The sampler is the work: its steps span most of the range.
            step, steps = live.sampler
            share = max(share, 0.05 + 0.85 * step / steps)
        return min(99, int(share * 100))

    # -- the provider protocol ----------------------------------------------------

    def _graph_for(self, req: GenerationRequest, image_name: str | None) -> dict[str, Any]:
        b = self.binding
        width = max(b.size_multiple, req.width // b.size_multiple * b.size_multiple)
        height = max(b.size_multiple, req.height // b.size_multiple * b.size_multiple)
        wanted = max(1, round(req.duration_seconds * req.fps))
        frames = max(0, round((wanted - 1) / b.frame_step)) * b.frame_step + 1
        if frames > b.max_frames:
            raise ProviderRejectedError(
                f"{self.name} makes at most {b.max_frames} frames; asked for {frames}",
                code="invalid_duration",
            )
        seed = req.seed if req.seed is not None else uuid.uuid4().int % 2**32
        values: dict[str, Any] = {
            "prompt": req.prompt,
            "negative_prompt": req.negative_prompt or "",
            "seed": seed,
            "width": width,
            "height": height,
            "frames": frames,
            "fps": req.fps,
            "image": image_name,
        }
        graph = copy.deepcopy(self.workflow)
        for name, (node, input_name) in b.inputs.items():
            if values.get(name) is not None:
                graph[node]["inputs"][input_name] = values[name]
        return graph

    async def _known(self, prompt_id: str) -> bool:
        history = (await self._request("GET", f"history/{prompt_id}", what="read history")).json()
        if prompt_id in history:
            return True
        queue = (await self._request("GET", "queue", what="read queue")).json()
        rows = [*queue.get("queue_running", []), *queue.get("queue_pending", [])]
        return any(len(row) > 1 and row[1] == prompt_id for row in rows)

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        prompt_id = comfy_prompt_id(idempotency_key)
        self._ensure_listener()
        self._live.setdefault(prompt_id, _Live())
        with contextlib.suppress(TimeoutError):
            # Messages go only to the client that queued the prompt: be connected first.
            await asyncio.wait_for(self._connected.wait(), 5)
        if await self._known(prompt_id):
            return prompt_id
        image_name = None
        if req.image is not None and "image" in self.binding.inputs:
            image_name = await self._upload(req.image)
        body = {
            "prompt": self._graph_for(req, image_name),
            "client_id": self.client_id,
            "prompt_id": prompt_id,
        }
        await self._request("POST", "prompt", what="queue prompt", json=body)
        return prompt_id

    async def _upload(self, image: str) -> str:
        data = await self._uploads.read(image)
        name = f"reelforge-{image}"
        files = {"image": (name, data, "application/octet-stream")}
        response = await self._request(
            "POST", "upload/image", what="upload image", files=files, data={"overwrite": "true"}
        )
        return str(response.json().get("name") or name)

    async def _history(self, prompt_id: str) -> dict[str, Any] | None:
        history = (await self._request("GET", f"history/{prompt_id}", what="read history")).json()
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        return entry if isinstance(entry, dict) else None

    async def poll(self, remote_id: str) -> RemoteStatus:
        self._ensure_listener()
        live = self._live.setdefault(remote_id, _Live())
        fresh = time.monotonic() - live.seen_at < _WS_TRUST_SECONDS
        if self._connected.is_set() and live.state is RemoteState.RUNNING and fresh:
            return RemoteStatus(live.state, progress=live.progress)
        entry = await self._history(remote_id)
        if entry is not None:
            return self._from_history(entry, live)
        queue = (await self._request("GET", "queue", what="read queue")).json()
        if any(row[1] == remote_id for row in queue.get("queue_running", []) if len(row) > 1):
            live.state = RemoteState.RUNNING
            return RemoteStatus(RemoteState.RUNNING, progress=live.progress)
        if any(row[1] == remote_id for row in queue.get("queue_pending", []) if len(row) > 1):
            return RemoteStatus(RemoteState.QUEUED)
        raise RemoteJobLostError(f"ComfyUI knows no prompt {remote_id}")

    def _from_history(self, entry: dict[str, Any], live: _Live) -> RemoteStatus:
        status = entry.get("status") or {}
        if status.get("status_str") == "success":
            return RemoteStatus(RemoteState.SUCCEEDED, progress=100)
        messages = status.get("messages") or []
        for kind, data in messages:
            if kind == "execution_interrupted":
                return RemoteStatus(RemoteState.CANCELLED, progress=live.progress)
            if kind == "execution_error":
                message = (
                    f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {data.get('exception_message')}"
                )
                return RemoteStatus(
                    RemoteState.FAILED,
                    progress=live.progress,
                    error_code="comfyui_execution_error",
                    error_message=message,
                )
        if status.get("status_str") == "error":
            return RemoteStatus(
                RemoteState.FAILED,
                progress=live.progress,
                error_code="comfyui_execution_error",
                error_message=live.error_message or "ComfyUI reported an error",
            )
        return RemoteStatus(RemoteState.RUNNING, progress=live.progress)

    def _output_file(self, entry: dict[str, Any]) -> dict[str, str]:
        outputs = entry.get("outputs") or {}
        nodes = [self.binding.output_node] if self.binding.output_node in outputs else []
        nodes += [node for node in outputs if node not in nodes]
        for node in nodes:
            for value in (outputs[node] or {}).values():
                if not isinstance(value, list):
                    continue
                for item in value:
                    if isinstance(item, dict) and str(item.get("filename", "")).lower().endswith(
                        _VIDEO_SUFFIXES
                    ):
                        return {k: str(item.get(k, "")) for k in ("filename", "subfolder", "type")}
        raise ProviderError(
            "the ComfyUI workflow finished without a video output", code="no_output"
        )

    async def download(self, remote_id: str, dest: Path) -> Path:
        entry = await self._history(remote_id)
        if entry is None:
            raise RemoteJobLostError(f"ComfyUI has no history for {remote_id}")
        params = self._output_file(entry)
        async with atomic_output(dest) as partial:
            try:
                async with self._client.stream("GET", "view", params=params) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response, what="fetch output")
                    with partial.open("wb") as out:
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
            except httpx.TransportError as exc:
                raise ProviderError(
                    f"download of {remote_id} was cut off: {exc}", code="truncated_download"
                ) from None
            try:
                await probe(partial)
            except UnreadableMediaError as exc:
                raise ProviderError(
                    f"ComfyUI output of {remote_id} is not a readable video ({exc.message})",
                    code="corrupt_download",
                ) from None
        self._live.pop(remote_id, None)
        return dest

    async def cancel(self, remote_id: str) -> None:
        await self._request("POST", "queue", what="delete from queue", json={"delete": [remote_id]})
        await self._request("POST", "interrupt", what="interrupt", json={"prompt_id": remote_id})

    async def aclose(self) -> None:
        if self._listener is not None:
            await stop_loop(self._listener)
        await self._client.aclose()
        await self._uploads.aclose()
