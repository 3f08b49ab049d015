"""Shared fixtures: settings rooted in a temporary data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
