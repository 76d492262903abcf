"""Wire shapes (camelCase JSON), separate from the tables in `core/models.py`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_serializer
from pydantic.alias_generators import to_camel

from core.analysis.conversation import Stage
from core.analysis.engagement import Level
from core.analysis.intent import Intent
from core.analysis.sentiment import Label
from core.clock import isoformat
from core.models import DEFAULT_AGENT_ID
from core.sessions.status import MessageStatus, Role, SessionStatusName

USER_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
# StringConstraints (not Field(pattern=)) so the pattern also reaches the OpenAPI document.
UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]

Provider = Literal["eliza", "echo", "openai"]
# The wire's status and role values: the enums' members (core/sessions/status.py), each value spelled once.
SessionStatusValue = Literal[SessionStatusName.ACTIVE, SessionStatusName.PAUSED, SessionStatusName.ENDED,
                             SessionStatusName.EXPIRED]
MessageStatusValue = Literal[MessageStatus.PENDING, MessageStatus.PROCESSING, MessageStatus.COMPLETED,
                             MessageStatus.FAILED]
RoleValue = Literal[Role.USER, Role.AGENT, Role.SYSTEM]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]
Transport = Literal["http", "sse", "websocket"]
# ElizaOS's legacy `mode` names (`websocket`) and ours (`async`): sync = http, stream = sse, async = websocket.
Mode = Literal["sync", "stream", "websocket", "async"]
Scope = Literal["sessions:read", "sessions:write"]


def _storable_text(value: str) -> str:
    """Text the databases can store: UTF-8 encodable (no lone surrogates) and without NUL (Postgres refuses it)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


_LARGEST_NUMBER = 2**63  # Postgres JSONB returns a large float as an exact integer: keep numbers in int64 range


