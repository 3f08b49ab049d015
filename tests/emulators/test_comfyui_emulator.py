"""The ComfyUI emulator answers as the recorded real ComfyUI 0.3.64 did
(tests/reference/comfyui-0.3.64-transcript.json): message order and shapes,
validation errors, history and view, queue, targeted interrupt."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from reelforge.media.probe import probe
from tests.emulators.comfyui import (
    TRANSCRIPT,
    ComfyConfig,
    ComfyEmulator,
    running_comfy_emulator,
)

RECORDED: dict[str, Any] = json.loads(TRANSCRIPT.read_text())


@pytest.fixture
async def emulator() -> AsyncIterator[ComfyEmulator]:
    async with running_comfy_emulator(ComfyConfig(step_seconds=0.05)) as emu:
        yield emu


async def _messages_until_done(ws: ClientConnection, prompt_id: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        messages.append(message)
        data = message["data"]
        if message["type"] == "executing" and data["node"] is None:
            assert data["prompt_id"] == prompt_id
            return messages


def _shape(message: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    return message["type"], tuple(sorted(message["data"]))


async def _run_recorded_workflow(
    emu: ComfyEmulator, graph: dict[str, Any] | None = None
) -> tuple[str, list[dict[str, Any]], httpx.Response]:
    client_id = "research-client-1"
    prompt_id = str(uuid.uuid4())
    url = emu.base_url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with connect(url) as ws, httpx.AsyncClient(base_url=emu.base_url) as http:
        first = json.loads(await ws.recv())
        response = await http.post(
            "/prompt",
            json={
                "prompt": graph or RECORDED["workflow"],
                "client_id": client_id,
                "prompt_id": prompt_id,
            },
        )
        messages = [first, *await _messages_until_done(ws, prompt_id)]
    return prompt_id, messages, response


async def test_websocket_messages_come_in_the_recorded_order_and_shapes(
    emulator: ComfyEmulator,
) -> None:
    _, messages, _ = await _run_recorded_workflow(emulator)
    assert [_shape(m) for m in messages] == [_shape(m) for m in RECORDED["ws"]]


async def test_progress_state_nodes_have_the_recorded_fields(emulator: ComfyEmulator) -> None:
    _, messages, _ = await _run_recorded_workflow(emulator)
    ours = [m for m in messages if m["type"] == "progress_state"]
    recorded = [m for m in RECORDED["ws"] if m["type"] == "progress_state"]
    for mine, theirs in zip(ours, recorded, strict=True):
        assert mine["data"]["nodes"].keys() == theirs["data"]["nodes"].keys()
        for node_id, node in mine["data"]["nodes"].items():
            reference = theirs["data"]["nodes"][node_id]
            assert node.keys() == reference.keys()
            assert (node["state"], node["value"], node["max"]) == (
                reference["state"],
                reference["value"],
                reference["max"],
            )


async def test_a_queued_prompt_is_answered_with_the_recorded_body_shape(
    emulator: ComfyEmulator,
) -> None:
    prompt_id, _, response = await _run_recorded_workflow(emulator)
    assert response.status_code == RECORDED["post_prompt"]["status"]
    body = response.json()
    assert body.keys() == RECORDED["post_prompt"]["body"].keys()
    assert body["prompt_id"] == prompt_id
    assert body["node_errors"] == {}


async def test_missing_inputs_are_refused_with_the_recorded_400_body(
    emulator: ComfyEmulator,
) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64}},
        "2": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "rec",
                "fps": 8.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post("/prompt", json={"prompt": graph, "client_id": "c"})
    assert response.status_code == RECORDED["post_prompt_invalid"]["status"]
    assert response.json() == RECORDED["post_prompt_invalid"]["body"]


async def test_an_unknown_node_class_is_an_invalid_prompt(emulator: ComfyEmulator) -> None:
    graph = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        response = await http.post("/prompt", json={"prompt": graph})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "invalid_prompt"
    assert body["error"]["message"] == "Cannot execute because node NoSuchNode does not exist."
    assert body["node_errors"] == {}


async def test_history_lists_the_video_under_images_and_view_serves_it(
    emulator: ComfyEmulator, tmp_path: Any
) -> None:
    prompt_id, _, _ = await _run_recorded_workflow(emulator)
    async with httpx.AsyncClient(base_url=emulator.base_url) as http:
        history = (await http.get(f"/history/{prompt_id}")).json()
        (recorded,) = RECORDED["history"].values()
        entry = history[prompt_id]
        assert entry.keys() == recorded.keys()
        assert entry["outputs"].keys() == recorded["outputs"].keys()
        output = entry["outputs"]["6"]
        assert output["animated"] == [True]
        assert output["images"][0].keys() == recorded["outputs"]["6"]["images"][0].keys()
        assert [m[0] for m in entry["status"]["messages"]] == [
            m[0] for m in recorded["status"]["messages"]
        ]
        assert entry["status"]["status_str"] == "success"
        view = await http.get("/view", params=output["images"][0])
        assert view.status_code == 200
        assert view.headers["content-type"] == "video/mp4"
        assert (await http.get("/queue")).json() == RECORDED["queue_idle"]
    path = tmp_path / "out.mp4"
    path.write_bytes(view.content)
    info = await probe(path)
    assert info.video is not None
    assert (info.video.width, info.video.height, info.video.frames) == (64, 64, 16)


def _sampler_graph(steps: int) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(json.dumps(RECORDED["workflow"]))
    graph["3"] = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["1", 0],
            "seed": 1,
            "steps": steps,
            "cfg": 5.0,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": ["1", 0],
            "negative": ["1", 0],
            "latent_image": ["1", 0],
            "denoise": 1.0,
        },
    }
    graph["2"]["inputs"]["image"] = ["3", 0]
    return graph


async def test_a_sampler_reports_every_step_as_progress(emulator: ComfyEmulator) -> None:
    _, messages, _ = await _run_recorded_workflow(emulator, _sampler_graph(5))
    steps = [(m["data"]["value"], m["data"]["max"]) for m in messages if m["type"] == "progress"]
    assert steps == [(n, 5) for n in range(1, 6)]


async def test_a_targeted_interrupt_ends_the_prompt_as_interrupted(
    emulator: ComfyEmulator,
) -> None:
    client_id = "interrupter"
    prompt_id = str(uuid.uuid4())
    url = emulator.base_url.replace("http", "ws") + f"/ws?clientId={client_id}"
    async with connect(url) as ws, httpx.AsyncClient(base_url=emulator.base_url) as http:
        await ws.recv()
        body = {"prompt": _sampler_graph(500), "client_id": client_id, "prompt_id": prompt_id}
        assert (await http.post("/prompt", json=body)).status_code == 200
        while json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] != "progress":
            pass
        await http.post("/interrupt", json={"prompt_id": "someone-else"})
        await http.post("/interrupt", json={"prompt_id": prompt_id})
        messages = await _messages_until_done(ws, prompt_id)
        history = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]
    kinds = [m["type"] for m in messages]
    assert "execution_interrupted" in kinds
    assert "execution_success" not in kinds
    assert history["status"]["status_str"] == "error"


async def test_a_failing_node_sends_execution_error_then_the_sentinel() -> None:
    async with running_comfy_emulator(ComfyConfig(fail_class="CreateVideo")) as emu:
        prompt_id, messages, _ = await _run_recorded_workflow(emu)
        async with httpx.AsyncClient(base_url=emu.base_url) as http:
            history = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_type"] == "CreateVideo"
    assert {"exception_message", "exception_type", "traceback", "executed"} <= error.keys()
    assert messages[-1]["type"] == "executing"
    assert history["status"]["status_str"] == "error"
