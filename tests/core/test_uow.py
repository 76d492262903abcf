"""The API's unit of work: side effects after the commit never undo or fail a committed transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import insert, select

from core.bus import AsyncEventPublisher, Event, Keys
from core.clock import utcnow
from core.db import create_async_db_engine
from core.models import DEFAULT_AGENT_ID, sessions_table
from core.settings import Settings
from core.taskqueue import AsyncTaskSender
from core.sessions.uow import AsyncUnitOfWork
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
        uow.emit(Event(session_id=session_id, seq=1, type="session.renewed", data={}))
        uow.process_session_after_commit(session_id)

        await uow.commit()  # must not raise: the client would resend what is already stored

        stored = await uow.scalar(select(sessions_table.c.id).where(sessions_table.c.id == session_id))
        await uow.commit()
        await unreachable.aclose()
        await engine.dispose()
        return stored

    assert asyncio.run(scenario()) is not None
