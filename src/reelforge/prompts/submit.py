"""The worker's part of prompt processing, just before a provider is paid.

The API processed the prompt at create time for the first provider of the route
and left two remote checks ``pending`` (they may take seconds). Before submit, the
worker:

1. enhances through the chat endpoint, once per video: on any failure, or when the
   chat model's text is refused or too long, it keeps the unenhanced prompt and
   records why;
2. asks the moderation endpoint, when the tenant's policy wants it: a flagged
   prompt fails the video with ``prompt_rejected`` and is never submitted; an
   unreachable endpoint fails it with ``moderation_unavailable`` (fail closed: the
   operator asked for moderation);
3. fits the prompt again when this attempt goes to another provider than the one
   it was fitted to (a fallback in the route).

Outcomes are written to the record (``prompt_processing``) before submit, so a
worker that dies here does not enhance or moderate again. ``reelforge prompt``
runs the same steps (:func:`preview_prompt`) to show what would be sent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import structlog

from reelforge.errors import PromptRejectedError, ReelforgeError, ServiceUnavailableError
from reelforge.models import GenerationRequest, Stage
from reelforge.prompts.enhance import EnhancementFailed, enhance_with_chat
from reelforge.prompts.pipeline import (
    ProcessedPrompt,
    PromptStep,
    apply_style_defaults,
    core_text,
    fit_route,
    process_prompt,
)
from reelforge.providers import build_provider
from reelforge.providers.base import Capabilities
from reelforge.runtime import Runtime
from reelforge.settings import ChatEndpoint, PromptSettings, Settings
from reelforge.store import VideoRecord

__all__ = ["finish_processing", "moderate", "prepare_submission", "preview_prompt"]

log = structlog.get_logger("reelforge.prompts")


async def prepare_submission(rt: Runtime, rec: VideoRecord, provider: str) -> GenerationRequest:
    """The request ``provider`` receives: the processed prompt and negative prompt."""
    stored = rec.prompt_processing
    if stored is None:  # a record from before prompt processing
        return rec.request
    processed = ProcessedPrompt.from_dict(stored)
    if processed.pending or processed.provider != provider:
        caps = rt.provider(provider).capabilities()
        processed = await finish_processing(
            rec.request,
            processed,
            rt.settings.prompts,
            caps=caps,
            provider=provider,
            owner=rec.owner,
        )
        result = await rt.store.transition(
            rec.id,
            event="prompt_processed",
            fields={"prompt_processing": processed.to_dict()},
            data={"steps": [s.to_dict() for s in processed.steps if s.changed]},
            expect_stage=Stage.SUBMITTING,
        )
        if not result.applied:
            raise ReelforgeError(f"{rec.id} moved on while its prompt was processed")
    return rec.request.model_copy(
        update={"prompt": processed.text, "negative_prompt": processed.negative}
    )


async def preview_prompt(
    settings: Settings, req: GenerationRequest, *, owner: str = "default"
) -> ProcessedPrompt:
    """What a provider would receive for ``req``, remote checks included; no job."""
    req = apply_style_defaults(req, settings.prompts, owner)
    names = (
        [req.provider] if req.provider else settings.default_route or [settings.default_provider]
    )
    providers = {name: build_provider(name, settings) for name in names}
    try:
        caps = {name: p.capabilities() for name, p in providers.items()}
        route = [name for name in names if caps[name].fits(req)] or names
        processed, route = fit_route(
            req, settings.prompts, route, caps_of=caps.__getitem__, owner=owner
        )
        return await finish_processing(
            req, processed, settings.prompts, caps=caps[route[0]], provider=route[0], owner=owner
        )
    finally:
        for provider in providers.values():
            await provider.aclose()


async def finish_processing(
    request: GenerationRequest,
    processed: ProcessedPrompt,
    settings: PromptSettings,
    *,
    caps: Capabilities,
    provider: str,
    owner: str,
) -> ProcessedPrompt:
    """Run the pending remote checks and fit ``provider``; nothing is left pending."""
    kw: dict[str, Any] = {"caps": caps, "provider": provider, "owner": owner}
    enhanced, note = processed.enhanced, None
    if "enhance" in processed.pending:
        limit = min(caps.max_prompt_length or 32_000, 32_000)
        try:
            enhanced = await enhance_with_chat(
                core_text(request, settings), settings.enhance_endpoint, max_chars=limit
            )
        except EnhancementFailed as exc:
            note = f"kept the unenhanced prompt: {exc}"
            log.info("enhancement failed", reason=str(exc))
    elif enhanced is None and request.enhance:
        note = _enhance_note(processed)
    try:
        result = process_prompt(request, settings, enhanced=enhanced, enhance_note=note, **kw)
    except ReelforgeError as exc:
        if enhanced is None:
            raise
        # The chat model's text is what was refused: fall back to the prompt as it was.
        why = f"kept the unenhanced prompt: the chat model's text was refused ({exc.code})"
        result = process_prompt(request, settings, enhance_note=why, **kw)
    moderated = [s for s in processed.steps if s.step == "moderation"]
    if "moderation" in result.pending and not moderated:
        flagged = await moderate(result.text, settings.moderation_endpoint)
        if flagged is not None:
            raise PromptRejectedError(
                f"prompt was refused by the moderation endpoint (rule moderation:{flagged})",
                rule=f"moderation:{flagged}",
            )
        model = settings.moderation_endpoint.model
        moderated = [PromptStep("moderation", False, f"passed the moderation model {model!r}")]
    return dataclasses.replace(result, steps=(*result.steps, *moderated), pending=())


def _enhance_note(processed: ProcessedPrompt) -> str | None:
    """The enhancement outcome recorded earlier, carried over to a refit."""
    for step in processed.steps:
        if step.step == "enhance" and not step.changed:
            return step.why
    return None


async def moderate(
    text: str, endpoint: ChatEndpoint, *, transport: httpx.AsyncBaseTransport | None = None
) -> str | None:
    """The first category an OpenAI-compatible ``/moderations`` endpoint flags, or None."""
    if endpoint.base_url is None:
        raise ServiceUnavailableError(
            "moderation is on but prompts.moderation_endpoint.base_url is not set",
            code="moderation_unavailable",
        )
    headers = {}
    if endpoint.api_key is not None:
        headers["Authorization"] = f"Bearer {endpoint.api_key.get_secret_value()}"
    url = endpoint.base_url.rstrip("/") + "/moderations"
    try:
        async with httpx.AsyncClient(
            timeout=endpoint.timeout_seconds, transport=transport
        ) as client:
            response = await client.post(
                url, json={"model": endpoint.model, "input": text}, headers=headers
            )
        response.raise_for_status()
        result = response.json()["results"][0]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServiceUnavailableError(
            f"the moderation endpoint gave no answer ({type(exc).__name__})",
            code="moderation_unavailable",
        ) from None
    if not result.get("flagged"):
        return None
    categories = result.get("categories") or {}
    flagged = sorted(name for name, on in categories.items() if on)
    return flagged[0] if flagged else "flagged"
