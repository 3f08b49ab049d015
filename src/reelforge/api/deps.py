"""FastAPI dependencies, as ``Annotated`` aliases routers declare parameters with."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Header, Path, Request

from reelforge.api.schemas import VIDEO_ID_PATTERN
from reelforge.errors import InvalidRequestError
from reelforge.events import EventHub
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.store import VideoStore, is_valid_video_id

__all__ = [
    "CurrentOwner",
    "HubDep",
    "IdempotencyKey",
    "RuntimeDep",
    "SettingsDep",
    "StoreDep",
    "VideoId",
]

DEFAULT_OWNER = "default"


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


async def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> VideoStore:
    return runtime.store


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


async def get_owner() -> str:
    # Single tenant until API keys arrive; every record already carries its owner.
    # (Dependencies here are async: a sync one costs a thread hop per request.)
    return DEFAULT_OWNER


# The pattern is documented, not enforced by FastAPI: the check below answers with our
# own code (``invalid_id``) rather than a generic pattern mismatch.
_VIDEO_ID_DOC: Final = {"pattern": VIDEO_ID_PATTERN}


async def checked_video_id(
    video_id: Annotated[
        str,
        Path(
            alias="video_id", description="video_ + 24 hex digits", json_schema_extra=_VIDEO_ID_DOC
        ),
    ],
) -> str:
    if not is_valid_video_id(video_id):
        raise InvalidRequestError(
            f"{video_id!r} is not a video id (video_ + 24 hex digits)",
            code="invalid_id",
            param="id",
        )
    return video_id


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
HubDep = Annotated[EventHub, Depends(get_hub)]
StoreDep = Annotated[VideoStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentOwner = Annotated[str, Depends(get_owner)]
VideoId = Annotated[str, Depends(checked_video_id)]


# What create_video takes (1-255 printable characters), as HTTP carries it: Latin-1,
# with no space at either end (servers strip it before the app sees the value).
_KEY_CHAR = r"\x21-\x7e\xa1-\xac\xae-\xff"
IDEMPOTENCY_KEY_PATTERN: Final = f"^[{_KEY_CHAR}](?:[ {_KEY_CHAR}]{{0,253}}[{_KEY_CHAR}])?$"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="a retry with the same key and body returns the first video",
        json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
    ),
]
