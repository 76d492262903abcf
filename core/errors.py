"""Domain errors. Each has a stable machine-readable code; the API maps codes to HTTP statuses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    code = "INVALID_REQUEST"


class ContentInvalid(InvalidInput):
    code = "INVALID_CONTENT"


class MetadataTooLarge(InvalidInput):
    code = "METADATA_TOO_LARGE"


class InvalidPagination(InvalidInput):
    code = "INVALID_PAGINATION"


class InvalidTimeoutConfig(InvalidInput):
    code = "INVALID_TIMEOUT_CONFIG"


class InvalidEventId(InvalidInput):
    code = "INVALID_EVENT_ID"


class SessionNotFound(DomainError):
    code = "SESSION_NOT_FOUND"


class AgentNotFound(DomainError):
    code = "AGENT_NOT_FOUND"


class SessionExpired(DomainError):
    code = "SESSION_EXPIRED"


class SessionEnded(DomainError):
    code = "SESSION_ENDED"


class SessionPaused(DomainError):
    code = "SESSION_PAUSED"


class SessionBusy(DomainError):
    """A `reject` session refuses a message while the previous one is unanswered."""

    code = "SESSION_BUSY"


class MessageSuperseded(DomainError):
    """An `interrupt` session answered a newer message instead of this one."""

    code = "MESSAGE_SUPERSEDED"


class AgentFailed(DomainError):
    """The agent could not answer the message (after its retries); the reason says why."""

    code = "AGENT_FAILED"


class SessionNotPaused(DomainError):
    code = "SESSION_NOT_PAUSED"


class MaxDurationReached(DomainError):
    code = "MAX_DURATION_EXCEEDED"


class AgentNameTaken(DomainError):
    code = "AGENT_NAME_TAKEN"


class AgentInUse(DomainError):
    """The agent still has sessions; deleting it needs `force`."""

    code = "AGENT_IN_USE"


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came back with a different request body."""

    code = "IDEMPOTENCY_KEY_REUSED"


class ServiceUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"


class Unauthorized(DomainError):
    """No valid credentials: a missing or wrong server key, or a missing or invalid bearer token."""

    code = "UNAUTHORIZED"


class CredentialsMissing(Unauthorized):
    """No credentials at all (nothing was guessed, so no failed attempt is counted against the client)."""


class TokenExpired(Unauthorized):
    code = "TOKEN_EXPIRED"


class Forbidden(DomainError):
    """Valid credentials that do not allow this action (e.g. a user token creating another user's session)."""

    code = "FORBIDDEN"


class InsufficientScope(Forbidden):
    code = "INSUFFICIENT_SCOPE"


class RateLimited(DomainError):
    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retryAfter=retry_after, **details)
        self.retry_after = retry_after


class TokenMintingUnavailable(DomainError):
    """`POST /api/auth/token` needs a signing key (JWT_SECRET, or JWT_PRIVATE_KEY for RS256/ES256)."""

    code = "TOKEN_MINTING_UNAVAILABLE"


class ModelAccessDenied(InvalidInput):
    """An agent's model settings name a key variable or a host the operator did not allow."""

    code = "MODEL_ACCESS_DENIED"


class TooManyStreams(DomainError):
    """One user token holds as many push connections (SSE streams, sockets) as an API process allows it."""

    code = "TOO_MANY_STREAMS"


class StreamCapacityReached(ServiceUnavailable):
    """This API process holds as many push connections as it allows in all: another replica may have room."""

    code = "STREAM_CAPACITY_REACHED"
