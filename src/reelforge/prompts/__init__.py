"""Prompt processing: from the prompt as typed to the text each provider receives.

- :mod:`reelforge.prompts.text` — the characters we refuse and the normal form;
- :mod:`reelforge.prompts.policy` — blocked terms and patterns, per tenant;
- :mod:`reelforge.prompts.enhance` — the rule-based expander and the chat-model one;
- :mod:`reelforge.prompts.pipeline` — the steps in order, recorded on the video;
- :mod:`reelforge.prompts.submit` — the worker's part before submit (remote checks).

Nothing is re-exported here: ``reelforge.models`` imports ``text`` at parse time,
and the pipeline imports ``models``.
"""
