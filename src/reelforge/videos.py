"""Domain operations on videos: create, regenerate, cancel, delete.

Shared by the native API, the OpenAI-compatible API and the CLI; no HTTP here. A
request is fully validated before anything is written, so a rejected request
leaves no trace.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import structlog

from reelforge.errors import ConflictError, InvalidRequestError, NotFoundError, ReelforgeError
from reelforge.models import GenerationRequest, Stage, VideoStatus, parse_generation_request
from reelforge.net.urlguard import policy_from_settings, resolve_checked
from reelforge.prompts.pipeline import apply_style_defaults, fit_route
from reelforge.runtime import Runtime
from reelforge.storage.layout import remove_video_files
from reelforge.store import VideoRecord, new_video_id, request_fingerprint
from reelforge.webhooks import enqueue_webhook

__all__ = [
    "cancel_video",
    "create_video",
    "delete_video",
    "estimate_cost",
    "regenerate_video",
    "video_finished",
]

log = structlog.get_logger("reelforge.videos")


def _route(rt: Runtime, req: GenerationRequest) -> list[str]:
    """The providers to try, in order: the request's own choice, else the
    configured route; only those whose capabilities fit the request."""
    settings = rt.settings
    names = (
        [req.provider] if req.provider else settings.default_route or [settings.default_provider]
    )
    route = [name for name in names if rt.provider(name).capabilities().fits(req)]
    if not route:
        raise InvalidRequestError(
            f"no provider of {names} can make this video (duration, size, fps or image)",
            code="unsupported_request",
            param="provider",
        )
    return route


def estimate_cost(rt: Runtime, route: list[str], req: GenerationRequest) -> float:
    """What the video may cost: its length at the dearest provider of its route (a
    fallback may end up making it)."""
    price = max(rt.provider(name).capabilities().cost_per_second for name in route)
    return round(price * req.duration_seconds, 6)


async def create_video(
    rt: Runtime,
    req: GenerationRequest,
    *,
    owner: str,
    idempotency_key: str | None = None,
    client_body: dict[str, Any] | None = None,
    regenerated_from: str | None = None,
) -> tuple[VideoRecord, bool]:
    """Store a queued video and enqueue its job. Returns ``(record, created)``.

    With an idempotency key, the same key and body return the first video; the same
    key with another body is a ConflictError. ``client_body`` is what the client
    sent (the fingerprint must not see the seed we pick for it).
    """
    req = apply_style_defaults(req, rt.settings.prompts, owner)
    route = _route(rt, req)
    processed, route = fit_route(
        req,
        rt.settings.prompts,
        route,
        caps_of=lambda name: rt.provider(name).capabilities(),
        owner=owner,
    )
    if req.webhook_url is not None:
        # Refused now, with a 400, rather than failing quietly at delivery (where the
        # address is checked again: DNS may change in between).
        await resolve_checked(
            req.webhook_url, policy_from_settings(rt.settings), param="webhook_url"
        )
    if req.seed is None:
        req = req.model_copy(update={"seed": secrets.randbelow(2**31)})
    record = VideoRecord(
        id=new_video_id(),
        owner=owner,
        request=req,
        provider=route[0],
        route=route,
        regenerated_from=regenerated_from,
        prompt_processing=processed.to_dict(),
    )
    fingerprint = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255 or not idempotency_key.isprintable():
            raise InvalidRequestError(
                "Idempotency-Key must be 1-255 printable characters",
                code="invalid_idempotency_key",
                param="Idempotency-Key",
            )
        fingerprint = request_fingerprint(client_body or req.model_dump(mode="json"))
        if await rt.redis.exists(rt.keys.idempotency(owner, idempotency_key)):
            # A retry of a request already admitted: answer it, count nothing again
            # (and keep no second copy of an image the retry uploaded again).
            answer = await rt.store.create(
                record, idempotency_key=idempotency_key, fingerprint=fingerprint
            )
            if not answer[1]:
                await _release_image(rt, req, record.id)
            return answer
    # The tenant's quotas are taken before anything is stored or submitted; a
    # refusal (429, or 402 for the budget) leaves no trace.
    admission = await rt.quotas.admit(
        owner, record.id, seconds=req.duration_seconds, estimated_cost=estimate_cost(rt, route, req)
    )
    new_id = record.id
    try:
        # The image is the video's own upload, or shared with the video this one is
        # made from; taken before the record exists, so no stored video ever points
        # at an upload that a racing delete of its source has removed.
        if req.image is not None and not await rt.uploads.retain(
            req.image, new_id, shared_with=regenerated_from
        ):
            raise NotFoundError(f"no video {regenerated_from}", param="id")
        record, created = await rt.store.create(
            record, idempotency_key=idempotency_key, fingerprint=fingerprint
        )
    except BaseException:
        await rt.quotas.undo(admission)
        await _release_image(rt, req, new_id)
        raise
    if not created:
        # An earlier request under the same key made it; this one stores nothing.
        await rt.quotas.undo(admission)
        await _release_image(rt, req, new_id)
        return record, created
    await rt.queues.enqueue_for_stage(record.id, Stage.QUEUED)
    return record, created


async def _release_image(rt: Runtime, req: GenerationRequest, video_id: str) -> None:
    """Give back the hold ``create_video`` took on the image for a video it did not
    store (nothing happens when it took none)."""
    if req.image is not None:
        await rt.uploads.release(req.image, video_id)


async def video_finished(rt: Runtime, record: VideoRecord) -> None:
    """A video reached a terminal status: settle its tenant's quotas and usage.

    Safe to call more than once for a video (only the first call counts)."""
    completed = record.status is VideoStatus.COMPLETED
    settled = await rt.quotas.finish(
        record.owner,
        record.id,
        provider=record.provider,
        seconds=float(record.request.duration_seconds) if completed else 0.0,
        cost=record.cost,
        completed=completed,
    )
    if settled:
        await rt.metrics.tenant_job_finished(record.owner, record.status.value, record.cost)
    await enqueue_webhook(rt, record)


async def regenerate_video(
    rt: Runtime,
    source_id: str,
    *,
    owner: str,
    seed: int | None = None,
    prompt: str | None = None,
    provider: str | None = None,
) -> VideoRecord:
    """A new take of an earlier video: same request, a new seed unless one is given."""
    source = await rt.store.get(source_id, owner=owner)
    fields = source.request.model_dump()
    fields["seed"] = seed
    if prompt is not None:
        fields["prompt"] = prompt
    if provider is not None:
        fields["provider"] = provider
    req = parse_generation_request(fields)
    record, _ = await create_video(rt, req, owner=owner, regenerated_from=source.id)
    return record


async def cancel_video(rt: Runtime, video_id: str, *, owner: str) -> VideoRecord:
    """Ask for a stop. A queued video is cancelled at once; a running one by its worker."""
    record = await rt.store.get(video_id, owner=owner)
    if record.status is VideoStatus.CANCELLED:
        return record
    if record.status.is_terminal:
        raise ConflictError(
            f"video {video_id} is already {record.status.value}", code="video_not_cancellable"
        )
    await rt.store.set_fields(video_id, {"cancel_requested": "1"})
    result = await rt.store.transition(
        video_id, stage=Stage.CANCELLED, event="cancelled", expect_stage=Stage.QUEUED
    )
    if result.applied:
        await rt.metrics.job_finished(record.provider, "cancelled")
        await video_finished(rt, await rt.store.get(video_id))
    else:
        await rt.queues.abort(video_id)
    return await rt.store.get(video_id, owner=owner)


async def delete_video(rt: Runtime, video_id: str, *, owner: str) -> None:
    """Remove the record, its events, its queue state and its files.

    A running video is cancelled first, and the delete waits (``delete_wait_seconds``)
    for its worker to stop the provider's job, free its capacity and exit: only then
    is anything removed, so no late write or file of that worker outlives the delete.
    A worker that does not answer in time (dead, or stuck) finds the record gone
    when it resumes and stops quietly. A malformed record of the owner is removed
    too, and is a 404 like any record that cannot be read.
    """
    record: VideoRecord | None = None
    with contextlib.suppress(NotFoundError):
        record = await rt.store.get(video_id, owner=owner)
    if record is not None and not record.status.is_terminal:
        record = await _stop_for_delete(rt, record)
    await rt.queues.forget(video_id)
    removed = await rt.store.delete(video_id, owner=owner, providers=tuple(rt.settings.providers))
    if record is not None:
        # A video deleted while running never reports back: free its quota now.
        await video_finished(rt, record)
    if not await remove_video_files(rt.storage, rt.settings, video_id):
        # The store is down: the video is gone, its files go in a later round.
        await rt.redis.sadd(rt.keys.unremoved_files, video_id)
    if record is not None and record.request.image is not None:
        with contextlib.suppress(ReelforgeError):  # the retention sweep retries
            await rt.uploads.release(record.request.image, video_id)
    if removed is None:
        raise NotFoundError(f"no video {video_id}", param="id")


async def _stop_for_delete(rt: Runtime, record: VideoRecord) -> VideoRecord:
    """Cancel the video and wait for its jobs to end; returns the latest record."""
    video_id = record.id
    await rt.store.set_fields(video_id, {"cancel_requested": "1"})
    queued = await rt.store.transition(
        video_id, stage=Stage.CANCELLED, event="cancelled", expect_stage=Stage.QUEUED
    )
    if queued.applied:
        await rt.metrics.job_finished(record.provider, "cancelled")
    await rt.queues.abort(video_id)
    if not await rt.queues.wait_stopped(video_id, within=rt.settings.delete_wait_seconds):
        log.warning("worker did not stop before the delete", video_id=video_id)
    with contextlib.suppress(NotFoundError):
        record = await rt.store.get(video_id, owner=record.owner)
    attempt = record.current_attempt
    if record.status.is_terminal or attempt is None or attempt.remote_id is None:
        return record
    if attempt.ended_at is None and record.stage in (Stage.SUBMITTING, Stage.GENERATING):
        # No worker wound it down (none was running it): stop the provider's job here.
        with contextlib.suppress(ReelforgeError):
            await rt.provider(attempt.provider).cancel(attempt.remote_id)
    return record
