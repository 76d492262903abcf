"""Units of work of the sessions domain: the only code that locks session rows, numbers a session's events,
stores them and publishes them after commit.

A session's durable events are numbered 1, 2, ... without gaps (`sessions.event_seq` is the last number
used). A number is taken only under the session row's lock (`lock_session`, or a bulk update of locked
rows), written back in the same UPDATE as the change the event describes, stored in `session_events` in
the same transaction, and published to Redis only after the commit. One slip here would be a gap or a
duplicate in every client's event stream, so the rule lives here alone.

`AsyncUnitOfWork` serves the API (on its event loop); `UnitOfWork` serves the worker's turns (in the turn
runtime's database threads: sync SQLAlchemy costs about a third less CPU per statement than its asyncio
adapter, measured) and the beat. Both run the statements of `core/sessions/statements.py`. Services execute through a
unit of work and never commit; the edge that opened it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError
from sqlalchemy import Connection, Engine, Row, case
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.bus import Event
from core.errors import SessionNotFound
from core.models import sessions_table
from core.sessions import statements as sql

log = structlog.get_logger(__name__)
S = sessions_table.c

EventSpec = tuple[str, dict[str, Any]]  # (type, data)
# The events a change announces: given, or built from the updated row (e.g. to carry the new session).
# A row or result of any columns (SQLAlchemy 2.1 types rows by their column tuple; `Row[Any]` is one column).
AnyRow = Row[*tuple[Any, ...]]
AnyResult = CursorResult[*tuple[Any, ...]]
EventsOf = Sequence[EventSpec] | Callable[[AnyRow], Sequence[EventSpec]]


class AsyncPublisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...


class SessionProcessor(Protocol):
    """Gets a session's waiting messages answered: by a queued task, or inline."""

    async def process_session(self, session_id: uuid.UUID) -> None: ...


