"""The one exception tree of reelforge.

Every error we raise derives from :class:`ReelforgeError` and carries a stable,
machine-readable ``code`` (part of the API contract: clients switch on it) plus a
human ``message``. Library errors (ffmpeg, PyAV, httpx, redis) are translated into
these at one boundary each; nothing above that boundary sees a foreign exception.

    ReelforgeError                      internal_error
    ├── InvalidRequestError             invalid_request (+ field codes: invalid_size, ...)
    │   ├── UnknownProviderError        unknown_provider
    │   ├── PromptError                 invalid_prompt  (+ unknown_style, invalid_template,
    │   │                                                 prompt_too_long, ...)
    │   └── PromptRejectedError         prompt_rejected (carries the policy rule id)
    ├── NotFoundError                   not_found
    ├── ConflictError                   conflict
    ├── MediaError                      media_error
    │   ├── FFmpegError                 ffmpeg_failed      (carries ffmpeg's stderr tail)
    │   ├── UnreadableMediaError        unreadable_media
    │   └── OutputPathError             output_not_writable
    ├── ProviderError                   provider_error     (retryable unless said otherwise)
    │   ├── ProviderAuthError           provider_auth_failed
    │   ├── ProviderRejectedError       provider_rejected_request
    │   │   └── ProviderModerationError prompt_rejected    (the provider's own moderation)
    │   ├── RateLimitedError            rate_limited       (carries retry_after)
    │   ├── ProviderUnavailableError    provider_unavailable
    │   ├── RemoteJobLostError          remote_job_lost
    │   └── GenerationFailedError       generation_failed  (carries the remote code)
    ├── StorageError                    storage_error
    │   ├── StorageUnavailableError     storage_unavailable (retryable: the store is unreachable)
    │   └── StorageFullError            storage_full       (no space left; retryable elsewhere)
    ├── CallbackRejectedError           invalid_signature  (a vendor callback we cannot trust)
    ├── JobCancelledError               cancelled
    ├── AuthenticationError             unauthorized       (missing_api_key, invalid_api_key)
    ├── PermissionDeniedError           forbidden          (invalid_link, link_expired)
    ├── QuotaExceededError              quota_exceeded     (the quota's code; carries retry_after)
    │   └── BudgetExceededError         budget_exceeded
    ├── WorkerLostError                 worker_lost        (every worker on the job died)
    └── ServiceUnavailableError         service_unavailable
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "CallbackRejectedError",
    "ConflictError",
    "FFmpegError",
    "GenerationFailedError",
    "InvalidRequestError",
    "JobCancelledError",
    "MediaError",
    "NotFoundError",
    "OutputPathError",
    "PermissionDeniedError",
    "PromptError",
    "PromptRejectedError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderModerationError",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitedError",
    "ReelforgeError",
    "RemoteJobLostError",
    "ServiceUnavailableError",
    "StorageError",
    "StorageFullError",
    "StorageUnavailableError",
    "UnknownProviderError",
    "UnreadableMediaError",
    "WorkerLostError",
]


class ReelforgeError(Exception):
    """Base of every reelforge error; ``code`` is stable, ``message`` is for people."""

    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            # Instance-level code refines the class code (e.g. ``invalid_size``).
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "param": self.param}


class InvalidRequestError(ReelforgeError):
    """The caller sent something we will not accept; ``param`` names the field."""

    code = "invalid_request"


class NotFoundError(ReelforgeError):
    code = "not_found"


class ConflictError(ReelforgeError):
    code = "conflict"


class UnknownProviderError(InvalidRequestError):
    code = "unknown_provider"


class PromptError(InvalidRequestError):
    """The prompt (or its style, template or variables) cannot be processed."""

    code = "invalid_prompt"


class PromptRejectedError(InvalidRequestError):
    """A policy rule refused the prompt before anything was queued or paid for.

    ``rule`` is the id of the rule that matched (``blocked_terms:3``, a configured
    regex id, ``moderation:violence``); clients may show it, never the rule itself.
    """

    code = "prompt_rejected"

    def __init__(self, message: str, *, rule: str, param: str | None = "prompt"):
        super().__init__(message, param=param)
        self.rule = rule

    def to_dict(self) -> dict[str, str | None]:
        return {**super().to_dict(), "rule": self.rule}


class CallbackRejectedError(ReelforgeError):
    """A vendor callback whose signature does not verify (or cannot be checked)."""

    code = "invalid_signature"


class MediaError(ReelforgeError):
    code = "media_error"


class FFmpegError(MediaError):
    """FFmpeg exited non-zero; ``stderr_tail`` holds the last lines it printed."""

    code = "ffmpeg_failed"

    def __init__(self, message: str, *, stderr_tail: str = "", returncode: int | None = None):
        detail = f"{message}: {stderr_tail.strip()}" if stderr_tail.strip() else message
        super().__init__(detail)
        self.stderr_tail = stderr_tail
        self.returncode = returncode


class UnreadableMediaError(MediaError):
    code = "unreadable_media"


class OutputPathError(MediaError):
    code = "output_not_writable"


class ProviderError(ReelforgeError):
    """A generation back-end failed. Retryable by default: outages are transient."""

    code = "provider_error"
    retryable = True


class ProviderAuthError(ProviderError):
    code = "provider_auth_failed"
    retryable = False


class ProviderRejectedError(ProviderError):
    """The provider refused the request itself (bad input): retrying cannot help."""

    code = "provider_rejected_request"
    retryable = False


class ProviderModerationError(ProviderRejectedError):
    """The provider's own moderation refused the prompt: the same code as our policy
    pre-check, never retried and never failed over (another provider would see the
    same prompt)."""

    code = "prompt_rejected"


class RateLimitedError(ProviderError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    code = "provider_unavailable"


class RemoteJobLostError(ProviderError):
    code = "remote_job_lost"


class GenerationFailedError(ProviderError):
    """The remote job ended in failure; ``remote_code`` is the provider's own code."""

    code = "generation_failed"
    retryable = False

    def __init__(self, message: str, *, remote_code: str | None = None, retryable: bool = False):
        super().__init__(message, code=remote_code)
        self.remote_code = remote_code
        self.retryable = retryable  # type: ignore[misc]


class StorageError(ReelforgeError):
    code = "storage_error"


class StorageUnavailableError(StorageError):
    code = "storage_unavailable"
    retryable = True


class StorageFullError(StorageError):
    """No space left where a file was being written; another worker may have room."""

    code = "storage_full"
    retryable = True


class JobCancelledError(ReelforgeError):
    code = "cancelled"


class WorkerLostError(ReelforgeError):
    """The job's workers kept dying (``max_worker_restarts``): our fault, not a provider's."""

    code = "worker_lost"


class ServiceUnavailableError(ReelforgeError):
    code = "service_unavailable"
    retryable = True


class AuthenticationError(ReelforgeError):
    """No usable API key: missing, unknown or revoked (the message never says which)."""

    code = "unauthorized"


class PermissionDeniedError(ReelforgeError):
    """A signed link that was tampered with or has expired."""

    code = "forbidden"


class QuotaExceededError(ReelforgeError):
    """A tenant's quota or a key's rate limit is used up; ``code`` names which.

    ``retry_after`` is the wait in seconds after which the request may succeed,
    or None when waiting does not help (within a reasonable time)."""

    code = "quota_exceeded"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, code=code, param=param)
        self.retry_after = retry_after
        self.headers = headers or {}


class BudgetExceededError(QuotaExceededError):
    """The job's estimated cost is more than what is left of the tenant's budget."""

    code = "budget_exceeded"
