"""The process queue's run: processing ▸ validating ▸ completed."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from typing import Any

from reelforge.errors import (
    ReelforgeError,
)
from reelforge.media.compare import check_conversion
from reelforge.media.validate import Expectation, ValidationReport, validate_video
from reelforge.models import Stage
from reelforge.pipeline import produce_outputs
from reelforge.storage.layout import (
    MEDIA_TYPES,
    output_key,
    remove_work_files,
    scratch_outputs,
)
from reelforge.store import VideoRecord
from reelforge.worker.run import (
    PROGRESS,
    Run,
)

__all__ = ["ProcessingRun"]


class ProcessingRun(Run):
    """processing: check the result's quality, then make the files; validating:
    check every conversion against its source, then complete."""

    queue = "process"

    async def drive(self, rec: VideoRecord) -> None:
        if rec.stage in (Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING, Stage.DOWNLOADING):
            return  # not ours yet: the generate job will hand it over
        if rec.stage is Stage.PROCESSING:
            if not rec.timings.get("process_queue"):
                # Time waiting for a free CPU slot: capacity, not orchestration.
                wait = max(0.0, time.time() - rec.updated_at)
                await self.rt.store.add_timing(self.video_id, "process_queue", wait)
            report = await self.check_quality(rec)
            if not report.ok:
                await self.regenerate_or_fail(rec, report)
                return
            rec = await self.make_outputs(rec, report)
        if rec.stage is Stage.VALIDATING:
            await self.check_conversions(rec)

    async def check_quality(self, rec: VideoRecord) -> ValidationReport:
        attempt = rec.current_attempt
        caps = self.rt.provider(attempt.provider if attempt else rec.provider).capabilities()
        expect = Expectation.from_request(rec.request, audio=caps.audio)
        if not caps.honours_fps:
            expect = dataclasses.replace(expect, fps=None)
        raw = await self.local_raw(rec)
        async with self.timed("media"):
            report = await validate_video(raw, expect, self.rt.settings.validation)
        if attempt is not None:
            attempt.validation = report.to_dict()
        return report

    async def regenerate_or_fail(self, rec: VideoRecord, report: ValidationReport) -> None:
        """Generate again with a new seed (the route decides same or next provider),
        or, after the last allowed try, fail with the reasons."""
        reasons = "; ".join(p.message for p in report.problems)
        attempt = rec.current_attempt
        if attempt is not None:
            attempt.error = {"code": "quality_check_failed", "message": reasons}
        tries = sum(
            1 for a in rec.attempts if (a.error or {}).get("code") == "quality_check_failed"
        )
        attempts = [a.to_dict() for a in rec.attempts]
        settings = self.rt.settings
        await remove_work_files(self.rt.storage, settings, self.video_id)
        if rec.request.regenerate_on_failure and tries <= settings.max_quality_regenerations:
            request = rec.request.model_copy(update={"seed": secrets.randbelow(2**31)})
            await self.move(
                rec,
                Stage.QUEUED,
                event="regenerating",
                fields={
                    "attempts": attempts,
                    "request": request.model_dump_json(),
                    "validation": report.to_dict(),
                },
                data={"problems": report.codes},
            )
            await self.rt.queues.enqueue_for_stage(self.video_id, Stage.QUEUED)
            self.log.info("regenerating", problems=report.codes)
            return
        await self.rt.store.set_fields(
            self.video_id, {"attempts": attempts, "validation": report.to_dict()}
        )
        raise ReelforgeError(
            f"the result failed validation: {reasons}", code="quality_check_failed"
        )

    async def make_outputs(self, rec: VideoRecord, report: ValidationReport) -> VideoRecord:
        settings = self.rt.settings
        start, end = PROGRESS[Stage.PROCESSING], PROGRESS[Stage.VALIDATING]
        pending: set[asyncio.Task[Any]] = set()

        def on_progress(pct: int) -> None:
            task = asyncio.ensure_future(
                self.rt.store.transition(
                    self.video_id, progress=start + (end - start) * pct // 100, event="progress"
                )
            )
            pending.add(task)
            task.add_done_callback(pending.discard)

        raw = await self.local_raw(rec)
        async with self.timed("media"):
            outputs = await produce_outputs(
                raw,
                scratch_outputs(settings, self.video_id),
                stem="video",
                formats=rec.request.formats,
                media=settings.media,
                on_progress=on_progress,
            )
        if pending:
            await asyncio.gather(*pending)
        files = []
        for output in outputs:
            entry = output.to_dict()
            entry["filename"] = output.path.name
            del entry["path"]
            files.append(entry)
            # Stored before the record lists it: a listed file is always whole.
            async with self.timed("storage"):
                await self.rt.storage.put_file(
                    output_key(self.video_id, output.path.name),
                    output.path,
                    content_type=MEDIA_TYPES.get(output.path.suffix.lstrip(".")),
                )
        return await self.move(
            rec,
            Stage.VALIDATING,
            fields={
                "files": files,
                "validation": report.to_dict(),
                "attempts": [a.to_dict() for a in rec.attempts],
            },
        )

    async def check_conversions(self, rec: VideoRecord) -> None:
        """Each delivered video must still be its source: duration, size, SSIM."""
        report = dict(rec.validation or {})
        conversions: dict[str, Any] = {}
        raw = await self.local_raw(rec)
        for entry in rec.files:
            if entry["format"] not in ("mp4", "webm"):
                continue
            path = scratch_outputs(self.rt.settings, self.video_id) / entry["filename"]
            if not path.exists():  # made by another process: check what was stored
                async with self.timed("storage"):
                    await self.rt.storage.get_file(
                        output_key(self.video_id, entry["filename"]), path
                    )
            async with self.timed("media"):
                check = await check_conversion(raw, path)
            conversions[entry["format"]] = check.to_dict()
            if not check.ok:
                raise ReelforgeError(
                    f"the {entry['format']} conversion is not faithful to the result: "
                    + "; ".join(check.problems),
                    code="conversion_failed",
                )
        report["conversions"] = conversions
        await self.move(rec, Stage.COMPLETED, event="completed", fields={"validation": report})
        # Metrics, quotas and the webhook first: the files are only tidying up.
        await self.finished(rec.provider, "completed")
        await remove_work_files(self.rt.storage, self.rt.settings, self.video_id)
