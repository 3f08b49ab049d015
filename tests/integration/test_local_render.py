"""The local renderer writes real, exact MP4s, and the local provider serves them.

Every clip is decoded with PyAV, independently of the code that wrote it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from reelforge.errors import FFmpegError, RemoteJobLostError
from reelforge.media.render import render_video
from reelforge.models import GenerationRequest
from reelforge.providers import local as local_module
from reelforge.providers.base import Capabilities, Provider, RemoteState, RemoteStatus
from reelforge.providers.local import LocalProvider
from reelforge.settings import ProviderConfig, Settings

pytestmark = pytest.mark.slow

MAIN_PROMPT = 'a red ball bouncing, caption "Hello"'


def request(
    prompt: str, *, duration: float = 1.0, size: str = "256x144", fps: int = 24
) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, duration_seconds=duration, size=size, fps=fps)


def render(req: GenerationRequest, dest: Path, seed: int = 1) -> tuple[Path, list[int]]:
    progress: list[int] = []
    asyncio.run(render_video(req, dest, seed=seed, on_progress=progress.append))
    return dest, progress


def decode_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray().astype(np.float64) for frame in container.decode(audio=0)]
    return np.concatenate(chunks, axis=1)


def top_level_atoms(path: Path) -> list[str]:
    """Box types at the top of an MP4: 4-byte big-endian size, 4-byte type, 64-bit if size 1."""
    data = path.read_bytes()
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        elif size == 0:  # the last box runs to the end of the file
            size = len(data) - offset
        assert size >= 8, f"corrupt box at offset {offset}"
        atoms.append(kind.decode("latin-1"))
        offset += size
    return atoms


def dominant_hue(frames: np.ndarray) -> float:
    """Centre (degrees) of the fullest 10-degree bin among clearly coloured pixels."""
    rgb = frames.reshape(-1, 3).astype(np.float32) / 255
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    delta = high - low
    coloured = (delta / np.maximum(high, 1e-6) > 0.25) & (high > 0.15)
    r, g, b = rgb[coloured].T
    d, h = delta[coloured], high[coloured]
    hue = np.where(h == r, ((g - b) / d) % 6, np.where(h == g, (b - r) / d + 2, (r - g) / d + 4))
    counts, edges = np.histogram(hue * 60, bins=36, range=(0, 360))
    return float(edges[int(np.argmax(counts))] + 5)


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def leftovers(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


async def poll_until(
    provider: Provider,
    remote_id: str,
    reached: Callable[[RemoteStatus], bool] = lambda status: status.state.is_terminal,
    within: float = 20.0,
) -> RemoteStatus:
    """Poll until ``reached`` holds; fail (never hang) after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        status = await provider.poll(remote_id)
        if reached(status):
            return status
        assert time.monotonic() < deadline, f"job still {status.state} at the deadline"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[int]]]:
    """The clips most tests inspect, rendered once for the module."""
    folder = tmp_path_factory.mktemp("clips")
    main = request(MAIN_PROMPT, duration=1.5, size="320x180", fps=24)
    return {
        "main": render(main, folder / "main.mp4"),
        "main_again": render(main, folder / "main_again.mp4"),
        "main_seed_2": render(main, folder / "main_seed_2.mp4", seed=2),
        "odd_fps": render(request("a ball", duration=1.02, fps=30), folder / "odd_fps.mp4"),
        "red": render(request("a red ball"), folder / "red.mp4"),
        "teal": render(request("a teal square"), folder / "teal.mp4"),
        "golden": render(request("golden waves"), folder / "golden.mp4"),
    }


# -- the file ---------------------------------------------------------------------


@pytest.mark.parametrize(("clip", "seconds", "fps"), [("main", 1.5, 24), ("odd_fps", 1.02, 30)])
def test_duration_is_within_one_frame_of_the_request(
    clips: dict[str, tuple[Path, list[int]]], clip: str, seconds: float, fps: int
) -> None:
    path, _ = clips[clip]
    with av.open(str(path)) as container:
        assert container.duration is not None
        assert abs(container.duration / av.time_base - seconds) <= 1 / fps
        video = container.streams.video[0]
        assert video.duration is not None and video.time_base is not None
        assert abs(float(video.duration * video.time_base) - seconds) <= 1 / fps
    assert len(decode_frames(path)) == round(seconds * fps)


def test_size_and_frame_rate_are_exact(clips: dict[str, tuple[Path, list[int]]]) -> None:
    with av.open(str(clips["main"][0])) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert video.average_rate == 24
    assert decode_frames(clips["main"][0]).shape == (36, 180, 320, 3)


