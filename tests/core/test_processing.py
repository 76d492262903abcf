"""The worker's handler, called directly (no Celery), over a real SQLite file and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import insert, select

from core.bus import EventPublisher, Keys
from core.clock import utcnow
from core.db import create_sync_engine
from core.locks import SessionLock
from core.models import DEFAULT_AGENT_ID, agents_table, events_table, messages_table, sessions_table
from core.processing import WorkerContext, process_session
from core.settings import Settings
from tests.support.processes import free_port


@pytest.fixture()
def ctx(sqlite_url: str, redis_client: redis.Redis, redis_prefix: str) -> Iterator[WorkerContext]:
    settings = Settings(database_url=sqlite_url, redis_url="unused", redis_prefix=f"{redis_prefix}unit:",
                        agent_retry_backoff_seconds=0)
    keys = Keys(settings.redis_prefix)
    engine = create_sync_engine(settings)
    yield WorkerContext(settings=settings, engine=engine, redis=redis_client, keys=keys,
                        publisher=EventPublisher(redis_client, keys, 100, 3600))
    engine.dispose()


def make_session(ctx: WorkerContext, agent_id: uuid.UUID = DEFAULT_AGENT_ID, status: str = "active",
                 double_texting: str = "enqueue") -> uuid.UUID:
    session_id, now = uuid.uuid4(), utcnow()
    with ctx.engine.begin() as conn:
        conn.execute(insert(sessions_table).values(
            id=session_id, agent_id=agent_id, user_id="unit-user", status=status, metadata={}, timeout_minutes=30,
            auto_renew=True, max_duration_minutes=720, warning_threshold_minutes=5, created_at=now,
            last_activity_at=now, expires_at=now + timedelta(minutes=30), state={}, agent_state={}, next_seq=0,
            event_seq=0, renewal_count=0, message_count=0, double_texting=double_texting))
    return session_id


def add_user_message(ctx: WorkerContext, session_id: uuid.UUID, content: str) -> uuid.UUID:
    message_id = uuid.uuid4()
    with ctx.engine.begin() as conn:
        session = conn.execute(select(sessions_table).where(sessions_table.c.id == session_id)).one()
        conn.execute(insert(messages_table).values(
            id=message_id, session_id=session_id, seq=session.next_seq + 1, role="user", author_id="unit-user",
            content=content, metadata={}, status="pending", created_at=utcnow(), attempts=0))
        conn.execute(sessions_table.update().where(sessions_table.c.id == session_id).values(
            next_seq=session.next_seq + 1, message_count=session.message_count + 1))
    return message_id


def make_agent(ctx: WorkerContext, provider: str, settings: dict[str, Any]) -> uuid.UUID:
    agent_id = uuid.uuid4()
    with ctx.engine.begin() as conn:
        conn.execute(insert(agents_table).values(id=agent_id, name=f"agent-{agent_id.hex[:8]}", provider=provider,
                                                 settings=settings, created_at=utcnow()))
    return agent_id


def messages_of(ctx: WorkerContext, session_id: uuid.UUID) -> list[Any]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(messages_table).where(messages_table.c.session_id == session_id)
                            .order_by(messages_table.c.seq)).all()


def events_of(ctx: WorkerContext, session_id: uuid.UUID) -> list[Any]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(events_table).where(events_table.c.session_id == session_id)
                            .order_by(events_table.c.seq)).all()


def test_pending_messages_are_answered_in_order(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    first = add_user_message(ctx, session_id, "I feel happy")
    second = add_user_message(ctx, session_id, "My mother called")

    assert process_session(ctx, session_id) == 2

    replies = [m for m in messages_of(ctx, session_id) if m.role == "agent"]
    assert [r.reply_to for r in replies] == [first, second]
    assert [r.seq for r in replies] == [3, 4]


def test_running_again_creates_no_second_reply(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    add_user_message(ctx, session_id, "Hello")
    process_session(ctx, session_id)

    assert process_session(ctx, session_id) == 0
    assert len(messages_of(ctx, session_id)) == 2


def test_reply_transaction_writes_state_counters_and_numbered_events(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    add_user_message(ctx, session_id, "Hi, my name is Alice")

    process_session(ctx, session_id)

    with ctx.engine.connect() as conn:
        session = conn.execute(select(sessions_table).where(sessions_table.c.id == session_id)).one()
    assert session.message_count == 2 and session.next_seq == 2
    assert session.state["preferences"]["name"] == "Alice"
    assert [(e.seq, e.type) for e in events_of(ctx, session_id)] == [(1, "message.completed"), (2, "state.updated")]
    assert session.event_seq == 2


def test_message_left_processing_by_a_dead_worker_is_answered_once(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    message_id = add_user_message(ctx, session_id, "I dream of the sea")
    with ctx.engine.begin() as conn:  # as a worker killed mid-message leaves it
        conn.execute(messages_table.update().where(messages_table.c.id == message_id).values(
            status="processing", attempts=1, lease_until=utcnow() + timedelta(minutes=5)))

    process_session(ctx, session_id)

    user, reply = messages_of(ctx, session_id)
    assert user.status == "completed" and user.attempts == 2
    assert reply.reply_to == message_id


def test_agent_that_cannot_run_fails_the_message_with_an_event(ctx: WorkerContext) -> None:
    broken = make_agent(ctx, "eliza", {"script": "no-such-script"})
    session_id = make_session(ctx, agent_id=broken)
    message_id = add_user_message(ctx, session_id, "Hello")

    process_session(ctx, session_id)

    [user] = messages_of(ctx, session_id)
    assert user.status == "failed" and "no-such-script" in user.error
    [event] = events_of(ctx, session_id)
    assert event.type == "message.failed" and event.data["messageId"] == str(message_id)


def test_messages_of_an_ended_session_are_failed_not_answered(ctx: WorkerContext) -> None:
    session_id = make_session(ctx, status="ended")
    add_user_message(ctx, session_id, "Hello?")

    process_session(ctx, session_id)

    [user] = messages_of(ctx, session_id)
    assert user.status == "failed" and events_of(ctx, session_id)[0].data["error"]["code"] == "SESSION_CLOSED"


def test_a_busy_session_is_left_to_its_lock_holder_with_a_rerun_mark(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    add_user_message(ctx, session_id, "Hello")
    holder = SessionLock(ctx.redis, ctx.keys.session_lock(session_id), 30)
    assert holder.acquire()

    assert process_session(ctx, session_id) == 0
    assert ctx.redis.exists(ctx.keys.session_rerun(session_id))

    holder.release()
    assert process_session(ctx, session_id) == 1


def test_redis_away_while_streaming_fails_nothing(ctx: WorkerContext) -> None:
    # Chunks are live-only and durable events are already in the database: a publish that cannot reach
    # Redis must not turn into an agent failure.
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    ctx = WorkerContext(settings=ctx.settings, engine=ctx.engine, redis=ctx.redis, keys=ctx.keys,
                        publisher=EventPublisher(unreachable, ctx.keys, 100, 3600))
    session_id = make_session(ctx)
    user_id = add_user_message(ctx, session_id, "I feel happy")

    process_session(ctx, session_id)

    user, reply = messages_of(ctx, session_id)
    assert user.status == "completed" and reply.reply_to == user_id
    assert [event.type for event in events_of(ctx, session_id)] == ["message.completed", "state.updated"]


def test_coalesce_answers_waiting_messages_as_one_turn(ctx: WorkerContext) -> None:
    session_id = make_session(ctx, double_texting="coalesce")
    ids = [add_user_message(ctx, session_id, text) for text in ("I feel sad", "because of my mother", "again")]

    process_session(ctx, session_id)

    *users, reply = messages_of(ctx, session_id)
    assert reply.role == "agent" and reply.reply_to == ids[-1]
    assert reply.metadata["coalesced"] == [str(ids[0]), str(ids[1])]
    assert [user.status for user in users] == ["completed"] * 3
    assert [user.metadata.get("coalescedInto") for user in users] == [str(ids[-1]), str(ids[-1]), None]
    completed = [event for event in events_of(ctx, session_id) if event.type == "message.completed"]
    assert len(completed) == 1 and completed[0].data["coalesced"] == [str(ids[0]), str(ids[1])]


def test_interrupt_answers_only_the_newest_waiting_message(ctx: WorkerContext) -> None:
    session_id = make_session(ctx, double_texting="interrupt")
    ids = [add_user_message(ctx, session_id, text) for text in ("I feel sad", "no wait", "I dream of the sea")]

    process_session(ctx, session_id)

    *users, reply = messages_of(ctx, session_id)
    assert reply.reply_to == ids[-1]
    assert [(user.status, user.metadata.get("errorCode")) for user in users] == [
        ("failed", "SUPERSEDED"), ("failed", "SUPERSEDED"), ("completed", None)]
    assert users[0].metadata["supersededBy"] == str(ids[-1])
    failed = [event.data for event in events_of(ctx, session_id) if event.type == "message.failed"]
    assert [data["messageId"] for data in failed] == [str(ids[0]), str(ids[1])]
    assert all(data["error"]["code"] == "SUPERSEDED" for data in failed)


def test_a_stopping_worker_claims_no_new_message(ctx: WorkerContext) -> None:
    session_id = make_session(ctx)
    add_user_message(ctx, session_id, "I feel happy")
    ctx.stopping.set()

    assert process_session(ctx, session_id) == 0

    assert [message.status for message in messages_of(ctx, session_id)] == ["pending"]
