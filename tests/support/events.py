"""A real event bus for tests without HTTP: a SQLite database, Redis under a private prefix, a running hub."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aredis
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.bus import AsyncEventPublisher, Event, EventHub, Keys
from core.clock import utcnow
from core.db import create_async_db_engine
from core.models import DEFAULT_AGENT_ID, events_table, sessions_table
from core.ratelimit import RateLimiter
from core.schemas import SessionCreate
from core.services.events import EventLog
from core.services.sessions import create_session
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.taskqueue import AsyncTaskSender
from tests.conftest import REDIS_URL


@dataclass
class World:
    engine: AsyncEngine
    redis: aredis.Redis
    keys: Keys
    publisher: AsyncEventPublisher
    hub: EventHub
    log: EventLog

    @property
    def limiter(self) -> RateLimiter:
        return RateLimiter(self.redis, self.keys, Settings(rate_limit_enabled=False))

    def unit_of_work(self) -> AsyncUnitOfWork:
        # Tasks go to a queue no worker reads: nothing answers messages here.
        return AsyncUnitOfWork(self.engine, self.publisher, AsyncTaskSender(self.redis, self.keys, "unanswered"))

    async def new_session(self) -> uuid.UUID:
        uow = self.unit_of_work()
        created = await create_session(uow, Settings(), SessionCreate(agent_id=DEFAULT_AGENT_ID, user_id="u-1"),
                                       utcnow(), None, "", owner=None, limiter=self.limiter)
        await uow.commit()
        return created.session_id

    async def store(self, session_id: uuid.UUID, *seqs: int, publish: bool = True) -> list[Event]:
        """Commit durable events (as the worker does), then publish them unless told not to."""
        events = [Event(session_id=session_id, seq=seq, type="state.updated", data={"n": seq}) for seq in seqs]
        async with self.engine.begin() as conn:
            await conn.execute(insert(events_table), [event.row() for event in events])
            await conn.execute(update(sessions_table).where(sessions_table.c.id == session_id)
                               .values(event_seq=max(seqs)))
        if publish:
            await self.publisher.publish(events)
        return events

    async def publish_chunk(self, session_id: uuid.UUID, after_seq: int, index: int) -> None:
        await self.publisher.publish([Event(session_id=session_id, seq=after_seq, chunk=index, type="message.chunk",
                                            data={"delta": f"w{index} "})])


@asynccontextmanager
async def world(sqlite_url: str, redis_prefix: str) -> AsyncIterator[World]:
    engine = create_async_db_engine(Settings(database_url=sqlite_url))
    client = aredis.Redis.from_url(REDIS_URL)
    keys = Keys(f"{redis_prefix}events-{uuid.uuid4().hex[:6]}:")
    hub = EventHub(client, keys)
    await hub.start()
    try:
        publisher = AsyncEventPublisher(client, keys, stream_maxlen=1000, stream_ttl_seconds=3600)
        yield World(engine, client, keys, publisher, hub, EventLog(client, keys, engine))
    finally:
        await hub.stop()
        await client.aclose()
        await engine.dispose()


def run(sqlite_url: str, redis_prefix: str, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(sqlite_url, redis_prefix) as w:
            await scenario(w)

    asyncio.run(main())
