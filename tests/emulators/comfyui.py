"""An emulator of a ComfyUI 0.3.64 server, built from a recorded real exchange.

``tests/reference/comfyui-0.3.64-transcript.json`` (see the README there) holds what
a real ComfyUI said: the order and shape of every WebSocket message for one prompt,
the ``POST /prompt`` success body, the 400 body of a prompt with missing inputs,
the ``/history`` entry (videos listed under ``images`` with ``animated``) and an idle
``/queue``. This module answers the same way::

    python -m tests.emulators.comfyui --port 8188

What it owns:

* ``POST /prompt`` (client-chosen ``prompt_id`` accepted), validated against a small
  ``object_info`` of the core nodes the example workflows use (required inputs,
  links to existing nodes, uploaded images), with ComfyUI's error bodies;
* one prompt executing at a time, node by node in dependency order, with the WS
  sequence of the transcript (``execution_start``, ``execution_cached``, per node
  ``progress_state``/``executing``/``executed``, ``execution_success``, ``status``,
  then the ``executing {node: null}`` sentinel); samplers (``KSampler``) also send
  ``progress {value, max}`` per step;
* real media: ``SaveVideo`` writes an H.264 MP4 of the size, length and fps the
  graph describes (``libx264`` refuses odd sizes, as it did in the recording);
* ``/history``, ``/view``, ``/queue`` (list, delete), ``/interrupt`` (targeted by
  ``prompt_id``, checked before each node and at each sampler step, ending in
  ``execution_interrupted``), ``/upload/image``, ``/system_stats``; every route also
  under ``/api``;
* fault switches (:class:`ComfyConfig`): a node class that fails with
  ``execution_error``, seconds per sampler step, the next N ``/prompt`` calls
  answering 500 (an exception in the server, or the proxy in front of it), a
  restart that forgets every prompt (queue and history are in memory in ComfyUI),
  and the next N ``/view`` downloads dropped half way;
* counters (:class:`ComfyState`): submits per prompt id, interrupts, deletes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from reelforge.errors import FFmpegError
from reelforge.media.ffmpeg import run_ffmpeg
from tests.emulators.loopback import serve_on_loopback

__all__ = [
    "NODES",
    "TRANSCRIPT",
    "ComfyConfig",
    "ComfyEmulator",
    "ComfyState",
    "create_comfy_emulator",
    "running_comfy_emulator",
]

TRANSCRIPT = Path(__file__).resolve().parent.parent / "reference" / "comfyui-0.3.64-transcript.json"

# object_info, abridged: class -> (required inputs in declared order, output node?).
NODES: dict[str, tuple[tuple[str, ...], bool]] = {
    "EmptyImage": (("width", "height", "batch_size", "color"), False),
    "ImageAddNoise": (("image", "seed", "strength"), False),
    "CreateVideo": (("images", "fps"), False),
    "SaveVideo": (("video", "filename_prefix", "format", "codec"), True),
    "SaveAnimatedWEBP": (
        ("images", "filename_prefix", "fps", "lossless", "quality", "method"),
        True,
    ),
    "LoadImage": (("image",), False),
    "UNETLoader": (("unet_name", "weight_dtype"), False),
    "CLIPLoader": (("clip_name", "type"), False),
    "VAELoader": (("vae_name",), False),
    "ModelSamplingSD3": (("model", "shift"), False),
    "CLIPTextEncode": (("text", "clip"), False),
    "Wan22ImageToVideoLatent": (("vae", "width", "height", "length", "batch_size"), False),
    "KSampler": (
        (
            "model",
            "seed",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "positive",
            "negative",
            "latent_image",
            "denoise",
        ),
        False,
    ),
    "VAEDecode": (("samples", "vae"), False),
}


@dataclass
class ComfyConfig:
    step_seconds: float = 0.02  # per sampler step
    fail_class: str | None = None  # a node class that raises during execution
    fail_next: int = 0  # the next N POST /prompt answer 500
    forget_prompts: bool = False  # every prompt is forgotten (a server restart)
    cut_views_next: int = 0  # the next N /view downloads drop half way


@dataclass
class ComfyState:
    submits: Counter[str] = field(default_factory=Counter)
    prompt_requests: int = 0  # POST /prompt calls that reached the server
    interrupts: list[str | None] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)


@dataclass
class _Prompt:
    number: int
    prompt_id: str
    graph: dict[str, Any]
    client_id: str
    outputs: list[str]


class _Interrupted(Exception):
    pass


class _NodeFailed(Exception):
    def __init__(self, node_id: str, class_type: str, message: str, kind: str):
        super().__init__(message)
        self.node_id, self.class_type, self.message, self.kind = node_id, class_type, message, kind


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error_body(kind: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


class ComfyEmulator:
    """The server's state: queue, history, sockets, files."""

    def __init__(self, config: ComfyConfig, root: Path):
        self.config = config
        self.state = ComfyState()
        self.output_dir = root / "output"
        self.input_dir = root / "input"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.sockets: dict[str, list[WebSocket]] = {}
        self.pending: list[_Prompt] = []
        self.running: _Prompt | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.file_counter: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._interrupt: str | None = None  # prompt id, or "*" for any
        self.base_url = ""

    # -- messages ---------------------------------------------------------------

    async def send(self, kind: str, data: dict[str, Any], client_id: str | None) -> None:
        targets = (
            [ws for group in self.sockets.values() for ws in group]
            if client_id is None
            else list(self.sockets.get(client_id, []))
        )
        for ws in targets:
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps({"type": kind, "data": data}))

    def queue_remaining(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    async def send_status(self, client_id: str | None = None, sid: str | None = None) -> None:
        data: dict[str, Any] = {
            "status": {"exec_info": {"queue_remaining": self.queue_remaining()}}
        }
        if sid is not None:
            data["sid"] = sid
        await self.send("status", data, client_id)

    # -- validation -------------------------------------------------------------

    def validate(self, graph: Any) -> tuple[int, dict[str, Any]] | list[str]:
        """The output nodes to run, or ComfyUI's 400 body."""
        if not isinstance(graph, dict):
            return 400, {
                "error": _error_body("invalid_prompt", "Cannot validate prompt: not a dict"),
                "node_errors": {},
            }
        for node_id, node in graph.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type not in NODES:
                return 400, {
                    "error": _error_body(
                        "invalid_prompt",
                        f"Cannot execute because node {class_type} does not exist.",
                        f"Node ID '#{node_id}'",
                    ),
                    "node_errors": {},
                }
        outputs = [nid for nid, node in graph.items() if NODES[node["class_type"]][1]]
        if not outputs:
            return 400, {
                "error": _error_body("prompt_no_outputs", "Prompt has no outputs"),
                "node_errors": [],
            }
        node_errors: dict[str, Any] = {}
        for output in outputs:
            for node_id in self._dependencies(graph, output):
                errors = self._node_errors(graph, node_id)
                if errors:
                    entry = node_errors.setdefault(
                        node_id,
                        {
                            "errors": errors,
                            "dependent_outputs": [],
                            "class_type": graph[node_id]["class_type"],
                        },
                    )
                    entry["dependent_outputs"].append(output)
        if node_errors:
            return 400, {
                "error": _error_body(
                    "prompt_outputs_failed_validation", "Prompt outputs failed validation"
                ),
                "node_errors": node_errors,
            }
        return outputs

    def _dependencies(self, graph: dict[str, Any], node_id: str) -> list[str]:
        """``node_id`` and everything it links to, dependencies first."""
        order: list[str] = []

        def visit(nid: str) -> None:
            if nid in order or nid not in graph:
                return
            for value in graph[nid].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    visit(str(value[0]))
            order.append(nid)

        visit(node_id)
        return order

    def _node_errors(self, graph: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
        node = graph[node_id]
        inputs = node.get("inputs", {})
        required, _ = NODES[node["class_type"]]
        errors = [
            {
                "type": "required_input_missing",
                "message": "Required input is missing",
                "details": name,
                "extra_info": {"input_name": name},
            }
            for name in reversed(required)  # ComfyUI reports them last-declared first
            if name not in inputs
        ]
        for name, value in inputs.items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) not in graph:
                errors.append(
                    {
                        "type": "bad_linked_input",
                        "message": "Bad linked input, must be a length-2 list of [string, int]",
                        "details": f"{name}, {value}",
                        "extra_info": {"input_name": name, "linked_node": value},
                    }
                )
        if node["class_type"] == "LoadImage" and "image" in inputs:
            name = str(inputs["image"])
            if not (self.input_dir / name).is_file():
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"image - Invalid image file: {name}",
                        "extra_info": {"input_name": "image"},
                    }
                )
        return errors

    # -- execution --------------------------------------------------------------

    async def run_queue(self) -> None:
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            prompt = self.pending.pop(0)
            self.running = prompt
            try:
                await self.execute(prompt)
            finally:
                self.running = None
                await self.send_status()
                await self.send(
                    "executing", {"node": None, "prompt_id": prompt.prompt_id}, prompt.client_id
                )

    def enqueue(self, prompt: _Prompt) -> None:
        self.pending.append(prompt)
        self._wake.set()

    def forget(self) -> None:
        """What a restart does: the queue and the history live in ComfyUI's memory."""
        self.pending.clear()
        self.history.clear()

    def _check_interrupt(self, prompt_id: str) -> None:
        if self._interrupt in ("*", prompt_id):
            self._interrupt = None
            raise _Interrupted

    async def execute(self, prompt: _Prompt) -> None:
        pid, client = prompt.prompt_id, prompt.client_id
        messages: list[list[Any]] = []

        async def emit(kind: str, data: dict[str, Any], keep: bool = False) -> None:
            if keep:
                messages.append([kind, data])
            await self.send(kind, data, client)

        await self.send_status()
        await emit("execution_start", {"prompt_id": pid, "timestamp": _now_ms()}, keep=True)
        await emit(
            "execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": _now_ms()}, keep=True
        )
        order: list[str] = []
        for output in prompt.outputs:
            order += [n for n in self._dependencies(prompt.graph, output) if n not in order]
        progress: dict[str, dict[str, Any]] = {}
        values: dict[str, dict[str, Any]] = {}
        outputs: dict[str, Any] = {}
        executed: list[str] = []
        current = ""

        def node_state(nid: str, value: float, maximum: float, state: str) -> dict[str, Any]:
            return {
                "value": value, "max": maximum, "state": state, "node_id": nid,
                "prompt_id": pid, "display_node_id": nid, "parent_node_id": None,
                "real_node_id": nid,
            }  # fmt: skip

        try:
            for nid in order:
                current = nid
                self._check_interrupt(pid)
                progress[nid] = node_state(nid, 0.0, 1.0, "running")
                await emit("progress_state", {"prompt_id": pid, "nodes": dict(progress)})
                await emit("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
                node = prompt.graph[nid]
                values[nid], ui = await self._run_node(
                    nid, node, values, emit, progress, node_state, pid
                )
                executed.append(nid)
                if ui is not None:
                    outputs[nid] = ui
                    await emit(
                        "executed",
                        {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid},
                    )
                progress[nid] = node_state(nid, 1.0, 1.0, "finished")
                await emit("progress_state", {"prompt_id": pid, "nodes": dict(progress)})
        except _Interrupted:
            data = {
                "prompt_id": pid, "node_id": current,
                "node_type": prompt.graph[current]["class_type"] if current else "",
                "executed": executed, "timestamp": _now_ms(),
            }  # fmt: skip
            await emit("execution_interrupted", data, keep=True)
            self._record(prompt, outputs, messages, "error")
            return
        except _NodeFailed as exc:
            data = {
                "prompt_id": pid, "node_id": exc.node_id, "node_type": exc.class_type,
                "executed": executed, "exception_message": exc.message,
                "exception_type": exc.kind, "traceback": [f"{exc.kind}: {exc.message}\n"],
                "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms(),
            }  # fmt: skip
            await emit("execution_error", data, keep=True)
            self._record(prompt, outputs, messages, "error")
            return
        await emit("execution_success", {"prompt_id": pid, "timestamp": _now_ms()}, keep=True)
        self._record(prompt, outputs, messages, "success")

    def _record(
        self, prompt: _Prompt, outputs: dict[str, Any], messages: list[list[Any]], status: str
    ) -> None:
        self.history[prompt.prompt_id] = {
            "prompt": [
                prompt.number,
                prompt.prompt_id,
                prompt.graph,
                {"client_id": prompt.client_id},
                prompt.outputs,
            ],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {
                nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                for nid in outputs
            },
        }

    async def _run_node(
        self,
        nid: str,
        node: dict[str, Any],
        values: dict[str, dict[str, Any]],
        emit: Any,
        progress: dict[str, dict[str, Any]],
        node_state: Any,
        pid: str,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        class_type = node["class_type"]
        inputs = node.get("inputs", {})

        def linked(name: str) -> dict[str, Any]:
            value = inputs.get(name)
            if isinstance(value, list) and len(value) == 2:
                return values.get(str(value[0]), {})
            return {}

        if class_type == self.config.fail_class:
            raise _NodeFailed(nid, class_type, f"{class_type} failed (injected)", "RuntimeError")
        if class_type == "EmptyImage":
            return {
                "w": int(inputs["width"]),
                "h": int(inputs["height"]),
                "frames": int(inputs["batch_size"]),
            }, None
        if class_type == "Wan22ImageToVideoLatent":
            return {
                "w": int(inputs["width"]),
                "h": int(inputs["height"]),
                "frames": int(inputs["length"]),
            }, None
        if class_type in ("ImageAddNoise", "ModelSamplingSD3"):
            return linked("image") or linked("model"), None
        if class_type == "VAEDecode":
            return linked("samples"), None
        if class_type == "KSampler":
            steps = int(inputs["steps"])
            for step in range(1, steps + 1):
                self._check_interrupt(pid)
                await asyncio.sleep(self.config.step_seconds)
                await emit("progress", {"value": step, "max": steps, "prompt_id": pid, "node": nid})
                progress[nid] = node_state(nid, float(step), float(steps), "running")
                await emit("progress_state", {"prompt_id": pid, "nodes": dict(progress)})
            return linked("latent_image"), None
        if class_type == "CreateVideo":
            return {**linked("images"), "fps": float(inputs["fps"])}, None
        if class_type in ("SaveVideo", "SaveAnimatedWEBP"):
            source = (
                linked("video")
                if class_type == "SaveVideo"
                else {**linked("images"), "fps": float(inputs.get("fps", 6.0))}
            )
            ui = await self._save(nid, class_type, str(inputs["filename_prefix"]), source)
            return {}, ui
        return {}, None  # loaders, text encoders: nothing to compute here

    async def _save(
        self, nid: str, class_type: str, prefix: str, video: dict[str, Any]
    ) -> dict[str, Any]:
        subfolder, _, stem = prefix.rpartition("/")
        self.file_counter[prefix] += 1
        extension = "mp4" if class_type == "SaveVideo" else "webp"
        filename = f"{stem}_{self.file_counter[prefix]:05}_.{extension}"
        target = self.output_dir / subfolder / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        w, h, frames, fps = (
            video.get("w", 64),
            video.get("h", 64),
            video.get("frames", 1),
            video.get("fps", 8.0),
        )
        codec = (
            ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
            if extension == "mp4"
            else ["-c:v", "libwebp"]
        )
        try:
            await run_ffmpeg(
                [
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size={w}x{h}:rate={fps:g}",
                    "-frames:v",
                    str(frames),
                    *codec,
                    str(target),
                ],
                what="SaveVideo",
            )
        except FFmpegError as exc:
            raise _NodeFailed(nid, class_type, exc.message, "av.error.ExternalError") from None
        return {
            "images": [{"filename": filename, "subfolder": subfolder, "type": "output"}],
            "animated": [True],
        }

    def interrupt(self, prompt_id: str | None) -> None:
        self.state.interrupts.append(prompt_id)
        if self.running is None:
            return
        if prompt_id is None or prompt_id == self.running.prompt_id:
            self._interrupt = self.running.prompt_id


class _ConnectionCut(Exception):
    """Raised mid-body so that the server drops the connection."""


async def _half_then_drop(data: bytes) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    raise _ConnectionCut("emulated connection drop half way through the body")


def create_comfy_emulator(emulator: ComfyEmulator) -> FastAPI:
    app = FastAPI(title="ComfyUI emulator")
    router = APIRouter()

    @router.post("/prompt")
    async def post_prompt(request: Request) -> Response:
        emulator.state.prompt_requests += 1
        if emulator.config.fail_next > 0:
            emulator.config.fail_next -= 1
            # What aiohttp answers for an exception in a handler.
            return PlainTextResponse(
                "500 Internal Server Error\n\nServer got itself in trouble", 500
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"error": _error_body("invalid_prompt", "Invalid JSON"), "node_errors": {}}, 400
            )
        if not isinstance(body, dict) or "prompt" not in body:
            return JSONResponse(
                {"error": _error_body("no_prompt", "No prompt provided"), "node_errors": {}}, 400
            )
        checked = emulator.validate(body["prompt"])
        if isinstance(checked, tuple):
            return JSONResponse(checked[1], checked[0])
        prompt_id = str(body.get("prompt_id") or secrets.token_hex(16))
        emulator.state.submits[prompt_id] += 1
        number = emulator.counter
        emulator.counter += 1
        emulator.enqueue(
            _Prompt(number, prompt_id, body["prompt"], str(body.get("client_id", "")), checked)
        )
        if emulator.config.forget_prompts:  # the server restarted: nothing is kept
            emulator.forget()
        await emulator.send_status()
        return JSONResponse({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    @router.get("/history/{prompt_id}")
    async def history_one(prompt_id: str) -> JSONResponse:
        entry = emulator.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry else {})

    @router.get("/history")
    async def history_all(max_items: int | None = None) -> JSONResponse:
        items = list(emulator.history.items())
        if max_items is not None:
            items = items[-max_items:]
        return JSONResponse(dict(items))

    @router.get("/queue")
    async def get_queue() -> JSONResponse:
        def row(p: _Prompt) -> list[Any]:
            return [p.number, p.prompt_id, p.graph, {"client_id": p.client_id}, p.outputs]

        running = [row(emulator.running)] if emulator.running else []
        return JSONResponse(
            {"queue_running": running, "queue_pending": [row(p) for p in emulator.pending]}
        )

    @router.post("/queue")
    async def post_queue(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("clear"):
            emulator.pending.clear()
        for prompt_id in body.get("delete", []):
            emulator.state.deleted.append(prompt_id)
            emulator.pending = [p for p in emulator.pending if p.prompt_id != prompt_id]
        return JSONResponse({})

    @router.post("/interrupt")
    async def post_interrupt(request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        emulator.interrupt(body.get("prompt_id") if isinstance(body, dict) else None)
        return JSONResponse({})

    @router.get("/view")
    async def view(filename: str, subfolder: str = "", type: str = "output") -> Any:
        if (
            ".." in filename
            or filename.startswith("/")
            or ".." in subfolder
            or subfolder.startswith("/")
        ):
            return JSONResponse({}, 400)
        root = emulator.output_dir if type == "output" else emulator.input_dir
        path = root / subfolder / filename
        if not path.is_file():
            return JSONResponse({}, 404)
        media = {"mp4": "video/mp4", "webm": "video/webm", "webp": "image/webp", "png": "image/png"}
        media_type = media.get(path.suffix.lstrip("."), "application/octet-stream")
        if emulator.config.cut_views_next > 0:
            emulator.config.cut_views_next -= 1
            data = path.read_bytes()
            return StreamingResponse(
                _half_then_drop(data),
                media_type=media_type,
                headers={"content-length": str(len(data))},
            )
        return FileResponse(path, media_type=media_type)

    @router.post("/upload/image")
    async def upload_image(request: Request) -> JSONResponse:
        form = await request.form()
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            return JSONResponse({}, 400)
        name = Path(str(upload.filename)).name
        (emulator.input_dir / name).write_bytes(await upload.read())
        emulator.state.uploads.append(name)
        return JSONResponse({"name": name, "subfolder": "", "type": "input"})

    @router.get("/system_stats")
    async def system_stats() -> JSONResponse:
        return JSONResponse(
            {
                "system": {"comfyui_version": "0.3.64", "os": "posix"},
                "devices": [{"name": "cpu", "type": "cpu"}],
            }
        )

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId") or secrets.token_hex(16)
        await websocket.accept()
        emulator.sockets.setdefault(client_id, []).append(websocket)
        try:
            await websocket.send_text(
                json.dumps(
                    {
                        "type": "status",
                        "data": {
                            "status": {
                                "exec_info": {"queue_remaining": emulator.queue_remaining()}
                            },
                            "sid": client_id,
                        },
                    }
                )
            )
            while True:
                await websocket.receive_text()  # feature_flags and the like: ignored
        except WebSocketDisconnect:
            pass
        finally:
            emulator.sockets[client_id].remove(websocket)

    app.include_router(router)
    app.include_router(router, prefix="/api")
    return app


@contextlib.asynccontextmanager
async def running_comfy_emulator(config: ComfyConfig | None = None) -> AsyncIterator[ComfyEmulator]:
    """Serve the emulator under uvicorn on 127.0.0.1, in the current event loop."""
    with tempfile.TemporaryDirectory(prefix="comfy-emu-") as root:
        emulator = ComfyEmulator(config or ComfyConfig(), Path(root))
        app = create_comfy_emulator(emulator)
        runner = asyncio.create_task(emulator.run_queue())
        try:
            async with serve_on_loopback(app, ws="websockets-sansio") as port:
                emulator.base_url = f"http://127.0.0.1:{port}"
                yield emulator
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    args = parser.parse_args()

    async def serve() -> None:
        with tempfile.TemporaryDirectory(prefix="comfy-emu-") as root:
            emulator = ComfyEmulator(ComfyConfig(step_seconds=args.step_seconds), Path(root))
            runner = asyncio.create_task(emulator.run_queue())
            config = uvicorn.Config(
                create_comfy_emulator(emulator),
                host="127.0.0.1",
                port=args.port,
                ws="websockets-sansio",
            )
            await uvicorn.Server(config).serve()
            runner.cancel()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
