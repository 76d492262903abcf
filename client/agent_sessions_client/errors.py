"""Typed errors for the API's error codes: `except SessionExpired:` rather than parsing bodies.

Which exception each code raises is read from the table in `agent_sessions_client.codes`.
"""

from __future__ import annotations

from typing import Any

import httpx

from agent_sessions_client.codes import ERROR_CODES


class ApiError(Exception):
    """The server answered with an error body `{"error": {code, message, details}, "message"}`."""

    status_code: int = 0

    def __init__(self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    """400: the request was malformed (content, metadata, ids, pagination, JSON)."""


class Unauthorized(ApiError):
    """401: no or a wrong API key / token."""


class TokenExpired(Unauthorized):
    """401: the bearer token has expired; get a new one."""


class Forbidden(ApiError):
    """403."""


class InsufficientScope(Forbidden):
    """403: the token's scopes do not allow this call."""


class NotFound(ApiError):
    """404."""


class SessionNotFound(NotFound):
    pass


class AgentNotFound(NotFound):
    pass


class Conflict(ApiError):
    """409."""


class SessionPaused(Conflict):
    pass


class SessionNotPaused(Conflict):
    pass


class MaxDurationExceeded(Conflict):
    pass


class AgentNameTaken(Conflict):
    pass


class AgentInUse(Conflict):
    """The agent still has sessions: deleting it needs `force`."""


class SessionBusy(Conflict):
    """A `reject` session refuses a message while the previous one is unanswered."""


class MessageSuperseded(Conflict):
    """An `interrupt` session answered a newer message instead of this one."""


class SessionClosed(ApiError):
    """410: the session no longer takes messages."""


class SessionExpired(SessionClosed):
    pass


class SessionEnded(SessionClosed):
    pass


class IdempotencyKeyReused(ApiError):
    """422: the same Idempotency-Key was sent with another body."""


class RateLimited(ApiError):
    """429: slow down; `retry_after` says for how many seconds."""


class AgentFailed(ApiError):
    """The agent could not answer this message (502 on a blocking send, an `error` event on a stream)."""


class ReplyTimeout(ApiError):
    """A stream ended before the reply came (`REPLY_TIMEOUT`); the reply still arrives on `events()`."""


class ServiceUnavailable(ApiError):
    """503: a backing service is down; retry after `retry_after` seconds."""


class TokenMintingUnavailable(ApiError):
    """501: the server has no signing key to mint user tokens with."""


class ReplyPending(ApiError):
    """A stream was answered 202: the reply is not ready yet; it will appear in the history and `/events`."""

    def __init__(self, accepted: Any) -> None:
        super().__init__(202, "REPLY_PENDING", "the reply is not ready yet")
        self.accepted = accepted


def _by_name() -> dict[str, type[ApiError]]:
    """ApiError and every class below it, by name (the table names them)."""
    found, pending = {ApiError.__name__: ApiError}, [ApiError]
    while pending:
        for kind in pending.pop().__subclasses__():
            found[kind.__name__] = kind
            pending.append(kind)
    return found


_EXCEPTIONS = _by_name()
BY_CODE: dict[str, type[ApiError]] = {code: _EXCEPTIONS[entry.exception] for code, entry in ERROR_CODES.items()}
# For codes newer than this table: the status decides.
BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: SessionClosed,
    422: IdempotencyKeyReused, 429: RateLimited, 502: AgentFailed, 503: ServiceUnavailable,
}


def error_for(status_code: int, body: Any, retry_after: float | None = None) -> ApiError:
    """The typed error for a status and an error body (any shape: unknown bodies still give a useful error)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, details = str(error.get("code", "")), str(error.get("message", "")), error.get("details")
    else:
        code, message, details = "", str(body.get("message", "") if isinstance(body, dict) else body), None
    kind = BY_CODE.get(code) or BY_STATUS.get(status_code) or ApiError
    return kind(status_code, code, message or f"HTTP {status_code}", details if isinstance(details, dict) else None,
                retry_after)


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    retry_after = response.headers.get("Retry-After")
    raise error_for(response.status_code, body, float(retry_after) if retry_after and retry_after.isdigit() else None)
