"""What the API answers, as plain dataclasses read from its camelCase JSON.

The client's own light copies of the server's public schemas (same names, same fields in snake_case), so
that it installs without the server's dependencies. Unknown fields are ignored: a newer server still reads.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def _fields(kind: type) -> tuple[tuple[str, str, Any], ...]:
    """(attribute, JSON key, type) of each field, resolved once per class."""
    hints = typing.get_type_hints(kind)
    return tuple((f.name, _camel(f.name), hints[f.name]) for f in dataclasses.fields(kind))


def _read(kind: Any, value: Any) -> Any:
    """`value` from JSON as `kind`: nested schemas, lists of them, uuids, datetimes, optionals."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        # A union of plain types (a cursor: number or "seq:N") keeps the one the JSON value has.
        plain = next((arg for arg in options if arg in (str, int, float, bool) and isinstance(value, arg)), None)
        return _read(plain or options[0], value)
    if origin is list:
        return [_read(typing.get_args(kind)[0], item) for item in value]
    if origin is dict:
        return {key: _read(typing.get_args(kind)[1], item) for key, item in value.items()}
    if isinstance(kind, type):
        if issubclass(kind, Schema):
            return kind.from_json(value)
        if kind is uuid.UUID:
            return uuid.UUID(str(value))
        if kind is datetime:
            return datetime.fromisoformat(value)
        if kind is float:
            return float(value)
    return value


class Schema:
    """Base of the client's schemas: `from_json` reads the API's camelCase JSON."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        schema: type = cls  # (mypy takes a `type[Self]` for unhashable)
        values = {name: _read(kind, data[key]) for name, key, kind in _fields(schema) if key in data}
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class AgentSummary(Schema):
    id: uuid.UUID
    name: str
    provider: str
    bio: str | list[str]
    status: str = "active"
    enabled: bool = True
    created_at: int  # epoch milliseconds, as ElizaOS's Agent type has them
    updated_at: int


@dataclass(frozen=True, kw_only=True)
class AgentPublic(AgentSummary):
    settings: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class TimeoutConfig(Schema):
    timeout_minutes: int
    auto_renew: bool
    max_duration_minutes: int
    warning_threshold_minutes: int


@dataclass(frozen=True, kw_only=True)
class SentimentValue(Schema):
    label: str  # positive, neutral or negative
    score: float  # -1..1


@dataclass(frozen=True, kw_only=True)
class EngagementValue(Schema):
    level: str  # low, medium or high
    score: float  # 0..1


@dataclass(frozen=True, kw_only=True)
class TopicCount(Schema):
    topic: str
    count: int


@dataclass(frozen=True, kw_only=True)
class ConversationState(Schema):
    stage: str
    intent: str | None
    topics: list[TopicCount]
    sentiment: SentimentValue
    engagement: EngagementValue
    agent_confidence: float | None
    preferences: dict[str, Any]
    turns: int
    updated_at: str | None


@dataclass(frozen=True, kw_only=True)
class SessionPublic(Schema):
    session_id: uuid.UUID
    channel_id: uuid.UUID
    agent_id: uuid.UUID
    user_id: str
    status: str  # active, paused, ended or expired
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
    state: ConversationState
    double_texting: str = "enqueue"


@dataclass(frozen=True, kw_only=True)
class SessionStats(Schema):
    total: int
    by_status: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class SessionPage(Schema):
    sessions: list[SessionPublic]
    total: int  # sessions matching the filters, on every page
    has_more: bool
    next_cursor: str | None
    stats: SessionStats


@dataclass(frozen=True, kw_only=True)
class SessionWarning(Schema):
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class SessionStatus(Schema):
    status: str
    expires_at: datetime
    time_remaining: int
    renewal_count: int
    was_renewed: bool
    renewal_blocked: bool = False
    warning: SessionWarning | None = None
    is_near_expiration: bool
    state: ConversationState


@dataclass(frozen=True, kw_only=True)
class MessagePublic(Schema):
    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: str  # user, agent or system
    is_agent: bool
    author_id: str
    content: str
    status: str  # pending, processing, completed or failed
    reply_to: uuid.UUID | None = None
    created_at: datetime
    metadata: dict[str, Any]  # flat values: the client's metadata and the agent's notes (thought, actions, ...)
    attachments: list[Any] | None = None
    analysis: dict[str, Any] | None = None  # the exchange's conversation analysis
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentResponse(Schema):
    text: str
    thought: str = ""
    actions: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ReplyPublic(MessagePublic):
    """The agent's reply to a blocking send, with the stored user message and the session's status (and, for
    ElizaOS clients, `success`, `agentResponse` and `data`)."""

    success: bool = True
    user_message: MessagePublic
    agent_response: AgentResponse
    session_status: SessionStatus
    data: dict[str, Any]  # what ElizaOS's client returns: success, userMessage, agentResponse, sessionStatus
    debug: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptedPublic(Schema):
    """A send answered before the reply exists (the server's wait limit passed)."""

    status: str = "accepted"
    success: bool = True
    user_message: MessagePublic
    session_status: SessionStatus
    data: dict[str, Any]  # what ElizaOS's client returns: success, userMessage, sessionStatus
    events_url: str
    messages_url: str
    debug: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Cursors(Schema):
    """Numbers (epoch ms, a fraction telling apart one millisecond's messages), or seq:N where a number cannot."""

    before: float | str | None
    after: float | str | None


@dataclass(frozen=True, kw_only=True)
class MessagePage(Schema):
    messages: list[MessagePublic]
    has_more: bool
    cursors: Cursors


@dataclass(frozen=True, kw_only=True)
class ComponentHealth(Schema):
    status: str  # up or down
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Health(Schema):
    status: str  # healthy, degraded or unhealthy
    active_sessions: int
    expiring_soon: int
    timestamp: datetime
    uptime: float  # seconds
    version: str
    components: dict[str, ComponentHealth]
