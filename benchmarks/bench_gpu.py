"""GPU back-end: time per denoising step, end to end, and reelforge's overhead.

For one model on the current device (CUDA if present, else CPU):

* **bare**: the pipeline called directly (``pipe(...)``, ``output_type="np"``), as a
  script with diffusers alone would;
* **through reelforge**: the same plan submitted to the GPU job queue in Redis and run
  by a :class:`~reelforge.gpu.worker.GpuWorker` in this process (queue hop, per-step
  hook and Redis writes, result bookkeeping), plus our MP4 encode, reported apart.

Overhead = (reelforge's generation time - bare) / bare; the goal is <= 2 %. Per-step
times come from the step hook's timestamps (denoising only). Medians of several runs.

Settings (environment): ``BENCH_GPU_MODEL`` (a diffusers pipeline directory; default:
the tiny random Wan of the tests, built now), ``BENCH_GPU_PIPELINE`` (default
``WanPipeline``), ``BENCH_GPU_DEVICE``, ``BENCH_GPU_SIZE`` (``WxH``), ``BENCH_GPU_FRAMES``,
``BENCH_GPU_STEPS``, ``BENCH_GPU_RUNS``; ``REDIS_URL`` (default 127.0.0.1:6379). Real
weights are not fetched by this benchmark: point ``BENCH_GPU_MODEL`` at a directory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as sync_redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reelforge.gpu.catalogue import GenerationPlan
from reelforge.gpu.jobs import GpuJobs, gpu_worker_window
from reelforge.keys import Keys
from reelforge.settings import ProviderConfig, Settings


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _plan(seed: int) -> GenerationPlan:
    width, height = (int(v) for v in _env("BENCH_GPU_SIZE", "64x64").split("x"))
    return GenerationPlan(
        prompt="a cat and a dog dance in the rain",
        negative_prompt="",
        width=width,
        height=height,
        frames=int(_env("BENCH_GPU_FRAMES", "9")),
        fps=16,
        steps=int(_env("BENCH_GPU_STEPS", "20")),
        guidance_scale=5.0,
        seed=seed,
        output_width=width,
        output_height=height,
    )


def _bare(loaded: Any, plan: GenerationPlan) -> float:
    """The pipeline call itself, as diffusers' own examples make it."""
    import torch

    pipe = loaded.pipe
    kwargs = loaded._call_kwargs(plan, None)
    pipe.progress_bar = type(pipe).progress_bar.__get__(pipe)  # the stock tqdm bar
    pipe.set_progress_bar_config(disable=True)
    _sync(loaded.device)
    start = time.perf_counter()
    with torch.inference_mode():
        pipe(**kwargs)
    _sync(loaded.device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


async def _through_reelforge(
    settings: Settings, provider: str, plan: GenerationPlan, step_times: list[float]
) -> tuple[float, float, float]:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    jobs = GpuJobs(redis, Keys(settings.redis_prefix), provider, window=gpu_worker_window(settings))
    job_id = f"gpu_{secrets.token_hex(12)}"
    try:
        submitted = time.perf_counter()
        await jobs.submit(job_id, plan.to_dict())
        while True:
            job = await jobs.get(job_id)
            if job is not None and job.is_terminal:
                break
            await asyncio.sleep(0.25)  # light polling: the generation thread needs the CPU
        total = time.perf_counter() - submitted
        if job.state != "succeeded":
            raise RuntimeError(f"bench job ended {job.state}: {job.error_message}")
        entries = await redis.xrange(jobs.keys.gpu_steps(provider, job_id))
        stamps = [int(entry_id.split("-")[0]) / 1000 for entry_id, _ in entries]
        step_times.extend(b - a for a, b in itertools.pairwise(stamps))
        generate = float(job.fields["generate_seconds"])
        encode = float(job.fields["encode_seconds"])
        await jobs.delete(job_id)
        return total, generate, encode
    finally:
        await redis.aclose()


def _tiny_model(root: Path) -> Path:
    from tests.tiny_pipelines import save_tiny_pipeline

    return save_tiny_pipeline("wan", root / "tiny-wan")


async def _measure(root: Path) -> list[str]:
    from reelforge.gpu.worker import GpuWorker, default_device

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    model = Path(_env("BENCH_GPU_MODEL", "")) if os.environ.get("BENCH_GPU_MODEL") else None
    tiny = model is None
    model = model or _tiny_model(root)
    pipeline = _env("BENCH_GPU_PIPELINE", "WanPipeline")
    device = _env("BENCH_GPU_DEVICE", default_device())
    runs = int(_env("BENCH_GPU_RUNS", "5"))
    prefix = f"rfbench-{secrets.token_hex(4)}"
    options: dict[str, str | int | float | bool] = {
        "model_path": str(model),
        "pipeline": pipeline,
    }
    if tiny:
        options["max_sequence_length"] = 16
    settings = Settings(
        data_dir=root / "data",
        redis_url=url,
        redis_prefix=prefix,
        worker_heartbeat_seconds=1.0,
        providers={"bench": ProviderConfig(kind="diffusers", options=options)},
    )
    worker = GpuWorker(settings, "bench", device=device)
    stop = asyncio.Event()
    ready = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop, on_ready=lambda _: ready.set()))
    await asyncio.wait([serving, asyncio.create_task(ready.wait())], return_when="FIRST_COMPLETED")
    if serving.done():
        serving.result()
    try:
        loaded = worker.loaded
        plan = _plan(seed=1)
        await asyncio.to_thread(_bare, loaded, plan)  # warm-up (kernels, allocator)
        await _through_reelforge(settings, "bench", plan, [])
        bare, ours, totals, encodes, steps = [], [], [], [], []  # type: ignore[var-annotated]
        for run in range(runs):
            plan = _plan(seed=run)
            bare.append(await asyncio.to_thread(_bare, loaded, plan))
            total, generate, encode = await _through_reelforge(settings, "bench", plan, steps)
            ours.append(generate)
            totals.append(total)
            encodes.append(encode)
    finally:
        stop.set()
        await serving
        client = sync_redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
    b, o = statistics.median(bare), statistics.median(ours)
    t, e = statistics.median(totals), statistics.median(encodes)
    per_step = statistics.median(steps) if steps else float("nan")
    overhead = (o - b) / b * 100
    name = "tiny random Wan (tests/tiny_pipelines.py)" if tiny else str(model)
    return [
        f"model: {name} ({pipeline}) on {device}; {plan.width}x{plan.height}, "
        f"{plan.frames} frames, {plan.steps} steps; median of {runs}",
        f"bare pipeline call:          {b * 1000:9.1f} ms",
        f"through reelforge (generate):{o * 1000:9.1f} ms",
        f"reelforge overhead:          {overhead:+9.2f} %  (goal <= 2 %)",
        f"per denoising step:          {per_step * 1000:9.1f} ms",
        f"MP4 encode (our pipeline):   {e * 1000:9.1f} ms",
        f"end to end (submit -> file): {t * 1000:9.1f} ms",
        f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]


def run() -> list[str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="rf-bench-gpu-") as root:
        return asyncio.run(_measure(Path(root)))
