"""Test doubles, named Fake…, used by the service tests.

``FakeRemoteProvider`` behaves like a remote generation service: its jobs live in a
directory, not in the worker that submitted them, so a job outlives a killed worker
exactly as a real back-end's would. It records every submit, so tests can assert a
video was submitted (and paid for) exactly once. Configure it as a provider kind:

    REELFORGE_PROVIDERS__SLOW__KIND=tests.fakes:FakeRemoteProvider
    REELFORGE_PROVIDERS__SLOW__OPTIONS='{"state_dir": "...", "clip": "...", "seconds": 3}'

``FakeGatedProvider`` holds every job at one call (``block_at``: ``submit``, ``poll`` or
``download``) until the test sets ``go``; ``reached`` is set once a job is held there,
so a test drives a video to an exact stage without sleeping. With ``redis_outage_at``
(a call's name) that call raises Redis' ConnectionError once, as a turn's next Redis
command would while Redis fails over. It lives in the worker's process: tests that
use it run the worker in their own (``running_service``) and reach the instance
through ``runtime.provider(name)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from pathlib import Path

import redis.exceptions

from reelforge.errors import RemoteJobLostError
from reelforge.models import GenerationRequest
from reelforge.providers.base import Capabilities, RemoteState, RemoteStatus
from reelforge.settings import ProviderConfig, Settings


class FakeRemoteProvider:
    def __init__(self, *, name: str, config: ProviderConfig, settings: Settings):
        self.name = name
        self.state_dir = Path(str(config.options["state_dir"]))
        self.clip = Path(str(config.options["clip"]))
        # Optional: what the first attempt of each video gets (e.g. a frozen clip).
        first = config.options.get("first_clip")
        self.first_clip = Path(str(first)) if first else None
        self.seconds = float(config.options.get("seconds", 2.0))
        self.price = config.price_per_second
        # Prompt limits, as a model of the catalogue would state them.
        limit = config.options.get("max_prompt_length")
        self.max_prompt_length = int(limit) if limit is not None else None
        self.negative_prompt = bool(config.options.get("negative_prompt", True))
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def capabilities(self) -> Capabilities:
        # It hands back a ready-made clip: the clip's frame rate, whatever was asked.
        return Capabilities(
            max_duration_seconds=60,
            cost_per_second=self.price,
            honours_fps=False,
            max_prompt_length=self.max_prompt_length,
            negative_prompt=self.negative_prompt,
        )

    def _job(self, remote_id: str) -> Path:
        return self.state_dir / f"{remote_id}.json"

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        with (self.state_dir / "submits.log").open("a") as log:
            log.write(idempotency_key + "\n")
        with (self.state_dir / "prompts.log").open("a") as log:
            sent = {"prompt": req.prompt, "negative_prompt": req.negative_prompt}
            log.write(json.dumps(sent) + "\n")
        remote_id = "fake_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        if not self._job(remote_id).exists():  # honours idempotency keys
            job = {"started": time.time(), "key": idempotency_key}
            self._job(remote_id).write_text(json.dumps(job))
        return remote_id

    async def poll(self, remote_id: str) -> RemoteStatus:
        path = self._job(remote_id)
        if not path.exists():
            raise RemoteJobLostError(f"no job {remote_id}")
        job = json.loads(path.read_text())
        if job.get("cancelled"):
            return RemoteStatus(RemoteState.CANCELLED)
        elapsed = time.time() - job["started"]
        if elapsed >= self.seconds:
            return RemoteStatus(RemoteState.SUCCEEDED, progress=100)
        return RemoteStatus(RemoteState.RUNNING, progress=int(100 * elapsed / self.seconds))

    async def download(self, remote_id: str, dest: Path) -> Path:
        job = json.loads(self._job(remote_id).read_text())
        first_attempt = job.get("key", "").endswith("-1")
        clip = self.first_clip if self.first_clip and first_attempt else self.clip
        shutil.copyfile(clip, dest)
        return dest

    async def cancel(self, remote_id: str) -> None:
        path = self._job(remote_id)
        if path.exists():
            job = json.loads(path.read_text())
            job["cancelled"] = True
            path.write_text(json.dumps(job))
            with (self.state_dir / "cancels.log").open("a") as log:
                log.write(remote_id + "\n")

    async def aclose(self) -> None:
        return None


def submitted_prompts(state_dir: Path) -> list[dict[str, str | None]]:
    """What each submit received: ``{prompt, negative_prompt}``, in order."""
    log = state_dir / "prompts.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def submits(state_dir: Path) -> list[str]:
    """Every idempotency key submitted so far, in order."""
    log = state_dir / "submits.log"
    return log.read_text().split() if log.exists() else []


class FakeGatedProvider:
    def __init__(self, *, name: str, config: ProviderConfig, settings: Settings):
        self.name = name
        self.clip = Path(str(config.options["clip"]))
        self.block_at = str(config.options.get("block_at", ""))
        self.redis_outage_at = str(config.options.get("redis_outage_at", ""))
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.interrupted: list[str] = []  # calls stopped while held at the gate

    def capabilities(self) -> Capabilities:
        return Capabilities(max_duration_seconds=60, honours_fps=False)

    async def _gate(self, call: str) -> None:
        if self.redis_outage_at == call:
            self.redis_outage_at = ""
            raise redis.exceptions.ConnectionError("Error 111 connecting to the old primary")
        if self.block_at != call:
            return
        self.reached.set()
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.interrupted.append(call)
            raise

    async def submit(self, req: GenerationRequest, *, idempotency_key: str) -> str:
        self.submitted.append(idempotency_key)
        await self._gate("submit")
        return "gate_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]

    async def poll(self, remote_id: str) -> RemoteStatus:
        if self.redis_outage_at == "poll":
            await self._gate("poll")
        if self.block_at == "poll" and not self.go.is_set():
            self.reached.set()
            return RemoteStatus(RemoteState.RUNNING, progress=10)
        return RemoteStatus(RemoteState.SUCCEEDED, progress=100)

    async def download(self, remote_id: str, dest: Path) -> Path:
        await self._gate("download")
        shutil.copyfile(self.clip, dest)
        return dest

    async def cancel(self, remote_id: str) -> None:
        self.cancelled.append(remote_id)

    async def aclose(self) -> None:
        return None


async def sleep_turning_cancel_into_timeout(seconds: float) -> None:
    """Sleep; a cancel meanwhile comes out as a ``TimeoutError`` and the task is no
    longer cancelling: what a cancel landing inside a library's timeout handling
    looks like (redis-py's pool wait, ``asyncio.timeout`` racing its deadline)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        raise TimeoutError from None
