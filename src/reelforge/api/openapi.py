"""The OpenAPI document, made to say exactly what the server accepts and answers.

FastAPI derives most of ``/openapi.json`` from the routes. What it cannot know is
added here, once per app (the document is built on first request and cached):

- the bodies that routes read themselves (``POST /api/videos/generate``, ``POST
  /v1/videos`` and its remix), with every limit the strict parse enforces: prompt
  pattern, ranges, the size pattern, the mutual exclusion of ``size`` and
  ``resolution``/``aspect_ratio``;
- what depends on settings: the configured providers and OpenAI model names, as enums;
- no FastAPI default ``422``: validation errors answer ``400`` here (api/errors.py).

``tests/integration/test_schemathesis.py`` holds the server to this document.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from reelforge.models import (
    MAX_DURATION_SECONDS,
    MAX_FPS,
    MAX_PROMPT_CHARS,
    MIN_FPS,
    PROMPT_PATTERN,
    SIZE_PATTERN,
    TEXT_PATTERN,
    GenerationRequest,
)
from reelforge.prompts.pipeline import placeholders
from reelforge.settings import Settings

__all__ = [
    "IMAGE_DATA_URL_FORMAT",
    "IMAGE_MEDIA_TYPES",
    "install_openapi",
    "json_body",
    "prompt_schema",
]

# The custom ``format`` of a JSON input_reference.image_url: a base64 data URL of a
# PNG, JPEG or WebP image (a format the schema names, as JSON Schema allows).
IMAGE_DATA_URL_FORMAT: Final = "image-data-url"
IMAGE_MEDIA_TYPES: Final = ("image/png", "image/jpeg", "image/webp")
_RESOLUTIONS: Final = ["360p", "480p", "720p", "1080p"]
_ASPECT_RATIOS: Final = ["16:9", "9:16", "1:1", "4:3", "3:4"]


def prompt_schema() -> dict[str, Any]:
    """A prompt as the validator takes it: visible text, trimmed, no control chars."""
    return {
        "type": "string",
        "maxLength": MAX_PROMPT_CHARS,
        "pattern": PROMPT_PATTERN,
        "description": "What to show. Surrounding whitespace is trimmed; control "
        "characters other than tab and newline are refused.",
    }


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its own JSON body."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    rest = [branch for branch in branches if branch != {"type": "null"}]
    if len(rest) != 1:
        return schema
    others = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**rest[0], **others}


# A URL reelforge may call (webhooks): what makes it valid is where its host resolves,
# which no JSON Schema can say; tests give schemathesis a strategy for it.
WEBHOOK_URL_FORMAT: Final = "public-http-url"


def generation_request_schema() -> dict[str, Any]:
    """``GenerationRequest`` for the native generate body, every rule spelled out."""
    schema = GenerationRequest.model_json_schema()
    props = schema["properties"]
    props["prompt"] = {**props["prompt"], **prompt_schema()}
    props["duration_seconds"] |= {"exclusiveMinimum": 0, "maximum": MAX_DURATION_SECONDS}
    props["fps"] |= {"minimum": MIN_FPS, "maximum": MAX_FPS}
    props["size"] = _nullable({"type": "string", "pattern": SIZE_PATTERN}) | {
        "description": "WIDTHxHEIGHT, even sides of 64-1920 pixels; or give "
        "resolution and/or aspect_ratio instead"
    }
    props["resolution"] = _nullable({"type": "string", "enum": _RESOLUTIONS})
    props["aspect_ratio"] = _nullable({"type": "string", "enum": _ASPECT_RATIOS})
    props["formats"] |= {"minItems": 1}
    props["metadata"] |= {
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {"type": "string", "maxLength": 512},
    }
    props["webhook_url"] = _nullable(
        {
            "type": "string",
            "maxLength": 2048,
            "format": WEBHOOK_URL_FORMAT,
            "description": "an http(s) URL whose host resolves to public addresses only "
            "(loopback, private, link-local and metadata addresses are refused)",
        }
    )
    given = {"type": "string"}
    schema["not"] = {
        "anyOf": [
            {"required": ["size", other], "properties": {"size": given, other: given}}
            for other in ("resolution", "aspect_ratio")
        ]
    }
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve the refined document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = refine(doc, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_templates(schema: dict[str, Any], settings: Settings) -> None:
    """``template_vars`` fill exactly the chosen template's placeholders (none without
    a template); the negative prompt and the values hold no refused character."""
    text = {"type": "string", "pattern": TEXT_PATTERN}
    props = schema["properties"]
    props["negative_prompt"] = _nullable({**text, "maxLength": MAX_PROMPT_CHARS})
    props["template_vars"] = {
        "type": "object",
        "maxProperties": 32,
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
        "additionalProperties": {**text, "maxLength": 2000},
    }
    choices: list[dict[str, Any]] = [
        {"properties": {"template": {"type": "null"}, "template_vars": {"maxProperties": 0}}}
    ]
    for name, body in sorted(settings.prompts.templates.items()):
        wanted = sorted(set(placeholders(body)) - {"prompt"})
        choices.append(
            {
                "required": ["template", *(["template_vars"] if wanted else [])],
                "properties": {
                    "template": {"const": name},
                    "template_vars": {
                        "required": wanted,
                        "properties": dict.fromkeys(
                            wanted, props["template_vars"]["additionalProperties"]
                        ),
                        "additionalProperties": False,
                    },
                },
            }
        )
    schema["anyOf"] = choices


def refine(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Settings' enums in, FastAPI's unused 422 and its schemas out."""
    doc = copy.deepcopy(doc)
    providers = sorted(settings.providers)
    models = sorted(settings.model_routes)
    styles = sorted(settings.prompts.styles)
    templates = sorted(settings.prompts.templates)
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                # A query, header or path value is text: it is never JSON null.
                parameter["schema"] = _without_null(parameter["schema"])
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                schema = media.get("schema", {})
                props = schema.get("properties", {})
                if "provider" in props:
                    props["provider"] = _nullable({"type": "string", "enum": providers})
                for name, known in (("style", styles), ("template", templates)):
                    if name in props and known:
                        props[name] = _nullable({"type": "string", "enum": known})
                if "template_vars" in props:
                    _document_templates(schema, settings)
                if "model" in props and "prompt" in props:  # the /v1 create body
                    props["model"] = {"type": "string", "enum": models, "default": models[0]}
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    regenerate = schemas.get("RegenerateRequest", {}).get("properties", {})
    if regenerate:
        regenerate["provider"] = _nullable({"type": "string", "enum": providers})
        regenerate["prompt"] = _nullable(prompt_schema())
    return doc
