"""Chaos: kill workers and the API (and restart Redis) while videos are in flight.

Proves three things on the real service (child processes, real Redis, the OpenAI
emulator as the provider, or with ``vendors=True`` a route across the Runway, Luma,
Veo, fal and Replicate emulators, none of which takes an idempotency key; see
:mod:`tests.chaos_vendors`): no submitted video is lost, none stays stuck, and no
attempt creates more than one job at the provider.

With ``provider="local"`` the in-process renderer makes the videos and only the two
workers are killed: a job dies with its worker there, and that must count as a
worker restart, never as a provider failure (no provider errors, breaker closed,
every video completed).

``run_chaos`` is used by ``tests/integration/test_chaos.py``; ``scripts/chaos`` runs a
longer version through :func:`main`::

    .venv/bin/python -m tests.chaos --jobs 100 --seconds 120
    .venv/bin/python -m tests.chaos --vendors --jobs 100 --seconds 120
    .venv/bin/python -m tests.chaos --provider local --jobs 30 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import redis as sync_redis

from reelforge.keys import Keys
from reelforge.settings import ProviderConfig, Settings
from tests.chaos_vendors import (
    VIDEO_LENGTHS,
    VendorFleet,
    orphaned_by_a_kill,
    start_vendor_fleet,
)
from tests.conftest import delete_prefix
from tests.emulators.openai_videos import (
    Emulator,
    EmulatorConfig,
    EmulatorState,
    running_emulator,
)
from tests.redis_ha import SentinelTopology, sentinel_topology
from tests.s3server import S3Server, running_s3_server
from tests.service import free_port, service_env, spawn, stop

TERMINAL = frozenset({"completed", "failed", "cancelled"})
SETTLE_SECONDS = 90.0
# The local provider renders, transcodes and checks every video on this machine.
_SETTLE_SECONDS = {"emulator": SETTLE_SECONDS, "local": 180.0}
SUBMIT_GIVE_UP_SECONDS = 60.0


class _RecordingIdempotency(dict[tuple[str, str], str]):
    """The emulator's (route, Idempotency-Key) → job map, remembering every job a key
    ever created (a replay after the job was deleted would create another)."""

    def __init__(self) -> None:
        super().__init__()
        self.created: defaultdict[str, list[str]] = defaultdict(list)

    def __setitem__(self, key: tuple[str, str], value: str) -> None:
        self.created[key[1]].append(value)
        super().__setitem__(key, value)


@dataclass
class ChaosReport:
    jobs: int
    seconds: float
    seed: int
    provider: str = "emulator"
    kills: int = 0
    restarts: int = 0
    redis_restarts: int = 0
    s3_restarts: int = 0
    failovers: int = 0
    """Primaries SIGKILLed (the sentinels promoted the replica each time)."""
    failover_seconds: float = 0.0
    """From the kill until the sentinels named a writable new primary."""
    in_flight_at_failover: int = 0
    """Submitted videos not yet completed when the primary was killed."""
    bucket_problems: list[str] = field(default_factory=list)
    """Objects in the bucket that should not be there, or not so (object store runs)."""
    unexpected_exits: list[str] = field(default_factory=list)
    """Child processes that died without being killed (role and exit code)."""
    submitted: int = 0
    submit_retries: int = 0
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """Video id → error code of every failed video."""
    failure_details: dict[str, str] = field(default_factory=dict)
    stuck_details: dict[str, str] = field(default_factory=dict)
    """What saq and the record said of each stuck video (for the post-mortem)."""
    """Video id → ``stage at failure: message`` of every failed video."""
    cancelled: int = 0
    lost: list[str] = field(default_factory=list)
    """Submitted ids that no longer exist."""
    stuck: dict[str, str] = field(default_factory=dict)
    """Video id → ``status/stage`` of videos not terminal at the deadline."""
    duplicate_jobs: dict[str, int] = field(default_factory=dict)
    """Idempotency key → distinct provider jobs it created, where more than one."""
    resubmits: dict[str, int] = field(default_factory=dict)
    """Idempotency key → create requests, where more than one (deduplicated by key)."""
    extra_remote_jobs: dict[str, int] = field(default_factory=dict)
    """Video id → provider jobs beyond its recorded attempts, where any (orphans of a
    kill mid-submit, below, are not counted here)."""
    orphaned_by_kills: dict[str, str] = field(default_factory=dict)
    """Video id → ``vendor:job`` a worker killed during the submit call left behind
    (vendors without idempotency keys; see :func:`tests.chaos_vendors.orphaned_by_a_kill`)."""
    worker_kills_at: list[float] = field(default_factory=list)
    """Wall-clock times of the workers' SIGKILLs."""
    vendor_jobs: dict[str, int] = field(default_factory=dict)
    """Vendor provider → jobs its emulator accepted (``vendors=True``)."""
    attempts: Counter[int] = field(default_factory=Counter)
    """Attempts per video → how many videos."""
    provider_errors: dict[str, int] = field(default_factory=dict)
    """``provider|code`` → count, from the service's shared metrics."""
    breakers: dict[str, str] = field(default_factory=dict)
    """Provider → circuit state at the end."""
    worker_restarts: int = 0
    """Sum over the videos of their records' ``worker_restarts``."""
    elapsed: float = 0.0
    settle_seconds: float = 0.0

    @property
    def failure_codes(self) -> Counter[str]:
        return Counter(self.failed.values())

    def summary(self) -> str:
        lines = [
            f"chaos report ({self.provider} provider, seed {self.seed}, "
            f"{self.seconds:g} s of chaos, "
            f"{self.elapsed:.1f} s in all, settled in {self.settle_seconds:.1f} s)",
            f"  jobs:                {self.jobs} (submitted {self.submitted}, "
            f"{self.submit_retries} submit retries)",
            f"  kills:               {self.kills}",
            f"  restarts:            {self.restarts}",
            f"  redis restarts:      {self.redis_restarts}",
            f"  s3 restarts:         {self.s3_restarts}",
            f"  bucket problems:     {len(self.bucket_problems)} {self.bucket_problems[:5] or ''}",
            f"  unexpected exits:    {len(self.unexpected_exits)} {self.unexpected_exits or ''}",
            f"  completed:           {self.completed}",
            f"  failed:              {len(self.failed)} {dict(self.failure_codes) or ''}",
            *(
                f"    {vid}: {self.failed[vid]} ({why})"
                for vid, why in self.failure_details.items()
            ),
            f"  cancelled:           {self.cancelled}",
            f"  lost:                {len(self.lost)} {self.lost or ''}",
            f"  stuck:               {len(self.stuck)} {self.stuck or ''}",
            *[f"    {video_id}: {why}" for video_id, why in self.stuck_details.items()],
            f"  duplicate jobs:      {len(self.duplicate_jobs)} {self.duplicate_jobs or ''}",
            f"  resubmits (deduplicated by key): {len(self.resubmits)} {self.resubmits or ''}",
            f"  extra remote jobs:   {len(self.extra_remote_jobs)} {self.extra_remote_jobs or ''}",
            *([f"  jobs per vendor:     {self.vendor_jobs}"] if self.vendor_jobs else []),
            *(
                [f"  orphaned by a kill mid-submit: {self.orphaned_by_kills}"]
                if self.vendor_jobs
                else []
            ),
            f"  attempts per video:  {dict(sorted(self.attempts.items()))}",
            f"  provider errors:     {sum(self.provider_errors.values())} "
            f"{self.provider_errors or ''}",
            f"  breakers:            {self.breakers}",
            f"  worker restarts:     {self.worker_restarts}",
        ]
        if self.failovers:
            lines.insert(
                5,
                f"  redis failovers:     {self.failovers} (primary SIGKILLed with "
                f"{self.in_flight_at_failover} videos in flight; new primary after "
                f"{self.failover_seconds:.1f} s)",
            )
        return "\n".join(lines)


