"""The ``reelforge`` command line (typer + rich).

Every command maps our errors to one red line and an exit code, never a
traceback: 2 for input that cannot be used (bad options, unreadable file), 1 for a
run that failed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from reelforge.errors import InvalidRequestError, MediaError, ReelforgeError, UnreadableMediaError
from reelforge.media.probe import MediaInfo, probe
from reelforge.media.validate import (
    Expectation,
    Problem,
    ValidationReport,
    validate_video,
)
from reelforge.models import GenerationRequest, parse_generation_request
from reelforge.pipeline import OutputFile, generate_raw, produce_outputs
from reelforge.providers import build_provider
from reelforge.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="reelforge",
    help="Self-hostable AI video generation: generate, validate and serve videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

T = TypeVar("T")


def _fail(exc: ReelforgeError, exit_code: int) -> NoReturn:
    line = escape(f"[{exc.code}] {exc.message}")
    err_console.print(f"[bold red]error[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; our errors become one line and an exit code."""
    try:
        return asyncio.run(coro_fn())
    except (InvalidRequestError, UnreadableMediaError) as exc:
        _fail(exc, EXIT_BAD_INPUT)
    except MediaError as exc:
        _fail(exc, EXIT_BAD_INPUT if exc.code == "output_not_writable" else EXIT_FAILED)
    except ReelforgeError as exc:
        _fail(exc, EXIT_FAILED)


def _client_key() -> str | None:
    """The API key for --server calls: REELFORGE_API_KEY."""
    secret = Settings().api_key
    return secret.get_secret_value() if secret else None


def _parse_request(**fields: Any) -> GenerationRequest:
    try:
        return parse_generation_request({k: v for k, v in fields.items() if v is not None})
    except InvalidRequestError as exc:
        _fail(exc, EXIT_BAD_INPUT)


def _probe_table(info: MediaInfo, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("container", info.container)
    table.add_row("duration", f"{info.duration:.3f} s")
    table.add_row("size on disk", f"{info.size_bytes:,} bytes")
    if info.video is not None:
        v = info.video
        table.add_row("video", f"{v.codec} {v.width}x{v.height} @ {v.fps:g} fps, {v.pix_fmt}")
    else:
        table.add_row("video", "none")
    if info.audio is not None:
        a = info.audio
        table.add_row("audio", f"{a.codec} {a.sample_rate} Hz, {a.channels} ch")
    else:
        table.add_row("audio", "none")
    return table


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video should show.")],
    duration: Annotated[float, typer.Option(help="Length in seconds (0 < d <= 60).")] = 4.0,
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT, even sides, 64..1920.")] = "1280x720",
    fps: Annotated[int, typer.Option(help="Frames per second (1..60).")] = 24,
    seed: Annotated[
        int | None, typer.Option(help="Seed; the same seed gives the same video.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Comma list of mp4, webm.")] = "mp4",
    provider: Annotated[str | None, typer.Option(help="Provider name from settings.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the output files.")] = Path("out"),
    server: Annotated[
        str | None, typer.Option(help="Use a running reelforge at this URL instead of in-process.")
    ] = None,
) -> None:
    """Generate a video and write the files to --out (in-process, or via --server)."""
    settings = Settings()
    req = _parse_request(
        prompt=prompt,
        duration_seconds=duration,
        size=size,
        fps=fps,
        seed=seed if seed is not None or server else secrets.randbelow(2**31),
        formats=format,
        provider=provider,
    )
    if server is not None:
        from reelforge.client import generate_via_server

        key = _client_key()
        paths = _run(
            lambda: generate_via_server(server, req, out, console=err_console, api_key=key)
        )
        for fmt, path in paths.items():
            console.print(f"[green]{fmt:<12}[/] {path}", highlight=False)
        info = _run(lambda: probe(paths[req.formats[0]]))
        console.print(_probe_table(info, f"{req.formats[0]} summary"))
        return
    outputs = _run(lambda: _generate_in_process(req, settings, out))
    console.print(f"seed {req.seed}", highlight=False)
    for output in outputs:
        console.print(f"[green]{output.format:<12}[/] {output.path}", highlight=False)
    main_output = next(o for o in outputs if o.format in req.formats)
    info = _run(lambda: probe(main_output.path))
    console.print(_probe_table(info, f"{main_output.format} summary"))


