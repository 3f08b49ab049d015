"""The pipeline runner on a tiny random-weight Wan loaded from disk by the real
loading code: frames of the planned shape, per-step hook, cancel within one step,
out-of-memory reported as ``gpu_out_of_memory`` with the pipeline still usable, and
a clear error for a model that is not there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reelforge.errors import GenerationFailedError, JobCancelledError, ProviderRejectedError
from reelforge.gpu.catalogue import GenerationPlan
from tests.service import REPO

pytest.importorskip("diffusers", reason="needs the gpu extra: pip install 'reelforge[gpu]'")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),  # the first test builds the model and imports torch
    # diffusers and transformers warn about their own deprecations on import and load.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

PLAN = GenerationPlan(
    prompt="a cat dance",
    negative_prompt="",
    width=64,
    height=64,
    frames=9,
    fps=16,
    steps=4,
    guidance_scale=5.0,
    seed=3,
    output_width=64,
    output_height=64,
)


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    target = root / "tiny-wan"
    subprocess.run(
        [sys.executable, "-m", "tests.tiny_pipelines", str(root), "wan"],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.fixture(scope="module")
def loaded(tiny_wan: Path) -> Any:
    from reelforge.gpu.runner import load_pipeline

    options = {"model_path": str(tiny_wan), "pipeline": "WanPipeline", "max_sequence_length": 16}
    return load_pipeline(options, device="cpu", model="wan2.1-t2v-1.3b")


def test_a_generation_gives_uint8_frames_of_the_planned_shape(loaded: Any) -> None:
    steps: list[tuple[int, int]] = []
    video = loaded.generate(
        PLAN, on_step=lambda d, t: steps.append((d, t)), should_stop=lambda: False
    )
    assert video.frames.shape == (9, 64, 64, 3)
    assert str(video.frames.dtype) == "uint8"
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_stop_request_ends_denoising_at_the_next_step(loaded: Any) -> None:
    steps: list[int] = []
    with pytest.raises(JobCancelledError):
        loaded.generate(
            PLAN, on_step=lambda d, t: steps.append(d), should_stop=lambda: len(steps) >= 2
        )
    assert steps == [1, 2]


def test_out_of_memory_is_reported_and_the_pipeline_goes_on(loaded: Any) -> None:
    import torch

    def exhaust(done: int, total: int) -> None:
        if done == 2:  # what CUDA raises when an allocation fails mid-denoise
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(GenerationFailedError) as caught:
        loaded.generate(PLAN, on_step=exhaust, should_stop=lambda: False)
    assert caught.value.code == "gpu_out_of_memory"
    video = loaded.generate(PLAN, on_step=lambda d, t: None, should_stop=lambda: False)
    assert video.frames.shape[0] == 9


def test_a_missing_model_directory_is_a_clear_model_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelforge.gpu.runner import load_pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProviderRejectedError) as caught:
        load_pipeline(
            {"model_path": str(tmp_path / "nothing-here"), "pipeline": "WanPipeline"},
            device="cpu",
            model="wan2.1-t2v-1.3b",
        )
    assert caught.value.code == "model_not_found"
    assert "nothing-here" in caught.value.message


def test_a_class_that_is_not_a_diffusers_pipeline_is_refused(tiny_wan: Path) -> None:
    from reelforge.gpu.runner import load_pipeline

    with pytest.raises(ProviderRejectedError) as caught:
        load_pipeline(
            {"model_path": str(tiny_wan), "pipeline": "AutoencoderKLWan"},
            device="cpu",
            model="wan2.1-t2v-1.3b",
        )
    assert caught.value.code == "provider_misconfigured"