class _Children:
    """The service's child processes, by role; restarts keep the API's port."""

    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        api_port: int,
        report: ChaosReport,
        role_env: dict[str, dict[str, str]] | None = None,
    ):
        self.env = env
        self.role_env = role_env or {}
        self.logs = logs
        self.api_port = api_port
        self.report = report
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str) -> None:
        if role == "api":
            args = ["serve", "--port", str(self.api_port), "--workers", "0"]
        else:
            args = ["worker"]
        env = {**self.env, **self.role_env.get(role, {})}
        self.procs[role] = spawn(args, env, self.logs / f"{role}.log")

    def kill(self, role: str) -> None:
        if role.startswith("worker"):
            self.report.worker_kills_at.append(time.time())
        stop(self.procs[role], signal.SIGKILL)
        self.report.kills += 1

    def restart(self, role: str) -> None:
        self.start(role)
        self.report.restarts += 1

    def revive(self) -> None:
        """Restart any child that exited without being killed, and note it."""
        for role, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None:
                self.report.unexpected_exits.append(f"{role} exited {code}")
                self.start(role)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                stop(proc, signal.SIGKILL)


async def _submit_during(
    submitting: Coroutine[Any, Any, list[str]], disrupting: Coroutine[Any, Any, None]
) -> list[str]:
    """Run the submissions while ``disrupting`` runs (kills, a failover); the ids once
    both are done. A disruption that fails stops the submissions too."""
    task = asyncio.create_task(submitting)
    try:
        await disrupting
        return await task
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _submit_all(
    client: httpx.AsyncClient,
    jobs: int,
    seed: int,
    pace: float,
    report: ChaosReport,
    lengths: tuple[int, ...] = (4,),
    size: str = "1280x720",
) -> list[str]:
    """Submit ``jobs`` videos (of ``lengths`` seconds in turn), each retried under its
    own Idempotency-Key until the API answers: a kill mid-request neither loses nor
    duplicates the video."""
    ids: list[str] = []
    for i in range(jobs):
        seconds = lengths[i % len(lengths)]
        body = {"prompt": _prompt(i), "duration_seconds": seconds, "size": size}
        headers = {"Idempotency-Key": f"chaos-{seed}-{i}"}
        give_up = time.monotonic() + SUBMIT_GIVE_UP_SECONDS
        while True:
            try:
                response = await client.post("/api/videos/generate", json=body, headers=headers)
                if response.status_code in (200, 201, 202):
                    ids.append(response.json()["id"])
                    break
                if response.status_code != 503:
                    raise AssertionError(f"submit {i}: {response.status_code} {response.text}")
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up:
                raise AssertionError(f"submit {i}: the API did not answer for 60 s")
            report.submit_retries += 1
            await asyncio.sleep(0.1)
        report.submitted += 1
        await asyncio.sleep(pace)
    return ids