def _storable_json(value: Any) -> Any:
    """JSON the databases store and give back intact: valid Unicode, no NUL in strings, numbers within
    ±2^63 (JSONB would hand a float like 1e300 back as a 301-digit integer that cannot be re-encoded)."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:  # integers beyond 64 bits, lone surrogates
        raise ValueError(f"cannot be stored: {exc}") from None
    if b"\\u0000" in encoded:
        raise ValueError("must not contain NUL characters")
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, int | float) and not -_LARGEST_NUMBER < item < _LARGEST_NUMBER:
            raise ValueError(f"numbers must be between -2^63 and 2^63, not {item:g}")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
JsonList = Annotated[list[Any], AfterValidator(_storable_json)]


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


class AgentSummary(Schema):
    """An agent as a list shows it: the fields ElizaOS's `Agent` type declares (`bio`, `status`, and epoch
    millisecond timestamps, as ElizaOS stores agents), plus our provider. Agent pickers read these."""

    id: uuid.UUID
    name: str
    provider: str
    bio: str | list[str]  # the character's `settings.bio`, else its description
    status: Literal["active", "inactive"] = "active"  # every agent here answers: there is no start/stop
    enabled: bool = True
    created_at: int  # epoch milliseconds
    updated_at: int  # epoch milliseconds


class AgentPublic(AgentSummary):
    """One agent with its whole character document (`settings`, as `POST /api/agents` takes it)."""

    settings: dict[str, Any]


class AgentList(Schema):
    agents: list[AgentSummary]


class Deleted(Schema):
    success: bool = True


class AgentDeleted(Deleted):
    agent_id: uuid.UUID
    deleted_sessions: int  # sessions purged with the agent (only with ?force=true)
    data: Deleted  # ElizaOS's client returns `data` from any body that has `success`


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
    # The seeded default agent as the example: fuzzers then get past "agent not found".
    agent_id: uuid.UUID = Field(examples=[str(DEFAULT_AGENT_ID)])
    user_id: UserId
    metadata: JsonObject | None = None
    timeout_config: TimeoutConfigUpdate | None = None
    double_texting: DoubleTexting = "enqueue"


class SentimentValue(Schema):
    label: Label
    score: float  # -1..1


class EngagementValue(Schema):
    level: Level
    score: float  # 0..1


class TopicCount(Schema):
    topic: str
    count: int  # user messages that mentioned it


class ConversationState(Schema):
    """The conversation after the last exchange (docs/api.md, "Conversation state")."""

    stage: Stage
    intent: Intent | None  # of the last user message
    topics: list[TopicCount]
    sentiment: SentimentValue  # running (decayed) over the conversation
    engagement: EngagementValue
    agent_confidence: float | None
    preferences: dict[str, Any]  # name, addressAs, likes, dislikes, timezone, language: those known
    turns: int  # answered exchanges
    updated_at: str | None  # ISO 8601: when the last user message was sent


class SessionPublic(Schema):
    session_id: uuid.UUID
    channel_id: uuid.UUID  # the same id, under the name ElizaOS socket clients use
    agent_id: uuid.UUID
    user_id: str
    status: SessionStatusValue
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
    double_texting: DoubleTexting = "enqueue"


class SessionStats(Schema):
    total: int
    by_status: dict[str, int]


class SessionCreated(SessionPublic):
    debug: dict[str, Any] | None = None  # with X-Debug: true, where allowed (see Principal.may_debug)


class EndedSession(Deleted):
    session_id: uuid.UUID
    status: str  # ended, expired, or purged
    purged: bool


class EndedSessionPublic(EndedSession):
    data: EndedSession  # what ElizaOS's client returns from deleteSession


class SessionPage(Schema):
    sessions: list[SessionPublic]
    total: int  # sessions matching the filters, on every page (ElizaOS's listSessions reads it)
    has_more: bool
    next_cursor: str | None
    stats: SessionStats


class SessionWarning(Schema):
    """Something the client should know although the request succeeded."""

    code: str  # MAX_DURATION_EXCEEDED: auto-renewal can no longer extend the session
    message: str


class SessionStatus(Schema):
    status: SessionStatusValue
    expires_at: datetime
    time_remaining: int
    renewal_count: int
    was_renewed: bool
    # True when this message asked for an auto-renewal the maximum duration cut short or refused; the message
    # itself was accepted and answered.
    renewal_blocked: bool = False
    warning: SessionWarning | None = None
    is_near_expiration: bool
    state: ConversationState


class MessageCreate(Schema):
    content: Text
    metadata: JsonObject | None = None
    attachments: JsonList | None = None
    transport: Transport | None = None
    mode: Mode | None = None  # ElizaOS alias of transport: sync = http, stream = sse, async = websocket


class MessagePublic(Schema):
    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: RoleValue
    is_agent: bool
    author_id: str
    content: str
    status: MessageStatusValue
    reply_to: uuid.UUID | None = None
    created_at: datetime
    # The client's metadata, and the agent's flat notes (thought, actions, confidence, ...): flat values only,
    # as ElizaOS's `SessionMessageMetadata` declares; what is nested has a field of its own below.
    metadata: dict[str, Any]
    attachments: list[Any] | None = None  # as sent
    analysis: dict[str, Any] | None = None  # the exchange's conversation analysis (README, "Conversation state")
    error: str | None = None


class AgentResponse(Schema):
    """ElizaOS's `agentResponse`: the reply's text and the agent's notes."""

    text: str
    thought: str = ""
    actions: list[str] = Field(default_factory=list)


class SendResult(Schema):
    """What ElizaOS's client returns from `sendMessage` (its `MessageResponse`): the `data` of a send's answer."""

    success: bool = True
    user_message: MessagePublic
    session_status: SessionStatus


class ReplyResult(SendResult):
    agent_response: AgentResponse


class ReplyPublic(MessagePublic):
    """The agent's reply to a blocking send, at the top level as the guide reads it (`content`,
    `metadata.thought`), with the stored user message, the session's status and, for ElizaOS clients,
    `success`, `agentResponse` and `data` (their client returns `data` from any body that has `success`)."""

    success: bool = True
    user_message: MessagePublic
    agent_response: AgentResponse
    session_status: SessionStatus
    data: ReplyResult
    debug: dict[str, Any] | None = None


