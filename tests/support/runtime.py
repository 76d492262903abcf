"""Driving the turn runtime directly (no Celery) over a real database and a real Redis, and building the rows
it works on. Follow-up turns a runner asks for are run inline, as a worker taking each task would."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import redis.asyncio as aredis
from sqlalchemy import Engine, insert, select

from core.bus import Keys, redis_client
from core.clock import utcnow
from core.db import create_sync_engine
from core.models import DEFAULT_AGENT_ID, agents_table, events_table, messages_table, sessions_table
from core.runtime.runner import TurnRunner, runtime_engine
from core.settings import Settings


class InlineRuntime:
    """A TurnRunner on an event loop of its own (running in a thread, as in a worker, so its background work
    goes on between the test's steps), with the sync engine tests use to arrange and inspect rows."""

    def __init__(self, settings: Settings, client: aredis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="inline-runtime", daemon=True)
        self._thread.start()
        self.engine: Engine = create_sync_engine(settings)
        self._runtime_engine = runtime_engine(settings)
        self.redis = client or redis_client(settings.redis_url or "", max_connections=16, pool_wait_seconds=30)
        self.runner = TurnRunner(settings, self._runtime_engine, self.redis, self.keys, tasks=self)
        self.queued: list[uuid.UUID] = []
        self.run(self.runner.start())

    def run(self, awaitable: Any) -> Any:
        """Run a coroutine on the runtime's loop and wait for its result."""
        async def wrapped() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=120)

    async def process_session(self, session_id: uuid.UUID) -> None:
        self.queued.append(session_id)

    def answer(self, session_id: uuid.UUID, drain_seconds: float = 5) -> int:
        """Run the session's turns (and the follow-ups they queue) until none is left; how many turns ran."""
        async def until_quiet() -> int:
            started = 0
            self.queued.append(session_id)
            while self.queued:
                if await self.runner.process(self.queued.pop(0)):
                    started += 1
                await self.runner.idle(drain_seconds)
            return started

        return int(self.run(until_quiet()))

    def close(self) -> None:
        self.run(self.runner.stop(0))
        self.run(self.redis.aclose())
        self._runtime_engine.dispose()
        self.engine.dispose()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def make_session(engine: Engine, agent_id: uuid.UUID = DEFAULT_AGENT_ID, status: str = "active",
                 double_texting: str = "enqueue") -> uuid.UUID:
    session_id, now = uuid.uuid4(), utcnow()
    with engine.begin() as conn:
        conn.execute(insert(sessions_table).values(
            id=session_id, agent_id=agent_id, user_id="unit-user", status=status, metadata={}, timeout_minutes=30,
            auto_renew=True, max_duration_minutes=720, warning_threshold_minutes=5, created_at=now,
            last_activity_at=now, expires_at=now + timedelta(minutes=30), state={}, agent_state={}, next_seq=0,
            event_seq=0, renewal_count=0, message_count=0, double_texting=double_texting))
    return session_id


def add_user_message(engine: Engine, session_id: uuid.UUID, content: str, **values: Any) -> uuid.UUID:
    """A user message stored as the API stores it (next seq, `pending`), with any column overridden."""
    message_id = uuid.uuid4()
    with engine.begin() as conn:
        session = conn.execute(select(sessions_table).where(sessions_table.c.id == session_id)).one()
        conn.execute(insert(messages_table).values(**{
            "id": message_id, "session_id": session_id, "seq": session.next_seq + 1, "role": "user",
            "author_id": "unit-user", "content": content, "metadata": {}, "status": "pending", "created_at": utcnow(),
            "attempts": 0, **values}))
        conn.execute(sessions_table.update().where(sessions_table.c.id == session_id).values(
            next_seq=session.next_seq + 1, message_count=session.message_count + 1))
    return message_id


def make_agent(engine: Engine, provider: str, settings: dict[str, Any]) -> uuid.UUID:
    agent_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(agents_table).values(id=agent_id, name=f"agent-{agent_id.hex[:8]}", provider=provider,
                                                 settings=settings, created_at=utcnow()))
    return agent_id


def messages_of(engine: Engine, session_id: uuid.UUID) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(messages_table).where(messages_table.c.session_id == session_id)
                                 .order_by(messages_table.c.seq)).all())


def events_of(engine: Engine, session_id: uuid.UUID) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(events_table).where(events_table.c.session_id == session_id)
                                 .order_by(events_table.c.seq)).all())