def _prompt(i: int) -> str:
    return f"chaos {i}"


class _OwnedRedis:
    """An embedded Redis the run owns, restartable on the same port and data dir."""

    def __init__(self, data: Path) -> None:
        from reelforge.server import EmbeddedRedis

        self.data = data
        self.port = free_port()
        self.server: EmbeddedRedis | None = EmbeddedRedis(data, port=self.port)
        self.url = self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        from reelforge.server import EmbeddedRedis

        self.server = EmbeddedRedis(self.data, port=self.port)
        self.server.start()


async def _chaos(
    children: _Children,
    rng: random.Random,
    seconds: float,
    redis: _OwnedRedis | None,
    report: ChaosReport,
    *,
    roles: tuple[str, ...] = ("worker0", "worker1", "api"),
    pause: tuple[float, float] = (0.3, 2.5),
    s3: S3Server | None = None,
) -> None:
    """Kill a random one of ``roles`` every ``pause`` seconds (a random span) for
    ``seconds``; restart it at once. With ``redis``, also stop Redis once mid-run and
    start it again; with ``s3``, SIGKILL the object store once and start it again."""
    start = time.monotonic()
    end = start + seconds
    redis_at = start + seconds * rng.uniform(0.3, 0.5) if redis else None
    s3_at = start + seconds * rng.uniform(0.5, 0.7) if s3 else None
    while time.monotonic() < end:
        await asyncio.sleep(rng.uniform(*pause))  # the chaos schedule, by design
        children.revive()
        if s3 is not None and s3_at is not None and time.monotonic() >= s3_at:
            s3_at = None
            await asyncio.to_thread(s3.kill)
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # the store down for a moment
            await asyncio.to_thread(s3.start)
            report.s3_restarts += 1
            continue
        if redis is not None and redis_at is not None and time.monotonic() >= redis_at:
            redis_at = None
            redis.stop()
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # Redis down for a moment
            redis.start()
            report.redis_restarts += 1
            continue
        role = rng.choice(roles)
        children.kill(role)
        children.restart(role)
    children.revive()


