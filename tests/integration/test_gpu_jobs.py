"""The GPU job service in real Redis, without torch: submit, take, steps, finish,
cancel, and dead workers' jobs going back to the queue."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from reelforge.gpu.jobs import GpuJobs, gpu_workers_by_provider
from reelforge.keys import Keys
from reelforge.settings import ProviderConfig, Settings

PLAN = {"prompt": "a cat", "steps": 4, "seed": 1}


@pytest.fixture
def redis(aredis: Redis) -> Redis:
    return aredis


@pytest.fixture
def jobs(redis: Redis, redis_prefix: str) -> GpuJobs:
    return GpuJobs(redis, Keys(redis_prefix), "wan", window=1.0)


async def _running(jobs: GpuJobs, worker: str, job_id: str = "gpu_1") -> None:
    await jobs.submit(job_id, PLAN)
    await jobs.beat(worker, device="cuda:0")
    assert await jobs.take(worker, wait_seconds=1) == job_id
    assert await jobs.start(job_id, worker) == "run"


async def test_a_second_submit_under_the_same_id_keeps_the_first_job(jobs: GpuJobs) -> None:
    assert await jobs.submit("gpu_1", PLAN)
    assert not await jobs.submit("gpu_1", {**PLAN, "prompt": "other"})
    assert await jobs.queue_length() == 1
    job = await jobs.get("gpu_1")
    assert job is not None
    assert job.plan["prompt"] == "a cat"


async def test_a_failed_job_may_be_submitted_again(jobs: GpuJobs) -> None:
    await _running(jobs, "w1")
    assert await jobs.finish("gpu_1", "w1", "failed", error_code="gpu_out_of_memory")
    assert await jobs.submit("gpu_1", PLAN)
    job = await jobs.get("gpu_1")
    assert job is not None
    assert (job.state, job.error_code) == ("queued", None)


async def test_steps_are_recorded_in_order_with_progress(jobs: GpuJobs) -> None:
    await _running(jobs, "w1")
    for step in range(1, 5):
        assert await jobs.record_step("gpu_1", "w1", step=step, steps=4)
    assert await jobs.steps("gpu_1") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    job = await jobs.get("gpu_1")
    assert job is not None
    assert (job.step, job.progress) == (4, 99)  # 100 only once the file is written


async def test_a_worker_that_does_not_hold_the_job_cannot_write_to_it(jobs: GpuJobs) -> None:
    await _running(jobs, "w1")
    assert not await jobs.record_step("gpu_1", "intruder", step=3, steps=4)
    assert not await jobs.finish("gpu_1", "intruder", "succeeded")
    job = await jobs.get("gpu_1")
    assert job is not None
    assert (job.state, job.step) == ("running", 0)


async def test_a_dead_workers_job_goes_back_to_the_front_of_the_queue(
    jobs: GpuJobs, redis: Redis
) -> None:
    await _running(jobs, "w1", "gpu_1")
    await jobs.submit("gpu_2", PLAN)  # queued behind it
    await redis.zadd(jobs.keys.gpu_workers("wan"), {"w1": 0})  # its heartbeat stopped
    assert await jobs.reap() == 1
    job = await jobs.get("gpu_1")
    assert job is not None
    assert (job.state, job.worker, job.requeues) == ("queued", "", 1)
    await jobs.beat("w2", device="cuda:1")
    assert await jobs.take("w2", wait_seconds=1) == "gpu_1"
    assert await jobs.start("gpu_1", "w2") == "run"


async def test_a_live_worker_keeps_its_job(jobs: GpuJobs) -> None:
    await _running(jobs, "w1")
    assert await jobs.reap() == 0
    job = await jobs.get("gpu_1")
    assert job is not None
    assert job.state == "running"


async def test_cancelling_a_queued_job_removes_it_from_the_queue(jobs: GpuJobs) -> None:
    await jobs.submit("gpu_1", PLAN)
    assert await jobs.cancel("gpu_1") == "cancelled"
    assert await jobs.queue_length() == 0


async def test_cancelling_a_running_job_asks_its_worker_to_stop(jobs: GpuJobs) -> None:
    await _running(jobs, "w1")
    assert await jobs.cancel("gpu_1") == "running"
    assert await jobs.cancel_requested("gpu_1")


async def test_a_job_cancelled_while_claimed_is_not_run(jobs: GpuJobs, redis: Redis) -> None:
    await jobs.submit("gpu_1", PLAN)
    await jobs.beat("w1", device="cpu")
    assert await jobs.take("w1", wait_seconds=1) == "gpu_1"
    await redis.hset(jobs.keys.gpu_job("wan", "gpu_1"), "cancel", "1")
    assert await jobs.start("gpu_1", "w1") == "cancelled"


async def test_live_workers_are_listed_per_diffusers_provider(
    jobs: GpuJobs, redis: Redis, redis_prefix: str, tmp_path: object
) -> None:
    await jobs.beat("w1", device="cuda:0", job="gpu_9")
    settings = Settings(
        redis_prefix=redis_prefix,
        providers={
            "wan": ProviderConfig(
                kind="diffusers", options={"model_path": "x", "pipeline": "WanPipeline"}
            ),
            "ltx": ProviderConfig(
                kind="diffusers", options={"model_path": "y", "pipeline": "LTXPipeline"}
            ),
        },
    )
    listed = await gpu_workers_by_provider(redis, jobs.keys, settings)
    assert set(listed) == {"wan", "ltx"}
    assert [(w.worker_id, w.device, w.job) for w in listed["wan"]] == [("w1", "cuda:0", "gpu_9")]
    assert listed["ltx"] == []
