"""Request and record models shared by the CLI, the API and the workers.

Input rules (DESIGN.md) live here, once: every entry point parses a request with
:func:`parse_generation_request`, which turns pydantic's complaints into an
:class:`~reelforge.errors.InvalidRequestError` with a stable code and the field.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reelforge.errors import InvalidRequestError
from reelforge.prompts.text import find_forbidden

__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_PROMPT_CHARS",
    "MAX_SIDE",
    "MIN_SIDE",
    "OUTPUT_FORMATS",
    "PROMPT_PATTERN",
    "SIZE_PATTERN",
    "TEXT_PATTERN",
    "GenerationRequest",
    "JsonInt",
    "Seed",
    "Stage",
    "VideoStatus",
    "invalid_request_from_errors",
    "parse_generation_request",
    "parse_size",
]

MAX_PROMPT_CHARS = 32_000
MIN_SIDE = 64
MAX_SIDE = 1920
MAX_DURATION_SECONDS = 60.0
MIN_FPS = 1
MAX_FPS = 60
OutputFormat = Literal["mp4", "webm"]
OUTPUT_FORMATS: tuple[str, ...] = ("mp4", "webm")

# An even number from MIN_SIDE (64) to MAX_SIDE (1920), written the one way: no sign,
# no leading zero. SIZE_PATTERN is exactly what a strict parse (the HTTP API) takes.
_EVEN_SIDE = r"(?:6[468]|[7-9][02468]|[1-9][0-9][02468]|1[0-8][0-9][02468]|19[01][02468]|1920)"
SIZE_PATTERN = rf"^{_EVEN_SIDE}x{_EVEN_SIDE}$"
# What the prompt validator takes: any whitespace around (it is trimmed off), then
# text that starts and ends with a visible character, with no character the prompt
# rules refuse (reelforge.prompts.text.find_forbidden): no control character but tab
# and line breaks, no format (Cf) character. The classes are spelt out: ``\s`` means
# other things in other regex dialects. The schema is the stricter side in one place:
# it refuses every Cf character, where the validator lets a zero-width joiner inside
# an emoji sequence and tag characters inside a flag through. (The length limit is
# the schema's maxLength.)
_CF = (
    r"\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    # Beyond the BMP, as the characters themselves: no escape is read alike everywhere.
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_SPACE = r"\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_TRIMMED = rf"\t\n\x0b\x0c\r\x20\x85\xa0{_SPACE}"
_EDGE = rf"[^\x00-\x20\x7f-\xa0{_SPACE}{_CF}]"
_INNER = rf"[^\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f{_CF}]"
PROMPT_PATTERN = rf"^[{_TRIMMED}]*{_EDGE}(?:{_INNER}*{_EDGE})?[{_TRIMMED}]*$"
# Text that may be empty or blank but holds no refused character (template_vars values,
# the negative prompt).
TEXT_PATTERN = rf"^{_INNER}*$"

# resolution + aspect_ratio, the other way to ask for a size.
_RESOLUTION_HEIGHTS = {"360p": 360, "480p": 480, "720p": 720, "1080p": 1080}
_ASPECT_RATIOS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4)}


class VideoStatus(StrEnum):
    """Coarse status clients rely on."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (VideoStatus.COMPLETED, VideoStatus.FAILED, VideoStatus.CANCELLED)


class Stage(StrEnum):
    """Fine-grained stage of the job state machine, in order."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    PROCESSING = "processing"
    VALIDATING = "validating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _integral_float_as_int(value: Any) -> Any:
    # JSON has one number type: 7.0 is the integer 7 (and JSON Schema's "integer"
    # says so), even where a strict parse takes no other stand-in for an int.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral_float_as_int)]
# Bounds inside the Annotated, so the JSON schema states them (minimum, maximum).
Seed = Annotated[int, Field(ge=0, le=2**32 - 1), BeforeValidator(_integral_float_as_int)]


def parse_size(value: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; raises ``PydanticCustomError('invalid_size')``."""
    parts = value.lower().strip().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PydanticCustomError("invalid_size", "size must look like WIDTHxHEIGHT, e.g. 1280x720")
    width, height = int(parts[0]), int(parts[1])
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise PydanticCustomError(
                "invalid_size", f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels"
            )
        if side % 2:
            raise PydanticCustomError(
                "invalid_size", "width and height must be even (H.264 with yuv420p needs it)"
            )
    return width, height


