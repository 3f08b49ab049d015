"""The open video models the ``diffusers`` provider knows, and how a request maps onto one.

Each :class:`ModelSpec` (one table of ``catalogue.toml``) holds what the model's
diffusers pipeline documents (defaults of ``__call__``, the frame and size rules its
VAE and patching impose), its licence and the VRAM published for it (docs/gpu.md
cites the sources); adding a model is an entry there, not code. :func:`plan_generation`
turns our :class:`~reelforge.models.GenerationRequest` into the exact call arguments:

* size: each side rounded *down* to the model's multiple (what the pipelines do
  themselves, with a warning), never below one multiple; the video is encoded at the
  requested size, so the rounding is recorded in the plan, not forced on the client;
* duration x fps -> frames, rounded to the nearest valid count (``k * t + 1``);
* seed -> a CPU ``torch.Generator`` seed (the same frames on any device);
* negative prompt, steps and guidance (provider options override model defaults).

Nothing here imports torch: the API and the ordinary workers use it too.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from reelforge.errors import ProviderRejectedError
from reelforge.models import GenerationRequest

__all__ = [
    "CATALOGUE",
    "GenerationPlan",
    "ModelSpec",
    "plan_generation",
    "seed_from_key",
    "spec_for",
]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model family as its diffusers pipeline defines it."""

    key: str
    pipeline: str  # text-to-video class
    image_pipeline: str | None  # image-to-video class, if the family has one
    width: int
    height: int
    frames: int
    fps: int
    steps: int
    guidance_scale: float
    frame_step: int  # valid frame counts are frame_step * k + 1
    size_multiple: int
    max_frames: int
    licence: str
    vram: str  # as published, with offload where that is what the source states
    audio: bool = False
    output_type: str = "np"


def _load_catalogue() -> dict[str, ModelSpec]:
    """The models in ``catalogue.toml`` beside this module (its header cites sources)."""
    text = resources.files("reelforge.gpu").joinpath("catalogue.toml").read_text()
    models = tomllib.loads(text)["models"]
    return {key: ModelSpec(key=key, **fields) for key, fields in models.items()}


CATALOGUE: dict[str, ModelSpec] = _load_catalogue()

# A configured pipeline class without a named model gets its family's rules.
_FAMILY_BY_PIPELINE = {
    "WanPipeline": "wan2.1-t2v-1.3b",
    "WanImageToVideoPipeline": "wan2.1-t2v-1.3b",
    "LTXPipeline": "ltx-video",
    "LTXImageToVideoPipeline": "ltx-video",
    "LTX2Pipeline": "ltx-2",
    "LTX2ImageToVideoPipeline": "ltx-2",
    "HunyuanVideo15Pipeline": "hunyuanvideo-1.5",
    "HunyuanVideo15ImageToVideoPipeline": "hunyuanvideo-1.5",
    "CogVideoXPipeline": "cogvideox-5b",
    "CogVideoXImageToVideoPipeline": "cogvideox-5b",
}


def spec_for(options: dict[str, Any], *, provider: str) -> ModelSpec:
    """The catalogue entry a provider's options name (``model``), else the family of
    its ``pipeline`` class."""
    model = options.get("model")
    if model is not None:
        spec = CATALOGUE.get(str(model))
        if spec is None:
            known = ", ".join(sorted(CATALOGUE))
            raise ProviderRejectedError(
                f"provider {provider!r}: unknown model {model!r}; known: {known}",
                code="provider_misconfigured",
            )
        return spec
    pipeline = str(options.get("pipeline", ""))
    family = _FAMILY_BY_PIPELINE.get(pipeline)
    if family is None:
        known = ", ".join(sorted(_FAMILY_BY_PIPELINE))
        raise ProviderRejectedError(
            f"provider {provider!r}: pipeline {pipeline!r} is not supported; known: {known}",
            code="provider_misconfigured",
        )
    return CATALOGUE[family]


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """Exactly what a GPU worker passes to the pipeline, and how it was derived."""

    prompt: str
    negative_prompt: str | None
    width: int  # what the model generates
    height: int
    frames: int
    fps: int
    steps: int
    guidance_scale: float
    seed: int
    output_width: int  # what we deliver (the request's size)
    output_height: int
    image: str | None = None  # an upload's name, for image-to-video
    rounding: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationPlan:
        return cls(**data)


def _round_side(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)


def _valid_frames(wanted: int, step: int) -> int:
    k = max(0, round((wanted - 1) / step))
    return k * step + 1


def seed_from_key(idempotency_key: str) -> int:
    digest = hashlib.sha256(b"seed:" + idempotency_key.encode()).digest()
    return int.from_bytes(digest[:4], "big")


def plan_generation(
    req: GenerationRequest, spec: ModelSpec, options: dict[str, Any], *, idempotency_key: str
) -> GenerationPlan:
    """Map a request onto ``spec``; options ``steps`` and ``guidance_scale`` override."""
    rounding: dict[str, str] = {}
    width = _round_side(req.width, spec.size_multiple)
    height = _round_side(req.height, spec.size_multiple)
    if (width, height) != (req.width, req.height):
        rounding["size"] = (
            f"{req.width}x{req.height} -> {width}x{height} "
            f"(multiples of {spec.size_multiple}; delivered at {req.width}x{req.height})"
        )
    wanted = max(1, round(req.duration_seconds * req.fps))
    frames = _valid_frames(wanted, spec.frame_step)
    if frames != wanted:
        rounding["frames"] = f"{wanted} -> {frames} ({spec.frame_step}k+1)"
    if frames > spec.max_frames:
        raise ProviderRejectedError(
            f"{spec.key} makes at most {spec.max_frames} frames "
            f"({spec.max_frames / req.fps:.1f} s at {req.fps} fps); asked for {frames}",
            code="invalid_duration",
        )
    return GenerationPlan(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        width=width,
        height=height,
        frames=frames,
        fps=req.fps,
        steps=int(options.get("steps", spec.steps)),
        guidance_scale=float(options.get("guidance_scale", spec.guidance_scale)),
        seed=req.seed if req.seed is not None else seed_from_key(idempotency_key),
        output_width=req.width,
        output_height=req.height,
        image=req.image,
        rounding=rounding,
    )
