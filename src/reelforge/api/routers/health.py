"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from reelforge.api.deps import RuntimeDep
from reelforge.errors import ReelforgeError
from reelforge.gpu.jobs import gpu_workers_by_provider
from reelforge.metrics import render_metrics

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Ready: Redis, storage and a worker all answer"},
        503: {"description": "Not ready; `checks` says which part is missing"},
    },
)
async def readyz(rt: RuntimeDep) -> JSONResponse:
    """Ready when Redis answers, storage answers (local: the directory is writable;
    s3: the bucket can be listed) and a worker beat recently."""
    checks: dict[str, Any] = {}
    try:
        checks["redis"] = bool(await rt.redis.ping())
    except Exception:  # any failure to reach Redis means not ready
        checks["redis"] = False
    try:
        async with asyncio.timeout(5):
            await rt.storage.check()
        checks["storage"] = True
    except (ReelforgeError, TimeoutError):
        checks["storage"] = False
    window = max(5.0, rt.settings.worker_heartbeat_seconds * 5)
    workers = 0
    if checks["redis"]:
        workers = int(await rt.redis.zcount(rt.keys.workers, time.time() - window, "+inf"))
    checks["workers"] = workers
    if checks["redis"]:
        # Informational: a model without a GPU worker makes its videos wait, it does
        # not make the service unready.
        gpu = await gpu_workers_by_provider(rt.redis, rt.keys, rt.settings)
        if gpu:
            checks["gpu_workers"] = {name: len(live) for name, live in gpu.items()}
    ready = checks["redis"] and checks["storage"] and workers > 0
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(rt: RuntimeDep) -> Response:
    depth = await rt.queues.depth()
    body = await render_metrics(
        rt.redis, rt.keys, depth, worker_window=max(5.0, rt.settings.worker_heartbeat_seconds * 5)
    )
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
