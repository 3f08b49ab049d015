"""The fal and Replicate adapters' tables: vendor statuses and HTTP answers → ours."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from reelforge.errors import (
    ProviderAuthError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteJobLostError,
)
from reelforge.providers.base import RemoteState
from reelforge.providers.fal import _raise_for as fal_raise_for
from reelforge.providers.fal import fal_state
from reelforge.providers.replicate import _raise_for as replicate_raise_for
from reelforge.providers.replicate import prediction_state
from reelforge.settings import Settings


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("starting", RemoteState.QUEUED),
        ("processing", RemoteState.RUNNING),
        ("succeeded", RemoteState.SUCCEEDED),
        ("failed", RemoteState.FAILED),
        ("canceled", RemoteState.CANCELLED),
        ("aborted", RemoteState.FAILED),
    ],
)
def test_each_prediction_status_maps_to_our_state(status: str, state: RemoteState) -> None:
    assert prediction_state({"status": status}).state is state


def test_aborted_prediction_fails_with_its_own_code() -> None:
    assert prediction_state({"status": "aborted"}).error_code == "prediction_aborted"


def test_prediction_progress_is_the_last_tqdm_line_of_its_logs() -> None:
    logs = " 10%|#         | 1/10\nloading\n 40%|####      | 4/10 [00:02<00:03]\n"
    assert prediction_state({"status": "processing", "logs": logs}).progress == 40


def test_sensitive_content_error_is_our_moderation_code() -> None:
    status = prediction_state(
        {"status": "failed", "error": "The input or output was flagged as sensitive. (E005)"}
    )
    assert status.error_code == "moderation_blocked"


def test_other_prediction_failure_is_a_generation_failure() -> None:
    status = prediction_state({"status": "failed", "error": "CUDA out of memory"})
    assert (status.error_code, status.error_message) == ("generation_failed", "CUDA out of memory")


def test_unknown_prediction_status_is_a_provider_error() -> None:
    with pytest.raises(ProviderUnavailableError):
        prediction_state({"status": "exploded"})


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"status": "IN_QUEUE", "queue_position": 3}, RemoteState.QUEUED),
        ({"status": "IN_PROGRESS", "logs": None}, RemoteState.RUNNING),
        ({"status": "COMPLETED", "logs": []}, RemoteState.SUCCEEDED),
        ({"status": "COMPLETED", "error": "boom", "error_type": "x"}, RemoteState.FAILED),
        ({"status": "COMPLETED", "error_type": "request_cancelled"}, RemoteState.CANCELLED),
    ],
)
def test_each_fal_status_maps_to_our_state(body: dict[str, object], state: RemoteState) -> None:
    assert fal_state(body).state is state


def test_fal_progress_is_the_last_percentage_in_its_logs() -> None:
    logs = [{"message": "step 1 20%"}, {"message": "warming"}, {"message": "65 %"}]
    assert fal_state({"status": "IN_PROGRESS", "logs": logs}).progress == 65


def test_fal_content_policy_failure_is_our_moderation_code() -> None:
    status = fal_state(
        {"status": "COMPLETED", "error": "flagged", "error_type": "content_policy_violation"}
    )
    assert status.error_code == "moderation_blocked"


def test_fal_status_strings_it_never_sends_are_provider_errors() -> None:
    with pytest.raises(ProviderUnavailableError):
        fal_state({"status": "FAILED"})


TABLE = [
    (401, ProviderAuthError),
    (403, ProviderAuthError),
    (400, ProviderRejectedError),
    (422, ProviderRejectedError),
    (404, RemoteJobLostError),
    (429, RateLimitedError),
    (500, ProviderUnavailableError),
    (503, ProviderUnavailableError),
]


@pytest.mark.parametrize(("status", "error"), TABLE)
@pytest.mark.parametrize("raise_for", [fal_raise_for, replicate_raise_for], ids=["fal", "rep"])
def test_each_http_answer_raises_our_error(status: int, error: type, raise_for: object) -> None:
    response = httpx.Response(status, json={"detail": "nope"}, headers={"retry-after": "7"})
    with pytest.raises(error) as caught:
        raise_for(response, "call")  # type: ignore[operator]
    assert "nope" in caught.value.message
    if status == 429:
        assert caught.value.retry_after == 7


def test_replicate_out_of_credit_is_an_auth_error_with_its_own_code() -> None:
    with pytest.raises(ProviderAuthError) as caught:
        replicate_raise_for(httpx.Response(402, json={"detail": "no credit"}), "create")
    assert caught.value.code == "provider_payment_required"


def test_fal_validation_detail_list_is_flattened_into_the_message() -> None:
    body = {"detail": [{"loc": ["body", "duration"], "msg": "bad value", "type": "literal"}]}
    with pytest.raises(ProviderRejectedError) as caught:
        fal_raise_for(httpx.Response(422, json=body), "submit")
    assert caught.value.message == "submit: body.duration: bad value"


def test_fal_refusal_for_content_policy_is_our_moderation_code() -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "x", "type": "content_policy_violation"}]}
    with pytest.raises(ProviderRejectedError) as caught:
        fal_raise_for(httpx.Response(422, json=body), "result")
    assert caught.value.code == "moderation_blocked"


def test_public_url_loses_its_trailing_slash() -> None:
    assert Settings(public_url="https://rf.example.com/").public_url == "https://rf.example.com"


def test_public_url_must_be_http_or_https() -> None:
    with pytest.raises(ValidationError):
        Settings(public_url="rf.example.com")
