"""The web page at ``/`` in a real browser, against a real ``reelforge serve``.

Headless Debian Chromium driven by Playwright. Each test opens the page in a fresh
browser context, collects console errors, failed requests and HTTP errors, and
requires none beyond what the test provokes on purpose.

Screenshots go to ``test-artifacts/web/``; ``docs/screenshot.png`` is written when
missing, or always with ``REELFORGE_UPDATE_SCREENSHOT=1`` (it changes every run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.media.probe import probe
from tests.service import REPO, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "web"
DOCS_SCREENSHOT = REPO / "docs" / "screenshot.png"
STAGES = ["queued", "submitting", "generating", "downloading", "processing", "validating"]

if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )
async_api = pytest.importorskip(
    "playwright.async_api", reason="browser tests need the playwright package (test extras)"
)
expect = async_api.expect
# Rendering and cancelling take seconds, more on a busy machine: wait up to 30 s.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``reelforge serve`` as a user runs it: one command, its own embedded Redis."""
    data = tmp_path_factory.mktemp("web")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_") and k != "REDIS_URL"
    }
    env.update({"REELFORGE_DATA_DIR": str(data / "data"), "REELFORGE_LOG_LEVEL": "WARNING"})
    # A priced vendor model beside `local`, for the provider field (never generated with).
    env["REELFORGE_PROVIDERS"] = json.dumps(
        {"rep": {"kind": "replicate", "options": {"model": "google/veo-3.1-fast"}}}
    )
    port = free_port()
    log_path = data / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    # A sync fixture, before any page exists: polling readiness is the only way to know.
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"reelforge serve exited: {log_path.read_text()}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"reelforge serve not ready in 60 s: {log_path.read_text()}")


@dataclass
class Web:
    """One page and everything that went wrong in it."""

    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)
    # (status, path) pairs a test provokes on purpose.
    expected: set[tuple[int, str]] = field(default_factory=set)

    def _expected_url(self, status: int, url: str) -> bool:
        path = url.removeprefix(self.base_url).split("?", 1)[0]
        return (status, path) in self.expected

    def on_console(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        # Chromium echoes each HTTP error response to the console, naming its URL.
        location = message.location.get("url", "") if message.location else ""
        text = message.text
        if "the server responded with a status of" in text:
            status = int(text.split("status of", 1)[1].split()[0])
            if self._expected_url(status, location):
                return
        self.problems.append(f"console {message.type}: {text} ({location})")

    def on_response(self, response: Any) -> None:
        if response.status >= 400 and not self._expected_url(response.status, response.url):
            request = response.request
            self.problems.append(f"HTTP {response.status}: {request.method} {response.url}")

    def on_request_failed(self, request: Any) -> None:
        failure = request.failure or ""
        # A media element cancels its own range requests as it seeks and buffers;
        # that is how playback works, not a failure.
        if request.resource_type == "media" and "ERR_ABORTED" in failure:
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)

    async def goto(self) -> None:
        await self.page.goto(self.base_url + "/")
        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    async def fill_small_video(self, prompt: str, *, formats: tuple[str, ...] = ("mp4",)) -> None:
        page = self.page
        await page.get_by_label("Prompt", exact=True).fill(prompt)
        await page.get_by_label("Duration").fill("1")
        await page.get_by_label("Frame rate").fill("12")
        await page.get_by_label("Size", exact=True).select_option("custom")
        await page.get_by_label("Width in pixels").fill("320")
        await page.get_by_label("Height in pixels").fill("180")
        for box in ("mp4", "webm"):
            checkbox = page.locator(f'input[name="formats"][value="{box}"]')
            await checkbox.set_checked(box in formats)

    def history_item(self, video_id: str) -> Any:
        return self.page.locator(f'#history-list li[data-id="{video_id}"]')

    async def selected_id(self) -> str:
        return str(await self.page.evaluate("() => location.hash.slice(1)"))

    async def new_video(self, before: str) -> str:
        """The id of the video the page selected after ``before`` (the previous one)."""
        handle = await self.page.wait_for_function(
            "before => { const id = location.hash.slice(1); return id !== before && id; }",
            arg=before,
        )
        return str(await handle.json_value())

    async def generate(self) -> str:
        """Press Generate; the id of the video it started, once the viewer shows it."""
        before = await self.selected_id()
        await self.page.get_by_role("button", name="Generate", exact=True).click()
        return await self.new_video(before)

    async def wait_stage(self, video_id: str, stage: str) -> None:
        stepper = self.page.locator(f'#current[data-video-id="{video_id}"] #stepper')
        await expect(stepper).to_have_attribute("data-stage", stage)

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def web(browser: Any, server: str) -> AsyncIterator[Web]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="dark", accept_downloads=True
    )
    context.set_default_timeout(30_000)
    page = await context.new_page()
    web = Web(page=page, base_url=server)
    page.on("console", web.on_console)
    page.on("pageerror", lambda error: web.problems.append(f"page error: {error}"))
    page.on("response", web.on_response)
    page.on("requestfailed", web.on_request_failed)
    try:
        yield web
    finally:
        await context.close()