class _Changes:
    """What a unit of work does after its commit, and the event numbers it has taken so far."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._sessions_to_process: list[uuid.UUID] = []
        self._heads: dict[uuid.UUID, int] = {}  # session id -> last event number taken in this transaction

    def process_session_after_commit(self, session_id: uuid.UUID) -> None:
        self._sessions_to_process.append(session_id)

    def _values_with_events(self, row: Any, values: dict[str, Any], count: int) -> dict[str, Any]:
        if not count:
            return {"session_id": row.id, **values}
        self._heads[row.id] = self._heads.get(row.id, row.event_seq) + count
        return {"session_id": row.id, **values, "event_seq": self._heads[row.id]}

    def _record(self, updated: Any, events: EventsOf, count: int, at: datetime) -> None:
        specs = events(updated) if callable(events) else events
        assert len(specs) == count, "the number of events was announced before the update"
        first = updated.event_seq - count + 1
        self._events.extend(Event(session_id=updated.id, seq=first + offset, type=kind, data=data, created_at=at)
                            for offset, (kind, data) in enumerate(specs))

    def _record_bulk(self, rows: Iterable[Any], kind: str, data: Callable[[Any], dict[str, Any]],
                     at: datetime) -> None:
        self._events.extend(Event(session_id=row.id, seq=row.event_seq, type=kind, data=data(row), created_at=at)
                            for row in rows)

    def _take(self) -> tuple[list[Event], list[uuid.UUID]]:
        events, self._events = self._events, []
        sessions, self._sessions_to_process = list(dict.fromkeys(self._sessions_to_process)), []
        self._heads.clear()
        return events, sessions

    def _forget(self) -> None:
        self._events.clear()
        self._sessions_to_process.clear()
        self._heads.clear()


def _count(events: EventsOf, expected: int | None) -> int:
    if callable(events):
        if expected is None:
            raise TypeError("events built from the updated row need their number up front (`count=`)")
        return expected
    return len(events)


def _session_parameters(session_id: uuid.UUID, owner: str | None) -> dict[str, Any]:
    return {"session_id": session_id} if owner is None else {"session_id": session_id, "owner": owner}


def _found(row: AnyRow | None, session_id: uuid.UUID) -> AnyRow:
    if row is None:
        # Another user's session is reported exactly like a missing one, so ids cannot be probed.
        raise SessionNotFound(f"session {session_id} not found", sessionId=str(session_id))
    return row


def bumped_event_seq(announce: Any = None) -> Any:
    """For a bulk update of locked session rows: take the next event number (where `announce` holds)."""
    return S.event_seq + 1 if announce is None else case((announce, S.event_seq + 1), else_=S.event_seq)


class AsyncUnitOfWork(_Changes):
    """One transaction on the event loop, and the side effects that wait for its commit.

    A pooled connection is taken on the first statement and given back at commit, so a request that then
    waits for a reply holds no database connection while it waits.
    """

    def __init__(self, engine: AsyncEngine, publisher: AsyncPublisher, tasks: SessionProcessor) -> None:
        super().__init__()
        self._engine = engine
        self._publisher = publisher
        self._tasks = tasks
        self._conn: AsyncConnection | None = None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def execute(self, statement: Any, parameters: Any = None) -> AnyResult:
        if self._conn is None:
            self._conn = await self._engine.connect()
        result: AnyResult = await self._conn.execute(statement, parameters)
        return result

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def load_session(self, session_id: uuid.UUID, *, owner: str | None = None,
                           with_agent: bool = False) -> AnyRow:
        """The session row, if it exists and belongs to `owner` (None: any user's, for the server key)."""
        statement = sql.LOAD_SESSION[owner is not None, False, with_agent]
        return _found((await self.execute(statement, _session_parameters(session_id, owner))).first(), session_id)

    async def lock_session(self, session_id: uuid.UUID, *, owner: str | None = None,
                           with_agent: bool = False) -> AnyRow:
        """The session row, locked until commit: the one way to change a session or number its events."""
        statement = sql.LOAD_SESSION[owner is not None, True, with_agent]
        return _found((await self.execute(statement, _session_parameters(session_id, owner))).first(), session_id)

    async def update_session(self, row: AnyRow, values: dict[str, Any], events: EventsOf = (), *, at: datetime,
                             count: int | None = None) -> AnyRow:
        """Update a locked session and record the events announcing the change; returns the updated row."""
        count = _count(events, count)
        updated = (await self.execute(sql.UPDATE_SESSION, self._values_with_events(row, values, count))).one()
        self._record(updated, events, count, at)
        return updated

    async def commit(self) -> None:
        """Store the recorded events and commit; then publish them and ask for processing (never before)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if self._events:  # durable: stored in the same transaction as the change they describe
                    await conn.execute(sql.INSERT_EVENTS, [event.row() for event in self._events])
                await conn.commit()
            finally:
                await conn.close()
        events, sessions = self._take()
        # The transaction is committed: a Redis failure now must not turn it into an error (the client would
        # resend a stored message). A lost event is still in `session_events` for streams to catch up from; a
        # lost task leaves the message waiting for the recovery sweep. Each is tried on its own, so an event
        # that could not be published does not hold back the task. Publish before asking a worker: its events
        # (seq + 1 ...) then reach the Stream after ours, so the Stream keeps no hole that would send readers
        # to the database.
        if events:
            try:
                await self._publisher.publish(events)
            except RedisError as exc:
                log.warning("after commit, Redis refused the events; readers catch up from the database",
                            error=str(exc))
        for session_id in sessions:
            try:
                await self._tasks.process_session(session_id)
            except RedisError as exc:
                log.warning("after commit, Redis refused the task; the sweep re-queues the session",
                            session_id=str(session_id), error=str(exc))

    async def rollback(self) -> None:
        self._forget()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.rollback()
            finally:
                await conn.close()


class SyncPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None: ...


class UnitOfWork(_Changes):
    """The same, for plain threads (the worker's turns, the beat): a context manager that commits on success and
    rolls back on error. A pooled connection is taken on the first statement."""

    def __init__(self, engine: Engine, publisher: SyncPublisher, enqueue: Callable[[uuid.UUID], None]) -> None:
        super().__init__()
        self._engine = engine
        self._publisher = publisher
        self._enqueue = enqueue
        self._conn: Connection | None = None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if kind is not None:
                    conn.rollback()
                else:
                    if self._events:
                        conn.execute(sql.INSERT_EVENTS, [event.row() for event in self._events])
                    conn.commit()
            finally:
                conn.close()
        if kind is not None:
            self._forget()
            return
        events, sessions = self._take()
        if events:
            self._publisher.publish(events)
        for session_id in sessions:
            self._enqueue(session_id)

    def execute(self, statement: Any, parameters: Any = None) -> AnyResult:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn.execute(statement, parameters)

    def lock_session(self, session_id: uuid.UUID, *, with_agent: bool = False) -> AnyRow:
        """The session row, locked until commit: the one way to change a session or number its events."""
        statement = sql.LOAD_SESSION[False, True, with_agent]
        return _found(self.execute(statement, _session_parameters(session_id, None)).first(), session_id)

    def update_session(self, row: AnyRow, values: dict[str, Any], events: EventsOf = (), *, at: datetime,
                       count: int | None = None) -> AnyRow:
        """Update a locked session and record the events announcing the change; returns the updated row."""
        count = _count(events, count)
        updated = self.execute(sql.UPDATE_SESSION, self._values_with_events(row, values, count)).one()
        self._record(updated, events, count, at)
        return updated

    def advance_session(self, session_id: uuid.UUID, values: dict[str, Any], events: EventsOf, *,
                        at: datetime, count: int, messages: int = 0) -> AnyRow:
        """Lock and update a session in one statement, taking its next `messages` message numbers and `count`
        event numbers in SQL (no read of the row first); returns the updated row, whose `next_seq` is the last
        message number taken. For a change that needs nothing of the row before it (a turn's settlement)."""
        assert session_id not in self._heads, "the session's events were numbered from a row already"
        updated = self.execute(sql.ADVANCE_SESSION, {
            "session_id": session_id, **values, "messages": messages, "events": count}).one()
        self._heads[session_id] = updated.event_seq
        self._record(updated, events, count, at)
        return updated

    def update_due_sessions(self, due: Any, values: dict[str, Any], kind: str, data: Callable[[Any], dict[str, Any]],
                            *, at: datetime, announce: Any = None,
                            stamp: dict[str, Any] | None = None) -> Sequence[AnyRow]:
        """Update a batch of due (locked) sessions, each announcing the change with one `kind` event; with
        `announce`, only the rows where that condition holds get the event (and the `stamp` values).
        Returns the updated rows, `announced` telling which got an event."""
        values = {**values, "event_seq": bumped_event_seq(announce)}
        for column, value in (stamp or {}).items():
            values[column] = value if announce is None else case((announce, value), else_=S[column])
        announced = (announce if announce is not None else S.id.isnot(None)).label("announced")
        rows = self.execute(sql.update_due(due).values(**values).returning(sessions_table, announced)).all()
        self._record_bulk((row for row in rows if row.announced), kind, data, at)
        return rows
