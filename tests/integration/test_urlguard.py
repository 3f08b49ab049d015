"""The SSRF guard (reelforge.net.urlguard) against real sockets on 127.0.0.1: what it
refuses never gets a connection; what it allows is fetched from the checked address."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from reelforge.media.render import encode_png
from reelforge.net.urlguard import (
    FetchFailedError,
    FetchPolicy,
    UnsafeURLError,
    guarded_request,
    is_forbidden_address,
)
from reelforge.settings import Settings
from tests.service import running_service, serve_app


@dataclass
class Listener:
    """TCP listeners on 127.0.0.1 (and ::1 when there is one) that count connections."""

    port: int
    connections: int = 0
    servers: list[asyncio.Server] = field(default_factory=list)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    state = Listener(port=0)

    async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.close()

    v4 = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    state.port = v4.sockets[0].getsockname()[1]
    state.servers.append(v4)
    with contextlib.suppress(OSError):
        state.servers.append(await asyncio.start_server(on_connect, "::1", state.port))
    try:
        yield state
    finally:
        for server in state.servers:
            server.close()
            await server.wait_closed()


REFUSED = [
    "http://127.0.0.1:{port}/",
    "http://[::1]:{port}/",
    "http://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://0x7f000001:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://localhost.:{port}/",
    "http://LOCALHOST:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://100.64.0.1/",
    "http://0.0.0.0:{port}/",
    "http://224.0.0.1/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_HELO",
    "ftp://127.0.0.1:{port}/",
    "http://user:secret@127.0.0.1:{port}/",
]


class FakeResolver:
    """Resolves names from a table (never asks DNS); counts what was asked."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.table.get(host, [])


@pytest.mark.parametrize("template", REFUSED)
async def test_a_url_to_our_own_network_is_refused_without_a_connection(
    template: str, listener: Listener
) -> None:
    url = template.format(port=listener.port)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsafeURLError) as refused:
            await guarded_request(client, "GET", url, FetchPolicy())
    assert refused.value.code == "unsafe_url"
    assert listener.connections == 0


async def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    resolver = FakeResolver({"intranet.example.com": ["10.0.0.7"]})
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsafeURLError):
            await guarded_request(
                client, "GET", "http://intranet.example.com/", FetchPolicy(resolver=resolver)
            )
    assert resolver.asked == ["intranet.example.com"]


async def test_every_resolved_address_is_checked_not_just_the_first() -> None:
    resolver = FakeResolver({"mixed.example.com": ["93.184.216.34", "127.0.0.1"]})
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnsafeURLError):
            await guarded_request(
                client, "GET", "http://mixed.example.com/", FetchPolicy(resolver=resolver)
            )


@contextlib.asynccontextmanager
async def site(routes: list[Route]) -> AsyncIterator[int]:
    async with serve_app(Starlette(routes=routes)) as url:
        yield int(url.rsplit(":", 1)[1])


async def test_a_redirect_to_loopback_is_refused_without_a_connection(listener: Listener) -> None:
    async def bounce(_: Request) -> Response:
        return RedirectResponse(f"http://127.0.0.1:{listener.port}/admin", status_code=302)

    async with site([Route("/", bounce)]) as port:
        # A public-looking name (allow-listed here, as it really lives on loopback).
        policy = FetchPolicy(
            allow_hosts=frozenset({"cdn.example.com"}),
            resolver=FakeResolver({"cdn.example.com": ["127.0.0.1"]}),
        )
        async with httpx.AsyncClient() as client:
            with pytest.raises(UnsafeURLError):
                await guarded_request(client, "GET", f"http://cdn.example.com:{port}/", policy)
    assert listener.connections == 0


async def test_an_allowed_name_is_fetched_from_the_checked_address_with_its_host() -> None:
    seen: list[str] = []

    async def page(request: Request) -> Response:
        seen.append(request.headers["host"])
        return Response(b"hello")

    async with site([Route("/", page)]) as port:
        policy = FetchPolicy(
            allow_hosts=frozenset({"images.example.com"}),
            resolver=FakeResolver({"images.example.com": ["127.0.0.1"]}),
        )
        async with httpx.AsyncClient() as client:
            answer = await guarded_request(
                client, "GET", f"http://images.example.com:{port}/", policy
            )
    assert answer.status_code == 200 and answer.content == b"hello"
    assert seen == [f"images.example.com:{port}"]


async def test_a_body_over_the_size_limit_is_refused() -> None:
    async def big(_: Request) -> Response:
        return Response(b"x" * 200_000)

    async with site([Route("/", big)]) as port:
        policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), max_bytes=100_000)
        async with httpx.AsyncClient() as client:
            with pytest.raises(FetchFailedError, match="larger than"):
                await guarded_request(client, "GET", f"http://127.0.0.1:{port}/", policy)


