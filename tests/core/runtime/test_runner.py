"""The turn runner, called directly (no Celery), over a real SQLite file and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import select

from core.clock import utcnow
from core.models import messages_table, sessions_table
from core.settings import Settings
from tests.support.processes import free_port, wait_until
from tests.support.runtime import InlineRuntime, add_user_message, events_of, make_agent, make_session, messages_of


def unit_settings(sqlite_url: str, redis_url: str, redis_prefix: str, **overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=sqlite_url, redis_url=redis_url,
                    redis_prefix=f"{redis_prefix}unit:{uuid.uuid4().hex[:6]}:", agent_retry_backoff_seconds=0,
                    **overrides)


@pytest.fixture()
def rt(sqlite_url: str, redis_url: str, redis_prefix: str) -> Iterator[InlineRuntime]:
    runtime = InlineRuntime(unit_settings(sqlite_url, redis_url, redis_prefix))
    yield runtime
    runtime.close()


def test_pending_messages_are_answered_in_order(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    first = add_user_message(rt.engine, session_id, "I feel happy")
    second = add_user_message(rt.engine, session_id, "My mother called")

    assert rt.answer(session_id) == 2

    replies = [m for m in messages_of(rt.engine, session_id) if m.role == "agent"]
    assert [r.reply_to for r in replies] == [first, second]
    assert [r.seq for r in replies] == [3, 4]


def test_running_again_creates_no_second_reply(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    add_user_message(rt.engine, session_id, "Hello")
    rt.answer(session_id)

    assert rt.answer(session_id) == 0
    assert len(messages_of(rt.engine, session_id)) == 2


def test_reply_transaction_writes_state_counters_and_numbered_events(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    add_user_message(rt.engine, session_id, "Hi, my name is Alice")

    rt.answer(session_id)

    with rt.engine.connect() as conn:
        session = conn.execute(select(sessions_table).where(sessions_table.c.id == session_id)).one()
    assert session.message_count == 2 and session.next_seq == 2
    assert session.state["preferences"]["name"] == "Alice"
    assert [(e.seq, e.type) for e in events_of(rt.engine, session_id)] == [(1, "message.completed"),
                                                                           (2, "state.updated")]
    assert session.event_seq == 2


def test_message_left_processing_by_a_dead_worker_is_answered_once(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    # As a worker killed mid-message leaves it once its lease ran out (no renewal since).
    message_id = add_user_message(rt.engine, session_id, "I dream of the sea", status="processing", attempts=1,
                                  lease_until=utcnow() - timedelta(seconds=1))

    rt.answer(session_id)

    user, reply = messages_of(rt.engine, session_id)
    assert user.status == "completed" and user.attempts == 2
    assert reply.reply_to == message_id


def test_a_turn_under_a_live_lease_is_left_to_its_worker_until_the_lease_runs_out(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    message_id = add_user_message(rt.engine, session_id, "Hello", status="processing", attempts=1,
                                  lease_until=utcnow() + timedelta(minutes=5))  # its worker is alive and renewing

    assert rt.answer(session_id) == 0

    with rt.engine.begin() as conn:  # ...until it stops renewing
        conn.execute(messages_table.update().where(messages_table.c.id == message_id).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    assert rt.answer(session_id) == 1


def test_agent_that_cannot_run_fails_the_message_with_an_event(rt: InlineRuntime) -> None:
    broken = make_agent(rt.engine, "eliza", {"script": "no-such-script"})
    session_id = make_session(rt.engine, agent_id=broken)
    message_id = add_user_message(rt.engine, session_id, "Hello")

    rt.answer(session_id)

    [user] = messages_of(rt.engine, session_id)
    assert user.status == "failed" and "no-such-script" in user.error
    [event] = events_of(rt.engine, session_id)
    assert event.type == "message.failed" and event.data["messageId"] == str(message_id)


def test_messages_of_an_ended_session_are_failed_not_answered(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine, status="ended")
    add_user_message(rt.engine, session_id, "Hello?")

    rt.answer(session_id)

    [user] = messages_of(rt.engine, session_id)
    assert user.status == "failed" and events_of(rt.engine, session_id)[0].data["error"]["code"] == "SESSION_CLOSED"


def test_redis_away_while_streaming_fails_nothing(sqlite_url: str, redis_url: str, redis_prefix: str) -> None:
    # Chunks are live-only and durable events are already in the database: a publish that cannot reach
    # Redis must not turn into an agent failure.
    unreachable = aredis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    runtime = InlineRuntime(unit_settings(sqlite_url, redis_url, redis_prefix), client=unreachable)
    try:
        session_id = make_session(runtime.engine)
        user_id = add_user_message(runtime.engine, session_id, "I feel happy")

        runtime.answer(session_id, drain_seconds=0.5)

        user, reply = messages_of(runtime.engine, session_id)
        assert user.status == "completed" and reply.reply_to == user_id
        assert [event.type for event in events_of(runtime.engine, session_id)] == ["message.completed",
                                                                                   "state.updated"]
    finally:
        runtime.close()


def test_coalesce_answers_waiting_messages_as_one_turn(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine, double_texting="coalesce")
    ids = [add_user_message(rt.engine, session_id, text) for text in ("I feel sad", "because of my mother", "again")]

    rt.answer(session_id)

    *users, reply = messages_of(rt.engine, session_id)
    assert reply.role == "agent" and reply.reply_to == ids[-1]
    assert reply.metadata["coalesced"] == [str(ids[0]), str(ids[1])]
    assert [user.status for user in users] == ["completed"] * 3
    assert [user.metadata.get("coalescedInto") for user in users] == [str(ids[-1]), str(ids[-1]), None]
    completed = [event for event in events_of(rt.engine, session_id) if event.type == "message.completed"]
    assert len(completed) == 1 and completed[0].data["coalesced"] == [str(ids[0]), str(ids[1])]


def test_interrupt_answers_only_the_newest_waiting_message(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine, double_texting="interrupt")
    ids = [add_user_message(rt.engine, session_id, text) for text in ("I feel sad", "no wait", "I dream of the sea")]

    rt.answer(session_id)

    *users, reply = messages_of(rt.engine, session_id)
    assert reply.reply_to == ids[-1]
    assert [(user.status, user.metadata.get("errorCode")) for user in users] == [
        ("failed", "SUPERSEDED"), ("failed", "SUPERSEDED"), ("completed", None)]
    assert users[0].metadata["supersededBy"] == str(ids[-1])
    failed = [event.data for event in events_of(rt.engine, session_id) if event.type == "message.failed"]
    assert [data["messageId"] for data in failed] == [str(ids[0]), str(ids[1])]
    assert all(data["error"]["code"] == "SUPERSEDED" for data in failed)


def test_a_stopping_worker_claims_no_new_message(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    add_user_message(rt.engine, session_id, "I feel happy")
    rt.runner.accepting = False

    assert rt.answer(session_id) == 0

    assert [message.status for message in messages_of(rt.engine, session_id)] == ["pending"]


def test_a_session_with_waiting_messages_yields_after_each_turn(rt: InlineRuntime) -> None:
    # Fairness: a turn answers one message and queues its session again, rather than draining it.
    session_id = make_session(rt.engine)
    for text in ("one", "two", "three"):
        add_user_message(rt.engine, session_id, text)

    assert rt.run(rt.runner.process(session_id))
    rt.run(rt.runner.idle())

    assert [m.status for m in messages_of(rt.engine, session_id) if m.role == "user"] == [
        "completed", "pending", "pending"]
    assert rt.queued == [session_id]


def test_the_last_turn_queues_nothing_more(rt: InlineRuntime) -> None:
    session_id = make_session(rt.engine)
    add_user_message(rt.engine, session_id, "one")
    add_user_message(rt.engine, session_id, "two")
    rt.answer(session_id)

    assert rt.queued == []  # the reply to "one" came after "two", yet nothing waits after "two"



def fast_recovery_settings(sqlite_url: str, redis_url: str, redis_prefix: str) -> Settings:
    return unit_settings(sqlite_url, redis_url, redis_prefix, message_lease_seconds=0.6,
                         recovery_interval_seconds=0.1)


def slow_echo(engine: Any) -> uuid.UUID:
    """An agent whose reply takes about a second (two chunks, a second apart): longer than the lease."""
    return make_agent(engine, "echo", {"chunkDelayMs": 1000})


def test_a_turn_whose_worker_died_is_queued_again_once_its_lease_lapses(sqlite_url: str, redis_url: str,
                                                                         redis_prefix: str) -> None:
    runtime = InlineRuntime(fast_recovery_settings(sqlite_url, redis_url, redis_prefix))
    try:
        session_id = make_session(runtime.engine)
        add_user_message(runtime.engine, session_id, "Hello", status="processing", attempts=1,
                         lease_until=utcnow() + timedelta(seconds=0.5))  # its worker was killed just now

        wait_until(lambda: session_id in runtime.queued, 10, "the recovery to queue the session")

        assert runtime.answer(session_id) == 1
        user, reply = messages_of(runtime.engine, session_id)
        assert (user.status, user.attempts, reply.reply_to) == ("completed", 2, user.id)
    finally:
        runtime.close()


def test_a_live_worker_keeps_its_slow_turn(sqlite_url: str, redis_url: str, redis_prefix: str) -> None:
    settings = fast_recovery_settings(sqlite_url, redis_url, redis_prefix)
    working, watching = InlineRuntime(settings), InlineRuntime(settings)  # two workers on one database
    try:
        session_id = make_session(working.engine, agent_id=slow_echo(working.engine))
        add_user_message(working.engine, session_id, "take your time")

        assert working.answer(session_id) == 1  # about a second: the lease was renewed, never lapsed

        assert session_id not in watching.queued
        [user, reply] = messages_of(working.engine, session_id)
        assert (user.status, user.attempts, reply.reply_to) == ("completed", 1, user.id)
    finally:
        working.close()
        watching.close()


def test_a_stopping_worker_hands_its_running_turns_back(sqlite_url: str, redis_url: str, redis_prefix: str) -> None:
    runtime = InlineRuntime(unit_settings(sqlite_url, redis_url, redis_prefix))
    try:
        session_id = make_session(runtime.engine, agent_id=slow_echo(runtime.engine))
        add_user_message(runtime.engine, session_id, "are you there?")
        assert runtime.run(runtime.runner.process(session_id))

        runtime.run(runtime.runner.stop(grace_seconds=0))

        [user] = messages_of(runtime.engine, session_id)
        assert (user.status, user.attempts, user.lease_until) == ("pending", 0, None)
        assert runtime.queued == [session_id]  # another worker is asked at once
    finally:
        runtime.close()


def test_a_turn_answered_by_another_delivery_stores_nothing_more(rt: InlineRuntime) -> None:
    # A worker thought dead (its lease lapsed) was only slow: the other delivery stored the reply first.
    session_id = make_session(rt.engine, agent_id=slow_echo(rt.engine))
    message_id = add_user_message(rt.engine, session_id, "Hello")
    assert rt.run(rt.runner.process(session_id))  # the slow one has claimed it (its reply takes a second)...
    with rt.engine.begin() as conn:  # ...when the other delivery's reply lands
        conn.execute(messages_table.insert().values(
            id=uuid.uuid5(message_id, "reply"), session_id=session_id, seq=2, role="agent", author_id="agent",
            content="the other delivery's reply", metadata={}, status="completed", reply_to=message_id,
            created_at=utcnow(), attempts=1))
        conn.execute(sessions_table.update().where(sessions_table.c.id == session_id).values(next_seq=2))

    rt.run(rt.runner.idle())

    assert [m.content for m in messages_of(rt.engine, session_id)][1:] == ["the other delivery's reply"]
    assert events_of(rt.engine, session_id) == []  # its events were rolled back with it
