"""All configuration of reelforge, and the only module that reads the environment.

Sources, highest priority first: constructor arguments, environment variables
(``REELFORGE_*``; ``REDIS_URL``; nested fields with ``__``, e.g.
``REELFORGE_PROVIDERS__OPENAI__BASE_URL``), a TOML file named by
``REELFORGE_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["MediaSettings", "ProviderConfig", "Settings"]


class ProviderConfig(BaseModel):
    """One configured back-end. ``kind`` picks the adapter; the dict key is its name."""

    kind: str = "local"
    base_url: str | None = None
    api_key: SecretStr | None = None
    price_per_second: float = 0.0
    timeout_seconds: float = 60.0
    poll_interval_seconds: float = 1.0
    # Adapter-specific knobs (e.g. the local renderer's x264 preset).
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


def _local_provider() -> ProviderConfig:
    # In-process, so polling it is cheap: poll often for smooth progress.
    return ProviderConfig(kind="local", poll_interval_seconds=0.2)


def _default_providers() -> dict[str, ProviderConfig]:
    return {"local": _local_provider()}


class MediaSettings(BaseModel):
    """Encoding choices for what we deliver. Defaults favour quick, web-friendly files."""

    mp4_preset: str = "veryfast"
    mp4_crf: int = 21
    audio_bitrate: str = "128k"
    webm_crf: int = 33
    webm_cpu_used: int = 8  # VP9 speed 0 (slowest) .. 8 (fastest, realtime-grade)
    thumbnail_format: Literal["jpeg", "webp"] = "jpeg"
    thumbnail_width: int = 640
    spritesheet_columns: int = 5
    spritesheet_rows: int = 5
    spritesheet_tile_width: int = 192


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELFORGE_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "REELFORGE_REDIS_URL", "redis_url")
    )
    default_provider: str = "local"
    # OpenAI-compatible model names -> provider names ("" = the default provider).
    model_routes: dict[str, str] = Field(
        default_factory=lambda: {
            "sora-2": "",
            "sora-2-pro": "",
            "sora-2-2025-10-06": "",
            "sora-2-pro-2025-10-06": "",
            "sora-2-2025-12-08": "",
        }
    )
    # How long finished files stay downloadable (`expires_at` of /v1/videos); 0 = forever.
    retention_seconds: int = 0
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    media: MediaSettings = Field(default_factory=MediaSettings)
    log_level: str = "INFO"
    log_json: bool = True

    # Service (API + workers).
    redis_prefix: str = "rf"  # every key and queue name starts with it; tests use their own
    redis_max_connections: int = 200
    max_body_bytes: int = 1_048_576
    generate_concurrency: int = 50  # I/O bound: submit, poll, download
    process_concurrency: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    job_heartbeat_seconds: int = 10  # a job not touched for this long is swept and resumed
    sweep_interval_seconds: float = 2.0
    worker_heartbeat_seconds: float = 2.0
    events_ttl_seconds: int = 86_400  # replay window after a video ends
    idempotency_ttl_seconds: int = 86_400

    @field_validator("providers")
    @classmethod
    def _keep_local_provider(cls, value: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        # Configuring a remote provider must not silently remove the offline default.
        return {"local": _local_provider(), **value}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("REELFORGE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def videos_dir(self) -> Path:
        return self.data_dir / "videos"

    @property
    def uploads_dir(self) -> Path:
        """Input reference images clients uploaded."""
        return self.data_dir / "uploads"

    @property
    def work_dir(self) -> Path:
        """Scratch space of providers (e.g. the local renderer's raw output)."""
        return self.data_dir / "work"
