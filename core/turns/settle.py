"""Step 3 of a turn: store its outcome (the reply, or why there is none) with the session's events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import structlog

from core import metrics
from core.agents.base import AgentReply
from core.analysis import analyze_exchange
from core.clock import utcnow
from core.services.messages import message_public
from core.services.sessions import public_json, session_status
from core.sessions import statements as sql
from core.sessions.status import MessageStatus, Role
from core.sessions.uow import UnitOfWork
from core.settings import Settings

if TYPE_CHECKING:
    from core.turns.claim import Turn

log = structlog.get_logger(__name__)


class AlreadyAnswered(Exception):
    """Another delivery of the turn stored its reply first (a worker thought dead was only slow)."""


def fail_messages(uow: UnitOfWork, session: Any, messages: Sequence[Any], code: str, reason: str,
                        now: datetime, **details: str) -> int:
    """Mark still-unanswered messages of a locked session failed, each with a `message.failed` event; returns
    the session's last event number.

    The code is kept in the message's metadata (`errorCode`, plus any details such as `supersededBy`) so a
    client reading the history, or retrying with its Idempotency-Key, learns why.
    """
    failed = []
    for message in messages:
        changed = uow.execute(sql.UPDATE_UNANSWERED_MESSAGE, {
            "message_id": message.id, "status": MessageStatus.FAILED.value, "error": reason, "lease_until": None,
            "completed_at": now, "metadata": {**message.metadata, "errorCode": code, **details}}).rowcount
        if changed:
            failed.append(message)
    if not failed:
        event_seq: int = session.event_seq
        return event_seq
    updated = uow.update_session(session, {}, [("message.failed", {
        "messageId": str(message.id), "replyTo": str(message.id), "error": {"code": code, "message": reason, **details},
    }) for message in failed], at=now)
    metrics.MESSAGE_FAILURES.labels(code).inc(len(failed))
    log.warning("message failed", code=code, reason=reason, messages=len(failed))
    return int(updated.event_seq)


def store_failure(uow: UnitOfWork, turn: Turn, code: str, reason: str, now: datetime, **details: str) -> None:
    session = uow.lock_session(turn.session_id)
    fail_messages(uow, session, turn.messages, code, reason, now, **details)


def store_reply(uow: UnitOfWork, turn: Turn, reply: AgentReply, settings: Settings, now: datetime,
                timings: dict[str, float]) -> bool:
    """Store the reply and settle the turn's messages, in one transaction with the `message.completed` and
    `state.updated` events. True when the session has a message newer than the turn (it needs another turn).

    The conversation is analysed first (CPU work: this runs in a database thread, off the event loop), from
    the state the turn started with (a session has one turn at a time, so it is still current); then the
    session is locked and advanced in one statement, the reply taking its next message number.
    """
    state, analysis = analyze_exchange(turn.session.state or None, turn.prompt, reply.text, reply.confidence,
                                       turn.message.created_at, turn.message.metadata)
    started = time.perf_counter()
    user = turn.message
    metadata: dict[str, Any] = {"thought": reply.thought, "actions": list(reply.actions),
                                "confidence": reply.confidence, "analysis": analysis}
    coalesced = [str(earlier.id) for earlier in turn.coalesced]
    if coalesced:
        metadata["coalesced"] = coalesced
    values = {"id": turn.reply_id, "session_id": turn.session_id, "role": Role.AGENT.value,
              "author_id": str(turn.session.agent_id), "content": reply.text, "metadata": metadata,
              "status": MessageStatus.COMPLETED.value, "reply_to": user.id, "attempts": 1}

    def announced(updated: Any) -> list[tuple[str, dict[str, Any]]]:
        # Called once the session is locked and advanced: the reply takes its number, and its time under the
        # lock, so a session's messages are in the same order by time as by seq.
        stored_at = utcnow()
        values.update(seq=updated.next_seq, created_at=stored_at, completed_at=stored_at)
        reply_public = public_json(message_public(SimpleNamespace(**values, error=None)))
        status = public_json(session_status(updated, now, settings.timeout_minute))
        db_ms = round((time.perf_counter() - started) * 1000, 2)
        return [("message.completed", {"message": reply_public, "replyTo": str(user.id), "coalesced": coalesced,
                                       "sessionStatus": status, "timings": {**timings, "dbMs": db_ms}}),
                ("state.updated", {"state": status["state"], "messageId": str(user.id)})]

    session = uow.advance_session(turn.session_id, {"state": state, "agent_state": reply.agent_state},
                                  announced, at=now, count=2, messages=1)
    if uow.execute(sql.STORE_REPLY[uow.dialect], values).first() is None:
        raise AlreadyAnswered(user.id)  # the edge rolls back: nothing of this turn is kept
    settled = {"status": MessageStatus.COMPLETED.value, "completed_at": values["created_at"], "lease_until": None,
               "error": None}
    uow.execute(sql.UPDATE_MESSAGE, {**settled, "message_id": user.id,
                                     "metadata": {**user.metadata, "analysis": analysis}})
    for earlier in turn.coalesced:  # answered by this turn's reply, which names them in `coalesced`
        uow.execute(sql.UPDATE_MESSAGE, {**settled, "message_id": earlier.id,
                                         "metadata": {**earlier.metadata, "coalescedInto": str(user.id)}})
    return has_newer_message(uow, session.id, before_reply=session.next_seq - 1, user_seq=user.seq)


def has_newer_message(uow: UnitOfWork, session_id: Any, *, before_reply: int, user_seq: int) -> bool:
    """Whether a user message newer than the one answered (`user_seq`) waits. If nothing was stored after it
    before the reply (`before_reply`, the last message number then), certainly not: no query. Else the
    replies to earlier messages may be all there is: look."""
    if before_reply <= user_seq:
        return False
    return uow.execute(sql.NEWER_UNANSWERED, {"session_id": session_id, "seq": user_seq}).first() is not None


def hand_back(uow: UnitOfWork, turn: Turn) -> None:
    """Give a turn this worker will not finish back to the queue: `pending` again, as if never claimed
    (a warm shutdown is no failed delivery)."""
    for message in turn.messages:
        uow.execute(sql.UPDATE_UNANSWERED_MESSAGE, {
            "message_id": message.id, "status": MessageStatus.PENDING.value, "lease_until": None,
            "attempts": message.attempts})
    uow.process_session_after_commit(turn.session_id)
