"""FastAPI dependencies, as ``Annotated`` aliases routers declare parameters with."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Header, Path, Request, Response
from starlette.requests import HTTPConnection

from reelforge.api.schemas import VIDEO_ID_PATTERN
from reelforge.errors import AuthenticationError, InvalidRequestError, QuotaExceededError
from reelforge.events import EventHub
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.store import VideoRecord, VideoStore, is_valid_video_id
from reelforge.tenants import Principal

__all__ = [
    "CreateRateLimit",
    "CurrentOwner",
    "CurrentPrincipal",
    "HubDep",
    "IdempotencyKey",
    "RuntimeDep",
    "SettingsDep",
    "StoreDep",
    "VideoId",
    "principal_of",
    "record_by_link_or_key",
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


async def principal_of(conn: HTTPConnection) -> Principal:
    """Who the request acts for, from ``Authorization: Bearer <key>``.

    Without any API keys the server is single-tenant: everything belongs to
    ``default`` and a presented key is ignored (the OpenAI SDK always sends one).
    Once keys exist, a request without a valid key is refused (401).
    """
    cached: Principal | None = getattr(conn.state, "principal", None)
    if cached is not None:
        return cached
    runtime: Runtime = conn.app.state.runtime
    if not await runtime.tenants.auth_enabled():
        principal = Principal(DEFAULT_OWNER)
    else:
        header = conn.headers.get("authorization")
        if header is None:
            raise AuthenticationError(
                "this server needs an API key: send Authorization: Bearer <key>",
                code="missing_api_key",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "send the API key as Authorization: Bearer <key>", code="invalid_authorization"
            )
        principal = await runtime.tenants.authenticate(token.strip())
    conn.state.principal = principal
    return principal


async def record_by_link_or_key(
    conn: HTTPConnection,
    rt: Runtime,
    video_id: str,
    target: str,
    expires: str | None,
    sig: str | None,
) -> VideoRecord:
    """The record, when the request carries a valid signed link to ``target`` (a file
    format, or ``events``) or the key of the video's tenant. A bad link is 403;
    another tenant's video is 404, as is an unknown one."""
    if sig is None:
        principal = await principal_of(conn)
        return await rt.store.get(video_id, owner=principal.tenant)
    record = await rt.store.get(video_id)
    rt.links.verify(video_id, target, record.owner, expires, sig)
    return record


async def get_principal(request: Request) -> Principal:
    # (Dependencies here are async: a sync one costs a thread hop per request.)
    # No OpenAPI security scheme on purpose: without keys the server takes requests
    # without one, which schemathesis' ignored_auth check would call a failure.
    return await principal_of(request)


async def get_owner(principal: Annotated[Principal, Depends(get_principal)]) -> str:
    return principal.tenant


async def limit_creates(
    principal: Annotated[Principal, Depends(get_principal)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    response: Response,
) -> None:
    """Count a create request against its API key's per-minute limit (429 when spent)."""
    per_minute = runtime.settings.api_creates_per_minute
    if principal.key_id is None or per_minute is None:
        return
    state = await runtime.quotas.hit_rate_limit(principal.key_id, per_minute)
    headers = state.headers()
    if not state.allowed:
        raise QuotaExceededError(
            f"this API key may create {per_minute} videos a minute; retry later",
            code="rate_limited",
            retry_after=state.reset_seconds,
            headers=headers,
        )
    response.headers.update(headers)


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
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CurrentOwner = Annotated[str, Depends(get_owner)]
CreateRateLimit = Depends(limit_creates)
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
