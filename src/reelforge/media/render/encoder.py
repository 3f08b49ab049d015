"""Scene to MP4: :func:`render_video` encodes a scene's frames and sound with the bundled ffmpeg.

The result is H.264 yuv420p + AAC, faststart. Frames are generated in a worker
thread and piped to ffmpeg, so drawing and encoding overlap and the event loop
stays free; cancelling the awaiting coroutine kills ffmpeg at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final, cast

import numpy as np

from reelforge.errors import FFmpegError
from reelforge.media.ffmpeg import atomic_output, ffmpeg_command, stderr_tail
from reelforge.media.image import decode_image
from reelforge.media.render.frames import SceneRenderer
from reelforge.media.render.reference import scene_with_reference
from reelforge.media.render.scene import Scene, scene_from_prompt
from reelforge.media.render.sound import AUDIO_SAMPLE_RATE, synthesize_soundtrack, write_wav
from reelforge.models import GenerationRequest

__all__ = ["render_video"]


class _RenderCancelled(Exception):
    """The worker thread stopped because the awaiting coroutine was cancelled."""


class _Encoder:
    """Runs in a worker thread: draws frames and feeds them to one ffmpeg process.

    ``abort`` may be called from any thread; it kills ffmpeg at once, which also
    unblocks a pipe write the worker may be stuck in.
    """

    def __init__(
        self,
        *,
        scene: Scene,
        req: GenerationRequest,
        frame_count: int,
        preset: str,
        crf: int,
        report_frames: Callable[[int], None],
        reference_image: Path | None = None,
    ) -> None:
        self._scene = scene
        self._req = req
        self._reference_image = reference_image
        self._frame_count = frame_count
        self._preset = preset
        self._crf = crf
        self._report_frames = report_frames
        self._lock = threading.Lock()
        self._aborted = False
        self._process: subprocess.Popen[bytes] | None = None

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

    def _ffmpeg_args(self, video_path: Path, audio_path: Path) -> list[str]:
        req = self._req
        return [
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s:v", f"{req.width}x{req.height}", "-framerate", str(req.fps),
            "-i", "pipe:0",
            "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0",
            # Convert with the BT.709 matrix and say so, so players show our colours.
            "-vf", "scale=out_color_matrix=bt709:out_range=tv",
            "-c:v", "libx264", "-preset", self._preset, "-crf", str(self._crf),
            "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
            "-color_range", "tv",
            "-r", str(req.fps), "-frames:v", str(self._frame_count),
            "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE),
            "-movflags", "+faststart",
            "-f", "mp4", str(video_path),
        ]  # fmt: skip

    def run(self, video_path: Path) -> None:
        req, fps = self._req, self._req.fps
        duration = self._frame_count / fps
        audio_path = video_path.with_name(video_path.name + ".wav")
        if self._aborted:  # cancelled while this call waited for a free worker thread
            raise _RenderCancelled
        scene, reference = self._scene, None
        if self._reference_image is not None:
            # Decoded here, in the worker thread: it blocks, and a bad image fails the
            # render before any audio or frames are made.
            reference = decode_image(self._reference_image)
            scene = scene_with_reference(scene, reference)
        try:
            write_wav(audio_path, synthesize_soundtrack(scene, duration), AUDIO_SAMPLE_RATE)
            renderer = SceneRenderer(
                scene, req.width, req.height, fps, duration, reference=reference
            )
            with tempfile.TemporaryFile() as stderr_file:
                self._pipe_frames(renderer, video_path, audio_path, stderr_file)
        finally:
            audio_path.unlink(missing_ok=True)

    def _pipe_frames(
        self,
        renderer: SceneRenderer,
        video_path: Path,
        audio_path: Path,
        stderr_file: IO[bytes],
    ) -> None:
        with self._lock:
            if self._aborted:
                raise _RenderCancelled
            # stderr goes to a file: a pipe nobody reads could fill and stall ffmpeg.
            process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary, no shell
                ffmpeg_command(self._ffmpeg_args(video_path, audio_path)),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
            )
            self._process = process
        stdin = cast(IO[bytes], process.stdin)  # always set: stdin=PIPE
        buffer = np.empty((renderer.height, renderer.width, 3), dtype=np.uint8)
        try:
            try:
                for index in range(self._frame_count):
                    if self._aborted:
                        raise _RenderCancelled
                    stdin.write(renderer.frame(index, out=buffer).data)
                    self._report_frames(index + 1)
                stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg exited early; its exit status and stderr say why
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        if self._aborted:
            raise _RenderCancelled
        if returncode != 0:
            stderr_file.seek(0)
            raise FFmpegError(
                "ffmpeg failed to encode the rendered frames",
                stderr_tail=stderr_tail(stderr_file.read()),
                returncode=returncode,
            )


class _ProgressReporter:
    """Turns frame counts from the worker thread into percents on the event loop."""

    _STEP: Final = 2  # report about every 2 %, so the callback stays cheap

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: Callable[[int], None] | None,
        frame_count: int,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._frame_count = frame_count
        self._last = -self._STEP

    def frames_done(self, frames: int) -> None:
        if self._callback is None:
            return
        # 100 is kept for "the file is complete", after ffmpeg has finished.
        percent = min(frames * 99 // self._frame_count, 99)
        if percent - self._last >= self._STEP or (
            frames == self._frame_count and percent > self._last
        ):
            self._last = percent
            self._loop.call_soon_threadsafe(self._callback, percent)


async def render_video(
    req: GenerationRequest,
    dest: Path,
    *,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
    preset: str = "veryfast",
    crf: int = 20,
    reference_image: Path | None = None,
) -> Path:
    """Render ``req`` into an MP4 at ``dest`` and return ``dest``.

    H.264 yuv420p + AAC 48 kHz stereo, ``+faststart``, exactly ``req.width`` x
    ``req.height`` at ``req.fps`` with ``round(duration_seconds * fps)`` frames.
    ``on_progress`` receives never-decreasing percents on the event loop thread
    (0-99 while frames are drawn, 100 once the file is in place). Cancelling the
    call kills ffmpeg and leaves neither ``dest`` nor temporary files behind.
    ``reference_image`` (a PNG, JPEG or WebP file) becomes the panned background and
    lends the scene its colours; one that does not decode is an UnreadableMediaError.
    """
    frame_count = max(1, round(req.duration_seconds * req.fps))
    scene = scene_from_prompt(req.prompt, seed)
    progress = _ProgressReporter(asyncio.get_running_loop(), on_progress, frame_count)
    encoder = _Encoder(
        scene=scene,
        req=req,
        frame_count=frame_count,
        preset=preset,
        crf=crf,
        report_frames=progress.frames_done,
        reference_image=reference_image,
    )
    async with atomic_output(dest) as partial:
        worker = asyncio.create_task(asyncio.to_thread(encoder.run, partial))
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            encoder.abort()
            # Wait for the thread to let go of ffmpeg and its files before the
            # partial output is removed; its _RenderCancelled is expected.
            await asyncio.wait([worker])
            if not worker.cancelled():
                worker.exception()
            raise
    if on_progress is not None:
        on_progress(100)
    return dest
