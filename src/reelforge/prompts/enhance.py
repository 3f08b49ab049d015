"""Prompt enhancement: a short prompt expanded into a detailed shot description.

Two expanders, one contract (text in, text out, or a reason it could not):

- :func:`expand_rule_based` — the offline default, instant and deterministic: it adds
  only the aspects of a shot (action, setting, camera, lighting) the prompt does not
  already name, so expanding an expanded prompt adds nothing.
- :func:`enhance_with_chat` — any OpenAI-compatible ``/chat/completions`` endpoint
  (settings ``prompts.enhance_endpoint``). It may take seconds, so it runs in the
  worker before submit, never in the API; any failure (timeout, HTTP error, an
  empty, too long or refused answer) raises :class:`EnhancementFailed` and the
  caller keeps the prompt it had, recording why.
"""

from __future__ import annotations

import re

import httpx

from reelforge.prompts.text import find_forbidden, normalize
from reelforge.settings import ChatEndpoint

__all__ = ["EnhancementFailed", "enhance_with_chat", "expand_rule_based"]

# An aspect counts as present when one of its words is in the prompt; each
# addition contains a word of its own aspect, which keeps expansion idempotent.
_ASPECTS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "action",
        re.compile(
            r"\b((?!(?:light|sett|build|morn|even|ceil|paint|cloth|th|str|spr|r|w|k|s|"
            r"noth|someth|everyth|anyth|sibl|end|wedd|pudd|ic|rail|awn)ing\b)\w+ing|"
            r"moves?|runs?|walks?|flies|fly|jumps?|dances?|spins?|flows?|falls?|rises?|motion)\b",
            re.IGNORECASE,
        ),
        "in gentle motion",
    ),
    (
        "setting",
        re.compile(
            r"\b(in|at|on|inside|outside|under|over|across|through|near|above|beneath|"
            r"setting|background)\b",
            re.IGNORECASE,
        ),
        "in a richly detailed setting",
    ),
    (
        "camera",
        re.compile(
            r"\b(camera|shot|close-?up|wide|aerial|drone|dolly|pan|panning|tracking|zoom|"
            r"lens|angle|pov|handheld|macro)\b",
            re.IGNORECASE,
        ),
        "smooth camera movement with a wide establishing shot",
    ),
    (
        "lighting",
        re.compile(
            r"\b(light|lights|lighting|lit|sunlight|sunset|sunrise|dawn|dusk|golden hour|"
            r"neon|shadows?|glow|glowing|night|moonlight)\b",
            re.IGNORECASE,
        ),
        "soft natural lighting",
    ),
)

_SYSTEM_PROMPT = (
    "You turn a short idea for a video into one detailed shot description for a "
    "text-to-video model. Cover the subject, the action, the setting, the camera "
    "(framing and movement) and the lighting. Keep every element the user gave; add "
    "nothing unsafe. Answer with the description only, one paragraph, at most "
    "{limit} characters."
)


class EnhancementFailed(Exception):
    """The chat endpoint gave no usable answer; ``str(exc)`` says why (for the record)."""


def expand_rule_based(text: str, *, below_words: int, context: str = "") -> tuple[str, list[str]]:
    """``text`` with the missing aspects of a shot added, and the names of those added.

    Prompts of ``below_words`` words or more are left alone: they are already detailed.
    ``context`` is text that will follow (a style's additions): what it names counts.
    """
    if len(text.split()) >= below_words:
        return text, []
    seen = f"{text} {context}"
    added = [(name, addition) for name, present, addition in _ASPECTS if not present.search(seen)]
    if not added:
        return text, []
    expanded = ", ".join([text.rstrip(" ,.;"), *(addition for _, addition in added)])
    return expanded, [name for name, _ in added]


async def enhance_with_chat(
    text: str,
    endpoint: ChatEndpoint,
    *,
    max_chars: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """The chat model's shot description of ``text``, normalised; or EnhancementFailed."""
    if endpoint.base_url is None:
        raise EnhancementFailed("no enhancement endpoint is configured")
    headers = {}
    if endpoint.api_key is not None:
        headers["Authorization"] = f"Bearer {endpoint.api_key.get_secret_value()}"
    body = {
        "model": endpoint.model,
        "messages": [
            {"role": "system", "content": _SYSTEM_PROMPT.format(limit=max_chars)},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
    }
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    try:
        async with httpx.AsyncClient(
            timeout=endpoint.timeout_seconds, transport=transport
        ) as client:
            response = await client.post(url, json=body, headers=headers)
    except httpx.TimeoutException:
        raise EnhancementFailed(
            f"the enhancement endpoint did not answer within {endpoint.timeout_seconds:g}s"
        ) from None
    except httpx.HTTPError as exc:
        raise EnhancementFailed(f"the enhancement endpoint is unreachable ({exc})") from None
    if response.status_code >= 400:
        raise EnhancementFailed(f"the enhancement endpoint answered HTTP {response.status_code}")
    return _answer_text(response, max_chars=max_chars)


def _answer_text(response: httpx.Response, *, max_chars: int) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise EnhancementFailed("the enhancement endpoint's answer has no message") from None
    if not isinstance(content, str):
        raise EnhancementFailed("the enhancement endpoint's answer has no text")
    bad = find_forbidden(content)
    if bad is not None:
        raise EnhancementFailed(f"the enhanced text has a {bad.kind} ({bad.codepoint})")
    enhanced = normalize(content)
    if not enhanced:
        raise EnhancementFailed("the enhancement endpoint answered with empty text")
    if len(enhanced) > max_chars:
        raise EnhancementFailed(
            f"the enhanced text is {len(enhanced)} characters; the model takes {max_chars}"
        )
    return enhanced
