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
    AgentInUse,
    AgentNameTaken,
    AgentNotFound,
    ApiError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InsufficientScope,
    InvalidRequest,
    MaxDurationExceeded,
    MessageSuperseded,
    NotFound,
    RateLimited,
    ReplyPending,
    ReplyTimeout,
    ServiceUnavailable,
    SessionBusy,
    SessionClosed,
    SessionEnded,
    SessionExpired,
    SessionNotFound,
    SessionNotPaused,
    SessionPaused,
    TokenExpired,
    TokenMintingUnavailable,
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
    AgentSummary,
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
    "AcceptedPublic", "AgentFailed", "AgentInUse", "AgentNameTaken", "AgentNotFound", "AgentPublic", "AgentSummary",
    "ApiError", "AsyncSessionsClient", "Conflict", "ConversationState", "Done", "ErrorEvent", "Event", "Forbidden",
    "Health",
    "IdempotencyKeyReused", "InsufficientScope", "InvalidRequest", "MaxDurationExceeded", "MessageChunk",
    "MessageCompleted", "MessageCreated", "MessageFailed", "MessagePage", "MessagePublic", "MessageSuperseded",
    "NotFound", "RateLimited", "ReplyPending", "ReplyPublic", "ReplyTimeout", "ServiceUnavailable", "SessionBusy",
    "SessionClosed", "SessionEnded", "SessionExpired", "SessionNotFound", "SessionNotPaused", "SessionPage",
    "SessionPaused", "SessionPublic", "SessionStatus", "SessionsClient", "StateUpdated", "TokenExpired",
    "TokenMintingUnavailable", "Unauthorized",
]
