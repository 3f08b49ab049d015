"""The OpenAI Videos emulator, driven by the official ``openai`` SDK, unchanged.

If the SDK is happy with the emulator (shapes, status codes, headers, pagination,
retries) and every JSON answer fits OpenAI's published schemas, then tests of
reelforge's ``openai`` provider against the emulator mean something. Each SDK client
here records every answer it receives and checks JSON ones against the spec
(:class:`Wire`); a test fails if any did not fit.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import av
import httpx
import httpx2
import jsonschema
import openai
import pytest

from tests.emulators.openai_schema import (
    response_schema_name,
    validate_against,
    validate_error_body,
)
from tests.emulators.openai_videos import (
    CONTENT_ROUTE,
    CREATE_ROUTE,
    LIST_ROUTE,
    RETRIEVE_ROUTE,
    Emulator,
    EmulatorConfig,
    ReferenceUpload,
    running_emulator,
)
from tests.service import REPO, free_port, wait_until

pytestmark = [
    # The SDK marks every videos.* method deprecated (OpenAI shut Sora down), and
    # pytest turns warnings into errors. Only that notice is ignored, matched by its
    # text: a module filter ("...:openai") would not work, because the deprecation
    # wrapper attributes the warning to the *caller*, i.e. to this test module.
    pytest.mark.filterwarnings(
        "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
    ),
    pytest.mark.timeout(30),
]

API_KEY = "sk-emulator-test-key"
JPEG_START = b"\xff\xd8\xff"


@dataclass
class Wire:
    """Every answer an SDK client received; JSON ones validated against the spec."""

    answers: list[tuple[str, str, int]] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        await response.aread()
        method, path = response.request.method, response.request.url.path
        self.answers.append((method, path, response.status_code))
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        try:
            body = response.json()
            if response.status_code >= 400:
                validate_error_body(body)
                self.checked["error"] += 1
                return
            name = response_schema_name(method, path, response.status_code)
            if name is None:
                raise AssertionError("the spec declares no JSON answer here")
            validate_against(name, body)
            self.checked[name] += 1
        except (AssertionError, ValueError, jsonschema.ValidationError) as exc:
            # Raising inside an httpx hook would reach the SDK as a connection error
            # (and be retried), so problems are collected and asserted at teardown.
            self.problems.append(f"{method} {path} → {response.status_code}: {exc}")


ClientFactory = Callable[..., openai.AsyncOpenAI]


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by every emulator in the session: each clip size is rendered once.
    return tmp_path_factory.mktemp("openai-emulator-media")


@pytest.fixture
async def emulator(media_dir: Path) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(api_key=API_KEY, job_seconds=0.3, poll_after_ms=20, media_dir=media_dir)
    async with running_emulator(config) as emu:
        yield emu


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def sdk(emulator: Emulator, wire: Wire) -> AsyncIterator[ClientFactory]:
    """Makes SDK clients for the emulator (retries off unless asked for)."""
    clients: list[openai.AsyncOpenAI] = []

    def make(*, api_key: str = API_KEY, max_retries: int = 0) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url=emulator.base_url,
            api_key=api_key,
            max_retries=max_retries,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"response": [wire.record]}),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    assert not wire.problems, "answers that do not fit the spec:\n" + "\n".join(wire.problems)


@pytest.fixture
def client(sdk: ClientFactory) -> openai.AsyncOpenAI:
    return sdk()


@pytest.fixture
async def raw(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the emulator, for what the SDK never sends (a JSON create)."""
    async with httpx.AsyncClient(
        base_url=emulator.base_url + "/", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        yield http


async def completed_video(client: openai.AsyncOpenAI, emulator: Emulator, **kw: Any) -> Any:
    emulator.config.job_seconds = 0
    video = await client.videos.create(prompt="a lighthouse at dusk", **kw)
    assert video.status == "completed"
    return video


def describe_mp4(data: bytes) -> tuple[int, int, float, int, bool]:
    """Width, height, duration, decoded frame count and whether it has audio."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = (container.duration or 0) / av.time_base
        return stream.width, stream.height, duration, frames, bool(container.streams.audio)


def jpeg_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mjpeg"
        return stream.width, stream.height


async def raises(exc_type: type[Exception], call: Awaitable[object]) -> Any:
    with pytest.raises(exc_type) as info:
        await call
    return info.value


# --- the happy path ----------------------------------------------------------------


async def test_create_answers_200_with_a_queued_video_and_the_spec_defaults(
    client: openai.AsyncOpenAI, wire: Wire
) -> None:
    response = await client.videos.with_raw_response.create(prompt="a fox in snow")
    video = response.parse()

    assert response.status_code == 200
    assert video.id.startswith("video_")
    assert (video.object, video.status, video.progress) == ("video", "queued", 0)
    assert (video.model, video.seconds, video.size) == ("sora-2", "4", "720x1280")
    assert video.completed_at is None and video.error is None
    assert video.remixed_from_video_id is None
    assert wire.checked["VideoResource"] == 1


async def test_create_and_poll_sleeps_the_poll_after_header_between_polls(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.poll_after_ms = 25
    emulator.config.job_seconds = 0.5

    video = await client.videos.create_and_poll(prompt="waves", seconds="8", size="1280x720")

    assert (video.status, video.progress) == ("completed", 100)
    assert video.completed_at is not None and video.expires_at is not None
    polls = emulator.state.requests_to(RETRIEVE_ROUTE)
    # At the SDK's default of 1000 ms there would be two polls in 0.5 s, not a dozen.
    assert len(polls) >= 5
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 0.02
    assert all(p.headers.get("x-stainless-poll-helper") == "true" for p in polls)


async def test_status_moves_from_queued_through_in_progress_to_completed(
    media_dir: Path,
) -> None:
    clock = FakeClock()
    config = EmulatorConfig(job_seconds=10, media_dir=media_dir)
    async with (
        running_emulator(config, clock=clock) as emu,
        openai.AsyncOpenAI(base_url=emu.base_url, api_key="any", max_retries=0) as client,
    ):
        video = await client.videos.create(prompt="a slow sunrise")
        seen = [(video.status, video.progress)]
        for _ in range(5):
            clock.advance(2)
            video = await client.videos.retrieve(video.id)
            seen.append((video.status, video.progress))

    assert seen[0] == ("queued", 0)
    statuses = [status for status, _ in seen]
    assert statuses == [
        "queued",
        "queued",
        "in_progress",
        "in_progress",
        "in_progress",
        "completed",
    ]
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and 0 < progress[3] < progress[4] < 100
    assert seen[-1] == ("completed", 100)
    assert video.completed_at == int(clock.now)


async def test_retrieve_returns_the_created_video(client: openai.AsyncOpenAI) -> None:
    created = await client.videos.create(prompt="a red kite", model="sora-2-pro", size="1792x1024")

    fetched = await client.videos.retrieve(created.id)

    assert fetched.id == created.id
    assert (fetched.model, fetched.size, fetched.prompt) == (
        "sora-2-pro",
        "1792x1024",
        "a red kite",
    )
    assert fetched.created_at == created.created_at


async def test_list_pages_through_every_video_following_the_after_cursor(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    ids = [(await client.videos.create(prompt=f"clip {n}")).id for n in range(5)]

    newest_first = [video.id async for video in client.videos.list(limit=2)]
    oldest_first = [video.id async for video in client.videos.list(limit=2, order="asc")]

    assert newest_first == ids[::-1]
    assert oldest_first == ids
    # Three pages each way (2 + 2 + 1), asked for with after=<last_id of the page before>.
    lists = emulator.state.requests_to(LIST_ROUTE)
    assert len(lists) == 6
    assert [parse_qs(r.query).get("after") for r in lists[:3]] == [None, [ids[3]], [ids[1]]]
    # The SDK's page model declares only last_id and has_more; the rest is kept as extra.
    first_page = (await client.videos.list(limit=2)).to_dict()
    assert (first_page["first_id"], first_page["last_id"], first_page["has_more"]) == (
        ids[4],
        ids[3],
        True,
    )


async def test_list_after_the_last_video_is_an_empty_final_page(
    client: openai.AsyncOpenAI,
) -> None:
    only = await client.videos.create(prompt="alone")

    page = await client.videos.list(after=only.id)

    answer = page.to_dict()
    assert answer["data"] == []
    assert (answer["first_id"], answer["last_id"], answer["has_more"]) == (None, None, False)


# --- content -------------------------------------------------------------------------


async def test_downloaded_video_is_a_real_mp4_of_the_requested_size_and_length(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    video = await completed_video(client, emulator, size="1280x720", seconds="8")

    content = await client.videos.download_content(video.id, variant="video")

    assert content.response.headers["content-type"] == "video/mp4"
    width, height, duration, frames, audio = describe_mp4(content.content)
    assert (width, height) == (1280, 720)
    assert duration == pytest.approx(8, abs=0.25)
    assert frames >= 8 * emulator.config.fps - 1
    assert audio


@pytest.mark.parametrize("variant", ["thumbnail", "spritesheet"])
async def test_preview_variants_are_jpeg_images(
    client: openai.AsyncOpenAI, emulator: Emulator, variant: Any
) -> None:
    video = await completed_video(client, emulator)

    content = await client.videos.download_content(video.id, variant=variant)

    assert content.response.headers["content-type"] == "image/jpeg"
    assert content.content.startswith(JPEG_START)
    width, height = jpeg_size(content.content)
    if variant == "thumbnail":
        assert (width, height) == (720, 1280)
    else:
        assert width == 4 * 256  # four frames a row for a 4 s clip


async def test_content_of_an_unfinished_video_is_not_found(
    client: openai.AsyncOpenAI,
) -> None:
    video = await client.videos.create(prompt="not yet")

    error = await raises(openai.NotFoundError, client.videos.download_content(video.id))

    assert "not ready" in error.message


# --- remix and delete ------------------------------------------------------------------


async def test_remix_creates_a_new_video_pointing_at_its_source(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    source = await completed_video(client, emulator, size="1024x1792", seconds="12")

    remix = await client.videos.remix(source.id, prompt="the same, at night")

    assert remix.id != source.id
    assert remix.remixed_from_video_id == source.id
    assert (remix.prompt, remix.size, remix.seconds) == ("the same, at night", "1024x1792", "12")


async def test_remix_of_an_unfinished_video_is_a_bad_request(
    client: openai.AsyncOpenAI,
) -> None:
    source = await client.videos.create(prompt="still rendering")

    error = await raises(openai.BadRequestError, client.videos.remix(source.id, prompt="again"))

    assert error.param == "video_id"


async def test_delete_removes_the_video(client: openai.AsyncOpenAI, emulator: Emulator) -> None:
    video = await completed_video(client, emulator)

    deleted = await client.videos.delete(video.id)

    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    await raises(openai.NotFoundError, client.videos.retrieve(video.id))
    assert emulator.state.deleted == {video.id: "completed"}


async def test_deleting_an_unfinished_video_cancels_it(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.job_seconds = 60
    video = await client.videos.create(prompt="never mind")

    await client.videos.delete(video.id)

    assert emulator.state.deleted == {video.id: "queued"}
    assert video.id not in emulator.state.jobs
    assert [v.id async for v in client.videos.list()] == []


# --- request bodies ---------------------------------------------------------------------


async def test_sdk_create_is_multipart_and_carries_the_input_reference_file(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))

    video = await client.videos.create(
        prompt="animate this", input_reference=("ref.png", png, "image/png"), size="1280x720"
    )

    job = emulator.state.jobs[video.id]
    assert job.input_reference == ReferenceUpload("ref.png", "image/png", png)
    assert job.size == "1280x720"
    create = emulator.state.requests_to(CREATE_ROUTE)[0]
    assert create.headers["content-type"].startswith("multipart/form-data; boundary=")


async def test_sdk_create_without_a_file_is_multipart_too(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    await client.videos.create(prompt="plain")

    create = emulator.state.requests_to(CREATE_ROUTE)[0]
    assert create.headers["content-type"].startswith("multipart/form-data")


async def test_create_accepts_a_json_body_with_a_reference_object(
    raw: httpx.AsyncClient, emulator: Emulator
) -> None:
    body = {
        "prompt": "from a url",
        "seconds": "12",
        "size": "1792x1024",
        "input_reference": {"image_url": "https://example.com/a.png"},
    }

    response = await raw.post("videos", json=body)

    assert response.status_code == 200
    validate_against("VideoResource", response.json())
    job = emulator.state.jobs[response.json()["id"]]
    assert job.input_reference == {"image_url": "https://example.com/a.png"}
    assert (job.seconds, job.size) == ("12", "1792x1024")


async def test_remix_accepts_a_multipart_body(raw: httpx.AsyncClient, emulator: Emulator) -> None:
    emulator.config.job_seconds = 0
    source = (await raw.post("videos", json={"prompt": "source"})).json()

    response = await raw.post(f"videos/{source['id']}/remix", data={"prompt": "remixed"})

    assert response.status_code == 200
    assert response.json()["remixed_from_video_id"] == source["id"]


# --- idempotency and what the SDK sends ----------------------------------------------------


async def test_same_idempotency_key_returns_the_same_job_and_counts_each_submit(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    headers = {"Idempotency-Key": "reelforge-v1-1"}

    first = await client.videos.create(prompt="once", extra_headers=headers)
    again = await client.videos.create(prompt="once", extra_headers=headers)
    other = await client.videos.create(prompt="once")

    assert again.id == first.id
    assert other.id != first.id
    assert emulator.state.submits_by_key == Counter({"reelforge-v1-1": 2})
    assert emulator.state.submits_by_prompt == Counter({"once": 3})
    assert len(emulator.state.jobs) == 2


async def test_sdk_sends_no_idempotency_key_of_its_own(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    await client.videos.create(prompt="no key")

    create = emulator.state.requests_to(CREATE_ROUTE)[0]
    assert "idempotency-key" not in create.headers
    assert create.headers["authorization"] == "<redacted>"
    assert create.headers["x-stainless-retry-count"] == "0"
    assert emulator.state.submits_by_key == Counter()


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"prompt": "x", "size": "640x480"}, "size", "invalid_value"),
        ({"prompt": "x", "seconds": "5"}, "seconds", "invalid_value"),
        ({"prompt": ""}, "prompt", "empty_string"),
        ({"prompt": "x", "extra_body": {"fps": "30"}}, "fps", "unknown_parameter"),
    ],
    ids=["size", "seconds", "empty-prompt", "unknown-field"],
)
async def test_invalid_create_is_a_bad_request_naming_the_parameter(
    client: openai.AsyncOpenAI, fields: dict[str, Any], param: str, code: str
) -> None:
    error = await raises(openai.BadRequestError, client.videos.create(**fields))

    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")


async def test_wrong_api_key_is_an_authentication_error(sdk: ClientFactory) -> None:
    client = sdk(api_key="sk-wrong-key-123456")

    error = await raises(openai.AuthenticationError, client.videos.create(prompt="x"))

    assert (error.code, error.type, error.param) == (
        "invalid_api_key",
        "invalid_request_error",
        None,
    )
    assert "sk-wrong-key-123456" not in error.message


async def test_unauthorized_switch_rejects_even_the_right_key(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.unauthorized = True

    await raises(openai.AuthenticationError, client.videos.list())


async def test_forbidden_is_a_permission_denied_error(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.forbidden = True

    await raises(openai.PermissionDeniedError, client.videos.create(prompt="x"))


@pytest.mark.parametrize("operation", ["retrieve", "delete", "download_content", "remix"])
async def test_unknown_video_id_is_not_found(client: openai.AsyncOpenAI, operation: str) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "retrieve": lambda: client.videos.retrieve("video_missing"),
        "delete": lambda: client.videos.delete("video_missing"),
        "download_content": lambda: client.videos.download_content("video_missing"),
        "remix": lambda: client.videos.remix("video_missing", prompt="x"),
    }

    error = await raises(openai.NotFoundError, calls[operation]())

    assert error.type == "invalid_request_error"


async def test_rate_limit_raises_with_retry_after_when_retries_are_off(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.rate_limit_next = 1

    error = await raises(openai.RateLimitError, client.videos.create(prompt="x"))

    assert (error.type, error.code) == ("rate_limit_error", "rate_limit_exceeded")
    assert error.response.headers["retry-after"] == "1"
    assert emulator.config.rate_limit_next == 0
    assert emulator.state.submits_by_prompt == Counter()


async def test_sdk_waits_retry_after_then_succeeds(sdk: ClientFactory, emulator: Emulator) -> None:
    client = sdk(max_retries=2)
    emulator.config.rate_limit_next = 1

    video = await client.videos.create(prompt="patient")

    attempts = emulator.state.requests_to(CREATE_ROUTE)
    assert len(attempts) == 2
    # Retry-After: 1 was honoured (the SDK's own first backoff is at most 0.5 s).
    assert attempts[1].at - attempts[0].at >= 0.95
    assert [a.headers["x-stainless-retry-count"] for a in attempts] == ["0", "1"]
    assert all("idempotency-key" not in a.headers for a in attempts)
    assert emulator.state.submits_by_prompt == Counter({"patient": 1})
    assert emulator.state.create_attempts_within(60) == 2
    assert list(emulator.state.jobs) == [video.id]


async def test_server_error_is_an_internal_server_error(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.fail_next = 1

    error = await raises(openai.InternalServerError, client.videos.list())

    assert error.status_code == 500
    assert error.type == "server_error"


async def test_sdk_retries_a_server_error(sdk: ClientFactory, emulator: Emulator) -> None:
    client = sdk(max_retries=1)
    emulator.config.fail_next = 1

    await client.videos.create(prompt="second time lucky")

    assert emulator.state.requests[CREATE_ROUTE] == 2
    assert emulator.state.submits_by_prompt == Counter({"second time lucky": 1})


# --- injected faults in jobs and content -----------------------------------------------------


async def test_failing_jobs_end_failed_with_the_error_code(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.fail_jobs_with = "moderation_blocked"

    video = await client.videos.create_and_poll(prompt="something unacceptable")

    assert video.status == "failed"
    assert video.error is not None and video.error.code == "moderation_blocked"
    assert video.error.message
    await raises(openai.NotFoundError, client.videos.download_content(video.id))


async def test_vanishing_jobs_are_not_found_once_started(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.vanish_jobs = True
    video = await client.videos.create(prompt="here, then gone")

    async def gone() -> bool:
        try:
            await client.videos.retrieve(video.id)
        except openai.NotFoundError:
            return True
        return False

    await wait_until(gone, timeout=5, interval=0.02)
    assert [v.id async for v in client.videos.list()] == []
    assert video.id in emulator.state.jobs  # the server still has it; readers do not


async def test_corrupt_content_is_garbage_labelled_as_mp4(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    video = await completed_video(client, emulator)
    emulator.config.corrupt_content = True

    content = await client.videos.download_content(video.id)

    assert content.response.headers["content-type"] == "video/mp4"
    with pytest.raises(av.error.FFmpegError):
        describe_mp4(content.content)


async def test_truncated_content_is_the_first_half_of_the_mp4(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    video = await completed_video(client, emulator)
    whole = (await client.videos.download_content(video.id)).content
    emulator.config.truncate_content = True

    half = (await client.videos.download_content(video.id)).content

    assert half == whole[: len(whole) // 2]
    with pytest.raises(av.error.FFmpegError):
        describe_mp4(half)


async def test_cut_content_drops_the_connection_half_way(
    client: openai.AsyncOpenAI, emulator: Emulator, raw: httpx.AsyncClient
) -> None:
    video = await completed_video(client, emulator)
    emulator.config.cut_content = True

    await raises(openai.APIConnectionError, client.videos.download_content(video.id))
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        await raw.get(f"videos/{video.id}/content")
    assert emulator.state.requests[CONTENT_ROUTE] == 2


async def test_slow_answers_hit_the_client_timeout(
    client: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.config.slow_seconds = 0.5

    await raises(openai.APITimeoutError, client.with_options(timeout=0.1).videos.list())


# --- conformance and the command line -----------------------------------------------------


async def test_every_json_answer_fits_the_published_schemas(
    client: openai.AsyncOpenAI, emulator: Emulator, wire: Wire
) -> None:
    video = await completed_video(client, emulator)
    await client.videos.retrieve(video.id)
    await client.videos.list(limit=1)
    await client.videos.remix(video.id, prompt="again")
    await client.videos.delete(video.id)
    await raises(openai.NotFoundError, client.videos.retrieve(video.id))

    # The sdk fixture fails the test if any answer did not fit; this checks they ran.
    assert set(wire.checked) == {
        "VideoResource",
        "VideoListResource",
        "DeletedVideoResource",
        "error",
    }


async def test_runs_from_the_command_line_with_faults_as_flags(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.emulators.openai_videos", "--port", str(port)),
        *("--api-key", "sk-cli", "--job-seconds", "0", "--fail-jobs-with", "moderation_blocked"),
        *("--media-dir", str(tmp_path)),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/v1/",
            headers={"Authorization": "Bearer sk-cli"},
        ) as http:

            async def answering() -> bool:
                try:
                    return (await http.get("videos")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(answering, timeout=20, interval=0.1)
            video = (await http.post("videos", json={"prompt": "x"})).json()
    finally:
        proc.terminate()
        await proc.wait()

    assert video["status"] == "failed"
    assert video["error"]["code"] == "moderation_blocked"
