"""The OpenAI-compatible video API: ``/v1/videos``.

The same jobs as the native ``/api/videos`` API, in the shapes of
``shared/reference/openai-videos-openapi.yaml``, so the official ``openai`` SDK and
tools built on it work unchanged. This module only translates: OpenAI's fields to a
:class:`~reelforge.models.GenerationRequest` and records to ``VideoResource``; the
work is done by :mod:`reelforge.videos`. Errors are raised as our own classes; the
app's handlers answer them (``{"error": {message, type, param, code}}``).

Where OpenAI and reelforge differ, OpenAI's behaviour wins on this path: creating
answers 200 (not 202), a cancelled video is ``failed`` with error code
``cancelled``, an unknown id of any shape is a 404, and a file asked for before the
video is completed is a 400 ``video_not_ready``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import json
import re
import secrets
from typing import Annotated, Any, Final, Literal, TypeVar

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge.api.deps import CreateRateLimit, CurrentOwner, IdempotencyKey, RuntimeDep
from reelforge.api.files import FILE_RESPONSES, serve_file
from reelforge.api.openai_schemas import (
    OPENAI_MODEL_METADATA_KEY,
    CreateVideoBody,
    ImageReference,
    OpenAIDeletedVideo,
    OpenAIError,
    OpenAIVideo,
    OpenAIVideoList,
    RemixVideoBody,
    present_openai_video,
)
from reelforge.api.openapi import (
    IMAGE_DATA_URL_FORMAT,
    IMAGE_MEDIA_TYPES,
    prompt_schema,
)
from reelforge.api.schemas import VIDEO_ID_PATTERN, error_responses
from reelforge.errors import InvalidRequestError, NotFoundError, UnreadableMediaError
from reelforge.media.image import decode_image, encode_png, fit_image
from reelforge.models import MAX_SIDE, VideoStatus, parse_generation_request
from reelforge.net.urlguard import FetchFailedError, guarded_request, policy_from_settings
from reelforge.retention import retention_of
from reelforge.runtime import Runtime
from reelforge.settings import Settings
from reelforge.store import VideoRecord, is_valid_video_id
from reelforge.uploads import Uploads
from reelforge.videos import create_video, delete_video, regenerate_video

__all__ = [
    "MAX_CREATE_BODY_BYTES",
    "MAX_INPUT_REFERENCE_BYTES",
    "POLL_AFTER_HEADER",
    "router",
]

router = APIRouter(prefix="/v1", tags=["openai"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(*statuses, model=OpenAIError)


_CREATE_REFUSALS = _errors(402, 429)

# The largest input reference image, as uploaded (the decoded bytes of a data URL).
MAX_INPUT_REFERENCE_BYTES: Final = 10 * 1024 * 1024
# A create body carries at most the image, base64 in a data URL (4/3 of its size),
# and a 32,000-character prompt (up to 4 bytes a character in UTF-8), plus framing.
MAX_CREATE_BODY_BYTES: Final = MAX_INPUT_REFERENCE_BYTES * 4 // 3 + 256 * 1024
# The SDK's poll helpers sleep this many milliseconds between retrieves.
POLL_AFTER_HEADER: Final = "openai-poll-after-ms"
# Bounds of that pause: quick enough that a short local render is seen at once,
# slow enough that a minutes-long remote job is not polled needlessly often.
_POLL_AFTER_MIN_MS: Final = 250
_POLL_AFTER_MAX_MS: Final = 5_000
_MULTIPART_MAX_FIELDS: Final = 32

_VARIANT_FORMATS: Final = {"video": "mp4", "thumbnail": "thumbnail", "spritesheet": "spritesheet"}
_FILE_TYPES: Final[dict[str, Any]] = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("video/mp4", "image/jpeg", "image/webp")
}
# A form field naming a member of an object: ``input_reference[image_url]``.
_NESTED_FIELD: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([A-Za-z_][A-Za-z0-9_]*)\]")

# pydantic's error types -> OpenAI's error codes for bad parameters.
_OPENAI_CODES: Final = {
    "extra_forbidden": "unknown_parameter",
    "missing": "missing_required_parameter",
    "literal_error": "invalid_value",
    "string_too_short": "string_below_min_length",
    "string_too_long": "string_above_max_length",
    "string_type": "invalid_type",
    "model_type": "invalid_type",
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
}

BodyT = TypeVar("BodyT", bound=BaseModel)


# -- dependencies and small HTTP helpers -------------------------------------------


async def _video_id(
    video_id: Annotated[str, Path(json_schema_extra={"pattern": VIDEO_ID_PATTERN})],
) -> str:
    # OpenAI answers any id it does not have with 404, whatever its shape; the
    # native API's 400 for a malformed id would surprise its clients.
    if not is_valid_video_id(video_id):
        raise NotFoundError(f"No video found with id '{video_id}'.", code="not_found")
    return video_id


OpenAIVideoId = Annotated[str, Depends(_video_id)]


def _parse_body(model: type[BodyT], fields: dict[str, Any]) -> BodyT:
    """Validate ``fields`` into ``model``; the first problem becomes an OpenAI-style 400."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        code = _OPENAI_CODES.get(first["type"], "invalid_value")
        if code == "unknown_parameter":
            message = f"Unknown parameter: '{param}'."
        elif code == "missing_required_parameter":
            message = f"Missing required parameter: '{param}'."
        else:
            message = f"Invalid '{param}': {first['msg']}."
        raise InvalidRequestError(message, code=code, param=param) from None


