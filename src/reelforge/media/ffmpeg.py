"""Running the bundled FFmpeg binary, and writing outputs atomically.

Only the static binary from the ``imageio-ffmpeg`` wheel is used, never a system
ffmpeg. Failures become :class:`~reelforge.errors.FFmpegError` carrying the tail of
ffmpeg's stderr; a caller may follow how far an encode has got (``on_time``).
:func:`atomic_output` gives a temporary path next to the destination and renames it
into place only on success, so a killed run never leaves a half file under the final
name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cache
from pathlib import Path

import imageio_ffmpeg

from reelforge.errors import FFmpegError, OutputPathError

__all__ = ["atomic_output", "ffmpeg_command", "ffmpeg_exe", "run_ffmpeg", "stderr_tail"]

_STDERR_TAIL_LINES = 15


@cache
def ffmpeg_exe() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _yield_cpu() -> None:
    # Runs in the child before exec: transcodes are batch work; the API, workers and
    # Redis on the same cores must stay responsive, so ffmpeg runs at a lower priority.
    os.nice(10)


def stderr_tail(stderr: bytes, lines: int = _STDERR_TAIL_LINES) -> str:
    text = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def ffmpeg_command(args: Sequence[str]) -> list[str]:
    """The full command line: our binary, quiet banner, never prompt, then ``args``."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]


async def run_ffmpeg(
    args: Sequence[str],
    *,
    what: str = "ffmpeg",
    on_time: Callable[[float], None] | None = None,
) -> None:
    """Run ffmpeg with ``args`` to completion; raise FFmpegError with stderr on failure.

    ``on_time``, if given, is called with the seconds of output written so far, a
    few times a second (ffmpeg's ``-progress`` report); its first call comes once
    the output file has been opened.
    """
    if on_time is not None:
        args = ["-progress", "pipe:1", "-nostats", *args]
    proc = await asyncio.create_subprocess_exec(
        *ffmpeg_command(args),
        preexec_fn=_yield_cpu,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL if on_time is None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        if on_time is None:
            _, stderr = await proc.communicate()
        else:
            if proc.stdout is None or proc.stderr is None:  # pragma: no cover - piped above
                raise RuntimeError("ffmpeg pipes were not opened")
            _, stderr = await asyncio.gather(
                _follow_progress(proc.stdout, on_time), proc.stderr.read()
            )
            await proc.wait()
    except BaseException:
        # Cancelled or interrupted: do not leave an orphan ffmpeg behind.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise FFmpegError(
            f"{what} failed", stderr_tail=stderr_tail(stderr), returncode=proc.returncode
        )


async def _follow_progress(report: asyncio.StreamReader, on_time: Callable[[float], None]) -> None:
    # ``-progress`` writes ``key=value`` lines; ``out_time_us`` is "N/A" or negative
    # before the first frame is muxed, so only plain non-negative numbers count.
    async for raw_line in report:
        key, _, value = raw_line.decode("ascii", errors="replace").strip().partition("=")
        if key == "out_time_us" and value.isdigit():
            on_time(int(value) / 1_000_000)


@contextlib.asynccontextmanager
async def atomic_output(dest: Path) -> AsyncIterator[Path]:
    """Yield a temporary sibling of ``dest``; rename it to ``dest`` if the body succeeds.

    The temporary name keeps the suffix (ffmpeg picks the muxer from it) and starts
    with a dot, so listings and the final name never show an unfinished file.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create output directory {dest.parent}: {exc}") from exc
    if not os.access(dest.parent, os.W_OK):
        raise OutputPathError(f"output directory {dest.parent} is not writable")
    tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.part{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
