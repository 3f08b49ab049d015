"""All configuration of reelforge, and the only module that reads the environment.

Sources, highest priority first: constructor arguments, environment variables
(``REELFORGE_*``; ``REDIS_URL``; nested fields with ``__``, e.g.
``REELFORGE_PROVIDERS__OPENAI__BASE_URL``), a TOML file named by
``REELFORGE_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "ChatEndpoint",
    "MediaSettings",
    "PolicyRule",
    "PromptSettings",
    "ProviderConfig",
    "Settings",
    "StorageSettings",
    "StyleConfig",
    "TenantPrompts",
    "ValidationSettings",
]


class ProviderConfig(BaseModel):
    """One configured back-end. ``kind`` picks the adapter; the dict key is its name."""

    kind: str = "local"
    base_url: str | None = None
    api_key: SecretStr | None = None
    price_per_second: float = 0.0
    timeout_seconds: float = 60.0
    poll_interval_seconds: float = 1.0
    # Limits enforced across every worker through Redis (None: unlimited).
    requests_per_minute: int | None = Field(default=None, ge=1)  # submits per minute
    max_concurrent_jobs: int | None = Field(default=None, ge=1)
    # Circuit breaker: open after this many provider-side failures in a row,
    # let one trial through after the cool-down.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # Adapter-specific knobs (e.g. the local renderer's x264 preset).
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


def _local_provider() -> ProviderConfig:
    # In-process, so polling it is cheap: poll often for smooth progress.
    return ProviderConfig(kind="local", poll_interval_seconds=0.2)


def _default_providers() -> dict[str, ProviderConfig]:
    return {"local": _local_provider()}


class StorageSettings(BaseModel):
    """Where finished files and uploads live (``REELFORGE_STORAGE__KIND=s3``, ...).

    ``local``: under ``data_dir`` (one machine, or a shared filesystem). ``s3``: an
    S3-compatible bucket; then API and workers share only Redis and the bucket.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "s3"] = "local"
    endpoint_url: str | None = None  # None: AWS S3 of ``region``
    bucket: str | None = None
    prefix: str = ""  # every key starts with it (several deployments in one bucket)
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    path_style: bool = False  # http://host/bucket/key instead of http://bucket.host/key
    create_bucket: bool = False  # create the bucket when it is missing
    # Content requests: "redirect" answers 302 to a presigned URL (clients reach the
    # store); "stream" relays the bytes through the API (with Range).
    serve: Literal["redirect", "stream"] = "redirect"
    presign_seconds: int = Field(default=300, ge=1, le=7 * 86_400)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # One request (a PUT, one multipart part of 8 MiB, a GET): a store that takes a
    # connection and never answers must not hold a worker for long.
    request_timeout_seconds: float = Field(default=60.0, gt=0)
    retries: int = Field(default=3, ge=0)
    retry_timeout_seconds: float = Field(default=20.0, gt=0)


class MediaSettings(BaseModel):
    """Encoding choices for what we deliver. Defaults favour quick, web-friendly files."""

    mp4_preset: str = "veryfast"
    mp4_crf: int = 21
    audio_bitrate: str = "128k"
    webm_crf: int = 28  # keeps SSIM >= 0.95 against the source, even for small frames
    webm_cpu_used: int = 8  # VP9 speed 0 (slowest) .. 8 (fastest, realtime-grade)
    thumbnail_format: Literal["jpeg", "webp"] = "jpeg"
    thumbnail_width: int = 640
    spritesheet_columns: int = 5
    spritesheet_rows: int = 5
    spritesheet_tile_width: int = 192