async def _record_stages(page: Any) -> None:
    """Remember every stage the stepper shows, as it changes (not just the last)."""
    await page.evaluate(
        """() => {
            window.__stages = [];
            const stepper = document.querySelector('#stepper');
            new MutationObserver(() => {
                const stage = stepper.dataset.stage;
                if (stage && window.__stages.at(-1) !== stage) window.__stages.push(stage);
            }).observe(stepper, {attributes: true, attributeFilter: ['data-stage']});
        }"""
    )


async def test_generate_shows_live_stages_plays_and_downloads_the_webm(
    web: Web, tmp_path: Path
) -> None:
    page = web.page
    await web.goto()
    await web.fill_small_video(
        "a red paper boat drifting down a neon-lit rainy street at dusk", formats=("mp4", "webm")
    )
    await _record_stages(page)
    video_id = await web.generate()

    await web.wait_stage(video_id, "completed")
    await expect(page.locator("#progress-value")).to_have_text("100%")
    await expect(page.locator("#current-badge")).to_have_text("Completed")
    stages = await page.evaluate("() => window.__stages")
    assert stages[-1] == "completed"
    assert set(stages) & set(STAGES[1:]), f"no intermediate stage shown: {stages}"
    order = [STAGES.index(s) if s in STAGES else len(STAGES) for s in stages]
    assert order == sorted(order), f"stages went backwards: {stages}"

    # The player plays the finished video.
    player = page.locator("#player")
    await expect(player).to_have_attribute("data-video-id", video_id)
    await page.wait_for_function(
        "() => { const v = document.querySelector('#player'); return v.readyState >= 2; }"
    )
    await page.evaluate("() => { const v = document.querySelector('#player'); v.muted = true; }")
    await player.evaluate("v => v.play()")
    await page.wait_for_function(
        "() => { const v = document.querySelector('#player'); return v.currentTime > 0; }"
    )
    media = await player.evaluate(
        "v => ({duration: v.duration, readyState: v.readyState, src: v.currentSrc,"
        " poster: v.poster, error: v.error && v.error.code})"
    )
    assert media["duration"] > 0
    assert media["readyState"] >= 2
    assert media["error"] is None
    # Signed links (media elements cannot send a key).
    assert f"/api/videos/{video_id}/content?format=mp4&expires=" in media["src"]
    assert "format=thumbnail&expires=" in media["poster"]
    await player.evaluate("v => { v.pause(); v.currentTime = 0.5; }")

    # The report: validation passed, a cost, and a download button per file.
    await expect(page.locator("#validation")).to_contain_text("Quality check passed")
    await expect(page.locator("#facts")).to_contain_text("Cost")
    downloads = page.locator("#downloads")
    for label in ("MP4", "WebM", "Thumbnail", "Sprite sheet"):
        await expect(downloads.get_by_role("link", name=f"Download {label}")).to_be_visible()

    async with page.expect_download() as download_info:
        await downloads.get_by_role("link", name="Download WebM").click()
    download = await download_info.value
    assert download.suggested_filename == f"{video_id}.webm"
    webm = tmp_path / download.suggested_filename
    await download.save_as(webm)
    info = await probe(webm)
    assert info.video is not None and info.video.codec == "vp9"
    assert info.audio is not None and info.audio.codec == "opus"
    assert (info.video.width, info.video.height) == (320, 180)

    # It is in the history, newest first, with its thumbnail.
    item = web.history_item(video_id)
    await expect(item).to_have_attribute("data-status", "completed")
    await expect(item.locator(".item-prompt")).to_have_text(
        "a red paper boat drifting down a neon-lit rainy street at dusk"
    )
    await item.scroll_into_view_if_needed()
    await expect(item.locator(".thumb img")).to_have_js_property("complete", True)
    assert await item.locator(".thumb img").evaluate("img => img.naturalWidth") > 0
    assert await page.locator("#history-list li").first.get_attribute("data-id") == video_id

    # Let the toast go before the picture for the README.
    await expect(page.locator("#toast")).not_to_have_class("toast show")
    await page.evaluate("() => window.scrollTo(0, 0)")
    await web.screenshot("completed")
    if not DOCS_SCREENSHOT.exists() or os.environ.get("REELFORGE_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS_SCREENSHOT))
    web.assert_clean()


async def test_regenerate_from_history_follows_the_new_video_to_completion(web: Web) -> None:
    page = web.page
    await web.goto()
    # A style from GET /api/styles: picking it sets its frame rate, and the result
    # shows the prompt as the model received it.
    await page.get_by_label("Style").select_option("claymation")
    await expect(page.get_by_label("Frame rate")).to_have_value("12")
    await web.fill_small_video("a yellow kite looping over green hills")
    first = await web.generate()
    await web.wait_stage(first, "completed")
    processed = page.locator("#current-processed")
    await expect(processed).to_be_visible()
    await expect(page.locator("#current-processed-text")).to_have_text(
        re.compile(r"^a yellow kite looping over green hills, claymation, stop-motion animation")
    )

    await web.history_item(first).get_by_role("button", name="Regenerate").click()
    second = await web.new_video(first)
    await expect(page.locator("#history-list li").first).to_have_attribute("data-id", second)
    await expect(web.history_item(second)).to_have_attribute("data-status", "completed")
    await web.wait_stage(second, "completed")
    await expect(page.locator("#player")).to_have_attribute("data-video-id", second)
    await expect(web.history_item(second).locator(".item-prompt")).to_have_text(
        "a yellow kite looping over green hills"
    )
    async with httpx.AsyncClient(base_url=web.base_url) as client:
        video = (await client.get(f"/api/videos/{second}")).json()
    assert video["regenerated_from"] == first
    web.assert_clean()


async def test_cancel_from_history_stops_a_running_video(web: Web) -> None:
    page = web.page
    await web.goto()
    await page.get_by_label("Prompt", exact=True).fill("a long slow pan across a mountain range")
    await page.get_by_label("Duration").fill("30")
    await page.get_by_label("Size", exact=True).select_option("1280x720")
    video_id = await web.generate()
    await expect(page.locator("#current-badge")).to_have_text("Running")
    item = web.history_item(video_id)
    await expect(item).to_have_attribute("data-status", "in_progress")

    await item.get_by_role("button", name=re.compile(r"^Cancel ")).click()
    await expect(item).to_have_attribute("data-status", "cancelled")
    await expect(item.locator(".badge")).to_have_text("Cancelled")
    await expect(item.get_by_role("button", name=re.compile(r"^Cancel "))).to_be_hidden()
    await web.wait_stage(video_id, "cancelled")
    await expect(page.locator("#status-text")).to_have_text("Cancelled.")
    await expect(page.locator('#stepper li[data-state="stopped"]')).to_have_count(1)
    await web.screenshot("cancelled")
    web.assert_clean()


async def test_the_api_message_is_shown_for_a_prompt_the_server_refuses(web: Web) -> None:
    page = web.page
    await web.goto()
    web.expected.add((400, "/api/videos/generate"))

    async def smuggle_control_character(route: Any) -> None:
        # Past the page's own check, to see the server's answer shown as it is.
        body = json.loads(route.request.post_data or "{}")
        body["prompt"] = "a bell \u0007 ringing"
        await route.continue_(post_data=json.dumps(body))

    await page.route("**/api/videos/generate", smuggle_control_character)
    await web.fill_small_video("a bell ringing")
    await page.get_by_role("button", name="Generate", exact=True).click()

    form_error = page.locator("#form-error")
    await expect(form_error).to_be_visible()
    message = (
        "prompt contains a control character, U+0007 BELL, at character 8; "
        "remove it (invisible characters can hide text)"
    )
    await expect(form_error.locator(".api-message")).to_have_text(message)
    await expect(page.locator("#prompt-error")).to_have_text(message)
    await expect(page.get_by_label("Prompt", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    await web.screenshot("api-error")
    web.assert_clean()


async def test_the_page_checks_input_before_sending_it(web: Web) -> None:
    page = web.page
    await web.goto()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    prompt = page.get_by_label("Prompt", exact=True)
    generate = page.get_by_role("button", name="Generate", exact=True)

    await prompt.fill("   ")
    await generate.click()
    await expect(page.locator("#prompt-error")).to_contain_text("prompt is empty")
    await expect(prompt).to_be_focused()

    await prompt.fill("a bell \u0007 ringing")
    await generate.click()
    await expect(page.locator("#prompt-error")).to_contain_text("control character (U+0007)")
    await page.get_by_role("button", name="Remove the control characters").click()
    await expect(page.locator("#prompt-error")).to_be_hidden()
    await expect(prompt).to_have_value("a bell  ringing")

    await prompt.fill("x" * 32_001)
    await expect(page.locator("#prompt-count")).to_have_text("32,001 / 32,000")
    await expect(page.locator("#prompt-error")).to_contain_text("the limit is 32,000")
    await prompt.fill("a bell ringing")

    await page.get_by_label("Size", exact=True).select_option("custom")
    await page.get_by_label("Width in pixels").fill("321")
    await generate.click()
    await expect(page.locator("#custom-size-error")).to_contain_text("even")
    await page.get_by_label("Width in pixels").fill("2000")
    await expect(page.locator("#custom-size-error")).to_contain_text("64 to 1920")
    await page.get_by_label("Width in pixels").fill("320")

    await page.get_by_label("Duration").fill("61")
    await page.get_by_label("Frame rate").fill("0")
    await page.locator('input[name="formats"][value="mp4"]').uncheck()
    await page.locator('input[name="formats"][value="webm"]').uncheck()
    await generate.click()
    await expect(page.locator("#duration-error")).to_be_visible()
    await expect(page.locator("#fps-error")).to_be_visible()
    await expect(page.locator("#formats-error")).to_have_text("Pick at least one format.")
    await expect(page.get_by_label("Duration")).to_be_focused()
    assert sent == []
    web.assert_clean()


async def test_the_provider_field_offers_each_provider_with_its_price_and_estimates_cost(
    web: Web,
) -> None:
    page = web.page
    await web.goto()
    provider = page.get_by_label("Provider")
    await expect(provider.locator("option")).to_have_text(
        ["Server's route (local)", "local — free", "rep · google/veo-3.1-fast — $0.15/s"]
    )
    await page.get_by_label("Duration").fill("4")
    await expect(page.locator("#cost-estimate")).to_have_text("No cost (runs here)")

    await provider.select_option("rep")
    await expect(page.locator("#cost-estimate")).to_have_text("Estimated cost $0.60")
    await page.get_by_label("Duration").fill("8")
    await expect(page.locator("#cost-estimate")).to_have_text("Estimated cost $1.20")

    await page.reload()  # the choice is remembered once the listing is back
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(provider).to_have_value("rep")
    web.assert_clean()


async def test_a_dropped_event_stream_reconnects_and_replays_from_the_last_seq(web: Web) -> None:
    page = web.page
    urls: list[str] = []

    def drop_first_connection_after_three_events(ws: Any) -> None:
        urls.append(ws.url)
        server = ws.connect_to_server()
        if len(urls) > 1:
            return  # later connections pass through untouched
        forwarded = 0

        async def forward(message: str | bytes) -> None:
            nonlocal forwarded
            forwarded += 1
            if forwarded <= 3:
                ws.send(message)
            if forwarded == 3:
                await ws.close(code=1012, reason="test drops the connection")
                await server.close()

        server.on_message(forward)

    await page.route_web_socket("**/ws?*", drop_first_connection_after_three_events)
    await web.goto()
    await web.fill_small_video("a paper plane gliding through clouds")
    video_id = await web.generate()
    await web.wait_stage(video_id, "completed")
    await expect(page.locator("#progress-value")).to_have_text("100%")
    ours = [url for url in urls if f"/api/videos/{video_id}/ws" in url]
    assert len(ours) >= 2, urls
    assert ours[0].endswith("after=0")
    assert ours[1].endswith("after=3")
    web.assert_clean()


async def test_a_phone_wide_page_does_not_scroll_sideways(web: Web) -> None:
    page = web.page
    await page.set_viewport_size({"width": 375, "height": 740})
    await web.goto()
    await web.fill_small_video(
        "averyveryverylongwordwithoutanyspacesthatcouldpushthelayoutsideways " * 3
    )
    video_id = await web.generate()
    await web.wait_stage(video_id, "completed")
    await expect(page.locator("#player")).to_have_attribute("data-video-id", video_id)
    await expect(page.locator("#player")).to_be_visible()
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"horizontal scroll: {widths}"
    await web.screenshot("phone")
    web.assert_clean()


async def test_keyboard_users_reach_the_form_in_order_and_see_focus(web: Web) -> None:
    page = web.page
    await web.goto()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to the prompt")).to_be_focused()
    await page.keyboard.press("Enter")
    prompt = page.get_by_label("Prompt", exact=True)
    await expect(prompt).to_be_focused()
    await page.keyboard.type("a glass of water on a sunny windowsill")
    order = []
    for _ in range(5):
        await page.keyboard.press("Tab")
        order.append(
            await page.evaluate(
                "() => document.activeElement.id || document.activeElement.textContent.trim()"
            )
        )
        outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no visible focus on {order[-1]}"
    assert order == ["Stormy lighthouse", "Neon koi", "Sunrise balloon", "style", "duration"]
    await prompt.focus()
    before = await web.selected_id()
    await page.keyboard.press("Control+Enter")
    await web.wait_stage(await web.new_video(before), "completed")
    await expect(page.locator("#current-prompt")).to_have_text(
        "a glass of water on a sunny windowsill"
    )
    web.assert_clean()


async def test_history_pages_with_load_more_newest_first(web: Web) -> None:
    page = web.page
    async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as client:
        for n in range(21):
            body = {"prompt": f"history filler {n}", "duration_seconds": 0.5, "size": "64x64"}
            assert (await client.post("/api/videos/generate", json=body)).status_code == 202
        listed = (await client.get("/api/videos", params={"limit": 40})).json()["data"]
    newest_first = [video["id"] for video in listed]

    await web.goto()
    items = page.locator("#history-list > li")
    await expect(items).to_have_count(20)
    assert await items.evaluate_all("lis => lis.map(li => li.dataset.id)") == newest_first[:20]
    await page.get_by_role("button", name="Load more").click()
    await expect(items).to_have_count(min(40, len(newest_first)))
    shown = await items.evaluate_all("lis => lis.map(li => li.dataset.id)")
    assert shown == newest_first[: len(shown)]
    web.assert_clean()


# -- a server with API keys -------------------------------------------------------


@dataclass
class KeyedServer:
    url: str
    key: str


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[KeyedServer]:
    """``reelforge serve`` on a shared Redis where ``reelforge keys create`` made a key."""
    from tests.conftest import delete_prefix

    data = tmp_path_factory.mktemp("web-keyed")
    prefix = f"rftest-web-{os.getpid()}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_") and k != "REDIS_URL"
    }
    env.update(
        {
            "REELFORGE_DATA_DIR": str(data / "data"),
            "REELFORGE_LOG_LEVEL": "WARNING",
            "REDIS_URL": redis_url,
            "REELFORGE_REDIS_PREFIX": prefix,
        }
    )
    created = subprocess.run(
        [sys.executable, "-m", "reelforge", "keys", "create", "--tenant", "web", "--name", "e2e"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = created.stdout.strip()
    port = free_port()
    log_path = data / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path)
        yield KeyedServer(url, key)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        delete_prefix(redis_url, prefix)


async def test_with_a_key_entered_once_the_page_generates_plays_and_downloads(
    browser: Any, keyed_server: KeyedServer, tmp_path: Path
) -> None:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    web = Web(page=page, base_url=keyed_server.url)
    # The first load, before the key is entered.
    web.expected = {(401, "/api/videos"), (401, "/api/styles")}
    page.on("console", web.on_console)
    page.on("pageerror", lambda error: web.problems.append(f"page error: {error}"))
    page.on("response", web.on_response)
    page.on("requestfailed", web.on_request_failed)
    try:
        await web.goto()
        await expect(page.locator("#key-menu")).to_have_attribute("open", "")
        await page.locator("#api-key").fill(keyed_server.key)
        await page.locator("#key-form").get_by_role("button", name="Save").click()
        await expect(page.locator("#key-summary")).to_have_text("API key set")

        await web.fill_small_video("a lantern floating over a dark lake")
        video_id = await web.generate()
        await web.wait_stage(video_id, "completed")  # live progress over the signed WS link

        player = page.locator("#player")
        await expect(player).to_have_attribute("data-video-id", video_id)
        await page.wait_for_function(
            "() => { const v = document.querySelector('#player'); return v.readyState >= 2; }"
        )
        src = await player.evaluate("v => v.currentSrc")
        assert "sig=" in src and keyed_server.key not in src

        async with page.expect_download() as download_info:
            await page.locator("#downloads").get_by_role("link", name="Download MP4").click()
        download = await download_info.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        assert (await probe(saved)).video is not None

        # The key stays in this browser: a reload shows the history without asking.
        web.expected = set()
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(web.history_item(video_id)).to_have_attribute("data-status", "completed")
        web.assert_clean()
    finally:
        await context.close()


async def test_the_api_docs_render_every_operation_with_no_network(web: Web) -> None:
    page = web.page
    # Anything but this server is unreachable: a CDN asset would fail, and be reported.
    await page.route(
        re.compile(r"^(?!" + re.escape(web.base_url) + r"/)"), lambda route: route.abort()
    )
    async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as client:
        spec = (await client.get("/openapi.json")).json()
    operations = sum(len(methods) for methods in spec["paths"].values())

    await page.goto(web.base_url + "/docs")

    await expect(page.locator(".opblock")).to_have_count(operations)
    await expect(page.locator(".information-container .title")).to_contain_text("reelforge")
    web.assert_clean()
