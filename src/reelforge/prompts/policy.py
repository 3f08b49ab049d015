"""The prompt policy pre-check: blocked terms and patterns, per tenant.

Terms match whole words of the prompt's *skeleton*: NFKC, case-folded, accents
stripped, and the usual look-alikes mapped to ASCII (Cyrillic and Greek letters
that look Latin, fullwidth letters, leetspeak digits), so "bomb" spelled with a
Cyrillic "o" (U+043E), "BOMB", "b0mb" and fullwidth "bomb" all match the term
"bomb", while "bombastic" does not. A term of several
words matches across any run of spaces or punctuation. Patterns are operators'
regular expressions, tried on the text as typed (normalised) and on its skeleton.

A match raises :class:`~reelforge.errors.PromptRejectedError` with the rule's id.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from reelforge.errors import PromptRejectedError
from reelforge.settings import PolicyRule, PromptSettings

__all__ = ["CompiledPolicy", "check_policy", "policy_for", "skeleton"]

# Look-alikes UTS #39 lists for Latin letters (the common ones), and leetspeak,
# as (look-alike, letter) pairs; escaped, so this file shows no look-alikes itself.
_CONFUSABLE_PAIRS = (
    # Cyrillic
    "\u0430a \u0432b \u0441c \u0501d \u0435e \u04bbh \u0456i \u0458j \u043ak "
    "\u043cm \u043dh \u043eo \u0440p \u051bq \u0455s \u0442t \u0443y \u0445x "
    "\u051dw \u04afy \u04cfl \u0451e \u0457i "
    # Greek
    "\u03b1a \u03b2b \u03b5e \u03b7n \u03b9i \u03bak \u03bdv \u03bfo \u03c1p "
    "\u03c4t \u03c5u \u03c7x \u03c9w \u03f2c \u03f3j "
    # Latin look-alikes and IPA
    "\u0131i \u0251a \u0261g \u0269i \u029fl \u017fs \u0142l \u00f8o \u0111d "
    "\u0127h \u0167t "
)
_LEET_PAIRS = "0o 1i 3e 4a 5s 7t @a $s !i |l"
_CONFUSABLES = str.maketrans({pair[0]: pair[1] for pair in _CONFUSABLE_PAIRS.split()})
# Leetspeak turns punctuation into letters ("bomb!" -> "bombi"), so it is a second
# reading of the text, not a replacement of the first.
_LEET = str.maketrans({pair[0]: pair[1] for pair in _LEET_PAIRS.split()})


def skeleton(text: str, *, leet: bool = False) -> str:
    """``text`` folded for matching: compatibility forms, case, accents, confusables
    (and, with ``leet``, leetspeak digits and symbols read as letters)."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = unicodedata.normalize("NFKC", bare.translate(_CONFUSABLES)).casefold()
    return folded.translate(_LEET) if leet else folded


def _term_pattern(term: str) -> str:
    words = skeleton(term).split()
    if not words:
        return r"(?!)"  # an empty term matches nothing
    body = r"[\W_]+".join(re.escape(word) for word in words)
    return rf"(?<![^\W_]){body}(?![^\W_])"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Rules ready to run: ``(rule id, term regex or None, pattern regex or None)``."""

    rules: tuple[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None], ...]
    moderation: bool = False

    def first_match(self, text: str) -> str | None:
        readings = (text, skeleton(text), skeleton(text, leet=True))
        for rule_id, terms, pattern in self.rules:
            if terms is not None and any(terms.search(r) for r in readings[1:]):
                return rule_id
            if pattern is not None and any(pattern.search(r) for r in readings[:2]):
                return rule_id
        return None


_RuleKey = tuple[str, tuple[str, ...], str | None]


@functools.lru_cache(maxsize=64)
def _compile(rules: tuple[_RuleKey, ...], moderation: bool) -> CompiledPolicy:
    compiled = []
    for rule_id, terms, pattern in rules:
        term_regex = re.compile("|".join(_term_pattern(t) for t in terms)) if terms else None
        pattern_regex = re.compile(pattern, re.IGNORECASE) if pattern else None
        compiled.append((rule_id, term_regex, pattern_regex))
    return CompiledPolicy(tuple(compiled), moderation)


def policy_for(settings: PromptSettings, owner: str) -> CompiledPolicy:
    """The global rules plus the tenant's own (records carry the tenant as ``owner``)."""
    tenant = settings.tenant(owner)
    moderation = settings.moderation if tenant.moderation is None else tenant.moderation
    return _compile(_keys([*settings.rules, *tenant.rules]), moderation)


def _keys(rules: Iterable[PolicyRule]) -> tuple[_RuleKey, ...]:
    # Hashable copies of the rules, so compiled policies are cached per rule set.
    return tuple((rule.id, tuple(rule.terms), rule.pattern) for rule in rules)


def check_policy(policy: CompiledPolicy, *texts: tuple[str, str | None]) -> None:
    """Refuse the first ``(param, text)`` a rule matches."""
    for param, text in texts:
        if not text:
            continue
        rule = policy.first_match(text)
        if rule is not None:
            raise PromptRejectedError(
                f"{param} was refused by the content policy (rule {rule})",
                rule=rule,
                param=param,
            )
