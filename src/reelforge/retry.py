"""The one retry policy (tenacity): retryable errors only, backoff with jitter,
``Retry-After`` honoured, bounded attempts and total time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from reelforge.errors import RateLimitedError, ReelforgeError, RemoteJobLostError

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


def _is_retryable(exc: BaseException) -> bool:
    # A lost remote job needs a new attempt, not the same call again.
    return (
        isinstance(exc, ReelforgeError)
        and exc.retryable
        and not isinstance(exc, RemoteJobLostError)
    )


class RetryPolicy:
    def __init__(
        self,
        *,
        attempts: int = 4,
        initial: float = 0.5,
        maximum: float = 20.0,
        total_seconds: float = 120.0,
    ):
        self.attempts = attempts
        self.initial = initial
        self.maximum = maximum
        self.total_seconds = total_seconds
        self._backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def wait(self, state: RetryCallState) -> float:
        """Backoff, or the server's Retry-After when it asked for longer."""
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return min(max(backoff, exc.retry_after), self.maximum * 3)
        return backoff


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[BaseException, int], Awaitable[None]] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, a non-retryable error, or the policy runs out."""

    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and exc is not None:
            await on_retry(exc, state.attempt_number)

    retrying = AsyncRetrying(
        retry=retry_if_exception(_is_retryable),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_seconds),
        wait=policy.wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
