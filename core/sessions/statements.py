"""The sessions domain's statements, built once and shared by the async and the sync unit of work.

Building a statement and its cache key on every call cost as much CPU as executing it (50-100 us each,
measured), so the hot path's statements are module constants and their values are bound at execution.
Nothing outside `core/sessions/` locks a session row or inserts an event row: these are the only statements
that do (grep for `with_for_update` and `events_table` to check).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.models import UNANSWERED, agents_table, events_table, messages_table, sessions_table
from core.sessions.status import MessageStatus

S = sessions_table.c
M = messages_table.c
E = events_table.c


def message_is(status: MessageStatus) -> ColumnElement[bool]:
    """Written as a literal, like UNANSWERED: Postgres matches partial indexes only against literals."""
    return M.status == literal_column(f"'{status.value}'")



def _session(owned: bool, for_update: bool, with_agent: bool) -> Select[Any]:
    columns: list[Any] = [sessions_table]
    if with_agent:
        columns += [agents_table.c.provider, agents_table.c.name.label("agent_name"),
                    agents_table.c.settings.label("agent_settings")]
    query = select(*columns)
    if with_agent:
        query = query.join(agents_table, agents_table.c.id == S.agent_id)
    query = query.where(S.id == bindparam("session_id"))
    if owned:
        query = query.where(S.user_id == bindparam("owner"))
    return query.with_for_update(of=sessions_table) if for_update else query


# (owned by a given user, locked, with its agent's provider, name and settings) -> statement
LOAD_SESSION = {(owned, for_update, with_agent): _session(owned, for_update, with_agent)
                for owned in (False, True) for for_update in (False, True) for with_agent in (False, True)}
# SET clauses come from the execution's parameters (column names); the row is named by `session_id`.
UPDATE_SESSION = update(sessions_table).where(S.id == bindparam("session_id")).returning(sessions_table)
# The same, taking the next message and event numbers in SQL (the other SET clauses from the parameters).
ADVANCE_SESSION = update(sessions_table).where(S.id == bindparam("session_id")).values(
    next_seq=S.next_seq + bindparam("messages"), message_count=S.message_count + bindparam("messages"),
    event_seq=S.event_seq + bindparam("events")).returning(sessions_table)
INSERT_EVENTS = insert(events_table)


def due_sessions(*conditions: Any, order_by: Any, batch_size: int) -> Any:
    """Ids of a batch of due sessions, oldest first, locked; rows another transaction holds wait for the next sweep.

    Callers ask for one status at a time, so the index yields the batch in order and the scan stops there.
    """
    return select(S.id).where(*conditions).order_by(order_by).limit(batch_size) \
        .with_for_update(skip_locked=True).scalar_subquery()


INSERT_MESSAGE = insert(messages_table)
# A session's user messages still waiting for their reply, oldest first (the partial index ix_messages_unanswered).
UNANSWERED_IN_SESSION = select(messages_table).where(M.session_id == bindparam("session_id"), UNANSWERED) \
    .order_by(M.seq)
OLDEST_UNANSWERED = UNANSWERED_IN_SESSION.limit(1)
# A waiting user message of the session after a given seq: the session needs another turn.
NEWER_UNANSWERED = select(M.id).where(M.session_id == bindparam("session_id"), UNANSWERED,
                                      M.seq > bindparam("seq")).limit(1)
# Sessions with a user message waiting in `pending` past a given seq: `interrupt` turns watch for these.
NEWER_PENDING = select(M.session_id, M.id, M.seq).where(
    M.session_id.in_(bindparam("session_ids", expanding=True)), UNANSWERED,
    message_is(MessageStatus.PENDING))
CLAIM = update(messages_table).where(M.id.in_(bindparam("message_ids", expanding=True))).values(
    status=MessageStatus.PROCESSING.value, lease_until=bindparam("lease_until"), attempts=M.attempts + 1)
# The leases of the turns a worker holds, renewed while it works on them.
RENEW_LEASES = update(messages_table).where(
    M.id.in_(bindparam("message_ids", expanding=True)), message_is(MessageStatus.PROCESSING),
).values(lease_until=bindparam("lease_until"))
# Sessions whose turn's worker stopped renewing its lease (it died): another worker must take the turn over.
ORPHANED_SESSIONS = select(M.session_id).where(UNANSWERED, message_is(MessageStatus.PROCESSING),
                                               M.lease_until < bindparam("now")).distinct().limit(bindparam("limit"))
# Sessions with any waiting message (after a Redis restart emptied the task queue).
WAITING_SESSIONS = select(M.session_id).where(UNANSWERED).distinct().limit(bindparam("limit"))
HISTORY = select(M.role, M.content).where(
    M.session_id == bindparam("session_id"), M.seq < bindparam("before_seq"), message_is(MessageStatus.COMPLETED),
).order_by(M.seq.desc()).limit(bindparam("window"))
# SET clauses come from the execution's parameters (column names); the row is named by `message_id`.
UPDATE_MESSAGE = update(messages_table).where(M.id == bindparam("message_id"))
# ... only while it still waits for its reply (a late worker must not undo another's settlement).
UPDATE_UNANSWERED_MESSAGE = update(messages_table).where(
    M.id == bindparam("message_id"), UNANSWERED)
# Insert an agent reply unless one to the same user message exists: a row when this call stored it.
STORE_REPLY = {
    name: dialect.insert(messages_table).on_conflict_do_nothing(index_elements=["reply_to"]).returning(M.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def update_due(due: Any) -> Any:
    """An update of the sessions a `due_sessions` batch names (values given by the caller)."""
    return update(sessions_table).where(S.id.in_(due))
