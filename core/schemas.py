"""Wire shapes (camelCase JSON), separate from the tables in `core/models.py`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from core.clock import isoformat

USER_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"

Provider = Literal["eliza", "echo", "openai"]
SessionStatusName = Literal["active", "paused", "ended", "expired"]
Transport = Literal["http", "sse", "websocket"]
Mode = Literal["sync", "stream", "async"]
# A message sent while the session's previous one is still unanswered ("double texting"):
# enqueue: answered in turn; reject: 409 SESSION_BUSY; interrupt: the pending generation is abandoned
# (its message fails with SUPERSEDED) and the newest is answered; coalesce: the waiting messages are
# answered as one turn.
DoubleTexting = Literal["enqueue", "reject", "interrupt", "coalesce"]


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @field_serializer("*", when_used="json")
    def _iso_datetimes(self, value: Any) -> Any:
        return isoformat(value) if isinstance(value, datetime) else value


class AgentCreate(Schema):
    name: str = Field(min_length=1, max_length=100)
    provider: Provider = "eliza"
    settings: dict[str, Any] = Field(default_factory=dict)


class AgentPublic(Schema):
    id: uuid.UUID
    name: str
    provider: str
    settings: dict[str, Any]
    created_at: datetime


class AgentList(Schema):
    agents: list[AgentPublic]


class TimeoutConfigUpdate(Schema):
    """Every field optional: what is given is merged over the current (or default) config."""

    timeout_minutes: int | None = Field(default=None, ge=5, le=1440)
    auto_renew: bool | None = None
    max_duration_minutes: int | None = Field(default=None, ge=5, le=10080)
    warning_threshold_minutes: int | None = Field(default=None, ge=1, le=120)


class TimeoutConfig(Schema):
    timeout_minutes: int
    auto_renew: bool
    max_duration_minutes: int
    warning_threshold_minutes: int


class SessionCreate(Schema):
    agent_id: uuid.UUID
    user_id: str = Field(pattern=USER_ID_PATTERN)
    metadata: dict[str, Any] | None = None
    timeout_config: TimeoutConfigUpdate | None = None
    double_texting: DoubleTexting = "enqueue"


class SessionPublic(Schema):
    session_id: uuid.UUID
    channel_id: uuid.UUID  # the same id, under the name ElizaOS socket clients use
    agent_id: uuid.UUID
    user_id: str
    status: SessionStatusName
    metadata: dict[str, Any]
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    timeout_config: TimeoutConfig
    renewal_count: int
    time_remaining: int  # milliseconds
    is_near_expiration: bool
    message_count: int
    state: dict[str, Any]
    double_texting: DoubleTexting = "enqueue"


class SessionStats(Schema):
    total: int
    by_status: dict[str, int]


class SessionPage(Schema):
    sessions: list[SessionPublic]
    has_more: bool
    next_cursor: str | None
    stats: SessionStats


class SessionStatus(Schema):
    status: SessionStatusName
    expires_at: datetime
    time_remaining: int
    renewal_count: int
    was_renewed: bool
    is_near_expiration: bool
    state: dict[str, Any]


class MessageCreate(Schema):
    content: str
    metadata: dict[str, Any] | None = None
    attachments: list[Any] | None = None
    transport: Transport | None = None
    mode: Mode | None = None  # ElizaOS alias of transport: sync = http, stream = sse, async = websocket


class MessagePublic(Schema):
    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: Literal["user", "agent", "system"]
    is_agent: bool
    author_id: str
    content: str
    status: Literal["pending", "processing", "completed", "failed"]
    reply_to: uuid.UUID | None = None
    created_at: datetime
    metadata: dict[str, Any]
    error: str | None = None


class ReplyPublic(MessagePublic):
    """The agent's reply to a blocking send, with the stored user message and the session's status."""

    user_message: MessagePublic
    session_status: SessionStatus
    debug: dict[str, Any] | None = None


class AcceptedPublic(Schema):
    """A send answered before the reply exists (async transport, or the wait limit passed)."""

    status: Literal["accepted"] = "accepted"
    user_message: MessagePublic
    session_status: SessionStatus
    events_url: str
    messages_url: str
    debug: dict[str, Any] | None = None


class Cursors(Schema):
    before: str | None
    after: str | None


class MessagePage(Schema):
    messages: list[MessagePublic]
    has_more: bool
    cursors: Cursors


class ComponentHealth(Schema):
    status: Literal["up", "down"]
    latency_ms: float | None = None
    error: str | None = None


class Health(Schema):
    status: Literal["healthy", "degraded", "unhealthy"]
    active_sessions: int
    expiring_soon: int
    timestamp: datetime
    uptime: float  # seconds
    version: str
    components: dict[str, ComponentHealth]


class ErrorBody(Schema):
    code: str
    message: str
    timestamp: str
    details: dict[str, Any] | None = None


class ErrorResponse(Schema):
    error: ErrorBody
    message: str
