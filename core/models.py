"""Tables (SQLModel). Never returned by the API: `core/schemas.py` holds the wire shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, UniqueConstraint, and_, literal_column
from sqlmodel import Field, SQLModel

from core.db import JSONColumn, UTCDateTime
from core.sessions.status import UNANSWERED_STATUSES, Role, SessionStatusName

# The agent seeded on first start, so a client can chat without creating one.
DEFAULT_AGENT_ID = uuid.UUID("e1a2a000-0000-4000-8000-000000000001")
DEFAULT_AGENT_NAME = "Eliza"


def _json(**kwargs: Any) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSONColumn, nullable=False, **kwargs))


def _moment(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _created_at(context: Any) -> datetime:
    created_at: datetime = context.get_current_parameters()["created_at"]
    return created_at


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    provider: str = Field(max_length=32)  # eliza | echo | openai
    settings: dict[str, Any] = _json()
    created_at: datetime = _moment()
    # Last changed by the API or a character file (migration 0006); an insert that names no time gets created_at.
    updated_at: datetime = Field(default=None, sa_column=Column(UTCDateTime(), nullable=False, default=_created_at))


class Session(SQLModel, table=True):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_status_expires_at", "status", "expires_at"),
        Index("ix_sessions_status_warn_at", "status", "warn_at"),
        Index("ix_sessions_user_id_created_at", "user_id", "created_at"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_sessions_user_idempotency_key"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agent_id: uuid.UUID = Field(foreign_key="agents.id", index=True)
    user_id: str = Field(max_length=128)
    status: str = Field(default=SessionStatusName.ACTIVE.value, max_length=16)  # a SessionStatusName
    meta: dict[str, Any] = _json(name="metadata")
    timeout_minutes: int
    auto_renew: bool
    max_duration_minutes: int
    warning_threshold_minutes: int
    created_at: datetime = _moment()
    last_activity_at: datetime = _moment()
    expires_at: datetime = _moment()
    renewal_count: int = 0
    paused_at: datetime | None = _moment(nullable=True)
    # When the beat warns of the current expiry; cleared once warned, set again with every new expiry.
    warn_at: datetime | None = _moment(nullable=True)
    warned_at: datetime | None = _moment(nullable=True)  # expiry warning sent for the current window
    ended_at: datetime | None = _moment(nullable=True)
    end_reason: str | None = Field(default=None, max_length=64)
    message_count: int = 0
    state: dict[str, Any] = _json()  # conversation state (stage, sentiment, ...)
    agent_state: dict[str, Any] = _json()  # the agent's private memory between turns
    next_seq: int = 0  # last message seq used (messages are numbered 1, 2, ...)
    event_seq: int = 0  # last durable event seq used
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    request_hash: str | None = Field(default=None, max_length=64)
    # What a message sent while a reply is pending does: enqueue | reject | interrupt | coalesce.
    double_texting: str = Field(default="enqueue", sa_column=Column(String(16), nullable=False,
                                                                    server_default="enqueue"))


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "seq", name="uq_messages_session_seq"),
        UniqueConstraint("session_id", "idempotency_key", name="uq_messages_session_idempotency_key"),
        Index("ix_messages_status_created_at", "status", "created_at"),
        # A history cursor names a message by its millisecond (migration 0005).
        Index("ix_messages_session_id_created_at", "session_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    seq: int
    role: str = Field(max_length=16)  # a Role
    author_id: str = Field(max_length=128)
    content: str
    meta: dict[str, Any] = _json(name="metadata")
    status: str = Field(max_length=16)  # a MessageStatus
    # An agent reply names the user message it answers; unique, so retries never store a second reply.
    reply_to: uuid.UUID | None = Field(default=None, unique=True)
    created_at: datetime = _moment()
    completed_at: datetime | None = _moment(nullable=True)
    lease_until: datetime | None = _moment(nullable=True)  # while `processing`: when the sweep may retry it
    attempts: int = 0
    error: str | None = None
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    request_hash: str | None = Field(default=None, max_length=64)


class SessionEvent(SQLModel, table=True):
    """Durable session events, numbered per session without gaps; the Redis Stream caches the newest."""

    __tablename__ = "session_events"

    session_id: uuid.UUID = Field(foreign_key="sessions.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    type: str = Field(max_length=32)
    data: dict[str, Any] = _json()
    created_at: datetime = _moment()


agents_table = SQLModel.metadata.tables[Agent.__tablename__]
sessions_table = SQLModel.metadata.tables[Session.__tablename__]
messages_table = SQLModel.metadata.tables[Message.__tablename__]
events_table = SQLModel.metadata.tables[SessionEvent.__tablename__]

# A user message still waiting for its reply, written with literals rather than bound parameters: Postgres
# uses the partial index `ix_messages_unanswered` only when it can see that the query implies its predicate.
UNANSWERED = and_(messages_table.c.role == literal_column(f"'{Role.USER.value}'"),
                  messages_table.c.status.in_([literal_column(f"'{status.value}'") for status in UNANSWERED_STATUSES]))
# A session's unanswered messages (the worker's claim, `reject`, `interrupt`); without it a claim walked the
# session's whole history (migration 0004).
Index("ix_messages_unanswered", messages_table.c.session_id, messages_table.c.seq,
      postgresql_where=UNANSWERED, sqlite_where=UNANSWERED)
