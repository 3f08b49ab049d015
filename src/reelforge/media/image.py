"""Still images: decoding an upload or reference, encoding PNG, scaling to a size.

The API checks and stores an ``input_reference`` with these functions (decode,
shrink, re-encode), and the renderer loads and covers a frame with them; both read
stills only through :func:`decode_image`, so PyAV's and the OS's errors are
translated in one place into an :class:`~reelforge.errors.UnreadableMediaError`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Final, cast

import av
import av.error
import numpy as np
import numpy.typing as npt

from reelforge.errors import UnreadableMediaError

__all__ = [
    "IMAGE_CODECS",
    "MAX_IMAGE_PIXELS",
    "ImageArray",
    "cover_image",
    "decode_image",
    "encode_png",
    "fit_image",
    "resize_image",
]

ImageArray = npt.NDArray[np.uint8]

# Stills we accept as an input reference: what PyAV calls PNG, JPEG and WebP.
IMAGE_CODECS: Final = frozenset({"png", "mjpeg", "webp"})
# Refused before decoding: a small file can still declare an enormous canvas.
MAX_IMAGE_PIXELS: Final = 40_000_000


def decode_image(source: bytes | Path) -> ImageArray:
    """The first frame of a PNG, JPEG or WebP image as (height, width, 3) RGB.

    Anything else (other formats, videos, broken data, a missing file, a canvas
    over :data:`MAX_IMAGE_PIXELS`) is an :class:`UnreadableMediaError`; PyAV's and
    the OS's errors are translated here.
    """
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        with av.open(opened, mode="r") as container:
            if not container.streams.video:
                raise UnreadableMediaError("not an image: it has no picture")
            stream = container.streams.video[0]
            codec = stream.codec_context
            if codec.name not in IMAGE_CODECS:
                raise UnreadableMediaError(f"not a PNG, JPEG or WebP image (found {codec.name})")
            if not 0 < codec.width * codec.height <= MAX_IMAGE_PIXELS:
                raise UnreadableMediaError(
                    f"image of {codec.width}x{codec.height} pixels is empty or larger "
                    f"than {MAX_IMAGE_PIXELS:,} pixels"
                )
            frame = next(container.decode(stream), None)
            if frame is None:
                raise UnreadableMediaError("the image holds no decodable picture")
            # rgb24 is always uint8; the stubs list every format's dtype.
            return cast(ImageArray, frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableMediaError(f"cannot decode the image: {exc}") from None


def resize_image(image: ImageArray, width: int, height: int) -> ImageArray:
    """``image`` scaled to exactly width x height (aspect not kept)."""
    # swscale's area filter averages when shrinking (no aliasing) and is smooth when growing.
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    scaled = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    return cast(ImageArray, scaled.to_ndarray(format="rgb24"))


def fit_image(image: ImageArray, max_side: int) -> ImageArray:
    """``image`` shrunk (aspect kept) so neither side exceeds ``max_side``."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    return resize_image(image, max(1, round(width * scale)), max(1, round(height * scale)))


def cover_image(image: ImageArray, width: int, height: int) -> ImageArray:
    """Scale ``image`` to cover width x height, then crop the middle (no bars, no stretch)."""
    image_height, image_width = image.shape[:2]
    scale = max(width / image_width, height / image_height)
    scaled_width = max(width, math.ceil(image_width * scale))
    scaled_height = max(height, math.ceil(image_height * scale))
    scaled = resize_image(image, scaled_width, scaled_height)
    top, left = (scaled_height - height) // 2, (scaled_width - width) // 2
    return scaled[top : top + height, left : left + width]


def encode_png(image: ImageArray) -> bytes:
    """``image`` (RGB) as PNG bytes: lossless, and free of the upload's metadata."""
    height, width = image.shape[:2]
    out = io.BytesIO()
    with av.open(out, mode="w", format="image2pipe") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()
