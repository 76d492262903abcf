"""Every error code the server sends: its HTTP status, and the client's exception for it.

The one table both sides read. It is plain data so that the client carries it without depending on the
server: the server's error registry (api/errors.py) answers a domain error with the status given here,
and the client raises the exception named here (a class of `agent_sessions_client.errors`). A new code is
added here first; a test of the server fails on any code it can send that this table does not know.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorCode(NamedTuple):
    status: int | None  # None: only ever inside an event (a failed message, a stream's `error`), never a response
    exception: str


ERROR_CODES: dict[str, ErrorCode] = {
    # The request was malformed.
    "INVALID_REQUEST": ErrorCode(400, "InvalidRequest"),
    "INVALID_JSON": ErrorCode(400, "InvalidRequest"),
    "INVALID_CONTENT": ErrorCode(400, "InvalidRequest"),
    "METADATA_TOO_LARGE": ErrorCode(400, "InvalidRequest"),
    "INVALID_PAGINATION": ErrorCode(400, "InvalidRequest"),
    "INVALID_TIMEOUT_CONFIG": ErrorCode(400, "InvalidRequest"),
    "INVALID_EVENT_ID": ErrorCode(400, "InvalidRequest"),
    "MODEL_ACCESS_DENIED": ErrorCode(400, "InvalidRequest"),
    # Credentials.
    "UNAUTHORIZED": ErrorCode(401, "Unauthorized"),
    "TOKEN_EXPIRED": ErrorCode(401, "TokenExpired"),
    "FORBIDDEN": ErrorCode(403, "Forbidden"),
    "INSUFFICIENT_SCOPE": ErrorCode(403, "InsufficientScope"),
    "TOKEN_MINTING_UNAVAILABLE": ErrorCode(501, "TokenMintingUnavailable"),
    # Not found.
    "NOT_FOUND": ErrorCode(404, "NotFound"),
    "SESSION_NOT_FOUND": ErrorCode(404, "SessionNotFound"),
    "AGENT_NOT_FOUND": ErrorCode(404, "AgentNotFound"),
    # The resource's state forbids the request.
    "CONFLICT": ErrorCode(409, "Conflict"),
    "SESSION_PAUSED": ErrorCode(409, "SessionPaused"),
    "SESSION_NOT_PAUSED": ErrorCode(409, "SessionNotPaused"),
    "SESSION_BUSY": ErrorCode(409, "SessionBusy"),
    "MAX_DURATION_EXCEEDED": ErrorCode(409, "MaxDurationExceeded"),
    "AGENT_NAME_TAKEN": ErrorCode(409, "AgentNameTaken"),
    "AGENT_IN_USE": ErrorCode(409, "AgentInUse"),
    "MESSAGE_SUPERSEDED": ErrorCode(409, "MessageSuperseded"),
    "SESSION_EXPIRED": ErrorCode(410, "SessionExpired"),
    "SESSION_ENDED": ErrorCode(410, "SessionEnded"),
    "IDEMPOTENCY_KEY_REUSED": ErrorCode(422, "IdempotencyKeyReused"),
    # HTTP itself.
    "METHOD_NOT_ALLOWED": ErrorCode(405, "ApiError"),
    "REQUEST_TOO_LARGE": ErrorCode(413, "ApiError"),
    "UNSUPPORTED_MEDIA_TYPE": ErrorCode(415, "ApiError"),
    "URI_TOO_LONG": ErrorCode(414, "ApiError"),
    "HEADERS_TOO_LARGE": ErrorCode(431, "ApiError"),
    "TOO_MANY_HEADERS": ErrorCode(431, "ApiError"),
    # Slow down, or try again later.
    "RATE_LIMIT_EXCEEDED": ErrorCode(429, "RateLimited"),
    "TOO_MANY_STREAMS": ErrorCode(429, "RateLimited"),
    "SERVICE_UNAVAILABLE": ErrorCode(503, "ServiceUnavailable"),
    "STREAM_CAPACITY_REACHED": ErrorCode(503, "ServiceUnavailable"),
    "INTERNAL_ERROR": ErrorCode(500, "ApiError"),
    # Why a message got no reply: a blocking send answers 502 AGENT_FAILED (409 MESSAGE_SUPERSEDED for
    # SUPERSEDED); message.failed events and a stream's `error` event carry the precise code.
    "AGENT_FAILED": ErrorCode(502, "AgentFailed"),
    "AGENT_MISCONFIGURED": ErrorCode(None, "AgentFailed"),
    "AGENT_CONTEXT_TOO_LONG": ErrorCode(None, "AgentFailed"),
    "AGENT_CIRCUIT_OPEN": ErrorCode(None, "AgentFailed"),
    # What a model server did, in words a user may see (the detail is in the worker's log).
    "MODEL_TIMEOUT": ErrorCode(None, "AgentFailed"),
    "MODEL_UNREACHABLE": ErrorCode(None, "AgentFailed"),
    "MODEL_AUTH_FAILED": ErrorCode(None, "AgentFailed"),
    "MODEL_RATE_LIMITED": ErrorCode(None, "AgentFailed"),
    "MODEL_REQUEST_REJECTED": ErrorCode(None, "AgentFailed"),
    "MODEL_SERVER_ERROR": ErrorCode(None, "AgentFailed"),
    "MODEL_STREAM_ERROR": ErrorCode(None, "AgentFailed"),
    "MODEL_CALL_FAILED": ErrorCode(None, "AgentFailed"),
    "SESSION_CLOSED": ErrorCode(None, "AgentFailed"),
    "DELIVERY_FAILED": ErrorCode(None, "AgentFailed"),
    "SUPERSEDED": ErrorCode(None, "MessageSuperseded"),
    # A stream ended before the reply came; the reply still arrives on the session's events.
    "REPLY_TIMEOUT": ErrorCode(None, "ReplyTimeout"),
    # socket.io only: an event the server does not take; an expired token ends a stream or a connection
    # (TOKEN_EXPIRED, above).
    "UNSUPPORTED_MESSAGE_TYPE": ErrorCode(None, "ApiError"),
}