async def test_a_server_that_never_answers_runs_into_the_time_limit() -> None:
    release = asyncio.Event()

    async def stall(_: Request) -> Response:
        await release.wait()
        return Response(b"late")

    async with site([Route("/", stall)]) as port:
        policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), timeout=0.3)
        async with httpx.AsyncClient() as client:
            with pytest.raises(FetchFailedError, match="no answer"):
                await guarded_request(client, "GET", f"http://127.0.0.1:{port}/", policy)
        release.set()


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
        ("127.0.0.1", True),
        ("192.168.1.1", True),
        ("172.16.0.1", True),
        ("169.254.169.254", True),
        ("100.100.100.200", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:10.0.0.1", True),
        ("2002:7f00:1::", True),  # 6to4 around 127.0.0.1
        ("::", True),
        ("ff02::1", True),
    ],
)
def test_address_classification(address: str, forbidden: bool) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden


# -- through the API ---------------------------------------------------------------

# The issue's list, plus a name this machine resolves to its own (private) address.
API_REFUSED = [
    "http://127.0.0.1:{port}/",
    "http://[::1]:{port}/",
    "http://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0x7f000001:{port}/",
    "http://2130706433:{port}/",
    "http://localhost.:{port}/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_HELO",
    "http://" + socket.gethostname() + ":{port}/",
]


@pytest.fixture
def api_settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(update={"fetch_image_urls": True})


@pytest.mark.parametrize("template", API_REFUSED)
async def test_the_api_refuses_such_a_webhook_url_with_400(
    template: str, listener: Listener, api_settings: Settings
) -> None:
    url = template.format(port=listener.port)
    async with running_service(api_settings, workers=0) as svc:
        response = await svc.client.post(
            "/api/videos/generate",
            json={"prompt": "hooked", "duration_seconds": 1, "webhook_url": url},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsafe_url"
    assert response.json()["error"]["param"] == "webhook_url"
    assert listener.connections == 0


@pytest.mark.parametrize("template", API_REFUSED)
async def test_the_api_refuses_such_an_image_url_with_400(
    template: str, listener: Listener, api_settings: Settings
) -> None:
    url = template.format(port=listener.port)
    async with running_service(api_settings, workers=0) as svc:
        response = await svc.client.post(
            "/v1/videos", json={"prompt": "x", "input_reference": {"image_url": url}}
        )
    assert response.status_code == 400
    # Only data: and http(s) image URLs exist for /v1; other schemes are malformed.
    expected = "unsafe_url" if url.startswith("http") else "invalid_input_reference"
    assert response.json()["error"]["code"] == expected
    assert listener.connections == 0


def _png() -> bytes:
    return encode_png(np.full((90, 160, 3), (20, 160, 150), dtype=np.uint8))


async def test_an_allowed_image_url_is_fetched_and_decoded(api_settings: Settings) -> None:
    async def image(_: Request) -> Response:
        return Response(_png(), media_type="image/png")

    async def not_an_image(_: Request) -> Response:
        return Response(b"<html>surprise</html>", media_type="image/png")

    async with site([Route("/cat.png", image), Route("/fake.png", not_an_image)]) as port:
        settings = api_settings.model_copy(update={"fetch_allow_hosts": ["127.0.0.1"]})
        async with running_service(settings, workers=0) as svc:
            base = f"http://127.0.0.1:{port}"
            good = await svc.client.post(
                "/v1/videos",
                json={"prompt": "a cat", "input_reference": {"image_url": f"{base}/cat.png"}},
            )
            bad = await svc.client.post(
                "/v1/videos",
                json={"prompt": "a cat", "input_reference": {"image_url": f"{base}/fake.png"}},
            )
    assert good.status_code == 200, good.text
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_input_reference"


async def test_the_api_refuses_an_image_url_that_redirects_to_loopback(
    listener: Listener, api_settings: Settings
) -> None:
    async def bounce(_: Request) -> Response:
        return RedirectResponse(f"http://localhost:{listener.port}/", status_code=302)

    async with site([Route("/cat.png", bounce)]) as port:
        settings = api_settings.model_copy(update={"fetch_allow_hosts": ["127.0.0.1"]})
        async with running_service(settings, workers=0) as svc:
            url = f"http://127.0.0.1:{port}/cat.png"
            response = await svc.client.post(
                "/v1/videos", json={"prompt": "x", "input_reference": {"image_url": url}}
            )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsafe_url"
    assert listener.connections == 0


async def test_https_to_the_pinned_address_still_verifies_the_certificate_name() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("images.example.com")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    seen: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request.split(b"\r\n")[0].decode())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    resolver = FakeResolver(
        {"images.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]}
    )
    policy = FetchPolicy(
        allow_hosts=frozenset({"images.example.com", "other.example.com"}), resolver=resolver
    )
    try:
        async with httpx.AsyncClient(verify=client_context) as client:
            good = await guarded_request(
                client, "GET", f"https://images.example.com:{port}/a.png", policy
            )
            with pytest.raises(FetchFailedError):
                # Same address, a name the certificate does not cover: refused.
                await guarded_request(client, "GET", f"https://other.example.com:{port}/", policy)
    finally:
        server.close()
        await server.wait_closed()
    assert good.status_code == 200 and good.content == b"ok"
    assert seen == ["GET /a.png HTTP/1.1"]
