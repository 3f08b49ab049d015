"""The ``openai`` provider's extra generation fields for open-model servers
(SGLang-Diffusion, vLLM-Omni), checked on the wire (httpx MockTransport)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from reelforge.errors import ProviderRejectedError
from reelforge.models import GenerationRequest
from reelforge.providers.openai import OpenAIVideosProvider
from reelforge.settings import ProviderConfig, Settings

REQ = GenerationRequest(
    prompt="a red ball",
    duration_seconds=5,
    size="832x480",
    fps=16,
    seed=7,
    negative_prompt="blurry",
)


def _provider(
    settings: Settings, seen: list[httpx.Request], **options: str | int | float
) -> OpenAIVideosProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "video_1", "status": "queued"})

    config = ProviderConfig(kind="openai", base_url="http://server/v1", options=dict(options))
    return OpenAIVideosProvider(
        name="open", config=config, settings=settings, transport=httpx.MockTransport(handler)
    )


async def test_sglang_gets_the_open_model_fields_as_json(settings: Settings) -> None:
    seen: list[httpx.Request] = []
    provider = _provider(settings, seen, server="sglang", steps=30, guidance_scale=4.5)
    await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()
    body = json.loads(seen[0].content)
    assert body["num_frames"] == 80
    assert body["fps"] == 16
    assert body["seed"] == 7
    assert body["negative_prompt"] == "blurry"
    assert body["num_inference_steps"] == 30
    assert body["guidance_scale"] == 4.5
    assert body["size"] == "832x480"


async def test_vllm_omni_gets_them_form_encoded(settings: Settings) -> None:
    seen: list[httpx.Request] = []
    provider = _provider(settings, seen, server="vllm-omni", steps=20)
    await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()
    assert not seen[0].headers["content-type"].startswith("application/json")
    form = {k: v[0] for k, v in parse_qs(seen[0].content.decode()).items()}
    assert form["num_frames"] == "80"
    assert form["seed"] == "7"
    assert form["num_inference_steps"] == "20"


async def test_an_openai_server_gets_only_the_spec_fields(settings: Settings) -> None:
    seen: list[httpx.Request] = []
    provider = _provider(settings, seen)
    await provider.submit(REQ, idempotency_key="k")
    await provider.aclose()
    assert set(json.loads(seen[0].content)) == {"model", "prompt", "seconds", "size"}


def test_open_model_servers_take_any_size_and_duration(settings: Settings) -> None:
    provider = _provider(settings, [], server="sglang")
    caps = provider.capabilities()
    assert caps.fits(REQ)
    assert caps.sizes is None


def test_an_unknown_server_kind_is_a_configuration_error(settings: Settings) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        _provider(settings, [], server="tgi")
    assert caught.value.code == "provider_misconfigured"
