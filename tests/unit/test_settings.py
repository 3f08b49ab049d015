"""Settings come from the environment, a TOML file, or arguments; nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.errors import UnknownProviderError
from reelforge.providers import build_provider, provider_names
from reelforge.settings import Settings


def test_defaults_match_the_design() -> None:
    s = Settings()
    assert (s.host, s.port, s.data_dir, s.default_provider) == (
        "127.0.0.1",
        8000,
        Path("./data"),
        "local",
    )


def test_environment_overrides_with_prefix_and_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_PORT", "9000")
    monkeypatch.setenv("REDIS_URL", "redis://example:6380/2")
    s = Settings()
    assert (s.port, s.redis_url) == (9000, "redis://example:6380/2")


def test_nested_provider_settings_keep_the_local_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_PROVIDERS__REMOTE__KIND", "openai")
    monkeypatch.setenv("REELFORGE_PROVIDERS__REMOTE__API_KEY", "sk-test")
    s = Settings()
    assert provider_names(s) == ["local", "remote"]
    key = s.providers["remote"].api_key
    assert key is not None and key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)


def test_toml_file_named_by_reelforge_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "reelforge.toml"
    config.write_text("port = 8123\n[media]\nwebm_crf = 40\n")
    monkeypatch.setenv("REELFORGE_CONFIG", str(config))
    s = Settings()
    assert (s.port, s.media.webm_crf) == (8123, 40)


def test_registry_builds_the_local_provider(settings: Settings) -> None:
    provider = build_provider("local", settings)
    assert provider.name == "local"
    assert provider.capabilities().cost_per_second == 0.0


def test_registry_rejects_unknown_names(settings: Settings) -> None:
    with pytest.raises(UnknownProviderError) as caught:
        build_provider("sora", settings)
    assert caught.value.code == "unknown_provider"
