"""Push completion: vendors that can call back (Replicate, fal, Luma, Veo on the Gemini
API) wake the worker early.

With ``settings.public_url`` set, a provider that takes callbacks (a
:class:`~reelforge.providers.base.CallbackProvider`) is given, at submit, the URL
``{public_url}/api/callbacks/{provider}/{token}`` with a fresh, unguessable token kept
in Redis for the attempt. When the vendor calls it, the API checks the token (and the
vendor's signature, where the vendor signs) and *nudges* the video: the worker, which
waits for a nudge or its poll interval, whichever comes first, polls at once. The
callback is only ever a wake-up: the state is always read back from the vendor's API
with our key, so a forged or replayed callback can do no more than cause one extra
poll, and a lost one changes nothing but latency (polling stays the safety net).
"""

from __future__ import annotations

import asyncio
import secrets

from redis.asyncio import Redis

from reelforge.errors import NotFoundError
from reelforge.keys import Keys
from reelforge.settings import Settings

__all__ = ["CallbackRegistry"]

# How long a callback URL stays valid: vendors retry for hours (fal: 2 h).
_TOKEN_TTL_SECONDS = 6 * 3600
_NUDGE_TTL_SECONDS = 600


class CallbackRegistry:
    """Callback tokens and nudges, in Redis so any API process can take a callback."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings):
        self.redis = redis
        self.keys = keys
        self.public_url = settings.public_url

    @property
    def enabled(self) -> bool:
        return self.public_url is not None

    async def register(self, provider: str, video_id: str) -> str:
        """A new callback URL for the video's current attempt at ``provider``."""
        if self.public_url is None:
            raise RuntimeError("push completion needs settings.public_url")
        token = secrets.token_urlsafe(24)
        await self.redis.set(
            self.keys.callback(token), f"{provider}:{video_id}", ex=_TOKEN_TTL_SECONDS
        )
        return f"{self.public_url}/api/callbacks/{provider}/{token}"

    async def video_for(self, provider: str, token: str) -> str:
        """The video a token was issued for, or NotFoundError (never says which part)."""
        value = await self.redis.get(self.keys.callback(token)) if _plausible(token) else None
        owner, _, video_id = str(value or "").partition(":")
        if not value or not secrets.compare_digest(owner, provider):
            raise NotFoundError("no such callback", code="not_found")
        return video_id

    async def nudge(self, video_id: str) -> None:
        key = self.keys.nudge(video_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, "1")
            pipe.ltrim(key, 0, 0)  # one pending nudge is as good as many
            pipe.expire(key, _NUDGE_TTL_SECONDS)
            await pipe.execute()

    async def wait(self, video_id: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for a nudge; whether one came."""
        if seconds <= 0:
            return False
        got = await self.redis.blpop([self.keys.nudge(video_id)], timeout=seconds)
        return got is not None

    async def sleep_or_nudge(self, video_id: str, seconds: float, *, push: bool) -> None:
        """The pause between polls: the poll interval, cut short by a callback."""
        if push:
            await self.wait(video_id, seconds)
        else:
            await asyncio.sleep(seconds)


def _plausible(token: str) -> bool:
    return 16 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)
