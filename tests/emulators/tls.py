"""Serving an emulator over TLS on 127.0.0.1, for SDKs that only speak ``https://``
(fal-client): a throwaway CA (``trustme``) issues the certificate, and clients trust
the CA through ``SSL_CERT_FILE``."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import trustme
from fastapi import FastAPI

from tests.emulators.loopback import serve_on_loopback

__all__ = ["issue_certificates", "serve_tls"]


def issue_certificates(directory: Path, name: str = "fal") -> tuple[Path, Path, Path]:
    """A fresh CA and a 127.0.0.1 certificate: (ca.pem, cert.pem, key.pem)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = (
        directory / f"{name}-ca.pem",
        directory / f"{name}-cert.pem",
        directory / f"{name}-key.pem",
    )
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.cert_chain_pems[0].write_to_path(str(paths[1]))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(paths[1]), append=True)
    cert.private_key_pem.write_to_path(str(paths[2]))
    return paths


@contextlib.asynccontextmanager
async def serve_tls(app: FastAPI, directory: Path) -> AsyncIterator[tuple[str, Path]]:
    """Serve ``app`` over TLS in this event loop; yields ``("127.0.0.1:PORT", ca_file)``,
    the CA written under ``directory``."""
    ca_file, cert_file, key_file = issue_certificates(directory)
    async with serve_on_loopback(
        app,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
    ) as port:
        yield f"127.0.0.1:{port}", ca_file