async def _settle(
    client: httpx.AsyncClient, ids: list[str], children: _Children, report: ChaosReport
) -> dict[str, dict[str, Any]]:
    """Poll until every video is terminal (or gone), up to the provider's settle time."""
    final: dict[str, dict[str, Any]] = {}
    missing: set[str] = set()
    started = time.monotonic()
    deadline = started + _SETTLE_SECONDS[report.provider]
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        children.revive()
        still: list[str] = []
        for video_id in pending:
            try:
                response = await client.get(f"/api/videos/{video_id}")
            except httpx.TransportError:
                still.append(video_id)
                continue
            if response.status_code == 404:
                missing.add(video_id)
                continue
            if response.status_code != 200:
                still.append(video_id)
                continue
            video = response.json()
            final[video_id] = video
            if video["status"] not in TERMINAL:
                still.append(video_id)
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    report.settle_seconds = time.monotonic() - started
    report.lost = sorted(missing)
    for video_id in pending:
        video = final.get(video_id)
        report.stuck[video_id] = f"{video['status']}/{video['stage']}" if video else "unreadable"
    return final


async def run_chaos(
    *,
    jobs: int,
    seconds: float,
    seed: int,
    redis_restart: bool,
    workdir: Path,
    redis_url: str | None,
    vendors: bool = False,
    provider: Literal["emulator", "local"] = "emulator",
    object_store: bool = False,
) -> ChaosReport:
    """Run the service under chaos and report what became of every video.

    ``provider="local"``: the in-process renderer (3 s 640x360 videos), and only the
    two workers are killed, every 1.5-4 s. ``object_store``: the scale-out layout,
    each process with its own data directory, sharing only Redis and a SeaweedFS
    bucket, which is killed and restarted once mid-run; afterwards every object in
    the bucket is checked against the videos' records."""
    began = time.monotonic()
    local = provider == "local"
    report = ChaosReport(jobs=jobs, seconds=seconds, seed=seed, provider=provider)
    rng = random.Random(seed)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"chaos-{secrets.token_hex(4)}"
    owned = None
    if redis_restart or not redis_url:
        # An embedded Redis of our own (append-only file), restartable in place.
        owned = _OwnedRedis(workdir / "redis")
        url = owned.url
    else:
        url = redis_url

    children: _Children | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            emu, recorder, remote = await _emulated_remote(stack, job_seconds=1.0)
            providers = {"remote": remote}
            route: list[str] = []
            fleet: VendorFleet | None = None
            if vendors:
                fleet = await start_vendor_fleet(stack, workdir)
                providers, route = fleet.providers, fleet.route
            if local:
                providers = {"local": ProviderConfig(kind="local", poll_interval_seconds=0.2)}
            settings = Settings(
                data_dir=workdir / "data",
                redis_url=url,
                redis_prefix=prefix,
                providers=providers,
                default_provider=next(iter(providers)),
                default_route=route,
                # Local renders load the CPUs: a longer heartbeat keeps a busy worker
                # from being taken for a dead one (a kill is still found in seconds).
                job_heartbeat_seconds=4 if local else 2,
                sweep_interval_seconds=1.0,
                worker_heartbeat_seconds=0.5,
                retry_initial_seconds=0.05,
                retry_max_seconds=0.5,
            )
            extra_env = {"REELFORGE_DEFAULT_PROVIDER": next(iter(providers))}
            s3: S3Server | None = None
            role_env: dict[str, dict[str, str]] = {}
            if object_store:
                s3 = stack.enter_context(running_s3_server(workdir / "s3"))
                extra_env.update(bucket_env(s3, prefix))
                role_env = {
                    role: {"REELFORGE_DATA_DIR": str(workdir / role)}
                    for role in ("worker0", "worker1", "api")
                }
            env = service_env(settings, {**extra_env, **(fleet.env if fleet else {})})
            children = _Children(env, logs, free_port(), report, role_env)
            # The service goes before the emulators it talks to: a TLS server (fal)
            # would otherwise wait out asyncio's 30 s SSL shutdown on its live clients.
            stack.callback(children.kill_all)
            for role in ("worker0", "worker1", "api"):
                children.start(role)
            base = f"http://127.0.0.1:{children.api_port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                pace = seconds * 0.5 / max(jobs, 1)
                lengths = VIDEO_LENGTHS if vendors else (3,) if local else (4,)
                size = "640x360" if local else "1280x720"
                submitting = _submit_all(
                    client, jobs, seed, pace, report, lengths=lengths, size=size
                )
                disrupting = _chaos(
                    children,
                    rng,
                    seconds,
                    owned if redis_restart else None,
                    report,
                    roles=("worker0", "worker1") if local else ("worker0", "worker1", "api"),
                    pause=(1.5, 4.0) if local else (0.3, 2.5),
                    s3=s3,
                )
                ids = await _submit_during(submitting, disrupting)
                final = await _settle(client, ids, children, report)
            _tally(report, ids, final, recorder, emu.state.submits_by_key)
            if fleet is not None:
                _tally_vendor_jobs(report, ids, final, fleet)
            _tally_service(report, url, prefix, ids, list(providers))
            _explain_stuck(report, url, prefix)
            if report.stuck:  # where the workers wait, into their logs
                for role, proc in children.procs.items():
                    if role.startswith("worker") and proc.poll() is None:
                        proc.send_signal(signal.SIGUSR1)
                await asyncio.sleep(1.0)  # the dump is written by the child
            if s3 is not None:
                await _tally_bucket(report, s3, url, prefix, ids, final)
    finally:
        if children is not None:
            children.kill_all()
        with contextlib.suppress(Exception):
            delete_prefix(url, prefix)
        if owned is not None:
            owned.stop()
    report.elapsed = time.monotonic() - began
    return report


def bucket_env(s3: S3Server, prefix: str) -> dict[str, str]:
    """The storage settings of a run on a bucket of ``s3`` (under ``prefix``)."""
    return {
        **s3.storage_env("chaos", prefix),
        # A SeaweedFS restarting takes connections it answers only once its master
        # and volume server are back: give up on a request after seconds, not a minute.
        "REELFORGE_STORAGE__REQUEST_TIMEOUT_SECONDS": "5",
        # Raw results a kill or the outage left behind are swept each round.
        "REELFORGE_RETENTION_SWEEP_SECONDS": "1",
    }


async def _tally_bucket(
    report: ChaosReport,
    s3: S3Server,
    url: str,
    prefix: str,
    ids: list[str],
    final: dict[str, dict[str, Any]],
) -> None:
    """Every object must be a whole file a completed video lists (same size), and no
    raw result may outlive its video: no half file, no orphan."""
    from reelforge.storage.s3 import S3Storage

    store = S3Storage(s3.storage_settings("chaos", prefix))
    try:
        stored = {key: await store.stat(key) for key in await store.list_keys("videos")}
        expected: dict[str, int] = {}
        keys = Keys(prefix)
        client = sync_redis.Redis.from_url(url, decode_responses=True)
        try:
            for video_id in ids:
                if (final.get(video_id) or {}).get("status") == "completed":
                    files = json.loads(client.hget(keys.video(video_id), "files") or "[]")
                    for entry in files:
                        expected[f"videos/{video_id}/{entry['filename']}"] = int(entry["bytes"])
                if await _outlives(store, f"raw/{video_id}"):
                    report.bucket_problems.append(f"raw/{video_id} outlived the video")
        finally:
            client.close()
        for key, info in stored.items():
            if key not in expected:
                report.bucket_problems.append(f"{key}: no completed video lists it")
            elif info is None or info.size != expected[key]:
                size = None if info is None else info.size
                report.bucket_problems.append(f"{key}: {size} bytes, not {expected[key]}")
        for key in sorted(set(expected) - set(stored)):
            report.bucket_problems.append(f"{key}: listed but not stored")
    finally:
        await store.aclose()