class ValidationSettings(BaseModel):
    """Thresholds of :func:`reelforge.media.validate.validate_video` (its docstring says why)."""

    model_config = ConfigDict(extra="forbid")

    # Expectations: how far the result may be from what was asked for.
    duration_tolerance_seconds: float = Field(default=0.25, ge=0)
    duration_tolerance_ratio: float = Field(default=0.05, ge=0)
    fps_tolerance: float = Field(default=0.5, ge=0)
    fps_tolerance_ratio: float = Field(default=0.02, ge=0)
    # The data may end this much before the length its header states.
    truncation_tolerance_seconds: float = Field(default=0.2, ge=0)

    # Pictures are analysed at most this many pixels on the long side.
    analysis_size: int = Field(default=320, ge=16, le=4096)

    # Black: luma as a fraction of its range (0 black .. 1 white).
    black_pixel_luma: float = Field(default=0.10, ge=0, le=1)
    black_frame_pixel_ratio: float = Field(default=0.98, gt=0, le=1)
    black_max_fraction: float = Field(default=0.5, gt=0, le=1)
    black_max_run_seconds: float = Field(default=2.0, gt=0)

    # Frozen: a frame is still when no pixel changed by more than
    # ``frozen_pixel_change`` and the mean change is below ``frozen_mean_change``.
    frozen_pixel_change: float = Field(default=0.06, ge=0, le=1)
    frozen_mean_change: float = Field(default=0.002, ge=0, le=1)
    frozen_min_run_seconds: float = Field(default=0.5, ge=0)
    frozen_max_fraction: float = Field(default=0.5, gt=0, le=1)
    frozen_max_run_seconds: float = Field(default=3.0, gt=0)

    # Silence: windows quieter than this, for this share of the audio.
    silence_dbfs: float = Field(default=-60.0, le=0)
    silence_max_fraction: float = Field(default=0.9, gt=0, le=1)

    # Flicker: a swing is a change of mean luma by this fraction of its range.
    flicker_luma_change: float = Field(default=0.10, gt=0, le=1)
    flicker_max_flashes_per_second: float = Field(default=3.0, gt=0)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class StyleConfig(BaseModel):
    """One prompt style: what it adds to the prompt and the negative prompt, and the
    frame rate and size it suggests (used only when the request sets neither)."""

    model_config = ConfigDict(extra="forbid")

    description: str
    additions: list[str] = Field(default_factory=list)  # appended, each once
    negative: list[str] = Field(default_factory=list)  # merged into the negative prompt
    fps: int | None = Field(default=None, ge=1, le=60)
    size: str | None = Field(default=None, pattern=r"^[0-9]{2,4}x[0-9]{2,4}$")


def _default_styles() -> dict[str, StyleConfig]:
    # Sizes are among OpenAI's four so a style never rules out the openai provider.
    return {
        "cinematic": StyleConfig(
            description="Feature-film look: wide lens, shallow focus, dramatic light.",
            additions=[
                "cinematic shot",
                "anamorphic lens",
                "shallow depth of field",
                "dramatic lighting",
                "subtle film grain",
            ],
            negative=["cartoon", "flat lighting", "low detail"],
            fps=24,
            size="1280x720",
        ),
        "anime": StyleConfig(
            description="Hand-drawn Japanese animation: clean line art, cel shading.",
            additions=["anime style", "clean line art", "cel shading", "vibrant colours"],
            negative=["photorealistic", "3d render", "blurry lines"],
            fps=24,
            size="1280x720",
        ),
        "documentary": StyleConfig(
            description="Observational footage: natural light, steady handheld camera.",
            additions=[
                "documentary footage",
                "natural light",
                "steady handheld camera",
                "realistic detail",
            ],
            negative=["cartoon", "stylised", "oversaturated"],
            fps=30,
            size="1280x720",
        ),
        "product": StyleConfig(
            description="Studio product shot for social media: clean backdrop, turntable.",
            additions=[
                "studio product shot",
                "clean seamless backdrop",
                "soft box lighting",
                "slow turntable rotation",
            ],
            negative=["clutter", "people", "text", "watermark"],
            fps=30,
            size="720x1280",
        ),
        "timelapse": StyleConfig(
            description="Hours compressed into seconds from a locked-off camera.",
            additions=["time-lapse", "locked-off camera", "fast-moving clouds and light"],
            negative=["camera shake", "slow motion"],
            fps=30,
            size="1280x720",
        ),
        "claymation": StyleConfig(
            description="Stop-motion plasticine models, handmade textures, 12 frames a second.",
            additions=[
                "claymation",
                "stop-motion animation",
                "plasticine models",
                "handmade textures",
            ],
            negative=["photorealistic", "smooth cgi"],
            fps=12,
            size="1280x720",
        ),
    }


def _default_templates() -> dict[str, str]:
    return {
        "product_reveal": (
            "{product} revealed on a {surface}, {prompt}, the camera circles it slowly"
        ),
        "travel_postcard": "a sweeping view of {place} at {time_of_day}, {prompt}",
        "explainer": "a clear, simple animation explaining {topic} for {audience}, {prompt}",
    }


