"""Encoding frames that a model made (numpy arrays) into our delivery MP4.

The GPU worker hands over RGB frames and, for models that make sound (LTX-2), a
waveform. They go to the bundled ffmpeg through a pipe: H.264 yuv420p with BT.709
tags and ``+faststart``, the same profile as the local renderer, scaled to the size
the client asked for when the model had to generate at a rounded size.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reelforge.errors import FFmpegError, InvalidRequestError
from reelforge.media.ffmpeg import atomic_output, ffmpeg_command, stderr_tail

__all__ = ["encode_frames_to_mp4", "frames_to_uint8"]


def frames_to_uint8(frames: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """``(F, H, W, 3)`` floats in [0, 1] (diffusers' ``output_type="np"``) or uint8."""
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InvalidRequestError(f"frames must be (F, H, W, 3), got {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    scaled = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0) * 255.0
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8))


def _write_wav(path: Path, audio: npt.NDArray[np.generic], sample_rate: int) -> None:
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None, :]
    if samples.shape[0] > samples.shape[-1]:  # (samples, channels) -> (channels, samples)
        samples = samples.T
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[0])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.T.tobytes())


async def encode_frames_to_mp4(
    frames: npt.NDArray[np.uint8],
    dest: Path,
    *,
    fps: int,
    width: int | None = None,
    height: int | None = None,
    audio: npt.NDArray[np.generic] | None = None,
    sample_rate: int | None = None,
    preset: str = "veryfast",
    crf: int = 18,
) -> Path:
    """Write ``frames`` (uint8 ``(F, H, W, 3)``) to ``dest`` as MP4, atomically."""
    count, frame_height, frame_width, _ = frames.shape
    out_w, out_h = width or frame_width, height or frame_height
    with tempfile.TemporaryDirectory(prefix="rf-frames-") as scratch:
        inputs = [
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s:v", f"{frame_width}x{frame_height}", "-framerate", str(fps),
            "-i", "pipe:0",
        ]  # fmt: skip
        maps = ["-map", "0:v:0"]
        audio_args: list[str] = []
        if audio is not None and sample_rate:
            wav = Path(scratch) / "audio.wav"
            await asyncio.to_thread(_write_wav, wav, audio, sample_rate)
            inputs += ["-i", str(wav)]
            maps += ["-map", "1:a:0"]
            audio_args = ["-c:a", "aac", "-b:a", "128k", "-shortest"]
        scale = f"scale={out_w}:{out_h}:flags=bicubic:out_color_matrix=bt709:out_range=tv"
        async with atomic_output(dest) as partial:
            args = [
                *inputs, *maps,
                "-vf", scale,
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-color_range", "tv",
                "-r", str(fps), "-frames:v", str(count),
                *audio_args,
                "-movflags", "+faststart", "-f", "mp4", str(partial),
            ]  # fmt: skip
            await _pipe_to_ffmpeg(args, frames)
    return dest


async def _pipe_to_ffmpeg(args: list[str], frames: npt.NDArray[np.uint8]) -> None:
    process = await asyncio.create_subprocess_exec(
        *ffmpeg_command(args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None  # noqa: S101 - stdin=PIPE always sets it
    assert process.stderr is not None  # noqa: S101
    stderr_task = asyncio.create_task(process.stderr.read())
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for frame in frames:
                process.stdin.write(frame.tobytes())
                await process.stdin.drain()
            process.stdin.close()
        returncode = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    finally:
        stderr = await stderr_task
    if returncode != 0:
        raise FFmpegError(
            "ffmpeg failed to encode the generated frames",
            stderr_tail=stderr_tail(stderr),
            returncode=returncode,
        )
