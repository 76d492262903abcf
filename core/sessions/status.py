"""The status values of sessions and messages, and the roles of messages: the one place they are spelled.

StrEnums, so a value read from the database (a plain string) compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatusName(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    EXPIRED = "expired"


class MessageStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Role(StrEnum):
    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


# A live session takes messages (unless paused) and can still expire; a closed one keeps only its history.
LIVE_STATUSES = (SessionStatusName.ACTIVE, SessionStatusName.PAUSED)
CLOSED_STATUSES = (SessionStatusName.ENDED, SessionStatusName.EXPIRED)
# A user message in one of these is still waiting for its reply.
UNANSWERED_STATUSES = (MessageStatus.PENDING, MessageStatus.PROCESSING)
