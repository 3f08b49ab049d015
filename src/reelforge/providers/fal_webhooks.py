"""Checking that a webhook really comes from fal: ED25519 signatures, keys from fal's JWKS.

fal signs every webhook it POSTs (docs.fal.ai/model-apis/model-endpoints/webhooks,
"Verifying your webhook"). A delivery carries four headers::

    X-Fal-Webhook-Request-Id    the queue request id
    X-Fal-Webhook-User-Id       the fal user the request belongs to
    X-Fal-Webhook-Timestamp     Unix seconds when fal sent it
    X-Fal-Webhook-Signature     hex ED25519 signature of the message below

The signed message is four lines joined by ``\\n``: the request id, the user id, the
timestamp and the hex SHA-256 of the raw body. fal's public keys are a JWKS
(``https://rest.alpha.fal.ai/.well-known/jwks.json``: ``kty: OKP``, ``crv: Ed25519``,
``x`` the base64url key). The headers name no key, so each key is tried.

Outcomes:

    headers missing or malformed, timestamp outside ±tolerance,
    no key verifies                      → CallbackRejectedError (401 invalid_signature)
    the JWKS cannot be fetched or read   → ServiceUnavailableError (503: fal retries
                                           its webhooks; polling covers them anyway)

The keys are cached for ``ttl_seconds``. A signature that no cached key verifies makes
one fresh fetch of the JWKS, so a key fal has just rotated in works at once; such
refetches happen at most once per :data:`REFETCH_FLOOR_SECONDS`, so forged callbacks
cannot make us hammer fal's key endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from reelforge.errors import CallbackRejectedError, ServiceUnavailableError

__all__ = [
    "DEFAULT_JWKS_TTL_SECONDS",
    "DEFAULT_JWKS_URL",
    "DEFAULT_TOLERANCE_SECONDS",
    "REFETCH_FLOOR_SECONDS",
    "FalWebhookVerifier",
    "signed_message",
]

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
# fal's own example caches the key set for a day; a rotation is caught sooner by the
# refetch on an unknown signature.
DEFAULT_JWKS_TTL_SECONDS = 24 * 3600.0
DEFAULT_TOLERANCE_SECONDS = 300.0
REFETCH_FLOOR_SECONDS = 60.0
_SIGNATURE_BYTES = 64


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs for one webhook delivery."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((request_id, user_id, timestamp, digest)).encode()


class FalWebhookVerifier:
    """fal's webhook signatures, checked against its JWKS (fetched with ``client``,
    which must carry no credentials of ours)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        jwks_url: str = DEFAULT_JWKS_URL,
        ttl_seconds: float = DEFAULT_JWKS_TTL_SECONDS,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.jwks_url = jwks_url
        self._ttl = ttl_seconds
        self._tolerance = tolerance_seconds
        self._clock = clock
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None
        self._refetched_at = float("-inf")  # the last refetch a failed check caused
        self._lock = asyncio.Lock()
        self.fetches = 0
        """JWKS fetches made (for tests and logs)."""

    async def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return if ``body`` carries fal's valid signature; raise otherwise."""
        lower = {k.lower(): v for k, v in headers.items()}
        request_id = lower.get("x-fal-webhook-request-id", "")
        user_id = lower.get("x-fal-webhook-user-id")
        timestamp = lower.get("x-fal-webhook-timestamp", "")
        signature_hex = lower.get("x-fal-webhook-signature", "")
        if not (request_id and user_id is not None and timestamp.isdigit() and signature_hex):
            raise CallbackRejectedError("the webhook carries no fal signature headers")
        if abs(self._clock() - int(timestamp)) > self._tolerance:
            raise CallbackRejectedError("the webhook timestamp is outside the allowed window")
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise CallbackRejectedError("the webhook signature is not hex") from None
        if len(signature) != _SIGNATURE_BYTES:
            raise CallbackRejectedError("the webhook signature is not an ED25519 signature")
        message = signed_message(request_id, user_id, timestamp, body)
        keys, fresh = await self._current_keys()
        if _verifies(keys, signature, message):
            return
        # Perhaps signed with a key fal has just rotated in.
        refetched = not fresh and await self._refetch_after_failure()
        if refetched and _verifies(self._keys, signature, message):
            return
        raise CallbackRejectedError("the webhook signature does not verify with fal's keys")

    async def _current_keys(self) -> tuple[list[Ed25519PublicKey], bool]:
        """The cached keys, fetched first if there are none or they are stale; and
        whether they were fetched just now."""
        async with self._lock:
            stale = self._fetched_at is None or self._clock() - self._fetched_at > self._ttl
            if stale:
                await self._fetch()
            return self._keys, stale

    async def _refetch_after_failure(self) -> bool:
        """Fetch the JWKS again (a key may have been rotated in) unless a failed check
        did so within the floor; whether it fetched."""
        async with self._lock:
            now = self._clock()
            if now - self._refetched_at < REFETCH_FLOOR_SECONDS:
                return False
            self._refetched_at = now
            await self._fetch()
            return True

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            response = await self._client.get(self.jwks_url)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(
                f"cannot check the webhook signature now (fal's keys: {type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"cannot check the webhook signature now (fal's keys: HTTP {response.status_code})"
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        keys = _ed25519_keys(document)
        if not keys:
            raise ServiceUnavailableError(
                "cannot check the webhook signature now (fal's key set has no ED25519 key)"
            )
        self._keys = keys
        self._fetched_at = self._clock()


def _ed25519_keys(document: object) -> list[Ed25519PublicKey]:
    entries = document.get("keys") if isinstance(document, dict) else None
    keys = []
    for entry in entries if isinstance(entries, list) else []:
        # fal's own example reads only ``x``: a key that says it is something else
        # is skipped, one that says nothing is tried.
        if not isinstance(entry, dict) or not isinstance(entry.get("x"), str):
            continue
        if entry.get("kty", "OKP") != "OKP" or entry.get("crv", "Ed25519") != "Ed25519":
            continue
        x = entry["x"]
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            continue  # a malformed key verifies nothing; the others still may
    return keys


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