def test_codecs_are_h264_yuv420p_and_aac(clips: dict[str, tuple[Path, list[int]]]) -> None:
    with av.open(str(clips["main"][0])) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 48_000


def test_moov_atom_comes_before_mdat(clips: dict[str, tuple[Path, list[int]]]) -> None:
    atoms = top_level_atoms(clips["main"][0])
    assert "moov" in atoms and "mdat" in atoms
    assert atoms.index("moov") < atoms.index("mdat")


def test_audio_is_present_and_not_silent(clips: dict[str, tuple[Path, list[int]]]) -> None:
    samples = decode_audio(clips["main"][0])
    assert samples.shape[0] == 2
    assert samples.shape[1] >= 1.4 * 48_000
    assert float(np.sqrt(np.mean(samples**2))) > 0.02


# -- the picture ------------------------------------------------------------------


def test_different_prompts_give_clearly_different_frames(
    clips: dict[str, tuple[Path, list[int]]],
) -> None:
    red = decode_frames(clips["red"][0]).astype(np.int16)
    teal = decode_frames(clips["teal"][0]).astype(np.int16)
    assert float(np.abs(red - teal).mean()) > 20


@pytest.mark.parametrize(("clip", "hue"), [("red", 0), ("teal", 178), ("golden", 43)])
def test_the_first_named_colour_is_the_dominant_hue(
    clips: dict[str, tuple[Path, list[int]]], clip: str, hue: float
) -> None:
    assert hue_distance(dominant_hue(decode_frames(clips[clip][0])), hue) <= 15


def test_same_prompt_and_seed_give_identical_frames(
    clips: dict[str, tuple[Path, list[int]]],
) -> None:
    assert np.array_equal(decode_frames(clips["main"][0]), decode_frames(clips["main_again"][0]))


def test_another_seed_gives_different_frames(clips: dict[str, tuple[Path, list[int]]]) -> None:
    first = decode_frames(clips["main"][0]).astype(np.int16)
    other = decode_frames(clips["main_seed_2"][0]).astype(np.int16)
    assert float(np.abs(first - other).mean()) > 2


def test_frames_change_over_the_clip(clips: dict[str, tuple[Path, list[int]]]) -> None:
    frames = decode_frames(clips["main"][0]).astype(np.int16)
    assert float(np.abs(frames[0] - frames[-1]).mean()) > 1


# -- the call ---------------------------------------------------------------------


def test_progress_never_decreases_and_ends_at_100(
    clips: dict[str, tuple[Path, list[int]]],
) -> None:
    _, progress = clips["main"]
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert all(0 <= percent <= 100 for percent in progress)
    assert len(progress) >= 10  # reported along the way, not only at the end


async def test_progress_is_reported_on_the_event_loop_thread(tmp_path: Path) -> None:
    threads: set[int] = set()
    await render_video(
        request("a ball", duration=0.5),
        tmp_path / "clip.mp4",
        seed=1,
        on_progress=lambda _: threads.add(threading.get_ident()),
    )
    assert threads == {threading.get_ident()}