async def _json_fields(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequestError(
            "We could not parse the JSON body of your request: it is empty.", code="invalid_json"
        )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return data


async def _form_fields(
    request: Request, *, file_field: str | None
) -> tuple[dict[str, Any], bytes | None]:
    """A multipart (or urlencoded) form as fields, plus the bytes of its one file.

    ``name[member]`` fields are gathered into ``{"name": {"member": ...}}``, as the
    SDK encodes an object in a form. Only ``file_field`` may be a file.
    """
    try:
        form = await request.form(
            max_files=1 if file_field else 0,
            max_fields=_MULTIPART_MAX_FIELDS,
            max_part_size=MAX_CREATE_BODY_BYTES,
        )
    except StarletteHTTPException as exc:
        raise InvalidRequestError(
            f"Malformed form body: {exc.detail}", code="invalid_multipart"
        ) from None
    try:
        fields: dict[str, Any] = {}
        upload: bytes | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != file_field:
                    raise InvalidRequestError(
                        f"Unknown parameter: '{key}' (no file is expected there).",
                        code="unknown_parameter",
                        param=key,
                    )
                upload = await value.read(MAX_INPUT_REFERENCE_BYTES + 1)
                _check_image_size(len(upload))
                continue
            nested = _NESTED_FIELD.fullmatch(key)
            if nested is None:
                _put_field(fields, key, value, param=key)
                continue
            holder = fields.setdefault(nested.group(1), {})
            if not isinstance(holder, dict):
                raise _duplicate(nested.group(1))
            _put_field(holder, nested.group(2), value, param=key)
        if upload is not None and file_field in fields:
            raise _duplicate(file_field or "")
        return fields, upload
    finally:
        await form.close()


def _put_field(target: dict[str, Any], name: str, value: str, *, param: str) -> None:
    if name in target:
        raise _duplicate(param)
    target[name] = value


def _duplicate(param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Parameter '{param}' was given more than once.", code="invalid_value", param=param
    )


async def _request_fields(
    request: Request, *, file_field: str | None = None
) -> tuple[dict[str, Any], bytes | None]:
    """The body as fields, from JSON or a form, plus an uploaded file's bytes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _form_fields(request, file_field=file_field)
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        return await _json_fields(request), None
    raise InvalidRequestError(
        f"Unsupported Content-Type '{content_type}': send application/json or multipart/form-data.",
        code="unsupported_content_type",
    )


def _poll_after_ms(settings: Settings, rec: VideoRecord) -> int:
    """How long the SDK should wait before asking again: the provider's own pace."""
    config = settings.providers.get(rec.provider)
    interval_ms = round(config.poll_interval_seconds * 1000) if config else _POLL_AFTER_MAX_MS
    return min(max(interval_ms, _POLL_AFTER_MIN_MS), _POLL_AFTER_MAX_MS)


async def _present(rt: Runtime, rec: VideoRecord, response: Response) -> OpenAIVideo:
    response.headers[POLL_AFTER_HEADER] = str(_poll_after_ms(rt.settings, rec))
    return present_openai_video(rec, retention_seconds=await retention_of(rt, rec.owner))


def _not_ready(rec: VideoRecord) -> InvalidRequestError:
    shown = "failed" if rec.status is VideoStatus.CANCELLED else rec.status.value
    return InvalidRequestError(
        f"Video {rec.id} is not ready: its status is {shown}; "
        "only a completed video has content and can be remixed.",
        code="video_not_ready",
    )


# -- input reference images --------------------------------------------------------


def _check_image_size(size: int) -> None:
    if size > MAX_INPUT_REFERENCE_BYTES:
        raise InvalidRequestError(
            f"input_reference is larger than {MAX_INPUT_REFERENCE_BYTES // (1024 * 1024)} MiB.",
            code="input_reference_too_large",
            param="input_reference",
        )


async def _image_from_reference(settings: Settings, reference: ImageReference) -> bytes:
    """The bytes of a JSON ``input_reference``: a base64 data URL, or (with
    ``fetch_image_urls``) an http(s) URL fetched through the SSRF guard."""
    if reference.file_id is not None:
        raise InvalidRequestError(
            "input_reference.file_id is not supported: reelforge has no Files API. "
            "Upload the image as multipart input_reference or send a data: URL.",
            code="unsupported_input_reference",
            param="input_reference.file_id",
        )
    url = reference.image_url
    if url is None:
        raise InvalidRequestError(
            "input_reference needs image_url (a data: URL) or an uploaded file.",
            code="invalid_input_reference",
            param="input_reference",
        )
    scheme = url.split(":", 1)[0].strip().lower()
    if scheme in ("http", "https") and settings.fetch_image_urls:
        return await _fetch_image(settings, url)
    if scheme in ("http", "https"):
        raise InvalidRequestError(
            "input_reference.image_url must be a base64 data: URL; reelforge does not "
            "fetch images from http(s) URLs. Upload the file or inline it as data:.",
            code="unsupported_input_reference",
            param="input_reference.image_url",
        )
    header, comma, payload = url.partition(",")
    if scheme != "data" or not comma or not header.lower().endswith(";base64"):
        raise InvalidRequestError(
            "input_reference.image_url must look like data:image/png;base64,....",
            code="invalid_input_reference",
            param="input_reference.image_url",
        )
    mime = header[5:].split(";", 1)[0].strip().lower()
    if mime and not mime.startswith("image/"):
        raise InvalidRequestError(
            f"input_reference.image_url holds {mime}, not an image.",
            code="invalid_input_reference",
            param="input_reference.image_url",
        )
    _check_image_size(len(payload) * 3 // 4)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "input_reference.image_url is not valid base64.",
            code="invalid_input_reference",
            param="input_reference.image_url",
        ) from None


async def _fetch_image(settings: Settings, url: str) -> bytes:
    param = "input_reference.image_url"
    policy = policy_from_settings(settings)
    policy = dataclasses.replace(policy, max_bytes=min(policy.max_bytes, MAX_INPUT_REFERENCE_BYTES))
    async with httpx.AsyncClient(follow_redirects=False) as client:
        answer = await guarded_request(client, "GET", url, policy, param=param)
    if answer.status_code != 200:
        raise FetchFailedError(f"{param}: the server answered {answer.status_code}", param=param)
    # Whatever it says it is, it is decoded (and re-encoded) as an image before use.
    return answer.content


async def _store_reference_image(uploads: Uploads, data: bytes) -> str:
    """Decode, normalise to PNG and store an input image; returns its file name.

    Re-encoding means the renderer only ever reads a PNG we wrote: no upload's own
    metadata, no odd variants, never larger than the largest frame we render.
    """

    def normalise() -> bytes:
        try:
            image = decode_image(data)
        except UnreadableMediaError as exc:
            raise InvalidRequestError(
                f"input_reference is not a usable image ({exc.message}); "
                "send a PNG, JPEG or WebP image.",
                code="invalid_input_reference",
                param="input_reference",
            ) from None
        return encode_png(fit_image(image, MAX_SIDE))

    png = await asyncio.to_thread(normalise)
    name = f"ref_{secrets.token_hex(12)}.png"
    await uploads.put(name, png)
    return name


def _provider_for_model(settings: Settings, model: str) -> str | None:
    """The provider serving an OpenAI model name (None: the default provider)."""
    route = settings.model_routes.get(model)
    if route is None:
        served = ", ".join(sorted(settings.model_routes)) or "none"
        raise InvalidRequestError(
            f"The model '{model}' does not exist or you do not have access to it "
            f"(this server has: {served}).",
            code="model_not_found",
            param="model",
        )
    return route or None


# -- endpoints ---------------------------------------------------------------------
# Fixed paths come first: /videos/characters must not be taken for a video id.

_UNSUPPORTED: Final = (
    "reelforge does not support video {what}. It creates videos (POST /v1/videos) "
    "and remixes completed ones (POST /v1/videos/{{video_id}}/remix)."
)


# Left out of the OpenAPI document: it lists what the server does, and these only
# tell an SDK user, in OpenAI's error shape, that reelforge does not do this.
_UNSUPPORTED_ROUTE: Final[dict[str, Any]] = {
    "response_model": None,
    "status_code": 400,
    "include_in_schema": False,
}


def _unsupported(what: str) -> InvalidRequestError:
    return InvalidRequestError(_UNSUPPORTED.format(what=what), code="unsupported_endpoint")


@router.post("/videos/characters", **_UNSUPPORTED_ROUTE)
async def create_video_character() -> None:
    """Not supported: answers 400 ``unsupported_endpoint``."""
    raise _unsupported("characters")


@router.get("/videos/characters/{character_id}", **_UNSUPPORTED_ROUTE)
async def get_video_character(character_id: str) -> None:
    """Not supported: answers 400 ``unsupported_endpoint``."""
    raise _unsupported("characters")


@router.post("/videos/edits", **_UNSUPPORTED_ROUTE)
async def create_video_edit() -> None:
    """Not supported: answers 400 ``unsupported_endpoint``."""
    raise _unsupported("edits")


@router.post("/videos/extensions", **_UNSUPPORTED_ROUTE)
async def create_video_extension() -> None:
    """Not supported: answers 400 ``unsupported_endpoint``."""
    raise _unsupported("extensions")


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema with its ``$defs`` inlined.

    OpenAPI resolves ``#/...`` references against the whole document, where
    pydantic's ``#/$defs/...`` would point at nothing.
    """
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _create_body_doc() -> dict[str, Any]:
    """The create body for the docs: JSON (input_reference a data: URL) or a form
    (input_reference an uploaded image file). ``model`` gets its enum per app."""
    json_schema = _inline_defs(CreateVideoBody.model_json_schema())
    properties = json_schema["properties"]
    properties["prompt"] = prompt_schema()
    properties["input_reference"] = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "image_url": {
                        "type": "string",
                        "format": IMAGE_DATA_URL_FORMAT,
                        "pattern": "^data:image/[^;,]*;base64,",
                        "maxLength": properties["input_reference"]["anyOf"][0]["properties"][
                            "image_url"
                        ]["anyOf"][0]["maxLength"],
                        "description": "a base64 data: URL of a PNG, JPEG or WebP image "
                        f"of at most {MAX_INPUT_REFERENCE_BYTES // 2**20} MiB; "
                        "http(s) URLs and file_id are not taken",
                    }
                },
                "required": ["image_url"],
                "additionalProperties": False,
            },
            {"type": "null"},
        ]
    }
    form_schema = {
        **json_schema,
        "properties": {
            **properties,
            "input_reference": {
                "type": "string",
                "format": "binary",
                "description": "a PNG, JPEG or WebP image file, at most "
                f"{MAX_INPUT_REFERENCE_BYTES // 2**20} MiB",
            },
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {
                    "schema": form_schema,
                    "encoding": {"input_reference": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}},
                },
            },
        }
    }


def _remix_body_doc() -> dict[str, Any]:
    # The SDK sends JSON; a form with the same field is taken too, undocumented.
    schema = {
        "type": "object",
        "properties": {"prompt": prompt_schema()},
        "required": ["prompt"],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


@router.post(
    "/videos",
    response_model=OpenAIVideo,
    dependencies=[CreateRateLimit],
    responses={**_errors(400, 409, 413, 503), **_CREATE_REFUSALS},
    openapi_extra=_create_body_doc(),
)
async def create_openai_video(
    request: Request,
    response: Response,
    rt: RuntimeDep,
    owner: CurrentOwner,
    idempotency_key: IdempotencyKey = None,
) -> OpenAIVideo:
    """Queue a video; answers 200 with the ``VideoResource`` (OpenAI's code, not 202).

    JSON or multipart; ``input_reference`` is an uploaded image or a JSON
    ``{image_url: "data:image/...;base64,..."}``. With ``Idempotency-Key``, a retry
    with the same body returns the first video.
    """
    fields, upload = await _request_fields(request, file_field="input_reference")
    body = _parse_body(CreateVideoBody, fields)
    provider = _provider_for_model(rt.settings, body.model)
    image = upload
    if image is None and body.input_reference is not None:
        image = await _image_from_reference(rt.settings, body.input_reference)
    # Everything but the image is validated before the image is decoded and stored.
    req = parse_generation_request(
        {
            "prompt": body.prompt,
            "duration_seconds": int(body.seconds),
            "size": body.size,
            "formats": ["mp4"],
            "provider": provider,
            "metadata": {OPENAI_MODEL_METADATA_KEY: body.model},
        }
    )
    # The fingerprint sees the image's digest: multipart boundaries and base64
    # wrapping differ between retries of one request, the image does not.
    client_body = {k: v for k, v in fields.items() if k != "input_reference"}
    image_name = None
    if image is not None:
        client_body["input_reference_sha256"] = hashlib.sha256(image).hexdigest()
        image_name = await _store_reference_image(rt.uploads, image)
        req = req.model_copy(update={"image": image_name})
    try:
        record, created = await create_video(
            rt, req, owner=owner, idempotency_key=idempotency_key, client_body=client_body
        )
    except BaseException:
        if image_name is not None:
            await rt.uploads.delete(image_name)
        raise
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
        if image_name is not None:  # the first video keeps its own copy
            await rt.uploads.delete(image_name)
    return await _present(rt, record, response)


@router.get("/videos", response_model=OpenAIVideoList, responses=_errors(400, 404, 503))
async def list_openai_videos(
    rt: RuntimeDep,
    owner: CurrentOwner,
    limit: Annotated[int, Query(ge=0, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[
        str | None,
        Query(
            max_length=128,
            description="the `last_id` of the previous page; 404 once that video is gone",
        ),
    ] = None,
) -> OpenAIVideoList:
    """A page of videos, newest first unless ``order=asc``; ``after`` is the last id seen."""
    records, has_more = await rt.store.page(
        owner, limit=limit, after=after, newest_first=order == "desc"
    )
    retention = await retention_of(rt, owner)
    return OpenAIVideoList(
        data=[present_openai_video(r, retention_seconds=retention) for r in records],
        first_id=records[0].id if records else None,
        last_id=records[-1].id if records else None,
        has_more=has_more,
    )


@router.get("/videos/{video_id}", response_model=OpenAIVideo, responses=_errors(404, 503))
async def retrieve_openai_video(
    video_id: OpenAIVideoId, response: Response, rt: RuntimeDep, owner: CurrentOwner
) -> OpenAIVideo:
    """The video; ``openai-poll-after-ms`` tells the SDK's poller when to ask again."""
    return await _present(rt, await rt.store.get(video_id, owner=owner), response)


@router.delete("/videos/{video_id}", response_model=OpenAIDeletedVideo, responses=_errors(404, 503))
async def delete_openai_video(
    video_id: OpenAIVideoId, rt: RuntimeDep, owner: CurrentOwner
) -> OpenAIDeletedVideo:
    """Delete the video and its files (a running job is stopped first)."""
    await delete_video(rt, video_id, owner=owner)
    return OpenAIDeletedVideo(id=video_id)


@router.get(
    "/videos/{video_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": _FILE_TYPES, "description": "The file"},
        206: {"content": _FILE_TYPES, "description": "Partial content (Range)"},
        **FILE_RESPONSES,
        **_errors(400, 404, 416, 503),
    },
)
async def download_openai_video_content(
    request: Request,
    video_id: OpenAIVideoId,
    rt: RuntimeDep,
    owner: CurrentOwner,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> Response:
    """The MP4, thumbnail or spritesheet, with HTTP Range; 400 until the video is completed."""
    record = await rt.store.get(video_id, owner=owner)
    if record.status is not VideoStatus.COMPLETED:
        raise _not_ready(record)
    missing = NotFoundError(
        f"Video {video_id} has no {variant} (it was made without an MP4).",
        code="variant_not_available",
        param="variant",
    )
    return await serve_file(request, rt, record, _VARIANT_FORMATS[variant], not_available=missing)


@router.post(
    "/videos/{video_id}/remix",
    response_model=OpenAIVideo,
    dependencies=[CreateRateLimit],
    responses={**_errors(400, 404, 413, 503), **_CREATE_REFUSALS},
    openapi_extra=_remix_body_doc(),
)
async def remix_openai_video(
    video_id: OpenAIVideoId,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    owner: CurrentOwner,
) -> OpenAIVideo:
    """A new video from a completed one with a new prompt: same settings, same seed."""
    fields, _ = await _request_fields(request)
    body = _parse_body(RemixVideoBody, fields)
    source = await rt.store.get(video_id, owner=owner)
    if source.status is not VideoStatus.COMPLETED:
        raise _not_ready(source)
    record = await regenerate_video(
        rt, video_id, owner=owner, seed=source.request.seed, prompt=body.prompt
    )
    return await _present(rt, record, response)
