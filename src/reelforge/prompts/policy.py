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
    if not folded.isascii():  # ASCII has no combining marks and no look-alikes
        bare = "".join(ch for ch in folded if not unicodedata.combining(ch))
        folded = unicodedata.normalize("NFKC", bare.translate(_CONFUSABLES)).casefold()
    return folded.translate(_LEET) if leet else folded


# Words as terms are matched: runs of letters and digits (punctuation and "_" split).
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Rules ready to run. Terms are word sequences looked up in the text's words
    (one pass over the text, whatever the number of terms); patterns are regexes."""

    ids: tuple[str, ...]
    words: dict[str, int]  # one-word terms -> index of the first rule naming them
    phrases: dict[tuple[str, ...], int]  # terms of several words, likewise
    phrase_lengths: dict[str, tuple[int, ...]]  # a phrase's first word -> its lengths
    patterns: tuple[tuple[int, re.Pattern[str]], ...]
    moderation: bool = False

    @property
    def rule_count(self) -> int:
        return len(self.ids)

    def first_match(self, text: str) -> str | None:
        """The id of the first rule (in configured order) that matches ``text``."""
        plain = skeleton(text)
        hits: list[int] = []
        for reading in dict.fromkeys((plain, plain.translate(_LEET))):
            words = _WORD.findall(reading)
            hits += (self.words[w] for w in self.words.keys() & set(words))
            for i, word in enumerate(words):
                for n in self.phrase_lengths.get(word, ()):
                    index = self.phrases.get(tuple(words[i : i + n]))
                    if index is not None:
                        hits.append(index)
        # An ASCII text's skeleton is the text case-folded: IGNORECASE already sees it.
        readings = (text,) if text.isascii() else (text, plain)
        for index, pattern in self.patterns:
            if any(pattern.search(reading) for reading in readings):
                hits.append(index)
                break  # later patterns belong to later rules
        return self.ids[min(hits)] if hits else None


_RuleKey = tuple[str, tuple[str, ...], str | None]


@functools.lru_cache(maxsize=64)
def _compile(rules: tuple[_RuleKey, ...], moderation: bool) -> CompiledPolicy:
    words: dict[str, int] = {}
    phrases: dict[tuple[str, ...], int] = {}
    patterns = []
    for index, (_, rule_terms, pattern) in enumerate(rules):
        for term in rule_terms:
            for reading in (skeleton(term), skeleton(term, leet=True)):
                found = tuple(_WORD.findall(reading))
                if len(found) == 1:
                    words.setdefault(found[0], index)
                elif found:
                    phrases.setdefault(found, index)
        if pattern:
            patterns.append((index, re.compile(pattern, re.IGNORECASE)))
    lengths: dict[str, set[int]] = {}
    for phrase in phrases:
        lengths.setdefault(phrase[0], set()).add(len(phrase))
    return CompiledPolicy(
        ids=tuple(rule_id for rule_id, _, _ in rules),
        words=words,
        phrases=phrases,
        phrase_lengths={first: tuple(sorted(ns)) for first, ns in lengths.items()},
        patterns=tuple(patterns),
        moderation=moderation,
    )


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