async def _outlives(store: Any, prefix: str, within: float = 15.0) -> bool:
    """Whether objects stay under ``prefix`` past the next sweeps (a worker killed as
    its video ended leaves the raw result to the round that follows)."""
    deadline = time.monotonic() + within
    while await store.list_keys(prefix):
        if time.monotonic() > deadline:
            return True
        await asyncio.sleep(0.5)
    return False


async def _emulated_remote(
    stack: contextlib.AsyncExitStack, *, job_seconds: float
) -> tuple[Emulator, _RecordingIdempotency, ProviderConfig]:
    """The OpenAI emulator (recording every job each key created) as provider "remote"."""
    emu = await stack.enter_async_context(
        running_emulator(EmulatorConfig(job_seconds=job_seconds, poll_after_ms=50))
    )
    recorder = _RecordingIdempotency()
    emu.state.idempotency = recorder
    remote = ProviderConfig(
        kind="openai", base_url=emu.base_url, poll_interval_seconds=0.1, timeout_seconds=2
    )
    return emu, recorder, remote


async def run_failover(*, jobs: int, workdir: Path, seed: int = 0) -> ChaosReport:
    """Redis failover mid-run: a primary, a replica and three sentinels
    (:mod:`tests.redis_ha`); the API and two workers reach Redis only through the
    sentinels. ``jobs`` videos are submitted one after another; once about half are
    in and some are at the provider, the primary is SIGKILLed and the sentinels
    promote the replica. Nothing else is killed."""
    began = time.monotonic()
    report = ChaosReport(jobs=jobs, seconds=0, seed=seed)
    prefix = f"failover-{secrets.token_hex(4)}"
    children: _Children | None = None
    try:
        with sentinel_topology(workdir / "redis-ha") as ha:
            async with contextlib.AsyncExitStack() as stack:
                # Jobs long enough at the provider that the failover finds many running.
                emu, recorder, remote = await _emulated_remote(stack, job_seconds=3.0)
                settings = Settings(
                    data_dir=workdir / "data",
                    redis_url=ha.url,
                    redis_prefix=prefix,
                    providers={"remote": remote},
                    default_provider="remote",
                    job_heartbeat_seconds=2,
                    sweep_interval_seconds=1.0,
                    worker_heartbeat_seconds=0.5,
                    retry_initial_seconds=0.05,
                    retry_max_seconds=0.5,
                )
                logs = workdir / "logs"
                logs.mkdir(parents=True, exist_ok=True)
                env = service_env(settings, {"REELFORGE_DEFAULT_PROVIDER": "remote"})
                children = _Children(env, logs, free_port(), report)
                for role in ("worker0", "worker1", "api"):
                    children.start(role)
                base = f"http://127.0.0.1:{children.api_port}"
                async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                    ids = await _submit_during(
                        _submit_all(client, jobs, seed, 0.15, report, lengths=(4,)),
                        _fail_over_when_busy(ha, emu.state, jobs, report),
                    )
                    final = await _settle(client, ids, children, report)
                _tally(report, ids, final, recorder, emu.state.submits_by_key)
                promoted = f"redis://127.0.0.1:{ha.replica_port}/0"
                _tally_service(report, promoted, prefix, ids, ["remote"])
    finally:
        if children is not None:
            children.kill_all()
    report.elapsed = time.monotonic() - began
    return report


