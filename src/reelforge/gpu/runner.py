"""Loading a diffusers pipeline once and running generation plans on it.

The only module that imports torch and diffusers, and only when a GPU worker (or
the GPU benchmark) calls :func:`load_pipeline`: the service installs and runs
without the ``gpu`` extra.

Progress and cancel work the same for every pipeline class: each one wraps its
denoising loop in ``with self.progress_bar(total=steps) as bar: ... bar.update()``,
so an instance attribute shadowing ``progress_bar`` sees every step
(HunyuanVideo-1.5 has no ``callback_on_step_end``). Cancel raises from ``update``:
the pipeline stops at that step and skips the VAE decode (setting
``pipe._interrupt`` would still decode). GPU memory is freed after a cancel, a
failure and an out-of-memory error, so the worker goes on with the next job.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from reelforge.errors import (
    GenerationFailedError,
    JobCancelledError,
    ProviderRejectedError,
)
from reelforge.gpu.catalogue import GenerationPlan
from reelforge.media.frames import frames_to_uint8

__all__ = [
    "GeneratedVideo",
    "GpuOutOfMemoryError",
    "LoadedPipeline",
    "ModelNotFoundError",
    "load_pipeline",
]

_DTYPES = ("float32", "float16", "bfloat16")


class ModelNotFoundError(ProviderRejectedError):
    """The model is neither a loadable local directory nor fetchable (no network)."""

    code = "model_not_found"


class GpuOutOfMemoryError(GenerationFailedError):
    """The device ran out of memory for this job; the worker freed it and goes on."""

    def __init__(self, message: str):
        super().__init__(message, remote_code="gpu_out_of_memory")


class _StopRequested(Exception):
    """Raised from the progress hook to end the denoising loop at once."""


@dataclass(frozen=True, slots=True)
class GeneratedVideo:
    frames: npt.NDArray[np.uint8]  # (F, H, W, 3)
    fps: int
    audio: npt.NDArray[np.float32] | None = None
    sample_rate: int | None = None


class _StepHook:
    """What ``pipe.progress_bar(...)`` returns: counts steps, stops when asked."""

    def __init__(self, on_step: Callable[[int, int], None], stop: Callable[[], bool], total: int):
        self._on_step = on_step
        self._stop = stop
        self._total = total
        self.done = 0

    def __enter__(self) -> _StepHook:
        if self._stop():
            raise _StopRequested
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        self.done += n
        self._on_step(self.done, self._total)
        if self._stop():
            raise _StopRequested


def _dtype(name: str) -> Any:
    import torch

    if name not in _DTYPES:
        raise ProviderRejectedError(
            f"dtype {name!r} is not one of {', '.join(_DTYPES)}", code="provider_misconfigured"
        )
    return getattr(torch, name)


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class LoadedPipeline:
    """A pipeline kept warm on one device; :meth:`generate` runs one plan at a time."""

    def __init__(self, pipe: Any, *, device: str, options: dict[str, Any], model: str):
        self.pipe = pipe
        self.device = device
        self.model = model
        self._options = options
        self._params = set(inspect.signature(pipe.__call__).parameters)

    def _call_kwargs(self, plan: GenerationPlan, image: Any | None) -> dict[str, Any]:
        import torch

        kwargs: dict[str, Any] = {
            "prompt": plan.prompt,
            "negative_prompt": plan.negative_prompt or "",
            "height": plan.height,
            "width": plan.width,
            "num_frames": plan.frames,
            "num_inference_steps": plan.steps,
            "guidance_scale": plan.guidance_scale,
            # A CPU generator: the same seed gives the same frames on any device.
            "generator": torch.Generator("cpu").manual_seed(plan.seed),
            "output_type": "np",
            "frame_rate": plan.fps,  # LTX conditions on it
        }
        if "max_sequence_length" in self._options:
            kwargs["max_sequence_length"] = int(self._options["max_sequence_length"])
        if image is not None:
            kwargs["image"] = image
        return {k: v for k, v in kwargs.items() if k in self._params}

    def generate(
        self,
        plan: GenerationPlan,
        *,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        image_path: Path | None = None,
    ) -> GeneratedVideo:
        """Run ``plan``; ``on_step(done, total)`` after each denoising step.

        Raises JobCancelledError when ``should_stop`` turned true (checked at every
        step), GpuOutOfMemoryError on OOM, GenerationFailedError on other failures.
        """
        image = _load_image(image_path) if image_path is not None else None
        kwargs = self._call_kwargs(plan, image)

        def progress_bar(iterable: Any = None, total: int | None = None) -> _StepHook:
            return _StepHook(on_step, should_stop, total or plan.steps)

        self.pipe.progress_bar = progress_bar
        try:
            import torch

            with torch.inference_mode():
                output = self.pipe(**kwargs)
        except _StopRequested:
            self.free_memory()
            raise JobCancelledError("cancelled during denoising") from None
        except Exception as exc:
            self.free_memory()
            if _is_oom(exc):
                raise GpuOutOfMemoryError(
                    f"{self.device} ran out of memory at {plan.width}x{plan.height}, "
                    f"{plan.frames} frames: try a smaller size or fewer frames, or enable "
                    "CPU offload / VAE tiling"
                ) from None
            raise GenerationFailedError(
                f"the pipeline failed: {type(exc).__name__}: {exc}", remote_code="pipeline_error"
            ) from None
        frames = np.asarray(output.frames[0])
        audio = getattr(output, "audio", None)
        return GeneratedVideo(
            frames=frames_to_uint8(frames),
            fps=plan.fps,
            audio=_audio_array(audio),
            sample_rate=self._audio_rate() if audio is not None else None,
        )

    def _audio_rate(self) -> int | None:
        vocoder = getattr(self.pipe, "vocoder", None)
        rate = getattr(getattr(vocoder, "config", None), "output_sampling_rate", None)
        return int(rate) if rate else None

    def free_memory(self) -> None:
        import torch

        with contextlib.suppress(Exception):
            self.pipe.maybe_free_model_hooks()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _audio_array(audio: Any) -> npt.NDArray[np.float32] | None:
    if audio is None:
        return None
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    array = np.asarray(audio, dtype=np.float32)
    while array.ndim > 2:  # (batch, channels, samples) -> (channels, samples)
        array = array[0]
    return array


def _load_image(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


@contextlib.contextmanager
def _translate_load_errors(model_path: str) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as exc:
        where = "directory" if Path(model_path).exists() else "model id"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (
            "download it first (huggingface-cli download ...) and set options.model_path "
            "to the directory"
            if not Path(model_path).exists()
            else "the directory is not a complete diffusers pipeline (model_index.json)"
        )
        raise ModelNotFoundError(
            f"cannot load {where} {model_path!r}{' (offline)' if offline else ''}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; {hint}"
        ) from None


def load_pipeline(options: dict[str, Any], *, device: str, model: str) -> LoadedPipeline:
    """Load ``options.pipeline`` from ``options.model_path`` onto ``device``.

    Options: ``dtype`` (float32 | float16 | bfloat16; default bfloat16 on CUDA,
    float32 elsewhere), ``cpu_offload`` (model offload: the pipeline moves each model
    to the GPU only while it runs), ``vae_tiling``, ``max_sequence_length``.
    """
    import diffusers

    model_path = str(options.get("model_path") or "")
    pipeline_name = str(options.get("pipeline") or "")
    if not model_path or not pipeline_name:
        raise ProviderRejectedError(
            "a diffusers provider needs options.model_path and options.pipeline",
            code="provider_misconfigured",
        )
    cls = getattr(diffusers, pipeline_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise ProviderRejectedError(
            f"{pipeline_name!r} is not a diffusers pipeline class", code="provider_misconfigured"
        )
    default_dtype = "bfloat16" if device.startswith("cuda") else "float32"
    dtype = _dtype(str(options.get("dtype", default_dtype)))
    with _translate_load_errors(model_path):
        pipe = cls.from_pretrained(model_path, dtype=dtype)  # type: ignore[no-untyped-call]
    if options.get("cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.get("vae_tiling") and hasattr(pipe, "vae"):
        with contextlib.suppress(AttributeError, NotImplementedError):
            pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    return LoadedPipeline(pipe, device=device, options=options, model=model)
