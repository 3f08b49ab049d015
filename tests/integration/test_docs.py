"""``/docs`` and ``/redoc`` work with no network: every asset they name is ours."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from reelforge.settings import Settings
from tests.service import Service, running_service

_ASSET = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ["']([^"']+)["']""")


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(service_settings, workers=0) as svc:
        yield svc


def assets_of(html: str) -> list[str]:
    return [a or b for a, b in _ASSET.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_page_names_only_same_origin_assets(service: Service, page: str) -> None:
    response = await service.client.get(page)

    assert response.status_code == 200
    assets = assets_of(response.text)
    assert "/openapi.json" in assets
    assert [a for a in assets if not a.startswith("/") or a.startswith("//")] == []
    assert "://" not in response.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_every_asset_of_the_docs_page_is_served(service: Service, page: str) -> None:
    html = (await service.client.get(page)).text

    for asset in assets_of(html):
        response = await service.client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset
