"""Python client of the Agent Sessions API (sync and asyncio), on httpx.

    from core.client import SessionsClient

    with SessionsClient("http://localhost:3000", api_key="...") as client:
        agent = client.list_agents()[0]
        session = client.create_session(agent.id, "user-42")
        reply = client.send(session.session_id, "Hello")
        for event in client.stream(session.session_id, "Tell me more"):
            ...
"""

from core.client.errors import (
    AgentFailed,
    AgentNameTaken,
    AgentNotFound,
    ApiError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    MaxDurationExceeded,
    NotFound,
    RateLimited,
    ReplyPending,
    ReplyTimeout,
    ServiceUnavailable,
    SessionClosed,
    SessionEnded,
    SessionExpired,
    SessionNotFound,
    SessionNotPaused,
    SessionPaused,
    Unauthorized,
)
from core.client.events import (
    Done,
    ErrorEvent,
    Event,
    MessageChunk,
    MessageCompleted,
    MessageCreated,
    MessageFailed,
    StateUpdated,
)
from core.client.sessions import AsyncSessionsClient, SessionsClient

__all__ = [
    "AgentFailed", "AgentNameTaken", "AgentNotFound", "ApiError", "AsyncSessionsClient", "Conflict", "Done",
    "ErrorEvent", "Event", "Forbidden", "IdempotencyKeyReused", "InvalidRequest", "MaxDurationExceeded",
    "MessageChunk", "MessageCompleted", "MessageCreated", "MessageFailed", "NotFound", "RateLimited",
    "ReplyPending", "ReplyTimeout", "ServiceUnavailable", "SessionClosed", "SessionEnded", "SessionExpired", "SessionNotFound",
    "SessionNotPaused", "SessionPaused", "SessionsClient", "StateUpdated", "Unauthorized",
]
