"""An OpenAI-compatible chat-completions and moderation emulator, for prompt tests.

``POST /v1/chat/completions`` answers with ``config.reply`` (or, when it is None, a
deterministic "shot description" built from the user message); ``POST
/v1/moderations`` flags an input containing any of ``config.flag_terms``. Fault
switches, changeable while it runs:

- ``hang``: requests wait until the emulator stops (a client's timeout fires first);
- ``status``: answer every request with this HTTP status and an OpenAI error body;
- ``malformed``: answer 200 with a body that is not a chat completion.

Every request is recorded (``state.chat_requests``, ``state.moderation_requests``).
Runnable on its own: ``python -m tests.emulators.chat_completions --port 8200``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.service import serve_app


@dataclass
class ChatEmulatorConfig:
    reply: str | None = None
    hang: bool = False
    status: int | None = None
    malformed: bool = False
    flag_terms: tuple[str, ...] = ()


@dataclass
class ChatEmulatorState:
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    moderation_requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChatEmulator:
    config: ChatEmulatorConfig
    state: ChatEmulatorState
    release: asyncio.Event
    base_url: str = ""


def _describe(text: str) -> str:
    return (
        f"{text}, walking slowly through a misty pine forest at dawn, "
        "tracked by a low steadicam shot, lit by soft golden backlight"
    )


def create_chat_emulator(emu: ChatEmulator) -> FastAPI:
    app = FastAPI()

    async def faults() -> JSONResponse | None:
        if emu.config.hang:
            await emu.release.wait()
        if emu.config.status is not None:
            body = {"error": {"message": "injected", "type": "server_error", "code": None}}
            return JSONResponse(body, status_code=emu.config.status)
        if emu.config.malformed:
            return JSONResponse({"unexpected": True})
        return None

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        emu.state.chat_requests.append(body)
        fault = await faults()
        if fault is not None:
            return fault
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        content = emu.config.reply if emu.config.reply is not None else _describe(user)
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(emu.state.chat_requests)}",
                "object": "chat.completion",
                "model": body.get("model", "emulated"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    @app.post("/v1/moderations")
    async def moderations(request: Request) -> JSONResponse:
        body = await request.json()
        emu.state.moderation_requests.append(body)
        fault = await faults()
        if fault is not None:
            return fault
        text = str(body.get("input", "")).lower()
        violence = any(term in text for term in emu.config.flag_terms)
        return JSONResponse(
            {
                "id": f"modr-{len(emu.state.moderation_requests)}",
                "model": body.get("model", "emulated"),
                "results": [
                    {
                        "flagged": violence,
                        "categories": {"violence": violence, "harassment": False},
                    }
                ],
            }
        )

    return app


@contextlib.asynccontextmanager
async def running_chat_emulator(
    config: ChatEmulatorConfig | None = None,
) -> AsyncIterator[ChatEmulator]:
    """The emulator on a free 127.0.0.1 port; ``base_url`` ends in ``/v1``."""
    emu = ChatEmulator(config or ChatEmulatorConfig(), ChatEmulatorState(), asyncio.Event())
    try:
        async with serve_app(create_chat_emulator(emu)) as url:
            emu.base_url = f"{url}/v1"
            try:
                yield emu
            finally:
                emu.release.set()  # hanging requests end, so the server can stop
    finally:
        emu.release.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--reply", default=None)
    args = parser.parse_args()
    emu = ChatEmulator(ChatEmulatorConfig(reply=args.reply), ChatEmulatorState(), asyncio.Event())
    uvicorn.run(create_chat_emulator(emu), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
