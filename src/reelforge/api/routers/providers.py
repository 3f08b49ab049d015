"""``GET /api/providers``: what each configured provider can make, what it costs, and
how it is doing right now (circuit breaker, limits, slots in use)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from reelforge.api.deps import RuntimeDep
from reelforge.errors import ReelforgeError
from reelforge.providers.catalogue import model_spec
from reelforge.runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["providers"])


class ProviderCapabilities(BaseModel):
    max_duration_seconds: float
    durations: list[float] | None
    sizes: list[str] | None
    max_fps: int
    audio: bool
    image_input: bool
    negative_prompt: bool
    max_prompt_length: int | None


class ProviderLimits(BaseModel):
    requests_per_minute: int | None
    max_concurrent_jobs: int | None
    jobs_in_flight: int


class ProviderCircuit(BaseModel):
    state: str  # closed | open | half_open
    failures: int
    failure_threshold: int
    cooldown_seconds: float


class ProviderInfo(BaseModel):
    name: str
    kind: str
    model: str | None
    default: bool  # used for requests that name no provider (the route's first)
    in_route: bool
    price_per_second: float  # USD per second of output: what a video here is charged
    # The catalogue's prices with and without a soundtrack, where the model has both.
    price_per_second_without_audio: float | None
    price_per_second_with_audio: float | None
    capabilities: ProviderCapabilities | None
    circuit: ProviderCircuit
    limits: ProviderLimits
    error: dict[str, str | None] | None = None  # the provider could not be built


class ProviderList(BaseModel):
    data: list[ProviderInfo]
    default_route: list[str]


async def _describe(rt: Runtime, name: str) -> ProviderInfo:
    settings = rt.settings
    config = settings.providers[name]
    route = settings.default_route or [settings.default_provider]
    model = config.options.get("model")
    breaker = await rt.breakers.state(name)
    info = ProviderInfo(
        name=name,
        kind=config.kind,
        model=str(model) if model is not None else None,
        default=name == route[0],
        in_route=name in route,
        price_per_second=config.price_per_second,
        price_per_second_without_audio=None,
        price_per_second_with_audio=None,
        capabilities=None,
        circuit=ProviderCircuit(
            state=breaker.state,
            failures=breaker.failures,
            failure_threshold=config.breaker_failures,
            cooldown_seconds=config.breaker_cooldown_seconds,
        ),
        limits=ProviderLimits(
            requests_per_minute=config.requests_per_minute,
            max_concurrent_jobs=config.max_concurrent_jobs,
            jobs_in_flight=await rt.capacity.in_use(name),
        ),
    )
    try:
        caps = rt.provider(name).capabilities()
    except ReelforgeError as exc:
        # A misconfigured provider is listed with its reason, not a 500 for everyone.
        info.error = {"code": exc.code, "message": exc.message}
        return info
    except ValueError as exc:
        info.error = {"code": "provider_misconfigured", "message": str(exc)}
        return info
    info.price_per_second = caps.cost_per_second
    info.capabilities = ProviderCapabilities(
        max_duration_seconds=caps.max_duration_seconds,
        durations=list(caps.durations) if caps.durations is not None else None,
        sizes=list(caps.sizes) if caps.sizes is not None else None,
        max_fps=caps.max_fps,
        audio=caps.audio,
        image_input=caps.image_input,
        negative_prompt=caps.negative_prompt,
        max_prompt_length=caps.max_prompt_length,
    )
    if model is not None and not config.price_per_second:
        try:
            spec = model_spec(config.kind, str(model), settings.catalogue)
        except ReelforgeError:
            spec = None
        if spec is not None and spec.price_per_second_audio is not None:
            info.price_per_second_without_audio = spec.price_per_second
            info.price_per_second_with_audio = spec.price_per_second_audio
    return info


@router.get("/providers", response_model=ProviderList)
async def list_providers(rt: RuntimeDep) -> ProviderList:
    """Each configured provider and model: capabilities, price, circuit and limits."""
    settings = rt.settings
    names = sorted(settings.providers)
    return ProviderList(
        data=[await _describe(rt, name) for name in names],
        default_route=settings.default_route or [settings.default_provider],
    )
