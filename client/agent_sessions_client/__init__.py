"""Python client of the Agent Sessions API (sync and asyncio), on httpx.

    from agent_sessions_client import SessionsClient

    with SessionsClient("http://localhost:3000", api_key="...") as client:
        agent = client.list_agents()[0]
        session = client.create_session(agent.id, "user-42")
        reply = client.send(session.session_id, "Hello")
        for event in client.stream(session.session_id, "Tell me more"):
            ...
"""

from agent_sessions_client.errors import (
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
from agent_sessions_client.events import (
    Done,
    ErrorEvent,
    Event,
    MessageChunk,
    MessageCompleted,
    MessageCreated,
    MessageFailed,
    StateUpdated,
)
from agent_sessions_client.schemas import (
    AcceptedPublic,
    AgentPublic,
    ConversationState,
    Health,
    MessagePage,
    MessagePublic,
    ReplyPublic,
    SessionPage,
    SessionPublic,
    SessionStatus,
)
from agent_sessions_client.sessions import AsyncSessionsClient, SessionsClient

__all__ = [
    "AcceptedPublic", "AgentFailed", "AgentNameTaken", "AgentNotFound", "AgentPublic", "ApiError",
    "AsyncSessionsClient", "Conflict", "ConversationState", "Done", "ErrorEvent", "Event", "Forbidden", "Health",
    "IdempotencyKeyReused", "InvalidRequest", "MaxDurationExceeded", "MessageChunk",
    "MessageCompleted", "MessageCreated", "MessageFailed", "MessagePage", "MessagePublic",
    "NotFound", "RateLimited", "ReplyPending", "ReplyPublic", "ReplyTimeout", "ServiceUnavailable",
    "SessionClosed", "SessionEnded", "SessionExpired", "SessionNotFound", "SessionNotPaused", "SessionPage",
    "SessionPaused", "SessionPublic", "SessionStatus", "SessionsClient", "StateUpdated",
    "Unauthorized",
]