async def test_cancelling_leaves_no_output_and_no_temp_files(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "clip.mp4"
    started = asyncio.Event()
    task = asyncio.create_task(
        render_video(
            request("rain over a city at night", duration=20, size="640x360", fps=30),
            dest,
            seed=1,
            on_progress=lambda _: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(dest.parent) == []


async def test_ffmpeg_failure_raises_ffmpeg_error_with_its_stderr(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    with pytest.raises(FFmpegError) as caught:
        await render_video(request("a ball"), dest, seed=1, preset="no-such-preset")
    assert caught.value.code == "ffmpeg_failed"
    assert caught.value.stderr_tail
    assert leftovers(tmp_path) == []


# -- the provider -----------------------------------------------------------------


def make_provider(settings: Settings, **options: str | int) -> LocalProvider:
    config = ProviderConfig(kind="local", price_per_second=0.01, options=dict(options))
    return LocalProvider(name="local", config=config, settings=settings)


async def test_provider_round_trip_submit_poll_download(settings: Settings, tmp_path: Path) -> None:
    provider = make_provider(settings)
    assert isinstance(provider, Provider)
    remote_id = await provider.submit(request("a blue cube spinning"), idempotency_key="job-1")
    status = await poll_until(provider, remote_id)
    assert status.state is RemoteState.SUCCEEDED
    assert status.progress == 100
    dest = await provider.download(remote_id, tmp_path / "downloaded.mp4")
    with av.open(str(dest)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (256, 144)
        assert container.streams.audio
    await provider.aclose()


async def test_provider_uses_the_request_seed(settings: Settings) -> None:
    provider = make_provider(settings)
    req = GenerationRequest(prompt="a ball", duration_seconds=0.5, size="256x144", seed=77)
    remote_id = await provider.submit(req, idempotency_key="seeded")
    assert (await provider.poll(remote_id)).extra["seed"] == "77"
    await provider.aclose()


async def test_same_idempotency_key_gives_the_same_job_rendered_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[Path] = []
    real_render_video = local_module.render_video

    async def counting_render_video(req: GenerationRequest, dest: Path, **kwargs: object) -> Path:
        renders.append(dest)
        return await real_render_video(req, dest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local_module, "render_video", counting_render_video)
    provider = make_provider(settings)
    req = request("a ball")
    first = await provider.submit(req, idempotency_key="same-key")
    second = await provider.submit(req, idempotency_key="same-key")
    assert first == second
    assert (await poll_until(provider, first)).state is RemoteState.SUCCEEDED
    assert await provider.submit(req, idempotency_key="same-key") == first
    assert len(renders) == 1
    other = await provider.submit(req, idempotency_key="other-key")
    assert other != first
    await provider.aclose()


async def test_finished_job_is_still_found_by_a_new_process(settings: Settings) -> None:
    first_process = make_provider(settings)
    remote_id = await first_process.submit(request("a ball"), idempotency_key="survivor")
    await poll_until(first_process, remote_id)
    await first_process.aclose()
    restarted = make_provider(settings)
    assert (await restarted.poll(remote_id)).state is RemoteState.SUCCEEDED


async def test_cancel_ends_the_job_cancelled_without_output(settings: Settings) -> None:
    provider = make_provider(settings)
    req = request("rain over a city", duration=20, size="640x360", fps=30)
    remote_id = await provider.submit(req, idempotency_key="to-cancel")
    await poll_until(provider, remote_id, lambda status: status.progress > 0)
    await provider.cancel(remote_id)
    assert (await provider.poll(remote_id)).state is RemoteState.CANCELLED
    assert leftovers(settings.work_dir / "local") == []
    await provider.aclose()


async def test_aclose_cancels_running_jobs(settings: Settings) -> None:
    provider = make_provider(settings)
    req = request("a ball", duration=20, size="640x360", fps=30)
    remote_id = await provider.submit(req, idempotency_key="closing")
    await provider.aclose()
    assert (await provider.poll(remote_id)).state is RemoteState.CANCELLED
    assert leftovers(settings.work_dir / "local") == []


async def test_failed_render_reports_the_error_code(settings: Settings) -> None:
    provider = make_provider(settings, preset="no-such-preset")
    remote_id = await provider.submit(request("a ball"), idempotency_key="broken")
    status = await poll_until(provider, remote_id)
    assert status.state is RemoteState.FAILED
    assert status.error_code == "ffmpeg_failed"
    assert status.error_message
    await provider.aclose()


async def test_a_failed_job_can_be_submitted_again_under_its_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_render_video = local_module.render_video
    failures = [FFmpegError("disk full")]

    async def fails_once(req: GenerationRequest, dest: Path, **kwargs: object) -> Path:
        if failures:
            raise failures.pop()
        return await real_render_video(req, dest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local_module, "render_video", fails_once)
    provider = make_provider(settings)
    remote_id = await provider.submit(request("a ball"), idempotency_key="retry-me")
    assert (await poll_until(provider, remote_id)).state is RemoteState.FAILED
    assert await provider.submit(request("a ball"), idempotency_key="retry-me") == remote_id
    assert (await poll_until(provider, remote_id)).state is RemoteState.SUCCEEDED
    await provider.aclose()


async def test_unknown_id_is_a_lost_job(settings: Settings) -> None:
    provider = make_provider(settings)
    with pytest.raises(RemoteJobLostError):
        await provider.poll("loc_0123456789abcdef0123")
    with pytest.raises(RemoteJobLostError):
        await provider.poll("../../etc/passwd")


def test_capabilities_come_from_the_config(settings: Settings) -> None:
    capabilities = make_provider(settings).capabilities()
    assert capabilities == Capabilities(
        max_duration_seconds=60.0,
        max_fps=60,
        audio=True,
        image_input=True,
        cost_per_second=0.01,
        negative_prompt=False,  # the renderer reads only the prompt
        in_process=True,  # its jobs die with the worker: a lost one is a worker loss
    )
