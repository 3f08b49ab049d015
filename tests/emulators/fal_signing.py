"""How the fal emulator signs its webhooks: as fal does, with ED25519 keys it publishes
as a JWKS (docs.fal.ai/model-apis/model-endpoints/webhooks, "Verifying your webhook").

A key pair is generated when the emulator starts; ``GET /.well-known/jwks.json``
publishes the public halves (``kty: OKP``, ``crv: Ed25519``, ``x`` base64url). Each
webhook carries ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp`` and
``-Signature`` (hex), the signature over the request id, user id, timestamp and hex
SHA-256 of the body, joined by newlines. :meth:`WebhookSigner.rotate` starts signing
with a new key, as a key rotation at fal would.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["JWKS_PATH", "WebhookSigner"]

JWKS_PATH = "/.well-known/jwks.json"


def _jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig", "alg": "EdDSA"}


@dataclass
class WebhookSigner:
    """The emulator's signing keys: the newest signs; ``published`` are in the JWKS."""

    user_id: str = "emulator-user"
    keys: list[Ed25519PrivateKey] = field(default_factory=lambda: [Ed25519PrivateKey.generate()])
    published: int = 1
    """How many of the newest keys the JWKS lists."""

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False) -> None:
        """Sign with a fresh key from now on; the JWKS lists it (and, with
        ``keep_old``, the one before)."""
        self.keys.append(Ed25519PrivateKey.generate())
        self.published = 2 if keep_old else 1

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_jwk(key) for key in self.keys[-self.published :]]}

    def headers(
        self,
        request_id: str,
        body: bytes,
        *,
        key: Ed25519PrivateKey | None = None,
        timestamp: int | None = None,
    ) -> dict[str, str]:
        """The signature headers of one delivery (``key`` and ``timestamp`` default
        to the signing key and now; tests pass others to forge)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join((request_id, self.user_id, stamp, digest)).encode()
        signature = (key or self.signing_key).sign(message)
        return {
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": self.user_id,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": signature.hex(),
        }
