"""Short-lived signed links to a video's files and events.

A ``<video src>``, a download link or an ``EventSource`` cannot send an
``Authorization`` header, so API answers carry links that authorise themselves:
``?expires=<unix s>&sig=<base64url HMAC-SHA256>`` over the video id, what the link
opens (a file format, or ``events``), the tenant and the expiry. The tenant is not
in the link: it is the owner of the record, so a link can never open another
tenant's video. The secret is shared by every API process through Redis (or set
with ``link_secret``); links are accepted until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from reelforge.errors import PermissionDeniedError
from reelforge.keys import Keys

__all__ = ["LinkSigner", "load_link_secret"]

_SIG_LENGTH: Final = 43  # base64url of 32 bytes, unpadded


async def load_link_secret(redis: Redis, keys: Keys, configured: str | None) -> bytes:
    """The configured secret, else the deployment's own (made once, kept in Redis)."""
    if configured:
        return configured.encode()
    await redis.set(keys.link_secret, secrets.token_urlsafe(32), nx=True)
    return str(await redis.get(keys.link_secret)).encode()


@dataclass(frozen=True, slots=True)
class LinkSigner:
    secret: bytes
    lifetime_seconds: int

    def _sign(self, video_id: str, target: str, tenant: str, expires: int) -> str:
        message = f"{video_id}\n{target}\n{tenant}\n{expires}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, video_id: str, target: str, tenant: str, *, now: float | None = None) -> str:
        """``expires=…&sig=…`` for a link to ``target`` of the video."""
        # Rounded up to the minute: answers within a minute share one link (caches).
        moment = time.time() if now is None else now
        expires = (int(moment + self.lifetime_seconds) // 60 + 1) * 60
        return f"expires={expires}&sig={self._sign(video_id, target, tenant, expires)}"

    def verify(
        self, video_id: str, target: str, tenant: str, expires: str | None, sig: str
    ) -> None:
        """PermissionDeniedError unless ``sig`` signs this link and it has not expired."""
        if expires is None or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            raise PermissionDeniedError("the link is not valid", code="invalid_link")
        expected = self._sign(video_id, target, tenant, int(expires))
        if len(sig) != _SIG_LENGTH or not sig.isascii() or not hmac.compare_digest(expected, sig):
            raise PermissionDeniedError("the link is not valid", code="invalid_link")
        if int(expires) < time.time():
            raise PermissionDeniedError(
                "the link has expired; fetch the video again", code="link_expired"
            )
