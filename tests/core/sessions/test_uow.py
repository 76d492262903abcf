"""The API's unit of work: side effects after the commit never undo or fail a committed transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import func, insert, select

from core.bus import AsyncEventPublisher, Keys
from core.clock import utcnow
from core.db import create_async_db_engine
from core.errors import SessionNotFound
from core.models import DEFAULT_AGENT_ID, events_table, sessions_table
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.taskqueue import AsyncTaskSender
from tests.support.processes import free_port


def test_commit_succeeds_when_redis_refuses_the_task_and_events(sqlite_url: str) -> None:
    async def scenario() -> uuid.UUID | None:
        engine = create_async_db_engine(Settings(database_url=sqlite_url))
        unreachable = aredis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        keys = Keys("uow-test:")
        uow = AsyncUnitOfWork(engine, AsyncEventPublisher(unreachable, keys, 10, 3600),
                              AsyncTaskSender(unreachable, keys, "q"))
        session_id, now = uuid.uuid4(), utcnow()
        await uow.execute(insert(sessions_table).values(
            id=session_id, agent_id=DEFAULT_AGENT_ID, user_id="uow-user", status="active", metadata={},
            timeout_minutes=30, auto_renew=True, max_duration_minutes=720, warning_threshold_minutes=5,
            created_at=now, last_activity_at=now, expires_at=now + timedelta(minutes=30), state={}, agent_state={},
            next_seq=0, event_seq=1, renewal_count=0, message_count=0))
        await uow.update_session(await uow.lock_session(session_id), {}, [("session.renewed", {})], at=now)
        uow.process_session_after_commit(session_id)

        await uow.commit()  # must not raise: the client would resend what is already stored

        stored = await uow.scalar(select(sessions_table.c.id).where(sessions_table.c.id == session_id))
        await uow.commit()
        await unreachable.aclose()
        await engine.dispose()
        return stored

    assert asyncio.run(scenario()) is not None


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[int, str]] = []

    async def publish(self, events: Any) -> None:
        self.published.extend((event.seq, event.type) for event in events)


class NoTasks:
    async def process_session(self, session_id: uuid.UUID) -> None:
        raise AssertionError("no task expected")


def test_events_of_one_transaction_are_numbered_on_from_the_session_and_published_after_commit(
        sqlite_url: str) -> None:
    async def scenario() -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[int], int]:
        engine = create_async_db_engine(Settings(database_url=sqlite_url))
        publisher = RecordingPublisher()
        uow = AsyncUnitOfWork(engine, publisher, NoTasks())
        session_id = await insert_session(uow, event_seq=4)
        await uow.commit()
        row = await uow.lock_session(session_id)
        await uow.update_session(row, {"renewal_count": 1}, [("session.renewed", {})], at=utcnow())
        await uow.update_session(row, {}, lambda updated: [("session.paused", {"renewals": updated.renewal_count}),
                                                           ("session.resumed", {})], at=utcnow(), count=2)
        before_commit = list(publisher.published)
        await uow.commit()
        stored = list((await uow.execute(select(events_table.c.seq).where(
            events_table.c.session_id == session_id).order_by(events_table.c.seq))).scalars())
        head = await uow.scalar(select(sessions_table.c.event_seq).where(sessions_table.c.id == session_id))
        await uow.commit()
        await engine.dispose()
        return before_commit, publisher.published, stored, head

    before_commit, published, stored, head = asyncio.run(scenario())

    assert before_commit == []
    assert published == [(5, "session.renewed"), (6, "session.paused"), (7, "session.resumed")]
    assert stored == [5, 6, 7] and head == 7


def test_a_rolled_back_change_stores_and_publishes_no_event(sqlite_url: str) -> None:
    async def scenario() -> tuple[list[tuple[int, str]], int, int]:
        engine = create_async_db_engine(Settings(database_url=sqlite_url))
        publisher = RecordingPublisher()
        uow = AsyncUnitOfWork(engine, publisher, NoTasks())
        session_id = await insert_session(uow, event_seq=0)
        await uow.commit()
        await uow.update_session(await uow.lock_session(session_id), {}, [("session.ended", {})], at=utcnow())
        await uow.rollback()
        await uow.commit()  # nothing left to do
        count = await uow.scalar(select(func.count()).where(events_table.c.session_id == session_id))
        head = await uow.scalar(select(sessions_table.c.event_seq).where(sessions_table.c.id == session_id))
        await uow.commit()
        await engine.dispose()
        return publisher.published, count, head

    assert asyncio.run(scenario()) == ([], 0, 0)


def test_an_unknown_or_foreign_session_cannot_be_locked(sqlite_url: str) -> None:
    async def scenario() -> None:
        engine = create_async_db_engine(Settings(database_url=sqlite_url))
        uow = AsyncUnitOfWork(engine, RecordingPublisher(), NoTasks())
        session_id = await insert_session(uow, event_seq=0)
        await uow.commit()
        for missing, owner in ((uuid.uuid4(), None), (session_id, "someone-else")):
            with pytest.raises(SessionNotFound):
                await uow.lock_session(missing, owner=owner)
        await uow.rollback()
        await engine.dispose()

    asyncio.run(scenario())


async def insert_session(uow: AsyncUnitOfWork, event_seq: int) -> uuid.UUID:
    session_id, now = uuid.uuid4(), utcnow()
    await uow.execute(insert(sessions_table).values(
        id=session_id, agent_id=DEFAULT_AGENT_ID, user_id="uow-user", status="active", metadata={},
        timeout_minutes=30, auto_renew=True, max_duration_minutes=720, warning_threshold_minutes=5,
        created_at=now, last_activity_at=now, expires_at=now + timedelta(minutes=30), state={}, agent_state={},
        next_seq=0, event_seq=event_seq, renewal_count=0, message_count=0))
    return session_id
