"""The API's unit of work: one transaction, plus the side effects that must wait for its commit."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import insert
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.bus import AsyncEventPublisher, Event
from core.models import events_table
from core.taskqueue import AsyncTaskSender

log = logging.getLogger(__name__)


class AsyncUnitOfWork:
    """Services execute statements through it and never commit; the edge calls `commit()`, which commits,
    then sends the collected tasks and publishes the collected events (never before the commit).

    A pooled connection is taken on the first statement and given back at commit, so a request that
    then waits for a reply holds no database connection while it waits.
    """

    def __init__(self, engine: AsyncEngine, publisher: AsyncEventPublisher, tasks: AsyncTaskSender) -> None:
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

    async def record(self, event: Event) -> None:
        """Store a durable event in this transaction; it is published after the commit."""
        await self.execute(insert(events_table).values(event.row()))
        self._events.append(event)

    def process_session_after_commit(self, session_id: uuid.UUID) -> None:
        self._sessions_to_process.append(session_id)

    async def commit(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.commit()
            finally:
                await conn.close()
        events, self._events = self._events, []
        sessions, self._sessions_to_process = self._sessions_to_process, []
        # The transaction is committed: a Redis failure now must not turn it into an error response (the
        # client would resend a stored message). A lost task leaves the message `pending` for the sweep; a
        # lost event is still in `session_events` for streams to catch up from.
        try:
            for session_id in dict.fromkeys(sessions):
                await self._tasks.process_session(session_id)
            if events:
                await self._publisher.publish(events)
        except RedisError as exc:
            log.warning("after commit, Redis refused the task/events (the sweep recovers them): %s", exc)

    async def rollback(self) -> None:
        self._events.clear()
        self._sessions_to_process.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.rollback()
            finally:
                await conn.close()
