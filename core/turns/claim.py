"""Step 1 of a turn: claim what the session's next turn answers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core import metrics
from core.agents.base import HistoryItem
from core.clock import utcnow
from core.sessions import statements as sql
from core.sessions.double_texting import SUPERSEDED_CODE, SUPERSEDED_REASON, DoubleTexting
from core.sessions.status import LIVE_STATUSES, MessageStatus
from core.sessions.uow import UnitOfWork
from core.settings import Settings
from core.turns.settle import fail_messages

# A message whose processing killed its worker this many times is failed rather than retried forever.
MAX_DELIVERIES = 5


class ClaimedMessage(Protocol):
    """The columns of a claimed user message a turn reads (a `messages` row)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def seq(self) -> int: ...
    @property
    def content(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


class ClaimedSession(Protocol):
    """The columns of the claimed session a turn reads (a `sessions` row joined with its agent's)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> str: ...
    @property
    def agent_id(self) -> uuid.UUID: ...
    @property
    def double_texting(self) -> str: ...
    @property
    def state(self) -> dict[str, Any]: ...
    @property
    def agent_state(self) -> dict[str, Any]: ...
    @property
    def provider(self) -> str: ...
    @property
    def agent_name(self) -> str: ...
    @property
    def agent_settings(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Turn:
    """One claimed turn: the user message answered (with any earlier ones coalesced into it) and its context."""

    message: ClaimedMessage  # the user message the reply answers
    session: ClaimedSession  # as of the claim
    history: tuple[HistoryItem, ...]
    claimed_at: datetime
    event_seq: int  # the session's last durable event at the claim: streamed chunks follow it
    coalesced: tuple[ClaimedMessage, ...] = ()  # earlier messages answered in the same turn (`coalesce` sessions)

    @property
    def session_id(self) -> uuid.UUID:
        return self.session.id

    @property
    def strategy(self) -> DoubleTexting:
        return DoubleTexting(self.session.double_texting)

    @property
    def provider(self) -> str:
        return self.session.provider

    @property
    def agent_settings(self) -> dict[str, Any]:
        return self.session.agent_settings or {}

    @property
    def attempt(self) -> int:
        """The claim's delivery number: a settlement by an older delivery of the same message is stale."""
        return self.message.attempts + 1

    @property
    def prompt(self) -> str:
        """What the agent answers: the message, or the whole burst of a coalesced turn, one per line."""
        return "\n".join(message.content for message in (*self.coalesced, self.message))

    @property
    def reply_id(self) -> uuid.UUID:
        # Derived from the user message, so chunks of a retried generation name the same reply.
        return uuid.uuid5(self.message.id, "reply")

    @property
    def messages(self) -> tuple[ClaimedMessage, ...]:
        return (*self.coalesced, self.message)


def claim_turn(uow: UnitOfWork, session_id: uuid.UUID, settings: Settings, now: datetime) -> Turn | None:
    """Claim the session's next turn, or None when there is nothing to answer or another worker holds its turn
    (in one of the runtime's database threads).

    A `processing` message whose lease ran out was left by a worker that died: it is claimed again. Messages
    that cannot be answered (the session closed, superseded, delivered too often) fail here, with their events.
    """
    session = uow.lock_session(session_id, with_agent=True)
    strategy = DoubleTexting(session.double_texting)
    statement = sql.UNANSWERED_IN_SESSION if strategy.looks_past_the_oldest else sql.OLDEST_UNANSWERED
    waiting = uow.execute(statement, {"session_id": session_id}).all()
    if not waiting or any(message.status == MessageStatus.PROCESSING and message.lease_until is not None
                          and message.lease_until > now for message in waiting):
        return None  # nothing to do, or the turn under way (its worker alive) answers first
    if session.status not in LIVE_STATUSES:
        fail_messages(uow, session, waiting, "SESSION_CLOSED",
                            "the session closed before this message was answered", now)
        return None
    selection = strategy.select(waiting)
    event_seq = session.event_seq
    if selection.superseded:
        event_seq = fail_messages(uow, session, selection.superseded, SUPERSEDED_CODE, SUPERSEDED_REASON, now,
                                        supersededBy=str(selection.answered[-1].id))
    if selection.answered[-1].attempts >= MAX_DELIVERIES:
        fail_messages(uow, session, selection.answered, "DELIVERY_FAILED",
                            f"processing was interrupted {MAX_DELIVERIES} times", now)
        return None
    # The lease runs from now (the lock may have been waited for): a claim never starts with a spent lease.
    uow.execute(sql.CLAIM, {"message_ids": [message.id for message in selection.answered],
                                  "lease_until": utcnow() + settings.message_lease})
    earlier = uow.execute(sql.HISTORY, {
        "session_id": session_id, "before_seq": selection.answered[0].seq,
        "window": history_window(settings, session.agent_settings or {})}).all()
    for message in selection.answered:
        if message.status == MessageStatus.PENDING:  # a first claim: how long it queued
            metrics.QUEUE_WAIT.observe(max(0.0, (now - message.created_at).total_seconds()))
    return Turn(message=selection.answered[-1], session=session, claimed_at=now, event_seq=event_seq,
                history=tuple(HistoryItem(role=row.role, content=row.content) for row in reversed(earlier)),
                coalesced=selection.answered[:-1])


def history_window(settings: Settings, agent_settings: dict[str, Any]) -> int:
    wanted = agent_settings.get("historyMessages")
    return wanted if isinstance(wanted, int) and wanted > 0 else settings.history_window
