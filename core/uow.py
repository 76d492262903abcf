"""The API's unit of work: one transaction, plus the side effects that must wait for its commit."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import insert
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.bus import AsyncEventPublisher, Event
from core.models import events_table
from core.taskqueue import SessionProcessor

log = structlog.get_logger(__name__)
_INSERT_EVENTS = insert(events_table)


class AsyncUnitOfWork:
    """Services execute statements through it and never commit; the edge calls `commit()`, which stores the
    collected events and commits, then sends the collected tasks and publishes the events (never before
    the commit).

    A pooled connection is taken on the first statement and given back at commit, so a request that
    then waits for a reply holds no database connection while it waits.
    """

    def __init__(self, engine: AsyncEngine, publisher: AsyncEventPublisher, tasks: SessionProcessor) -> None:
        self._engine = engine
        self._publisher = publisher
        self._tasks = tasks
        self._conn: AsyncConnection | None = None
        self._events: list[Event] = []
        self._sessions_to_process: list[uuid.UUID] = []

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any) -> Any:
        return (await self.execute(statement)).scalar()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def process_session_after_commit(self, session_id: uuid.UUID) -> None:
        self._sessions_to_process.append(session_id)

    async def commit(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if self._events:  # durable: stored in the same transaction as the change they describe
                    await conn.execute(_INSERT_EVENTS, [event.row() for event in self._events])
                await conn.commit()
            finally:
                await conn.close()
        events, self._events = self._events, []
        sessions, self._sessions_to_process = self._sessions_to_process, []
        # The transaction is committed: a Redis failure now must not turn it into an error response (the
        # client would resend a stored message). A lost event is still in `session_events` for streams to
        # catch up from; a lost task leaves the message `pending` for the sweep. Each is tried on its own, so
        # an event that could not be published does not hold back the task.
        # Publish before asking a worker: its events (seq + 1 ...) then reach the Stream after ours, so the
        # Stream keeps no hole that would send readers to the database.
        if events:
            try:
                await self._publisher.publish(events)
            except RedisError as exc:
                log.warning("after commit, Redis refused the events; readers catch up from the database",
                            error=str(exc))
        for session_id in dict.fromkeys(sessions):
            try:
                await self._tasks.process_session(session_id)
            except RedisError as exc:
                log.warning("after commit, Redis refused the task; the sweep re-queues the session",
                            session_id=str(session_id), error=str(exc))

    async def rollback(self) -> None:
        self._events.clear()
        self._sessions_to_process.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.rollback()
            finally:
                await conn.close()