async def _fail_over_when_busy(
    ha: SentinelTopology, provider: EmulatorState, jobs: int, report: ChaosReport
) -> None:
    """SIGKILL the primary once half the videos are submitted and three are at the
    provider; return when the sentinels have promoted the replica."""
    deadline = time.monotonic() + SUBMIT_GIVE_UP_SECONDS
    while report.submitted < jobs // 2 or len(provider.jobs) < 3:
        if time.monotonic() > deadline:
            raise AssertionError("the videos never got going: no failover to test")
        await asyncio.sleep(0.05)
    now = provider.clock()
    done = sum(1 for job in provider.jobs.values() if job.status_at(now)[0] == "completed")
    report.in_flight_at_failover = report.submitted - done
    killed = time.monotonic()
    await asyncio.to_thread(ha.kill_primary)
    await asyncio.to_thread(ha.wait_for_failover)
    report.failover_seconds = time.monotonic() - killed
    report.failovers += 1


def _tally(
    report: ChaosReport,
    ids: list[str],
    final: dict[str, dict[str, Any]],
    recorder: _RecordingIdempotency,
    submits_by_key: Counter[str],
) -> None:
    for video_id in ids:
        video = final.get(video_id)
        if video is None or video_id in report.stuck:
            continue
        if video["status"] == "completed":
            report.completed += 1
        elif video["status"] == "failed":
            error = video.get("error") or {}
            report.failed[video_id] = error.get("code") or "no code"
            attempts = video.get("attempts") or []
            report.failure_details[video_id] = f"{len(attempts)} attempts, {error.get('message')}"
        elif video["status"] == "cancelled":
            report.cancelled += 1
        report.attempts[len(video.get("attempts") or [])] += 1
    for key, created in recorder.created.items():
        if len(set(created)) > 1:
            report.duplicate_jobs[key] = len(set(created))
    for key, count in submits_by_key.items():
        if count > 1:
            report.resubmits[key] = count
    # Every provider job, by the video its key names ("<video_id>-<attempt>").
    per_video: Counter[str] = Counter()
    for key, created in recorder.created.items():
        per_video[key.rsplit("-", 1)[0]] += len(set(created))
    for video_id, count in per_video.items():
        video = final.get(video_id)
        attempts = len((video or {}).get("attempts") or [])
        if video is not None and count > attempts:
            report.extra_remote_jobs[video_id] = count - attempts


def _explain_stuck(report: ChaosReport, url: str, prefix: str) -> None:
    """For each stuck video: its saq jobs (status, attempts, scheduling) and where
    they sit in saq's lists, and the record's turn claims."""
    keys = Keys(prefix)
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    try:
        for video_id in report.stuck:
            parts = []
            for queue, function in (("generate", "generate_video"), ("process", "process_video")):
                name = keys.queue(queue)
                job_id = f"saq:job:{name}:{function}:{video_id}"
                raw = client.get(job_id)
                job = json.loads(raw) if raw else {}
                score = client.zscore(f"saq:{name}:incomplete", job_id)
                queued = job_id in client.lrange(f"saq:{name}:queued", 0, -1)
                active = job_id in client.lrange(f"saq:{name}:active", 0, -1)
                parts.append(
                    f"{queue}: status={job.get('status')} attempts={job.get('attempts')} "
                    f"touched={job.get('touched')} incomplete={score} queued={queued} "
                    f"active={active} abort_key={client.exists('saq:abort:' + job_id)}"
                )
            record = client.hgetall(keys.video(video_id))
            turns = {k: v for k, v in record.items() if k.startswith("turn")}
            parts.append(f"record: stage={record.get('stage')} turns={turns}")
            report.stuck_details[video_id] = "; ".join(parts)
    finally:
        client.close()


