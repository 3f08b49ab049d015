"""The vendor emulators the chaos run routes across (``run_chaos(vendors=True)``).

Every vendor back-end goes through the same chaos: Runway, Luma, Veo (Gemini API),
fal (over TLS, as fal-client needs) and Replicate, none of which takes an idempotency
key. Each is limited to ``MAX_CONCURRENT_JOBS`` jobs at a time, so the route spills
over from one to the next and every vendor gets a share of the videos: 5 s videos
fit Luma, fal (Kling), Replicate (Seedance) and Runway; 8 s videos fit Veo and Runway.

Each emulator keeps the jobs it accepted (with their prompt and creation time) and
every request it served; a chaos video's prompt is unique, so the jobs of one video
are found across all vendors and held against the attempts the video recorded.

One extra job is the documented cost of a vendor without idempotency keys: a worker
killed *during* the submit call (the vendor made the job, the worker died before
storing its id) leaves an orphan, and the attempt is submitted again once its submit
claim lapses. :func:`orphaned_by_a_kill` recognises exactly that case, so anything else
still counts as an extra job.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelforge.settings import ProviderConfig
from tests.emulators.fal import FalConfig
from tests.emulators.fal import running_emulator as running_fal
from tests.emulators.luma import running_luma
from tests.emulators.openai_videos import EmulatorState, MediaCache
from tests.emulators.replicate import ReplicateConfig
from tests.emulators.replicate import running_emulator as running_replicate
from tests.emulators.runway import running_runway
from tests.emulators.vendor_common import VendorConfig
from tests.emulators.veo import running_veo

__all__ = [
    "CLAIM_SECONDS",
    "MAX_CONCURRENT_JOBS",
    "VIDEO_LENGTHS",
    "SeenJob",
    "VendorFleet",
    "orphaned_by_a_kill",
    "start_vendor_fleet",
]

VENDOR_KEY = "chaos-vendor-key"
TIMEOUT_SECONDS = 2.0
# The worker's submit claim for these providers (worker._claim_submit: two request
# timeouts and 5 s): a second submit of one attempt cannot come sooner.
CLAIM_SECONDS = 2 * TIMEOUT_SECONDS + 5
# How near a worker's kill must be to the vendor accepting a job to have cut the
# submit call short (the answer in flight, or the worker not yet storing the id).
KILL_WINDOW_SECONDS = 2.0
MAX_CONCURRENT_JOBS = 1
# Lengths in turn: every vendor's catalogue model takes one of them, and two 5 s videos
# to each 8 s one keep Luma and fal busy enough for Replicate (third for 5 s) to get some.
VIDEO_LENGTHS = (5, 5, 8)
# (provider name, catalogue model); the route is this order.
MODELS = {
    "luma": "ray-2",
    "fal": "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
    "replicate": "bytedance/seedance-1-pro",
    "veo": "veo-3.1-generate-preview",
    "runway": "gen4.5",
}


@dataclass(frozen=True)
class SeenJob:
    """A job one emulator accepted."""

    vendor: str
    id: str
    created: float
    """Wall-clock time the vendor accepted it."""
    polled: bool
    """Whether the service ever asked about it (polled, downloaded, cancelled)."""


@dataclass
class VendorFleet:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    route: list[str] = field(default_factory=list)
    states: dict[str, EmulatorState] = field(default_factory=dict)
    """Provider name → its emulator's state (jobs accepted per prompt)."""
    env: dict[str, str] = field(default_factory=dict)
    """What the service's processes need to reach them (the fal emulator's CA)."""

    def jobs_for(self, prompt: str) -> list[SeenJob]:
        """Every job the vendors accepted for ``prompt``, oldest first."""
        seen: list[SeenJob] = []
        for vendor, state in self.states.items():
            asked = " ".join(request.path for request in state.log)
            seen.extend(
                SeenJob(vendor, job.id, job.created, job.id in asked)
                for job in state.jobs.values()
                if job.prompt == prompt
            )
        return sorted(seen, key=lambda job: job.created)

    def jobs_by_vendor(self) -> dict[str, int]:
        return {name: sum(s.submits_by_prompt.values()) for name, s in self.states.items()}


def _config(**fields: object) -> VendorConfig:
    return VendorConfig(api_key=VENDOR_KEY, job_seconds=1.0, **fields)  # type: ignore[arg-type]


async def start_vendor_fleet(stack: contextlib.AsyncExitStack, workdir: Path) -> VendorFleet:
    """Start the five emulators (closed with ``stack``) and the providers for them."""
    media = MediaCache()  # renders shared with other runs: they depend only on size and length
    fleet = VendorFleet()
    urls: dict[str, str] = {}
    runway = await stack.enter_async_context(running_runway(_config(), media=media))
    luma = await stack.enter_async_context(running_luma(_config(), media=media))
    veo = await stack.enter_async_context(running_veo(_config(), media=media))
    replicate = await stack.enter_async_context(
        running_replicate(ReplicateConfig(api_key=VENDOR_KEY, job_seconds=1.0), media=media)
    )
    (workdir / "fal").mkdir(parents=True, exist_ok=True)
    fal = await stack.enter_async_context(
        running_fal(workdir / "fal", FalConfig(api_key=VENDOR_KEY, job_seconds=1.0), media=media)
    )
    fleet.env["SSL_CERT_FILE"] = str(fal.ca_file)
    for name, emu in {
        "runway": runway,
        "luma": luma,
        "veo": veo,
        "replicate": replicate,
        "fal": fal,
    }.items():
        urls[name] = emu.base_url
        fleet.states[name] = emu.state
    for name, model in MODELS.items():
        fleet.providers[name] = ProviderConfig(
            kind=name,
            base_url=urls[name],
            api_key=VENDOR_KEY,  # type: ignore[arg-type]
            poll_interval_seconds=0.1,
            timeout_seconds=TIMEOUT_SECONDS,
            max_concurrent_jobs=MAX_CONCURRENT_JOBS,
            options={"model": model},
        )
        fleet.route.append(name)
    return fleet


def orphaned_by_a_kill(
    jobs: list[SeenJob], attempts: list[dict[str, Any]], worker_kills: list[float]
) -> list[SeenJob]:
    """The jobs of one video that a worker killed mid-submit left behind.

    Such an orphan is no attempt's remote job and was never asked about; a worker died
    within :data:`KILL_WINDOW_SECONDS` of the vendor accepting it; and the same vendor's
    next job for the video came no sooner than the submit claim allows (a second run
    racing the first would submit at once: that is a duplicate, not an orphan).
    """
    remote_ids = [str(a.get("remote_id") or "") for a in attempts]
    orphans = []
    for i, job in enumerate(jobs):
        if job.polled or any(job.id in remote_id for remote_id in remote_ids):
            continue
        if not any(abs(at - job.created) <= KILL_WINDOW_SECONDS for at in worker_kills):
            continue
        later = [j for j in jobs[i + 1 :] if j.vendor == job.vendor]
        if later and later[0].created - job.created >= CLAIM_SECONDS - KILL_WINDOW_SECONDS:
            orphans.append(job)
    return orphans
