"""An input reference image drives the local renderer: its colours, its pixels.

Frames are decoded with PyAV, independently of the code that wrote them.
"""

from __future__ import annotations

import asyncio
import colorsys
from pathlib import Path

import av
import numpy as np
import pytest

from reelforge.errors import UnreadableMediaError
from reelforge.media.image import decode_image, encode_png
from reelforge.media.render import render_video
from reelforge.models import GenerationRequest
from reelforge.providers.base import RemoteState
from reelforge.providers.local import LocalProvider
from reelforge.settings import ProviderConfig, Settings

pytestmark = pytest.mark.slow

TEAL = (20, 170, 160)
PROMPT = "a ball drifting"  # names no colour: the image decides the palette


def request(image: str | None = None, *, size: str = "256x144") -> GenerationRequest:
    return GenerationRequest(
        prompt=PROMPT, duration_seconds=1.0, size=size, fps=24, seed=5, image=image
    )


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def hue(rgb: np.ndarray) -> float:
    red, green, blue = (float(c) / 255 for c in rgb)
    return colorsys.rgb_to_hsv(red, green, blue)[0] * 360


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.write_bytes(encode_png(image))
    return path


def solid(rgb: tuple[int, int, int], width: int = 120, height: int = 90) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = rgb
    return image


def render(req: GenerationRequest, dest: Path, reference: Path | None = None) -> Path:
    asyncio.run(render_video(req, dest, seed=5, reference_image=reference))
    return dest


def test_the_image_colours_the_frames(tmp_path: Path) -> None:
    reference = write_png(tmp_path / "teal.png", solid(TEAL))
    with_image = frames_of(render(request("teal.png"), tmp_path / "with.mp4", reference))
    without = frames_of(render(request(), tmp_path / "without.mp4"))
    median_with = np.median(with_image.reshape(-1, 3), axis=0)
    median_without = np.median(without.reshape(-1, 3), axis=0)
    assert hue_distance(hue(median_with), hue(np.array(TEAL))) < 10
    assert hue_distance(hue(median_without), hue(np.array(TEAL))) > 30


def test_the_image_is_darkened_so_the_scene_stands_out(tmp_path: Path) -> None:
    reference = write_png(tmp_path / "white.png", solid((250, 250, 250)))
    frames = frames_of(render(request("white.png"), tmp_path / "clip.mp4", reference))
    assert 120 < float(np.median(frames)) < 220


def test_the_background_pans_across_the_image(tmp_path: Path) -> None:
    # Red rises from left to right: a window moving sideways sees it change.
    gradient = np.zeros((90, 160, 3), dtype=np.uint8)
    gradient[..., 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    gradient[..., 2] = 60
    reference = write_png(tmp_path / "gradient.png", gradient)
    req = GenerationRequest(
        prompt=PROMPT, duration_seconds=2.0, size="256x144", fps=12, seed=5, image="g.png"
    )
    frames = frames_of(render(req, tmp_path / "clip.mp4", reference)).astype(np.int32)
    # Median red of the top rows: robust to a ball passing through.
    first, last = (np.median(frame[:12, :, 0]) for frame in (frames[0], frames[-1]))
    assert abs(first - last) >= 8


def test_a_jpeg_or_webp_reference_works_as_well_as_png(tmp_path: Path) -> None:
    image = solid(TEAL)
    for codec, name in (("mjpeg", "ref.jpg"), ("libwebp", "ref.webp")):
        path = tmp_path / name
        with av.open(str(path), mode="w", format="image2") as container:
            stream = container.add_stream(codec)
            stream.width, stream.height = image.shape[1], image.shape[0]
            stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                format=stream.pix_fmt
            )
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
        decoded = decode_image(path)
        assert decoded.shape == image.shape
        assert hue_distance(hue(decoded[45, 60]), hue(np.array(TEAL))) < 8, name


@pytest.mark.parametrize(
    "content",
    [b"", b"plain text, not an image" * 10, b"GIF89a" + bytes(64)],
    ids=["empty", "text", "gif"],
)
def test_anything_but_png_jpeg_or_webp_is_unreadable(content: bytes) -> None:
    with pytest.raises(UnreadableMediaError):
        decode_image(content)


def test_a_video_is_not_an_image(tmp_path: Path) -> None:
    clip = render(request(), tmp_path / "clip.mp4")
    with pytest.raises(UnreadableMediaError, match="not a PNG, JPEG or WebP"):
        decode_image(clip.read_bytes())


async def test_a_missing_reference_fails_the_render_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "clip.mp4"
    with pytest.raises(UnreadableMediaError):
        await render_video(request("gone.png"), dest, seed=1, reference_image=tmp_path / "gone.png")
    assert sorted(p.name for p in dest.parent.iterdir()) == []


async def test_the_local_provider_renders_with_an_uploaded_image(settings: Settings) -> None:
    settings.uploads_dir.mkdir(parents=True)
    write_png(settings.uploads_dir / "ref_teal.png", solid(TEAL))
    provider = LocalProvider(name="local", config=ProviderConfig(), settings=settings)
    assert provider.capabilities().image_input
    remote_id = await provider.submit(request("ref_teal.png"), idempotency_key="with-image")
    try:
        for _ in range(1000):
            status = await provider.poll(remote_id)
            if status.state.is_terminal:
                break
            await asyncio.sleep(0.02)
        assert status.state is RemoteState.SUCCEEDED
        dest = await provider.download(remote_id, settings.data_dir / "clip.mp4")
        median = np.median(frames_of(dest).reshape(-1, 3), axis=0)
        assert hue_distance(hue(median), hue(np.array(TEAL))) < 10
    finally:
        await provider.aclose()
