"""The model catalogue: what each vendor model accepts, can make and costs.

Vendor adapters are transports (auth, endpoints, status strings, errors). What differs
from model to model behind one transport (field names, ``"8s"`` vs ``8``, ``ratio``
vs ``aspect_ratio`` vs ``size``, which durations and sizes exist, the price) is data,
in ``catalogue.toml`` beside this module, one table per adapter kind::

    [runway."gen4.5"]
    durations = [2, 3, 4, 5, 6, 7, 8, 9, 10]
    sizes = ["1280x720", "720x1280"]
    size_format = "ratio"          # 1280x720 -> "1280:720"
    fields = { prompt = "promptText", duration = "duration", size = "ratio", seed = "seed" }
    price_per_second = 0.12

So adding a model on fal or Replicate is a catalogue entry, not code. Operators add
or override entries with ``settings.catalogue`` (same shape, merged over the file).
A provider picks its model with ``options.model``; :meth:`ModelSpec.capabilities`
feeds the router's fit check and cost estimate; :meth:`ModelSpec.build_input` maps a
request onto the model's input fields.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from reelforge.errors import ReelforgeError
from reelforge.models import GenerationRequest
from reelforge.providers.base import Capabilities

__all__ = ["ModelSpec", "builtin_catalogue", "catalogue", "model_spec"]

DurationFormat = Literal["int", "string", "seconds_suffix"]
SizeFormat = Literal["ratio", "aspect_ratio", "size", "size_star"]

# Our request fields a model may take, as the keys of ``fields``.
REQUEST_FIELDS = frozenset(
    {"prompt", "negative_prompt", "duration", "size", "resolution", "seed", "image", "audio"}
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model behind one adapter kind (``kind`` + ``model`` identify it)."""

    kind: str
    model: str
    # Our field -> the model's input field (absent: the model does not take it).
    fields: Mapping[str, str]
    durations: tuple[int, ...]
    sizes: tuple[str, ...]
    duration_format: DurationFormat = "int"
    size_format: SizeFormat = "aspect_ratio"
    fps: int = 24
    audio: bool = False  # whether results have a soundtrack
    image_input: bool = False
    text_input: bool = True  # False: image-to-video only
    max_prompt_length: int | None = None
    price_per_second: float = 0.0
    price_per_second_audio: float | None = None  # None: audio costs nothing extra
    endpoint: str | None = None  # text-to-video path/name when it differs from ``model``
    image_endpoint: str | None = None  # image-to-video path/name (fal, Runway)
    extra_input: Mapping[str, Any] = field(default_factory=dict)  # sent as is
    # Short side in pixels -> the model's resolution name, when not "<short>p".
    resolution_names: Mapping[str, str] = field(default_factory=dict)
    licence: str | None = None
    notes: str = ""

    @property
    def negative_prompt(self) -> bool:
        return "negative_prompt" in self.fields

    def capabilities(self) -> Capabilities:
        return Capabilities(
            max_duration_seconds=float(max(self.durations)),
            durations=tuple(float(d) for d in self.durations),
            sizes=self.sizes,
            max_fps=60,
            audio=self.audio,
            image_input=self.image_input,
            cost_per_second=self.price_for(audio=self.audio),
            # Vendors render at their own frame rate: results are not held to ours.
            honours_fps=False,
            max_prompt_length=self.max_prompt_length,
            negative_prompt=self.negative_prompt,
        )

    def price_for(self, *, audio: bool) -> float:
        if audio and self.price_per_second_audio is not None:
            return self.price_per_second_audio
        return self.price_per_second

    def estimate_cost(self, req: GenerationRequest) -> float:
        return round(self.price_for(audio=self.audio) * req.duration_seconds, 6)

    def build_input(
        self, req: GenerationRequest, *, image: Any = None, prompt: str | None = None
    ) -> dict[str, Any]:
        """The model's input for ``req``: only fields the model takes, in its formats.

        ``image`` is the already-encoded image value (a URL, a data URI, an object):
        adapters know how their vendor wants it. ``prompt`` overrides ``req.prompt``
        (e.g. a processed prompt).
        """
        if req.image is not None and not self.image_input:
            raise ReelforgeError(
                f"{self.kind} model {self.model} takes no input image", code="unsupported_input"
            )
        if req.image is None and not self.text_input:
            raise ReelforgeError(
                f"{self.kind} model {self.model} needs an input image", code="unsupported_input"
            )
        width, height = req.width, req.height
        values: dict[str, Any] = {
            "prompt": prompt if prompt is not None else req.prompt,
            "negative_prompt": req.negative_prompt,
            "duration": self._duration(req.duration_seconds),
            "size": self._size(width, height),
            "resolution": self._resolution(width, height),
            "seed": req.seed,
            "image": image,
            "audio": self.audio,
        }
        body: dict[str, Any] = dict(self.extra_input)
        for ours, theirs in self.fields.items():
            value = values[ours]
            if value is not None:
                body[theirs] = value
        return body

    def _duration(self, seconds: float) -> int | str:
        whole = int(seconds) if float(seconds).is_integer() else math.ceil(seconds)
        if self.duration_format == "string":
            return str(whole)
        if self.duration_format == "seconds_suffix":
            return f"{whole}s"
        return whole

    def _size(self, width: int, height: int) -> str:
        if self.size_format == "ratio":
            return f"{width}:{height}"
        if self.size_format == "size":
            return f"{width}x{height}"
        if self.size_format == "size_star":
            return f"{width}*{height}"
        # The named aspect ratio nearest the size (1366x768 is "16:9").
        ratio = width / height
        return min(_ASPECT_RATIOS, key=lambda r: abs(math.log(ratio / (r[0] / r[1]))))[2]

    def _resolution(self, width: int, height: int) -> str:
        short = str(min(width, height))
        return self.resolution_names.get(short, f"{short}p")