async def _generate_in_process(
    req: GenerationRequest, settings: Settings, out: Path
) -> list[OutputFile]:
    name = req.provider or settings.default_provider
    provider = build_provider(name, settings)
    video_id = f"video_{secrets.token_hex(12)}"
    raw = settings.work_dir / f"{video_id}.raw.mp4"
    columns = (
        TextColumn("[bold]{task.description:<11}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err_console, transient=False) as bar:
            gen = bar.add_task("generating", total=100)
            await generate_raw(
                provider,
                req,
                raw,
                idempotency_key=video_id,
                poll_interval=settings.providers[name].poll_interval_seconds,
                on_progress=lambda pct: bar.update(gen, completed=pct),
            )
            bar.update(gen, completed=100)
            proc = bar.add_task("processing", total=100)
            return await produce_outputs(
                raw,
                out,
                stem=video_id,
                formats=req.formats,
                media=settings.media,
                on_progress=lambda pct: bar.update(proc, completed=pct),
            )
    finally:
        raw.unlink(missing_ok=True)
        await provider.aclose()


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="The video file to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    duration: Annotated[
        float | None, typer.Option(help="Expected length in seconds.", show_default=False)
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="Expected WIDTHxHEIGHT.", show_default=False)
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Expected frames per second.", show_default=False)
    ] = None,
    audio: Annotated[
        bool | None,
        typer.Option(
            "--audio/--no-audio",
            help="Require sound, or skip the audio checks (default: check silence if present).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check FILE for decoding errors, black, frozen, silent or flickering video.

    Options state what the file should be; without them only the file's own
    soundness is checked. Exit 0 when it passes, 1 when it fails, 2 when it
    cannot be read.
    """
    width, height = _parse_expected_size(size) if size is not None else (None, None)
    expect = Expectation(
        duration_seconds=duration, width=width, height=height, fps=fps, audio=audio
    )
    report, info = _run(lambda: _validate_and_probe(file, expect))
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "probe": info.to_dict() if info else None}))
        if not report.readable:
            raise typer.Exit(EXIT_BAD_INPUT)
    elif not report.readable:
        _fail(UnreadableMediaError(report.problems[0].message), EXIT_BAD_INPUT)
    else:
        console.print(_validation_table(report, str(file)))
        if report.problems:
            console.print(_problems_table(report.problems))
        verdict = "[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]"
        console.print(verdict, highlight=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


async def _validate_and_probe(
    file: Path, expect: Expectation
) -> tuple[ValidationReport, MediaInfo | None]:
    report = await validate_video(file, expect, Settings().validation)
    if not report.readable:
        return report, None
    try:
        return report, await probe(file)
    except UnreadableMediaError:  # readable, yet not video probe accepts (no video stream)
        return report, None


def _parse_expected_size(value: str) -> tuple[int, int]:
    width, _, height = value.lower().strip().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        _fail(
            InvalidRequestError(
                "size must look like WIDTHxHEIGHT, e.g. 1280x720", code="invalid_size"
            ),
            EXIT_BAD_INPUT,
        )
    return int(width), int(height)


def _validation_table(report: ValidationReport, title: str) -> Table:
    facts = report.facts
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("container", facts.container or "?")
    duration = f"{facts.duration:.3f} s" if facts.duration is not None else "?"
    if facts.container_duration is not None:
        duration += f" (header {facts.container_duration:.3f} s)"
    table.add_row("duration", duration)
    if facts.size_bytes is not None:
        table.add_row("size on disk", f"{facts.size_bytes:,} bytes")
    if facts.video_codec is not None:
        table.add_row(
            "video",
            f"{facts.video_codec} {facts.width}x{facts.height} @ {facts.fps or 0:g} fps, "
            f"{facts.pix_fmt}, {facts.frames_decoded} frames decoded",
        )
    else:
        table.add_row("video", "none")
    if facts.audio_present:
        level = f"{facts.audio_rms_dbfs:g} dBFS" if facts.audio_rms_dbfs is not None else "?"
        table.add_row(
            "audio",
            f"{facts.audio_codec} {facts.audio_sample_rate} Hz, {facts.audio_channels} ch, "
            f"{level}, silent {facts.audio_silent_fraction or 0:.0%}",
        )
    else:
        table.add_row("audio", "none")
    if facts.mean_luma is not None:
        table.add_row("mean luma", f"{facts.mean_luma:.0%}")
        table.add_row("black", f"{facts.black_fraction or 0:.0%} of the clip")
        table.add_row("frozen", f"{facts.frozen_fraction or 0:.0%} of the clip")
        table.add_row("flashes", f"at most {facts.max_flashes_per_second or 0:g} per second")
    table.add_row("decode errors", str(facts.decode_errors))
    return table


def _problems_table(problems: list[Problem]) -> Table:
    table = Table(title="problems", title_justify="left")
    table.add_column("code", style="bold red")
    table.add_column("when")
    table.add_column("what")
    for problem in problems:
        when = ""
        if problem.start is not None and problem.end is not None:
            when = f"{problem.start:.2f}-{problem.end:.2f} s"
        table.add_row(problem.code.value, when, escape(problem.message))
    return table


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="In-process worker sets (0: API only).")] = 1,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Serve a non-loopback address without API keys (anyone may use it)."
        ),
    ] = False,
) -> None:
    """Run the API with in-process workers; starts an embedded Redis if REDIS_URL is unset."""
    from reelforge.logs import configure_logging
    from reelforge.server import run_server

    settings = Settings()
    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if insecure:
        overrides["insecure"] = True
    settings = settings.model_copy(update=overrides)
    configure_logging(settings)

    def ready(url: str) -> None:
        err_console.print(
            f"reelforge is serving on [bold]{url}[/] (Ctrl+C to stop)", highlight=False
        )

    try:
        run_server(settings, workers=workers, on_ready=ready)
    except ReelforgeError as exc:
        _fail(exc, EXIT_FAILED)


@app.command()
def worker(
    count: Annotated[
        int, typer.Option("--workers", min=1, help="Worker sets in this process.")
    ] = 1,
) -> None:
    """Run workers only, against the shared Redis in REDIS_URL."""
    from reelforge.logs import configure_logging
    from reelforge.server import run_workers

    settings = Settings()
    configure_logging(settings)
    try:
        run_workers(settings, count=count)
    except ReelforgeError as exc:
        _fail(exc, EXIT_FAILED)


@app.command("gpu-worker")
def gpu_worker(
    provider: Annotated[
        str, typer.Option(help="The diffusers provider to serve (providers.NAME).")
    ],
    device: Annotated[
        str | None, typer.Option(help="torch device, e.g. cuda:0 (default: cuda if any, else cpu).")
    ] = None,
) -> None:
    """Serve one diffusers provider on one GPU: load its pipeline once, take its jobs."""
    from reelforge.logs import configure_logging

    settings = Settings()
    configure_logging(settings)
    try:
        from reelforge.gpu.worker import GpuWorker, default_device
    except ImportError as exc:
        err_console.print(
            f"[bold red]error[/] [gpu_extra_missing] {escape(str(exc))}: "
            "install it with: pip install 'reelforge[gpu]'",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED) from None

    async def serve_jobs() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        gpu = GpuWorker(settings, provider, device=device or default_device())

        def ready(worker: GpuWorker) -> None:
            err_console.print(
                f"gpu-worker {worker.worker_id} serves {provider} ({worker.spec.key}) "
                f"on {worker.device}",
                highlight=False,
            )

        await gpu.run(stop, on_ready=ready)

    _run(serve_jobs)


@app.command()
def status(
    video_id: Annotated[str, typer.Argument(help="The video id (video_...).")],
    server: Annotated[str, typer.Option(help="The reelforge server.")] = "http://127.0.0.1:8000",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the video object as JSON.")
    ] = False,
) -> None:
    """Show a video's status, progress, error and files."""
    from reelforge.client import fetch_video

    key = _client_key()
    video = _run(lambda: fetch_video(server, video_id, api_key=key))
    if as_json:
        typer.echo(json.dumps(video, indent=2))
        return
    table = Table(title=video["id"], show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", f"{video['status']} ({video['stage']}, {video['progress']}%)")
    table.add_row("prompt", video["prompt"][:80])
    table.add_row("provider", video["provider"])
    if video.get("error"):
        table.add_row("error", f"[{video['error']['code']}] {video['error']['message']}")
    for f in video.get("files", []):
        table.add_row(f["format"], f"{server.rstrip('/')}{f['url']}  ({f['bytes']:,} bytes)")
    console.print(table)


@app.command("prompt")
def prompt_command(
    text: Annotated[str, typer.Argument(help="The prompt, as you would send it.")],
    style: Annotated[
        str | None, typer.Option(help="A style (GET /api/styles), e.g. cinematic.")
    ] = None,
    enhance: Annotated[
        bool, typer.Option("--enhance", help="Expand a short prompt into a shot description.")
    ] = False,
    provider: Annotated[
        str | None, typer.Option(help="Fit the prompt to this provider (else the route's).")
    ] = None,
    negative: Annotated[str | None, typer.Option(help="A negative prompt.")] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print processed_prompt, negative_prompt and steps as JSON."),
    ] = False,
) -> None:
    """Show what a provider would receive for TEXT, without generating anything.

    Exit 2 with a one-line reason when the text is refused.
    """
    from reelforge.prompts.submit import preview_prompt

    settings = Settings()
    req = _parse_request(
        prompt=text, style=style, enhance=enhance, provider=provider, negative_prompt=negative
    )
    processed = _run(lambda: preview_prompt(settings, req))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "prompt": req.prompt,
                    "processed_prompt": processed.text,
                    "negative_prompt": processed.negative,
                    "provider": processed.provider,
                    "steps": [step.to_dict() for step in processed.steps],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    console.print(escape(processed.text), highlight=False, soft_wrap=True)
    if processed.negative:
        console.print(f"[bold]negative[/] {escape(processed.negative)}", highlight=False)
    table = Table(title=f"steps (for {processed.provider})", title_justify="left")
    table.add_column("step", style="bold")
    table.add_column("changed")
    table.add_column("why")
    for step in processed.steps:
        table.add_row(step.step, "yes" if step.changed else "no", escape(step.why))
    err_console.print(table)


keys_app = typer.Typer(
    help="API keys and tenants (in the Redis of REDIS_URL, shared with the servers).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

_LIMIT_OPTIONS = {
    "max_concurrent_jobs": "--max-concurrent",
    "videos_per_day": "--videos-per-day",
    "video_seconds_per_day": "--seconds-per-day",
    "monthly_budget": "--monthly-budget",
    "retention_seconds": "--retention-seconds",
}
MaxConcurrent = Annotated[
    int | None, typer.Option("--max-concurrent", min=0, help="Jobs running at once.")
]
VideosPerDay = Annotated[
    int | None, typer.Option("--videos-per-day", min=0, help="Videos a UTC day.")
]
SecondsPerDay = Annotated[
    float | None, typer.Option("--seconds-per-day", min=0, help="Seconds of video a UTC day.")
]
MonthlyBudget = Annotated[
    float | None,
    typer.Option("--monthly-budget", min=0, help="Spend a UTC month (providers' price unit)."),
]
RetentionSeconds = Annotated[
    int | None,
    typer.Option(
        "--retention-seconds", min=1, help="Delete ended videos this long after they end."
    ),
]


async def _with_tenants(action: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    from reelforge.keys import Keys
    from reelforge.redis_client import open_redis
    from reelforge.server import check_redis
    from reelforge.tenants import Tenants

    settings = Settings()
    if settings.redis_url is None:
        raise InvalidRequestError(
            "keys live in the servers' Redis: set REDIS_URL (and REELFORGE_REDIS_PREFIX "
            "if the servers use one)",
            code="no_redis",
        )
    await check_redis(settings.redis_url)
    redis = open_redis(settings.redis_url, max_connections=4, decode_responses=True)
    try:
        return await action(Tenants(redis, Keys(settings.redis_prefix)))
    finally:
        await redis.aclose()


def _when(ts: float | None) -> str:
    from datetime import UTC, datetime

    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for (created if new).")],
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")] = "",
    max_concurrent: MaxConcurrent = None,
    videos_per_day: VideosPerDay = None,
    seconds_per_day: SecondsPerDay = None,
    monthly_budget: MonthlyBudget = None,
    retention_seconds: RetentionSeconds = None,
) -> None:
    """Create an API key and print it (it is shown only this once)."""
    from reelforge.tenants import TenantLimits

    changes = {
        "max_concurrent_jobs": max_concurrent,
        "videos_per_day": videos_per_day,
        "video_seconds_per_day": seconds_per_day,
        "monthly_budget": monthly_budget,
        "retention_seconds": retention_seconds,
    }
    given = {k: v for k, v in changes.items() if v is not None}

    async def create(tenants: Any) -> Any:
        created = await tenants.create_key(tenant, name=name)
        if given:
            await tenants.set_limits(tenant, given)
        return created, await tenants.limits(tenant)

    created, limits = _run(lambda: _with_tenants(create))
    assert isinstance(limits, TenantLimits)  # noqa: S101
    typer.echo(created.secret)
    err_console.print(
        f"key {created.key.id} for tenant {tenant}: store it now, it is not shown again",
        highlight=False,
    )
    if created.webhook_secret:
        err_console.print(
            f"webhook signing secret of tenant {tenant} (shown once): {created.webhook_secret}",
            highlight=False,
            soft_wrap=True,
        )
    err_console.print(f"quotas: {_limits_text(limits)}", highlight=False)


def _limits_text(limits: Any) -> str:
    parts = [
        f"{option.lstrip('-')}={value if value is not None else 'unlimited'}"
        for name, option in _LIMIT_OPTIONS.items()
        for value in [getattr(limits, name)]
    ]
    return ", ".join(parts)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every key: id, tenant, label, created, last used (never the key itself)."""

    async def fetch(tenants: Any) -> Any:
        return await tenants.list_keys()

    keys = _run(lambda: _with_tenants(fetch))
    if as_json:
        rows = [
            {
                "id": k.id,
                "tenant": k.tenant,
                "name": k.name,
                "created_at": k.created_at,
                "last_used_at": k.last_used_at,
                "revoked_at": k.revoked_at,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="API keys", title_justify="left")
    for column in ("id", "tenant", "name", "created", "last used", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.id,
            k.tenant,
            escape(k.name),
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (key_...).")]) -> None:
    """Revoke a key: it is refused from the next request on."""

    async def revoke(tenants: Any) -> Any:
        return await tenants.revoke(key_id)

    key = _run(lambda: _with_tenants(revoke))
    err_console.print(f"revoked {key.id} (tenant {key.tenant})", highlight=False)


@keys_app.command("limits")
def keys_limits(
    tenant: Annotated[str, typer.Option(help="The tenant whose quotas change.")],
    max_concurrent: MaxConcurrent = None,
    videos_per_day: VideosPerDay = None,
    seconds_per_day: SecondsPerDay = None,
    monthly_budget: MonthlyBudget = None,
    retention_seconds: RetentionSeconds = None,
    unlimited: Annotated[
        list[str] | None,
        typer.Option(help="Remove a quota (repeatable): max-concurrent, videos-per-day, ..."),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="The tenant's default webhook URL ('' removes it).")
    ] = None,
) -> None:
    """Show a tenant's quotas, or change them (and its default webhook URL)."""
    changes: dict[str, float | None] = {
        k: v
        for k, v in {
            "max_concurrent_jobs": max_concurrent,
            "videos_per_day": videos_per_day,
            "video_seconds_per_day": seconds_per_day,
            "monthly_budget": monthly_budget,
            "retention_seconds": retention_seconds,
        }.items()
        if v is not None
    }
    by_option = {option.lstrip("-"): name for name, option in _LIMIT_OPTIONS.items()}
    for option in unlimited or []:
        if option not in by_option:
            _fail(
                InvalidRequestError(
                    f"--unlimited takes one of {sorted(by_option)}", code="invalid_quota"
                ),
                EXIT_BAD_INPUT,
            )
        changes[by_option[option]] = None

    async def update(tenants: Any) -> Any:
        if changes:
            await tenants.set_limits(tenant, changes)
        if webhook_url is not None:
            from reelforge.net.urlguard import check_url_shape

            if webhook_url:
                check_url_shape(webhook_url, param="webhook_url")
            await tenants.set_webhook_url(tenant, webhook_url or None)
        return await tenants.limits(tenant)

    limits = _run(lambda: _with_tenants(update))
    console.print(f"{tenant}: {_limits_text(limits)}", highlight=False)


@keys_app.command("webhook-secret")
def keys_webhook_secret(
    tenant: Annotated[
        str, typer.Option(help="The tenant ('default' on a server without keys).")
    ] = "default",
) -> None:
    """Make a new webhook signing secret for a tenant and print it (shown once)."""

    async def rotate(tenants: Any) -> Any:
        return await tenants.rotate_webhook_secret(tenant)

    secret = _run(lambda: _with_tenants(rotate))
    typer.echo(secret)
    err_console.print(
        f"webhooks of {tenant} are signed with this secret from now on", highlight=False
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
