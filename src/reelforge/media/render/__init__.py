"""The offline procedural renderer behind the ``local`` provider.

A prompt becomes a clip in three steps, one module each:

* :mod:`~reelforge.media.render.scene` — :func:`scene_from_prompt` turns a prompt
  and a seed into a :class:`Scene` (palette, backdrop or setting, subjects, motion,
  mood, caption, music), no pixels yet; :func:`scene_with_reference` recolours it
  from an image.
* :mod:`~reelforge.media.render.frames` — :class:`SceneRenderer` draws its frames
  (backdrop, layers, moving bodies and caption, from the modules beside it), and
  :mod:`~reelforge.media.render.sound` — :func:`synthesize_soundtrack` its music.
* :mod:`~reelforge.media.render.encoder` — :func:`render_video` encodes both into
  a real MP4 with the bundled ffmpeg.

Still images (decode, encode, fit) live in :mod:`reelforge.media.image`; they are
re-exported here for the renderer's callers.
"""

from __future__ import annotations

from reelforge.media.image import (
    IMAGE_CODECS,
    MAX_IMAGE_PIXELS,
    decode_image,
    encode_png,
    fit_image,
)
from reelforge.media.render.encoder import render_video
from reelforge.media.render.frames import SceneRenderer
from reelforge.media.render.reference import scene_with_reference
from reelforge.media.render.scene import Scene, scene_from_prompt
from reelforge.media.render.sound import AUDIO_SAMPLE_RATE, synthesize_soundtrack

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "IMAGE_CODECS",
    "MAX_IMAGE_PIXELS",
    "Scene",
    "SceneRenderer",
    "decode_image",
    "encode_png",
    "fit_image",
    "render_video",
    "scene_from_prompt",
    "scene_with_reference",
    "synthesize_soundtrack",
]
