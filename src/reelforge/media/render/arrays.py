"""Type aliases for the colours and arrays the renderer's modules pass around."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from reelforge.media.image import ImageArray

__all__ = ["RGB", "FloatArray", "ImageArray", "Mask"]

RGB = tuple[int, int, int]
# Frames are computed in float32; the stubs widen some results to float64, so accept any.
FloatArray = npt.NDArray[np.floating[Any]]
Mask = npt.NDArray[np.bool_]
