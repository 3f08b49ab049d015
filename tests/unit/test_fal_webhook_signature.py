"""fal webhook signatures (ED25519 over request id, user id, timestamp and the body's
SHA-256, keys from a JWKS), checked by :class:`FalWebhookVerifier`.

The JWKS is served through httpx's MockTransport (the wire is faked, not the code),
and the signed message is spelled out here as fal documents it, independently of
the emulator's signer, so both cannot be wrong the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reelforge.errors import CallbackRejectedError, ServiceUnavailableError
from reelforge.providers.fal_webhooks import REFETCH_FLOOR_SECONDS, FalWebhookVerifier

JWKS_URL = "https://keys.example/.well-known/jwks.json"
NOW = 1_767_000_000
BODY = json.dumps({"request_id": "req-1", "status": "OK", "payload": {"video": {}}}).encode()


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


class FakeJwks:
    """A JWKS endpoint whose key set the test changes; counts fetches."""

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        assert "authorization" not in request.headers  # the key set is public
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(200, json={"keys": [_jwk(k) for k in self.keys]})


def _jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def signed(
    key: Ed25519PrivateKey, body: bytes = BODY, *, timestamp: int = NOW, user_id: str = "u-1"
) -> dict[str, str]:
    message = f"req-1\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return {
        "X-Fal-Webhook-Request-Id": "req-1",
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": str(timestamp),
        "X-Fal-Webhook-Signature": key.sign(message).hex(),
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def jwks(key: Ed25519PrivateKey) -> FakeJwks:
    return FakeJwks(key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(jwks: FakeJwks, clock: Clock) -> AsyncIterator[FalWebhookVerifier]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(jwks.handler)) as client:
        yield FalWebhookVerifier(client, jwks_url=JWKS_URL, ttl_seconds=3600, clock=clock)


async def test_a_webhook_signed_with_a_published_key_is_accepted(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks
) -> None:
    await verifier.verify(signed(key), BODY)
    await verifier.verify(signed(key, user_id=""), BODY)  # the user id is signed as it comes
    assert jwks.fetches == 1  # cached


async def test_a_tampered_body_is_refused(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(CallbackRejectedError) as refused:
        await verifier.verify(signed(key), BODY.replace(b'"OK"', b'"ERROR"'))
    assert refused.value.code == "invalid_signature"


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_timestamp_outside_five_minutes_is_refused_even_when_signed(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, skew: int
) -> None:
    with pytest.raises(CallbackRejectedError, match="window"):
        await verifier.verify(signed(key, timestamp=NOW + skew), BODY)


async def test_a_timestamp_within_the_window_is_accepted(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey
) -> None:
    await verifier.verify(signed(key, timestamp=NOW - 299), BODY)


@pytest.mark.parametrize(
    "drop",
    [
        "X-Fal-Webhook-Request-Id",
        "X-Fal-Webhook-User-Id",
        "X-Fal-Webhook-Timestamp",
        "X-Fal-Webhook-Signature",
    ],
)
async def test_a_webhook_without_each_signature_header_is_refused(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks, drop: str
) -> None:
    headers = {k: v for k, v in signed(key).items() if k != drop}
    with pytest.raises(CallbackRejectedError):
        await verifier.verify(headers, BODY)
    assert jwks.fetches == 0  # refused before any key is needed


@pytest.mark.parametrize("signature", ["zz" * 64, "ab" * 10])
async def test_a_signature_that_is_not_64_hex_bytes_is_refused(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, signature: str
) -> None:
    headers = {**signed(key), "X-Fal-Webhook-Signature": signature}
    with pytest.raises(CallbackRejectedError):
        await verifier.verify(headers, BODY)


async def test_an_unknown_key_is_refused_and_refetches_the_jwks_at_most_once_per_floor(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks, clock: Clock
) -> None:
    await verifier.verify(signed(key), BODY)
    stranger = Ed25519PrivateKey.generate()
    for _ in range(3):
        with pytest.raises(CallbackRejectedError, match="does not verify"):
            await verifier.verify(signed(stranger), BODY)
    assert jwks.fetches == 2  # the first fetch, and one refetch for the unknown key

    clock.now += REFETCH_FLOOR_SECONDS
    with pytest.raises(CallbackRejectedError):
        await verifier.verify(signed(stranger, timestamp=int(clock.now)), BODY)
    assert jwks.fetches == 3


async def test_a_rotated_key_is_found_by_refetching_the_jwks(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks
) -> None:
    await verifier.verify(signed(key), BODY)
    rotated = Ed25519PrivateKey.generate()
    jwks.keys = [rotated]  # fal rotated its signing key

    await verifier.verify(signed(rotated), BODY)
    assert jwks.fetches == 2
    with pytest.raises(CallbackRejectedError):  # the retired key verifies no more
        await verifier.verify(signed(key), BODY)


async def test_the_key_set_is_fetched_again_when_its_ttl_runs_out(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks, clock: Clock
) -> None:
    await verifier.verify(signed(key), BODY)
    clock.now += 3601
    await verifier.verify(signed(key, timestamp=int(clock.now)), BODY)
    assert jwks.fetches == 2


async def test_an_unreachable_jwks_is_a_503_not_a_refusal(
    verifier: FalWebhookVerifier, key: Ed25519PrivateKey, jwks: FakeJwks
) -> None:
    jwks.down = True
    with pytest.raises(ServiceUnavailableError):
        await verifier.verify(signed(key), BODY)


async def test_keys_that_are_not_ed25519_are_skipped(key: Ed25519PrivateKey, clock: Clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        keys = [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "OKP", "x": "!!"}, _jwk(key)]
        return httpx.Response(200, json={"keys": keys})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        verifier = FalWebhookVerifier(client, jwks_url=JWKS_URL, clock=clock)
        await verifier.verify(signed(key), BODY)


async def test_a_key_set_without_an_ed25519_key_is_a_503(clock: Clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        verifier = FalWebhookVerifier(client, jwks_url=JWKS_URL, clock=clock)
        with pytest.raises(ServiceUnavailableError):
            await verifier.verify(signed(Ed25519PrivateKey.generate()), BODY)
