"""How long prompt processing takes in the API process, against parsing the request.

Run ``python benchmarks/bench_prompts.py`` or ``python -m benchmarks prompts``. The
pipeline runs on every create, inside the request: it must stay cheap next to the
request's own validation. Figures are the best of five rounds of N prompts, per
prompt, with a policy of 20 rules (terms and patterns) and the ``cinematic`` style;
the target: for a 32,000-character prompt, at most 5x the request's own parse
(parsing already reads every character once; machine load moves both alike).
"""

from __future__ import annotations

import time

from reelforge.models import parse_generation_request
from reelforge.prompts.pipeline import process_prompt
from reelforge.providers.base import Capabilities
from reelforge.settings import PolicyRule, PromptSettings

__all__ = ["run"]

ROUNDS = 5
TARGET_RATIO = 5.0
CAPS = Capabilities(max_duration_seconds=60, negative_prompt=False)
SETTINGS = PromptSettings(
    rules=[
        *(PolicyRule(id=f"terms-{i}", terms=[f"blocked{i}", f"two words{i}"]) for i in range(15)),
        *(PolicyRule(id=f"pattern-{i}", pattern=rf"\b\d{{3}}-{i}\d-\d{{4}}\b") for i in range(5)),
    ]
)
PROMPTS = {
    "short": ("a paper boat drifting down a rainy neon street at dusk", 2000),
    "32k chars": (("a slow pan across a quiet harbour at dawn, " * 800)[:31_000], 20),
}


def _best_per_prompt(text: str, count: int, *, process: bool) -> float:
    body = {"prompt": text, "style": "cinematic", "negative_prompt": "blur", "enhance": True}
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(count):
            req = parse_generation_request(body)
            if process:
                process_prompt(req, SETTINGS, caps=CAPS, provider="bench", owner="default")
        best = min(best, (time.perf_counter() - started) / count)
    return best


def run() -> list[str]:
    lines = []
    for label, (text, count) in PROMPTS.items():
        parse = _best_per_prompt(text, count, process=False)
        total = _best_per_prompt(text, count, process=True)
        pipeline_ms = (total - parse) * 1000
        target = f" (target <= {TARGET_RATIO:g}x)" if label == "32k chars" else ""
        lines.append(
            f"prompt pipeline, {label}: {pipeline_ms:.3f} ms per prompt, "
            f"{(total - parse) / parse:.1f}x the request parse ({parse * 1000:.3f} ms){target}"
        )
    return lines


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