class AcceptedPublic(Schema):
    """A send answered before the reply exists (websocket transport, or the wait limit passed)."""

    status: Literal["accepted"] = "accepted"
    success: bool = True
    user_message: MessagePublic
    session_status: SessionStatus
    data: SendResult
    events_url: str
    messages_url: str
    debug: dict[str, Any] | None = None


class Cursors(Schema):
    """Where the page starts and ends, for `before`/`after`: epoch milliseconds with a fraction telling apart
    the messages of one millisecond (`seq:N` in the rare case a number cannot; see core/positions.py)."""

    before: float | str | None
    after: float | str | None


class MessagePage(Schema):
    messages: list[MessagePublic]
    has_more: bool
    cursors: Cursors


class StateHistoryEntry(Schema):
    """The conversation state after one exchange, as stored on its user message (`metadata.analysis`)."""

    message_id: uuid.UUID  # the user message of the exchange
    seq: int
    created_at: datetime
    stage: Stage
    intent: Intent | None = None
    topics: list[str] = Field(default_factory=list)  # keywords of this message (the session holds the counts)
    sentiment: SentimentValue  # of this message
    running_sentiment: SentimentValue | None = None  # of the conversation so far (decayed)
    engagement: EngagementValue
    agent_confidence: float | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)  # everything learned so far


class StateHistoryPage(Schema):
    entries: list[StateHistoryEntry]  # newest first, like the message history
    has_more: bool
    cursors: Cursors


class ConversationStats(Schema):
    """Sessions counted by their current conversation state; a session with no answered exchange yet
    counts as its initial state (greeting, neutral, medium), as GET /sessions/{id} shows it."""

    total: int
    with_exchanges: int
    by_stage: dict[str, int]
    by_sentiment: dict[str, int]
    by_engagement: dict[str, int]
    average_agent_confidence: float | None  # over sessions with at least one exchange
    average_sentiment_score: float | None  # the running score, over sessions with at least one exchange
    average_turns: float | None  # answered exchanges per session with at least one


class ComponentHealth(Schema):
    status: Literal["up", "down"]
    latency_ms: float | None = None
    error: str | None = None


class Health(Schema):
    status: HealthStatus
    active_sessions: int
    expiring_soon: int
    timestamp: datetime
    uptime: float  # seconds
    version: str
    components: dict[str, ComponentHealth]


class ServerCheck(Schema):
    status: Literal["pass", "fail"]
    message: str  # e.g. "up in 1.2 ms", "down: ConnectionError"


class ServerHealth(Schema):
    """`GET /api/server/health`, as ElizaOS's client declares it (`ServerHealth`), plus the ElizaOS server's
    `dependencies.agents` and `agentCount`. The same checks as the sessions health route."""

    status: HealthStatus
    uptime: float  # seconds
    timestamp: datetime
    version: str
    checks: dict[str, ServerCheck]
    dependencies: dict[str, Literal["healthy", "no_agents"]]
    agent_count: int


class ServerPing(Schema):
    pong: bool = True
    timestamp: int  # epoch milliseconds


class ServerSentEvent(Schema):
    """One event of a `text/event-stream` answer: `data` is the JSON event envelope (see docs/api.md,
    "Server-sent events")."""

    id: str | None = None  # durable events only: what Last-Event-ID resumes from
    event: str
    data: str


class TokenCreate(Schema):
    user_id: UserId
    scopes: list[Scope] | None = None  # default: both
    ttl_seconds: int | None = Field(default=None, ge=1)  # default TOKEN_TTL_SECONDS, at most TOKEN_TTL_MAX_SECONDS


class TokenPublic(Schema):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    user_id: str
    scopes: list[Scope]
    expires_at: datetime
    expires_in: int  # seconds


class ErrorBody(Schema):
    code: str
    message: str
    timestamp: str
    details: dict[str, Any] | None = None


class ErrorResponse(Schema):
    error: ErrorBody
    message: str