def _tally_service(
    report: ChaosReport, url: str, prefix: str, ids: list[str], providers: list[str]
) -> None:
    """What the service itself recorded: provider errors, breakers, worker restarts."""
    keys = Keys(prefix)
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    try:
        errors = client.hgetall(keys.metric("provider_errors"))
        report.provider_errors = {k: int(v) for k, v in errors.items() if int(v)}
        for name in providers:
            report.breakers[name] = client.hget(keys.breaker(name), "state") or "closed"
        for video_id in ids:
            report.worker_restarts += int(client.hget(keys.video(video_id), "worker_restarts") or 0)
    finally:
        client.close()


def _tally_vendor_jobs(
    report: ChaosReport, ids: list[str], final: dict[str, dict[str, Any]], fleet: VendorFleet
) -> None:
    """Vendors without keys: every job the emulators accepted, by the video's unique
    prompt, against the attempts the video recorded."""
    for i, video_id in enumerate(ids):
        jobs = fleet.jobs_for(_prompt(i))
        attempts = (final.get(video_id) or {}).get("attempts") or []
        extra = len(jobs) - len(attempts)
        if extra > 0:
            orphans = orphaned_by_a_kill(jobs, attempts, report.worker_kills_at)[:extra]
            if orphans:
                report.orphaned_by_kills[video_id] = ", ".join(
                    f"{job.vendor}:{job.id}" for job in orphans
                )
            if extra > len(orphans):
                report.extra_remote_jobs[video_id] = extra - len(orphans)
        if len(jobs) > 1:
            report.resubmits[video_id] = len(jobs)
    report.vendor_jobs = fleet.jobs_by_vendor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None, help="random by default")
    parser.add_argument(
        "--redis-restart",
        action="store_true",
        help="own an embedded Redis and restart it once mid-run",
    )
    parser.add_argument(
        "--vendors",
        action="store_true",
        help="route across the Runway, Luma, Veo, fal and Replicate emulators "
        "instead of the OpenAI one",
    )
    parser.add_argument(
        "--provider",
        choices=["emulator", "local"],
        default="emulator",
        help="local: the in-process renderer, killing only the two workers",
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        help="primary, replica and three sentinels; SIGKILL the primary once mid-run "
        "(--jobs videos; nothing else is killed, --seconds is unused)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis to use without --redis-restart (default: REDIS_URL, else an embedded one)",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    with tempfile.TemporaryDirectory(prefix="reelforge-chaos-") as tmp:
        if args.failover:
            report = asyncio.run(run_failover(jobs=args.jobs, workdir=Path(tmp), seed=seed))
            print(report.summary())
            ok = report.completed == report.jobs and not report.extra_remote_jobs
            ok = ok and not (report.duplicate_jobs or report.unexpected_exits)
            return 0 if ok and not report.worker_restarts else 1
        report = asyncio.run(
            run_chaos(
                jobs=args.jobs,
                seconds=args.seconds,
                seed=seed,
                redis_restart=args.redis_restart,
                workdir=Path(tmp),
                redis_url=args.redis_url,
                vendors=args.vendors,
                provider=args.provider,
            )
        )
    print(report.summary())
    ok = not (
        report.lost
        or report.stuck
        or report.duplicate_jobs
        or report.extra_remote_jobs
        or report.unexpected_exits
    )
    if args.vendors:  # every vendor took part, and none was left with its circuit open
        ok = ok and all(report.vendor_jobs.values()) and set(report.breakers.values()) == {"closed"}
    if args.provider == "local":  # a dead worker is never the provider's failure
        ok = ok and report.completed == report.jobs and not report.provider_errors
        ok = ok and set(report.breakers.values()) == {"closed"}
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