_ASPECT_RATIOS = [
    (w, h, f"{w}:{h}")
    for w, h in ((16, 9), (9, 16), (1, 1), (4, 3), (3, 4), (21, 9), (9, 21), (3, 2), (2, 3))
]


def _spec(kind: str, model: str, data: Mapping[str, Any]) -> ModelSpec:
    fields = dict(data.get("fields", {}))
    unknown = set(fields) - REQUEST_FIELDS
    if unknown:
        raise ValueError(f"catalogue {kind}.{model}: unknown request fields {sorted(unknown)}")
    known = set(ModelSpec.__dataclass_fields__) - {"kind", "model"}
    extra = set(data) - known
    if extra:
        raise ValueError(f"catalogue {kind}.{model}: unknown keys {sorted(extra)}")
    values = {k: v for k, v in data.items() if k != "fields"}
    values["durations"] = tuple(int(d) for d in data.get("durations", ()))
    values["sizes"] = tuple(data.get("sizes", ()))
    if not values["durations"] or not values["sizes"]:
        raise ValueError(f"catalogue {kind}.{model}: durations and sizes are required")
    values["resolution_names"] = {str(k): v for k, v in data.get("resolution_names", {}).items()}
    return ModelSpec(kind=kind, model=model, fields=fields, **values)


def _parse(tables: Mapping[str, Any]) -> dict[tuple[str, str], ModelSpec]:
    return {
        (kind, model): _spec(kind, model, data)
        for kind, models in tables.items()
        for model, data in models.items()
    }


@cache
def builtin_catalogue() -> dict[tuple[str, str], ModelSpec]:
    """The catalogue shipped in the package (``catalogue.toml``)."""
    text = resources.files("reelforge.providers").joinpath("catalogue.toml").read_text()
    return _parse(tomllib.loads(text))


def catalogue(overrides: Mapping[str, Any] | None = None) -> dict[tuple[str, str], ModelSpec]:
    """The shipped catalogue with ``overrides`` (settings.catalogue) merged over it:
    an override table replaces the shipped entry of the same kind and model whole."""
    merged = dict(builtin_catalogue())
    merged.update(_parse(overrides or {}))
    return merged


def model_spec(kind: str, model: str, overrides: Mapping[str, Any] | None = None) -> ModelSpec:
    """The entry for ``model`` behind adapter ``kind``, or a clear configuration error."""
    entries = catalogue(overrides)
    spec = entries.get((kind, model))
    if spec is None:
        known = ", ".join(sorted(m for k, m in entries if k == kind)) or "none"
        raise ReelforgeError(
            f"the catalogue has no {kind} model {model!r}; known: {known}",
            code="unknown_model",
        )
    return spec