def _check_text(value: str, field: str, code: str) -> None:
    """Refuse control, bidi, zero-width and other invisible characters, by name and place."""
    bad = find_forbidden(value)
    if bad is not None:
        raise PydanticCustomError(code, bad.describe(field))


class GenerationRequest(BaseModel):
    """What a user asks for. Unknown fields are rejected; the prompt is stored trimmed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    duration_seconds: float = 4.0
    size: str | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    fps: JsonInt = 24
    seed: Seed | None = None
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    # Input reference image: the name of a file the API stored under
    # ``settings.uploads_dir`` (clients upload it; the API never trusts a path).
    image: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    formats: tuple[OutputFormat, ...] = ("mp4",)
    webhook_url: str | None = Field(default=None, max_length=2048)
    # Generate again (new seed) when the result fails validation.
    regenerate_on_failure: bool = True
    metadata: dict[str, str] = Field(default_factory=dict)
    # Prompt processing (reelforge.prompts): a style from GET /api/styles, a named
    # template filled from template_vars, and optional enhancement of short prompts.
    style: str | None = Field(default=None, min_length=1, max_length=64)
    template: str | None = Field(default=None, min_length=1, max_length=64)
    template_vars: dict[str, str] = Field(default_factory=dict)
    enhance: bool = False

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        # Position counts in the text as sent, so check before trimming.
        _check_text(value, "prompt", "invalid_prompt")
        text = value.strip()
        if not text:
            raise PydanticCustomError("invalid_prompt", "prompt must not be empty")
        # The limit counts what the client sent, so a schema's maxLength can state it.
        if len(value) > MAX_PROMPT_CHARS:
            raise PydanticCustomError(
                "invalid_prompt", f"prompt is longer than {MAX_PROMPT_CHARS} characters"
            )
        return text

    @field_validator("negative_prompt")
    @classmethod
    def _check_negative_prompt(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_text(value, "negative_prompt", "invalid_negative_prompt")
        return value.strip() or None

    @field_validator("template_vars")
    @classmethod
    def _check_template_vars(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 32:
            raise PydanticCustomError("invalid_template_vars", "at most 32 template_vars")
        for name, text in value.items():
            if not name.isidentifier() or len(name) > 64:
                raise PydanticCustomError(
                    "invalid_template_vars", f"{name!r} is not a placeholder name"
                )
            if len(text) > 2000:
                raise PydanticCustomError(
                    "invalid_template_vars", f"template_vars.{name} is longer than 2000"
                )
            _check_text(text, f"template_vars.{name}", "invalid_template_vars")
        return value

    @field_validator("duration_seconds")
    @classmethod
    def _check_duration(cls, value: float) -> float:
        if not 0 < value <= MAX_DURATION_SECONDS:
            raise PydanticCustomError(
                "invalid_duration",
                f"duration_seconds must be greater than 0 and at most {MAX_DURATION_SECONDS:g}",
            )
        return value

    @field_validator("fps")
    @classmethod
    def _check_fps(cls, value: int) -> int:
        if not MIN_FPS <= value <= MAX_FPS:
            raise PydanticCustomError("invalid_fps", f"fps must be between {MIN_FPS} and {MAX_FPS}")
        return value

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        width, height = parse_size(value)
        if _is_strict(info) and not re.fullmatch(SIZE_PATTERN, value):
            # Parsed, but written another way (``1280X720``, `` 0640x360``).
            raise PydanticCustomError(
                "invalid_size", "size must look like WIDTHxHEIGHT, e.g. 1280x720"
            )
        return f"{width}x{height}"

    @field_validator("formats", mode="before")
    @classmethod
    def _check_formats(cls, value: Any, info: ValidationInfo) -> Any:
        if _is_strict(info):
            if not isinstance(value, list):
                raise PydanticCustomError(
                    "invalid_format", "formats must be a list of formats (mp4, webm)"
                )
            if not value:
                raise PydanticCustomError("invalid_format", "formats must name at least one format")
            unknown = [str(item) for item in value if item not in OUTPUT_FORMATS]
            if unknown:
                raise PydanticCustomError(
                    "invalid_format",
                    "unknown format {unknown}; choose from mp4, webm",
                    {"unknown": ", ".join(unknown)},
                )
            return tuple(dict.fromkeys(value))  # keep order, drop repeats
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        cleaned = [str(item).strip().lower() for item in items]
        unknown = [item for item in cleaned if item not in OUTPUT_FORMATS]
        if unknown:
            raise PydanticCustomError(
                "invalid_format",
                "unknown format {unknown}; choose from mp4, webm",
                {"unknown": ", ".join(unknown)},
            )
        if not cleaned:
            raise PydanticCustomError("invalid_format", "formats must name at least one format")
        return tuple(dict.fromkeys(cleaned))  # keep order, drop repeats

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items()):
            raise PydanticCustomError(
                "invalid_metadata", "metadata holds at most 16 keys of 64 chars, values of 512"
            )
        return value

    @model_validator(mode="after")
    def _resolve_size(self) -> GenerationRequest:
        if self.size is not None:
            if self.resolution is not None or self.aspect_ratio is not None:
                raise PydanticCustomError(
                    "invalid_size", "give either size or resolution + aspect_ratio, not both"
                )
            return self
        if self.resolution is None and self.aspect_ratio is None:
            object.__setattr__(self, "size", "1280x720")
            return self
        height = _RESOLUTION_HEIGHTS.get(self.resolution or "720p")
        ratio = _ASPECT_RATIOS.get(self.aspect_ratio or "16:9")
        if height is None or ratio is None:
            raise PydanticCustomError(
                "invalid_size",
                "resolution must be one of 360p, 480p, 720p, 1080p and aspect_ratio one of "
                "16:9, 9:16, 1:1, 4:3, 3:4",
            )
        short = height
        long = round(short * max(ratio) / min(ratio) / 2) * 2
        width, tall = (long, short) if ratio[0] >= ratio[1] else (short, long)
        object.__setattr__(self, "size", f"{min(width, MAX_SIDE)}x{min(tall, MAX_SIDE)}")
        # Only ``size`` is kept: the stored request must validate again as it is
        # (records, regenerate), and size with resolution would not.
        object.__setattr__(self, "resolution", None)
        object.__setattr__(self, "aspect_ratio", None)
        return self

    @property
    def width(self) -> int:
        return parse_size(self.size or "1280x720")[0]

    @property
    def height(self) -> int:
        return parse_size(self.size or "1280x720")[1]


def _is_strict(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("strict"))


# pydantic's own error types -> our stable codes; field validators above raise ours.
_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "model_attributes_type": "invalid_json",
    "model_type": "invalid_json",
    "dict_type": "invalid_json",
}


def invalid_request_from_errors(errors: list[Any]) -> InvalidRequestError:
    """The first of pydantic's (or FastAPI's) validation errors, as our error.

    FastAPI prefixes locations with where the value came from (``body``, ``query``);
    that prefix is dropped so ``param`` names the field the client sent.
    """
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    param = ".".join(loc) or None
    code = _PYDANTIC_CODES.get(first["type"], first["type"])
    if code == "missing_field" and param is None:
        code = "invalid_json"  # no body at all
    if not code.startswith("invalid_") and code not in _PYDANTIC_CODES.values():
        code = f"invalid_{(param or 'request').split('.')[0]}"
    message = str(first["msg"])
    if code == "invalid_json" and param is None:
        message = "request body must be a JSON object"
    elif param is not None and not message.startswith(param.split(".")[0]):
        message = f"{param}: {message}"
    return InvalidRequestError(message, code=code, param=param)


def parse_generation_request(data: Any, *, strict: bool = False) -> GenerationRequest:
    """Validate raw input into a request, or raise :class:`InvalidRequestError`.

    ``strict`` (the HTTP API) takes each field only in its one documented JSON form,
    so the published schema says exactly what is accepted: no ``"24"`` for 24, no
    ``"mp4,webm"`` for a list, no ``1280X720``. The CLI keeps the friendly forms.
    """
    if not isinstance(data, dict):
        raise InvalidRequestError("request body must be a JSON object", code="invalid_json")
    try:
        if strict:
            return GenerationRequest.model_validate(data, strict=True, context={"strict": True})
        return GenerationRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_request_from_errors(exc.errors(include_url=False)) from None
