"""Checking payloads against OpenAI's published Videos schemas.

The reference is ``tests/reference/openai-videos-openapi.yaml`` (an extract of
OpenAI's OpenAPI 3.1 spec, copied into the repository with its source noted).
OpenAPI 3.1 schemas are JSON Schema 2020-12, so the whole document is registered
as one resource and a component is validated through a ``$ref`` into it; the
spec's own ``$ref``\\s then resolve as written. Vendor keywords
(``x-stainless-const``, ``example``) are ignored, as JSON Schema ignores unknown
keywords.

    validate_against("VideoResource", payload)      # raises on mismatch
    response_schema_name("GET", "/v1/videos/video_1")  # → "VideoResource"
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "ERROR_BODY_SCHEMA",
    "SPEC_PATH",
    "load_spec",
    "response_schema_name",
    "validate_against",
    "validate_error_body",
]

SPEC_PATH = Path(__file__).resolve().parents[1] / "reference" / "openai-videos-openapi.yaml"
_SPEC_URI = "urn:openai:videos-openapi"

# The spec has no schema for error answers; this is the shape the SDK and the notes
# rely on: exactly these four keys, message and type strings, param and code nullable.
ERROR_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {"type": "string", "minLength": 1},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


@cache
def load_spec() -> dict[str, Any]:
    """The parsed OpenAPI document (cached: it is read-only reference data)."""
    with SPEC_PATH.open(encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    spec = load_spec()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in {SPEC_PATH.name}")
    registry: Registry[Any] = Registry().with_resource(
        _SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


def validate_against(schema_name: str, payload: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` fits the named component.

    ``schema_name`` is a key of ``components/schemas``: ``VideoResource``,
    ``VideoListResource``, ``DeletedVideoResource``…
    """
    _validator(schema_name).validate(payload)


def validate_error_body(payload: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` is OpenAI's error shape."""
    Draft202012Validator(ERROR_BODY_SCHEMA).validate(payload)


def response_schema_name(method: str, path: str, status: int = 200) -> str | None:
    """The component the spec promises for a JSON answer to ``METHOD path``.

    ``path`` is concrete (``/v1/videos/video_1/remix``; a leading ``/v1`` is the
    server's base path and is dropped). None when the spec declares no JSON schema
    for that answer (binary content, an undeclared status).
    """
    relative = path.split("?")[0]
    relative = relative.removeprefix("/v1")
    for template, operations in load_spec()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), relative):
            operation = operations.get(method.lower())
            if operation is None:
                continue
            answer = operation.get("responses", {}).get(str(status), {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                return ref.rsplit("/", 1)[1]
            return None
    return None
