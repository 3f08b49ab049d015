"""The prompt pipeline: from the request as typed to the text a provider receives.

    normalise ▸ template ▸ enhance ▸ style ▸ negative prompt ▸ length ▸ policy

Each step that runs is recorded as ``{step, changed, why}``. Everything here is
pure, cheap and deterministic, so the API runs it at create time and refuses a bad
prompt before anything is queued or paid for. The two remote checks (a chat model's
enhancement, a moderation endpoint) may take seconds: the pipeline only marks them
``pending`` and the worker runs them before submit (:mod:`reelforge.prompts.submit`).

Processing a processed prompt changes nothing: style additions and rule-based
expansions are added only when the text does not already say them, and a folded
negative prompt is folded once.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reelforge.errors import PromptError
from reelforge.models import GenerationRequest
from reelforge.prompts.enhance import expand_rule_based
from reelforge.prompts.policy import check_policy, policy_for
from reelforge.prompts.text import normalize
from reelforge.providers.base import Capabilities
from reelforge.settings import PromptSettings, StyleConfig

__all__ = [
    "FOLD_PREFIX",
    "ProcessedPrompt",
    "PromptStep",
    "apply_style_defaults",
    "core_text",
    "fit_route",
    "placeholders",
    "process_prompt",
    "style_of",
]

FOLD_PREFIX = "Avoid: "
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class PromptStep:
    step: str
    changed: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "changed": self.changed, "why": self.why}


@dataclass(frozen=True, slots=True)
class ProcessedPrompt:
    """What one provider receives for a request, and how the text got there."""

    text: str
    negative: str | None
    steps: tuple[PromptStep, ...]
    provider: str  # the provider it was fitted to
    # Remote checks the worker runs before submit: "enhance", "moderation".
    pending: tuple[str, ...] = ()
    # The chat model's enhancement, once the worker has it (kept for later attempts).
    enhanced: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "processed_prompt": self.text,
            "negative_prompt": self.negative,
            "steps": [s.to_dict() for s in self.steps],
            "provider": self.provider,
            "pending": list(self.pending),
            "enhanced": self.enhanced,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessedPrompt:
        return cls(
            text=data["processed_prompt"],
            negative=data.get("negative_prompt"),
            steps=tuple(PromptStep(**s) for s in data.get("steps", [])),
            provider=data.get("provider", ""),
            pending=tuple(data.get("pending", [])),
            enhanced=data.get("enhanced"),
        )


@dataclass(slots=True)
class _Draft:
    text: str
    negative: str | None
    steps: list[PromptStep] = field(default_factory=list)

    def note(self, step: str, changed: bool, why: str) -> None:
        self.steps.append(PromptStep(step, changed, why))


def style_of(req: GenerationRequest, settings: PromptSettings, owner: str) -> str | None:
    """The request's style, else its tenant's default, else the global default."""
    return req.style or settings.tenant(owner).default_style or settings.default_style


def _style(settings: PromptSettings, name: str | None) -> StyleConfig | None:
    if name is None:
        return None
    style = settings.styles.get(name)
    if style is None:
        known = ", ".join(sorted(settings.styles)) or "none"
        raise PromptError(
            f"unknown style {name!r}; choose one of {known}", code="unknown_style", param="style"
        )
    return style


def placeholders(template: str) -> list[str]:
    """The ``template_vars`` a template needs (``{prompt}`` is the request's prompt)."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f and f != "prompt"]
    return list(dict.fromkeys(names))


def apply_style_defaults(
    req: GenerationRequest, settings: PromptSettings, owner: str
) -> GenerationRequest:
    """The style's fps and size where the request chose neither."""
    style = _style(settings, style_of(req, settings, owner))
    if style is None:
        return req
    chosen = req.model_fields_set
    update: dict[str, Any] = {}
    if style.fps is not None and "fps" not in chosen:
        update["fps"] = style.fps
    if style.size is not None and not chosen & {"size", "resolution", "aspect_ratio"}:
        update["size"] = style.size
    return req.model_copy(update=update) if update else req


def _fill_template(draft: _Draft, req: GenerationRequest, settings: PromptSettings) -> None:
    if req.template is None:
        if req.template_vars:
            raise PromptError(
                "template_vars need a template to fill",
                code="unknown_template_var",
                param="template_vars",
            )
        return
    text = settings.templates.get(req.template)
    if text is None:
        known = ", ".join(sorted(settings.templates)) or "none"
        raise PromptError(
            f"unknown template {req.template!r}; choose one of {known}",
            code="unknown_template",
            param="template",
        )
    wanted = set(placeholders(text))
    given = set(req.template_vars)
    for name in sorted(given - wanted):
        raise PromptError(
            f"template {req.template!r} has no placeholder {{{name}}}"
            + (" ({prompt} is the request's prompt)" if name == "prompt" else ""),
            code="unknown_template_var",
            param=f"template_vars.{name}",
        )
    for name in sorted(wanted - given):
        raise PromptError(
            f"template {req.template!r} needs template_vars.{name}",
            code="missing_template_var",
            param=f"template_vars.{name}",
        )
    values = {name: normalize(value) for name, value in req.template_vars.items()}
    values["prompt"] = draft.text
    # One pass: a value that looks like a placeholder is text, never filled again.
    draft.text = normalize(_PLACEHOLDER.sub(lambda m: values[m.group(1)], text))
    draft.note("template", True, f"filled template {req.template!r}")


def _merge_negatives(*parts: str | None) -> str | None:
    seen: dict[str, str] = {}
    for part in parts:
        for item in (part or "").split(","):
            item = item.strip()
            if item and item.casefold() not in seen:
                seen[item.casefold()] = item
    return ", ".join(seen.values()) or None


def _add_style(draft: _Draft, style_name: str | None, style: StyleConfig | None) -> None:
    if style is None:
        return
    present = draft.text.casefold()
    missing = [a for a in style.additions if a.casefold() not in present]
    if missing:
        draft.text = ", ".join([draft.text.rstrip(" ,.;"), *missing])
    negative = _merge_negatives(draft.negative, *style.negative)
    changed = bool(missing) or negative != draft.negative
    draft.negative = negative
    why = f"style {style_name!r}: " + (
        f"added {', '.join(missing)}" if missing else "the prompt already says it"
    )
    draft.note("style", changed, why)


def _fit_negative(
    draft: _Draft, caps: Capabilities, provider: str, settings: PromptSettings
) -> None:
    if draft.negative is None:
        return
    if caps.negative_prompt:
        draft.note("negative_prompt", False, f"{provider} takes a negative prompt: sent apart")
        return
    how = settings.negative_fallback_by_provider.get(provider, settings.negative_fallback)
    negative, draft.negative = draft.negative, None
    if how == "drop":
        draft.note(
            "negative_prompt", True, f"{provider} takes no negative prompt: dropped ({negative})"
        )
        return
    folded = FOLD_PREFIX + negative
    if folded not in draft.text:
        draft.text = f"{draft.text.rstrip(' .')}. {folded}"
    draft.note("negative_prompt", True, f"{provider} takes no negative prompt: folded in")


# The processed prompt may outgrow the request's (at most MAX_PROMPT_CHARS): a style or
# a template adds text, template_vars fill it. Every request the API takes stays within
# this cap; a model's own limit, when it has one, is what usually applies.
MAX_PROCESSED_PROMPT_CHARS = 128_000


def _check_length(draft: _Draft, caps: Capabilities, provider: str) -> None:
    limit = MAX_PROCESSED_PROMPT_CHARS
    whose = f"our limit (provider {provider!r})"
    if caps.max_prompt_length is not None and caps.max_prompt_length <= limit:
        limit, whose = caps.max_prompt_length, f"provider {provider!r}"
    if len(draft.text) > limit:
        raise PromptError(
            f"the processed prompt is {len(draft.text)} characters; {whose} takes at most "
            f"{limit} (shorten the prompt or pick another style or provider)",
            code="prompt_too_long",
            param="prompt",
        )
    draft.note("length", False, f"{len(draft.text)} of {limit} characters {provider} takes")


def core_text(req: GenerationRequest, settings: PromptSettings) -> str:
    """The prompt normalised and templated: what an enhancer expands."""
    draft = _Draft(normalize(req.prompt), None)
    _fill_template(draft, req, settings)
    return draft.text


def process_prompt(
    req: GenerationRequest,
    settings: PromptSettings,
    *,
    caps: Capabilities,
    provider: str,
    owner: str,
    enhanced: str | None = None,
    enhance_note: str | None = None,
) -> ProcessedPrompt:
    """Process ``req``'s prompt for ``provider``; raise a PromptError or
    PromptRejectedError (both 400) for text we will not send.

    ``enhanced`` is the chat model's enhancement the worker obtained (it replaces the
    rule-based one); ``enhance_note`` records why the worker has none (its failure).
    """
    style_name = style_of(req, settings, owner)
    style = _style(settings, style_name)
    text = normalize(req.prompt)
    draft = _Draft(text, normalize(req.negative_prompt) if req.negative_prompt else None)
    changed = text != req.prompt
    draft.note("normalize", changed, "NFC, whitespace collapsed" if changed else "already normal")
    _fill_template(draft, req, settings)
    pending: list[str] = []
    expanded_here = False
    if req.enhance:
        before = draft.text
        context = ", ".join(style.additions) if style else ""
        pending += _enhance(draft, settings, enhanced, enhance_note, context)
        expanded_here = enhanced is None and draft.text != before
    _add_style(draft, style_name, style)
    _fit_negative(draft, caps, provider, settings)
    try:
        _check_length(draft, caps, provider)
    except PromptError:
        if not expanded_here:
            raise
        # The rule-based expansion is what made it too long: send it unexpanded.
        return process_prompt(
            req,
            settings,
            caps=caps,
            provider=provider,
            owner=owner,
            enhance_note="skipped: the expanded prompt would be longer than the model takes",
        )
    policy = policy_for(settings, owner)
    check_policy(policy, ("prompt", draft.text), ("negative_prompt", draft.negative))
    draft.note("policy", False, f"passed {policy.rule_count} rule(s)")
    if policy.moderation:
        pending.append("moderation")
    return ProcessedPrompt(
        text=draft.text,
        negative=draft.negative,
        steps=tuple(draft.steps),
        provider=provider,
        pending=tuple(pending),
        enhanced=enhanced,
    )


def _enhance(
    draft: _Draft,
    settings: PromptSettings,
    enhanced: str | None,
    enhance_note: str | None,
    context: str,
) -> list[str]:
    """Apply the enhancement we have; return what the worker must still fetch."""
    endpoint = settings.enhance_endpoint
    if enhanced is not None:
        changed = enhanced != draft.text
        draft.text = enhanced
        draft.note("enhance", changed, f"expanded by the chat model {endpoint.model!r}")
        return []
    if enhance_note is not None:
        draft.note("enhance", False, enhance_note)
        return []
    if endpoint.base_url is not None:
        draft.note("enhance", False, f"pending: the chat model {endpoint.model!r}, before submit")
        return ["enhance"]
    draft.text, added = expand_rule_based(
        draft.text, below_words=settings.enhance_below_words, context=context
    )
    why = (
        "rule-based: added " + ", ".join(added)
        if added
        else "rule-based: the prompt already describes the shot"
    )
    draft.note("enhance", bool(added), why)
    return []


def fit_route(
    req: GenerationRequest,
    settings: PromptSettings,
    route: list[str],
    *,
    caps_of: Callable[[str], Capabilities],
    owner: str,
) -> tuple[ProcessedPrompt, list[str]]:
    """Process the prompt for the first provider of ``route`` it fits, and return the
    providers it fits: those whose prompt limit it passes are dropped. Every other
    refusal is the prompt's own, whatever the provider, and raised at once."""
    fitted: list[tuple[str, ProcessedPrompt]] = []
    too_long: PromptError | None = None
    for name in route:
        try:
            processed = process_prompt(
                req, settings, caps=caps_of(name), provider=name, owner=owner
            )
        except PromptError as exc:
            if exc.code != "prompt_too_long":
                raise
            too_long = too_long or exc
            continue
        fitted.append((name, processed))
    if not fitted:
        if too_long is None:
            raise PromptError("no provider to fit the prompt to", param="provider")
        raise too_long
    return fitted[0][1], [name for name, _ in fitted]
