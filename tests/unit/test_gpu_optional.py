"""The core service stays free of the ``gpu`` extra: nothing outside the GPU
runner imports torch or diffusers, and misconfigured GPU providers say what is
missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reelforge.errors import ProviderRejectedError, RemoteJobLostError
from reelforge.providers import build_provider
from reelforge.providers.diffusers import DiffusersProvider
from reelforge.settings import ProviderConfig, Settings
from tests.service import REPO


def test_the_service_and_the_gpu_providers_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import reelforge.api.app, reelforge.cli, reelforge.worker\n"
        "import reelforge.providers.diffusers, reelforge.providers.comfyui\n"
        "import reelforge.gpu.worker, reelforge.gpu.jobs, reelforge.gpu.catalogue\n"
        "heavy = {'torch', 'diffusers', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_a_diffusers_provider_without_model_path_is_misconfigured(settings: Settings) -> None:
    config = ProviderConfig(kind="diffusers", options={"pipeline": "WanPipeline"})
    configured = settings.model_copy(update={"providers": {"gpu": config}})
    with pytest.raises(ProviderRejectedError) as caught:
        build_provider("gpu", configured)
    assert caught.value.code == "provider_misconfigured"


def test_a_comfyui_provider_without_a_workflow_is_misconfigured(settings: Settings) -> None:
    config = ProviderConfig(kind="comfyui", base_url="http://127.0.0.1:8188")
    configured = settings.model_copy(update={"providers": {"comfy": config}})
    with pytest.raises(ProviderRejectedError) as caught:
        build_provider("comfy", configured)
    assert caught.value.code == "provider_misconfigured"


async def test_polling_an_id_that_is_not_a_gpu_job_reports_it_lost(settings: Settings) -> None:
    config = ProviderConfig(
        kind="diffusers", options={"model_path": "/models/wan", "pipeline": "WanPipeline"}
    )
    provider = DiffusersProvider(name="gpu", config=config, settings=settings)
    with pytest.raises(RemoteJobLostError):
        await provider.poll("../../etc/passwd")
    await provider.aclose()


def test_an_image_to_video_class_advertises_image_input(settings: Settings) -> None:
    t2v = ProviderConfig(kind="diffusers", options={"model_path": "m", "pipeline": "WanPipeline"})
    i2v = ProviderConfig(
        kind="diffusers", options={"model_path": "m", "pipeline": "WanImageToVideoPipeline"}
    )
    assert not DiffusersProvider(name="a", config=t2v, settings=settings).capabilities().image_input
    assert DiffusersProvider(name="b", config=i2v, settings=settings).capabilities().image_input


def test_gpu_worker_refuses_a_provider_that_is_not_diffusers(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reelforge", "gpu-worker", "--provider", "local", "--device", "cpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "PYTHONPATH": str(REPO),
        },
    )
    assert result.returncode == 1
    assert "[provider_misconfigured]" in result.stderr