class PolicyRule(BaseModel):
    """A rule of the prompt policy: blocked terms (whole words, matched through
    Unicode confusables and leetspeak) and/or one regular expression."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    terms: list[str] = Field(default_factory=list)
    pattern: str | None = None  # Python regex, matched case-insensitively

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from None
        return value


class TenantPrompts(BaseModel):
    """One tenant's prompt defaults and policy, on top of the global ones."""

    model_config = ConfigDict(extra="forbid")

    default_style: str | None = None  # applied when a request names no style (/v1 too)
    rules: list[PolicyRule] = Field(default_factory=list)  # added to the global rules
    moderation: bool | None = None  # None: the global setting


class ChatEndpoint(BaseModel):
    """An OpenAI-compatible endpoint (``base_url`` ends in ``/v1``); unset: not used."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    timeout_seconds: float = Field(default=10.0, gt=0)


NegativeFallback = Literal["fold", "drop"]


def _negative_fallbacks() -> dict[str, NegativeFallback]:
    return {"local": "drop"}


class PromptSettings(BaseModel):
    """Prompt processing (``reelforge.prompts``): styles, templates, policy, enhancement."""

    model_config = ConfigDict(extra="forbid")

    styles: dict[str, StyleConfig] = Field(default_factory=_default_styles)
    # Named templates; ``{prompt}`` is the request's prompt, the rest come from
    # ``template_vars``.
    templates: dict[str, str] = Field(default_factory=_default_templates)
    # What to do with a negative prompt for a model that takes none: fold it into
    # the prompt ("Avoid: ...") or drop it. Per provider name, else the default.
    # ``local`` drops: its renderer reads prompt words as scene elements, so
    # "avoid rain" would make it rain.
    negative_fallback: NegativeFallback = "fold"
    negative_fallback_by_provider: dict[str, NegativeFallback] = Field(
        default_factory=_negative_fallbacks
    )
    # The rule-based expander (``enhance: true``) expands prompts of fewer words.
    enhance_below_words: int = Field(default=12, ge=1)
    # Set it to enhance through a chat model instead (in the worker, before submit;
    # any failure keeps the rule-based result).
    enhance_endpoint: ChatEndpoint = Field(default_factory=ChatEndpoint)
    # Set it (and ``moderation``) to ask an OpenAI-compatible /moderations endpoint
    # in the worker before submit.
    moderation_endpoint: ChatEndpoint = Field(
        default_factory=lambda: ChatEndpoint(model="omni-moderation-latest")
    )
    moderation: bool = False
    default_style: str | None = None
    rules: list[PolicyRule] = Field(default_factory=list)
    # Per tenant (a record's ``owner``; "default" while single-tenant).
    tenants: dict[str, TenantPrompts] = Field(default_factory=dict)

    @field_validator("styles")
    @classmethod
    def _add_to_default_styles(cls, value: dict[str, StyleConfig]) -> dict[str, StyleConfig]:
        # Configuring a style adds it (or replaces one): the documented ones stay.
        return {**_default_styles(), **value}

    @field_validator("templates")
    @classmethod
    def _templates_take_the_prompt(cls, value: dict[str, str]) -> dict[str, str]:
        value = {**_default_templates(), **value}
        for name, text in value.items():
            stripped = _PLACEHOLDER.sub("", text)
            if "{" in stripped or "}" in stripped:
                raise ValueError(f"template {name!r}: braces only around placeholder names")
            if "{prompt}" not in text:
                raise ValueError(f"template {name!r} must contain {{prompt}}")
        return value

    @model_validator(mode="after")
    def _styles_exist(self) -> PromptSettings:
        named = [self.default_style, *(t.default_style for t in self.tenants.values())]
        unknown = [s for s in named if s is not None and s not in self.styles]
        if unknown:
            raise ValueError(f"default_style {unknown[0]!r} is not a configured style")
        return self

    def tenant(self, owner: str) -> TenantPrompts:
        return self.tenants.get(owner) or TenantPrompts()


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
    # Ordered fallback route for requests that name no provider (empty: just the
    # default provider).
    default_route: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=3, ge=1)  # provider attempts per video
    # Worker processes that may die (or stop) mid-turn on one video before it fails
    # with ``worker_lost``. Counted apart from provider attempts: a dead worker is
    # not a failing provider, but a job that kills every worker must still end.
    max_worker_restarts: int = Field(default=20, ge=0)
    # The one retry policy for provider calls within an attempt (see retry.py).
    retry_tries: int = Field(default=4, ge=1)
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=20.0, gt=0)
    retry_total_seconds: float = Field(default=120.0, gt=0)
    job_deadline_seconds: float = Field(default=3600.0, gt=0)  # from creation to a result
    provider_deadline_seconds: float = Field(default=1800.0, gt=0)  # one attempt at a provider
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
    # Ended videos and their files are deleted this long after they end (0: kept
    # forever); a tenant's own retention_seconds limit overrides it. Checked every
    # retention_sweep_seconds, which is also how often worker scratch is swept.
    retention_seconds: int = Field(default=0, ge=0)
    retention_sweep_seconds: float = Field(default=60.0, gt=0)
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    # This worker's own local scratch (renders, transcodes); None: data_dir/work.
    scratch_dir: Path | None = None
    media: MediaSettings = Field(default_factory=MediaSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    # A result that fails validation is generated again (new seed) up to this many
    # times; requests may turn it off with ``regenerate_on_failure: false``.
    max_quality_regenerations: int = Field(default=2, ge=0)
    # Model catalogue entries merged over the shipped one (providers/catalogue.toml):
    # {kind: {model: {durations, sizes, fields, price_per_second, ...}}}.
    catalogue: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    # The URL vendors can reach this service at (e.g. https://reelforge.example.com).
    # When set, vendors that can call back (Replicate, fal, Luma, Veo on the Gemini
    # API) are given a per-attempt callback URL under it and complete jobs without
    # waiting for the next poll.
    public_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = True

    # Service (API + workers).
    # How long `serve` and `worker` wait at start for an unreachable REDIS_URL (Redis
    # restarting, or started after them) before they stop with an error.
    redis_wait_seconds: float = Field(default=30.0, ge=0)
    redis_prefix: str = "rf"  # every key and queue name starts with it; tests use their own
    # With Redis replicas: before submitting to a provider that takes no idempotency
    # key, and after storing its job id, wait (Redis WAIT) until this many replicas
    # have the write, at most `redis_replica_ack_ms`; so a failover right after does
    # not make the worker submit, and pay for, the job a second time. 0: no waiting.
    redis_replica_acks: int = Field(default=0, ge=0)
    redis_replica_ack_ms: int = Field(default=1000, ge=1)
    redis_max_connections: int = 200
    max_body_bytes: int = 1_048_576
    generate_concurrency: int = 50  # I/O bound: submit, poll, download
    process_concurrency: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    job_heartbeat_seconds: int = 10  # a job not touched for this long is swept and resumed
    sweep_interval_seconds: float = 2.0
    worker_heartbeat_seconds: float = 2.0
    # DELETE of a running video first waits this long for its worker to stop (cancel
    # the provider's job, free capacity, exit), so no late write or file survives it.
    delete_wait_seconds: float = Field(default=10.0, ge=0)
    events_ttl_seconds: int = 86_400  # replay window after a video ends
    idempotency_ttl_seconds: int = 86_400

    # Many users (API keys and tenants: see tenants.py, quotas.py, links.py).
    # The key `reelforge generate --server` and `reelforge status` send.
    api_key: SecretStr | None = None
    # Serve a non-loopback address without API keys anyway (a warning is logged).
    insecure: bool = False
    # Signed media/event links: their lifetime, and their HMAC secret (unset: one
    # made per deployment and kept in Redis).
    media_link_seconds: int = Field(default=3600, ge=60, le=7 * 86_400)
    link_secret: SecretStr | None = None
    # Create requests (generate, regenerate, /v1 create and remix) per API key per minute.
    api_creates_per_minute: int | None = Field(default=60, ge=1)
    # Outbound fetches (image URLs, webhooks): hosts exempt from the private-address
    # guard (local testing only), and limits on what is downloaded.
    fetch_allow_hosts: list[str] = Field(default_factory=list)
    # Take http(s) image URLs in requests (fetched through the guard); off: data: URLs
    # and uploads only.
    fetch_image_urls: bool = False
    fetch_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    # Webhooks: tries per event, the first pause between them (doubling each time,
    # capped at webhook_max_backoff_seconds), and one delivery's time limit.
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    webhook_initial_backoff_seconds: float = Field(default=30.0, gt=0)
    webhook_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(default=10, ge=1)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")
        return value.strip().rstrip("/")

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
        """This process's scratch space (raw results, transcodes): ``scratch_dir``, else
        ``data_dir/work``."""
        return self.scratch_dir if self.scratch_dir is not None else self.data_dir / "work"
