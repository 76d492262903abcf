"""Submitting messages (the API's service), over a real SQLite file and a real Redis queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import redis
import redis.asyncio as aredis
from sqlalchemy import insert

from core.bus import AsyncEventPublisher, Keys
from core.clock import utcnow
from core.db import create_async_db_engine
from core.models import DEFAULT_AGENT_ID, sessions_table
from core.ratelimit import RateLimiter
from core.schemas import MessageCreate
from core.services.messages import submit_message
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.taskqueue import AsyncTaskSender


def test_a_retry_of_an_unanswered_message_asks_the_workers_again(sqlite_url: str, redis_url: str,
                                                                  redis_client: redis.Redis, redis_prefix: str) -> None:
    # The first request's task may be gone (Redis restarted without persistence); the client's retry with
    # the same Idempotency-Key stores nothing new but queues the session again.
    settings = Settings(database_url=sqlite_url, redis_url=redis_url, redis_prefix=f"{redis_prefix}retry:")
    keys = Keys(settings.redis_prefix)
    queue = f"q-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[bool]:
        engine = create_async_db_engine(settings)
        client = aredis.Redis.from_url(redis_url)
        session_id, now = uuid.uuid4(), utcnow()
        created = []
        for attempt in range(2):
            uow = AsyncUnitOfWork(engine, AsyncEventPublisher(client, keys, 10, 3600),
                                  AsyncTaskSender(client, keys, queue))
            if attempt == 0:
                await uow.execute(insert(sessions_table).values(
                    id=session_id, agent_id=DEFAULT_AGENT_ID, user_id="svc-user", status="active", metadata={},
                    timeout_minutes=30, auto_renew=True, max_duration_minutes=720, warning_threshold_minutes=5,
                    created_at=now, last_activity_at=now, expires_at=now + timedelta(minutes=30), state={},
                    agent_state={}, next_seq=0, event_seq=0, renewal_count=0, message_count=0))
            submission = await submit_message(uow, settings, session_id, MessageCreate(content="hello"),
                                              "key-1", "fingerprint", owner=None,
                                              limiter=RateLimiter(client, keys, Settings(rate_limit_enabled=False)))
            await uow.commit()
            created.append(submission.created)
        await client.aclose()
        await engine.dispose()
        return created

    assert asyncio.run(scenario()) == [True, False]
    assert redis_client.llen(keys.task_queue(queue)) == 2
    redis_client.delete(keys.task_queue(queue))
