"""Fetching URLs that users gave us without letting them reach our own network (SSRF).

Used for input image URLs and for webhook targets; anything else that fetches a
client-given URL should go through :func:`guarded_request` too.

* Only ``http`` and ``https``, no credentials in the URL, at most 2048 characters.
* The host is resolved and **every** address it resolves to is checked: loopback,
  private, link-local (cloud metadata 169.254.169.254 included), CGNAT
  (100.64/10), multicast, unspecified, reserved, IPv6 unique-local (fd00:ec2::254
  included) and IPv4 inside IPv6 (mapped, 6to4, Teredo) are refused. Odd spellings
  (``0x7f000001``, ``2130706433``, ``0177.1``, ``localhost.``) resolve to the
  address they mean, so they are refused by the same check.
* The connection goes to the address that was checked (the URL is rewritten to
  it; ``Host`` and TLS SNI/certificate checks keep the name), so a second DNS
  answer cannot swap in another address (DNS rebinding).
* Redirects are followed by hand, each target checked again, at most 5.
* The body is read up to ``max_bytes``, all within ``timeout`` seconds.

``allow_hosts`` exempts named hosts from the address check (local testing).
The resolver is injectable so tests can make a name resolve anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from reelforge.errors import InvalidRequestError
from reelforge.settings import Settings

__all__ = [
    "FetchFailedError",
    "FetchPolicy",
    "GuardedResponse",
    "Resolver",
    "UnsafeURLError",
    "check_url_shape",
    "guarded_request",
    "is_forbidden_address",
    "policy_from_settings",
    "resolve_checked",
    "system_resolver",
]

MAX_URL_LENGTH: Final = 2048
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Every label a number (decimal, octal or 0x-hex): an address in disguise, as
# inet_aton reads it ("2130706433", "0x7f.1"); no real host name looks like this.
_NUMERIC_HOST: Final = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$")
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_METADATA: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeURLError(InvalidRequestError):
    """A URL we will not fetch: wrong scheme, or an address inside our network."""

    code = "unsafe_url"


class FetchFailedError(InvalidRequestError):
    """A URL we may fetch could not be fetched (unreachable, too slow, too large)."""

    code = "fetch_failed"


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    allow_hosts: frozenset[str] = frozenset()
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 10.0
    max_redirects: int = 5
    resolver: Resolver = field(default=system_resolver)


def policy_from_settings(settings: Settings, *, timeout: float | None = None) -> FetchPolicy:
    return FetchPolicy(
        allow_hosts=frozenset(h.rstrip(".").lower() for h in settings.fetch_allow_hosts),
        max_bytes=settings.fetch_max_bytes,
        timeout=settings.fetch_timeout_seconds if timeout is None else timeout,
    )


@dataclass(frozen=True, slots=True)
class GuardedResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str


def is_forbidden_address(address: Address) -> bool:
    """True for any address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        address in _METADATA
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or not address.is_global
    )


def _host_of(url: str, param: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an acceptable URL, or UnsafeURLError."""
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise UnsafeURLError(
            f"{param} must be a printable URL of at most 2048 characters", param=param
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURLError(f"{param} is not a valid URL", param=param) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"{param} must be an http or https URL", param=param)
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(f"{param} must not carry credentials", param=param)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURLError(f"{param} has no host", param=param)
    return scheme, host, port or (443 if scheme == "https" else 80)


def check_url_shape(url: str, *, param: str = "url") -> str:
    """Refuse at once what can never be fetched (scheme, credentials, length)."""
    _host_of(url, param)
    return url


async def resolve_checked(url: str, policy: FetchPolicy, *, param: str = "url") -> str:
    """The one address to connect to for ``url``, after checking all of them."""
    _, host, port = _host_of(url, param)
    if host in policy.allow_hosts:
        addresses = await _resolve(policy, host, port, param)
        return addresses[0]
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if is_forbidden_address(literal):
            raise UnsafeURLError(f"{param} points at a non-public address", param=param)
        return str(literal)
    if _NUMERIC_HOST.match(host):
        raise UnsafeURLError(f"{param} spells an address in an unusual way", param=param)
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise UnsafeURLError(f"{param} points at a non-public host", param=param)
    addresses = await _resolve(policy, host, port, param)
    for text in addresses:
        if is_forbidden_address(ipaddress.ip_address(text.split("%", 1)[0])):
            raise UnsafeURLError(f"{param} resolves to a non-public address", param=param)
    return addresses[0]


async def _resolve(policy: FetchPolicy, host: str, port: int, param: str) -> list[str]:
    try:
        async with asyncio.timeout(policy.timeout):
            addresses = await policy.resolver(host, port)
    except (OSError, UnicodeError, TimeoutError):
        addresses = []
    if not addresses:
        raise FetchFailedError(f"{param}: the host {host!r} does not resolve", param=param)
    return addresses


def _pinned(url: str, address: str) -> tuple[str, str]:
    """The URL with its host replaced by ``address``, and the original Host header."""
    parts = urlsplit(url)
    host_header = parts.netloc.rpartition("@")[2]
    ip_host = f"[{address}]" if ":" in address else address
    netloc = ip_host if parts.port is None else f"{ip_host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header


async def guarded_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    policy: FetchPolicy,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    follow_redirects: bool = True,
    param: str = "url",
) -> GuardedResponse:
    """One request to a client-given URL, with every guard above.

    ``client`` must not follow redirects itself; its own timeouts are kept, and the
    whole exchange (redirects included) is bounded by ``policy.timeout``.
    """
    try:
        async with asyncio.timeout(policy.timeout):
            return await _request(
                client, method, url, policy, headers, content, follow_redirects, param
            )
    except TimeoutError:
        raise FetchFailedError(
            f"{param}: no answer within {policy.timeout:g} s", param=param
        ) from None


async def _request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    policy: FetchPolicy,
    headers: dict[str, str] | None,
    content: bytes | None,
    follow_redirects: bool,
    param: str,
) -> GuardedResponse:
    current = url
    for _ in range(policy.max_redirects + 1):
        address = await resolve_checked(current, policy, param=param)
        target, host_header = _pinned(current, address)
        hostname = (urlsplit(current).hostname or "").rstrip(".")
        request = client.build_request(
            method,
            target,
            headers={**(headers or {}), "Host": host_header},
            content=content,
            extensions={"sni_hostname": hostname},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchFailedError(f"{param}: {type(exc).__name__}", param=param) from None
        try:
            if follow_redirects and response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FetchFailedError(f"{param}: a redirect without Location", param=param)
                current = urljoin(current, location)
                if method == "POST" and response.status_code == 303:
                    method, content = "GET", None
                continue
            body = await _read_limited(response, policy.max_bytes, param)
            return GuardedResponse(response.status_code, response.headers, body, current)
        finally:
            await response.aclose()
    raise FetchFailedError(f"{param}: more than {policy.max_redirects} redirects", param=param)


async def _read_limited(response: httpx.Response, limit: int, param: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchFailedError(f"{param}: the answer is larger than {limit} bytes", param=param)
    chunks: list[bytes] = []
    seen = 0
    try:
        async for chunk in response.aiter_bytes():
            seen += len(chunk)
            if seen > limit:
                raise FetchFailedError(
                    f"{param}: the answer is larger than {limit} bytes", param=param
                )
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FetchFailedError(f"{param}: {type(exc).__name__}", param=param) from None
    return b"".join(chunks)
