"""Catching up on a session's events: Redis Stream first, the database past its window, then live, once each.

Real Redis (a run-private key prefix) and a real SQLite database; no HTTP.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update

from core.errors import InvalidEventId, SessionNotFound
from core.models import events_table
from core.services.events import SessionFeed, follow_session, is_contiguous, parse_last_event_id
from tests.support.events import World, run

WAIT = 5.0  # seconds a test waits for an expected event before failing


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


async def drain(feed: SessionFeed, count: int) -> list[dict[str, Any]]:
    return [await feed.next(WAIT) for _ in range(count)]


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("7-0", 7), ("7", 7), ("7-3", 7)])
def test_last_event_id_names_a_durable_seq(raw: str | None, expected: int | None) -> None:
    assert parse_last_event_id(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "-1", "3-x", "1-2-3"])
def test_malformed_last_event_id_is_refused(raw: str) -> None:
    with pytest.raises(InvalidEventId):
        parse_last_event_id(raw)


def test_contiguity_means_no_hole_from_the_cursor() -> None:
    events = [{"id": f"{seq}-0"} for seq in (4, 5, 6)]
    assert is_contiguous(3, events)
    assert not is_contiguous(2, events)
    assert not is_contiguous(3, [events[0], events[2]])


def test_catch_up_reads_the_stream_when_it_reaches_back(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        await w.store(sid, 1, 2, 3, 4)
        # Change the database copy: what comes back shows which source answered.
        async with w.engine.begin() as conn:
            await conn.execute(update(events_table).where(events_table.c.session_id == sid).values(data={"db": 1}))

        caught_up = await w.log.since(sid, 1)

        assert ids(caught_up) == ["2-0", "3-0", "4-0"]
        assert [event["data"] for event in caught_up] == [{"n": 2}, {"n": 3}, {"n": 4}]

    run(sqlite_url, redis_prefix, scenario)


def test_stream_of_an_idle_session_expires(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        await w.store(sid, 1)

        assert 0 < await w.redis.ttl(w.keys.stream(sid)) <= 3600

    run(sqlite_url, redis_prefix, scenario)


@pytest.mark.parametrize("damage", ["trimmed", "deleted", "hole"])
def test_catch_up_falls_back_to_the_database(sqlite_url: str, redis_prefix: str, damage: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        await w.store(sid, 1, 2, 3, 4, 5)
        stream = w.keys.stream(sid)
        if damage == "trimmed":
            await w.redis.xtrim(stream, maxlen=2)
        elif damage == "deleted":
            await w.redis.delete(stream)
        else:
            await w.redis.xdel(stream, "3-0")

        caught_up = await w.log.since(sid, 1)

        assert ids(caught_up) == ["2-0", "3-0", "4-0", "5-0"]

    run(sqlite_url, redis_prefix, scenario)


def test_feed_delivers_missed_then_live_events_once_in_order(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        await w.store(sid, 1, 2, 3)
        feed = await follow_session(w.log, w.hub, sid, "1-0")
        try:
            first = await drain(feed, 2)
            stored = await w.store(sid, 4)
            await w.publisher.publish(stored)  # delivered twice by the bus: a duplicate to drop
            await w.store(sid, 5)

            assert ids(first + await drain(feed, 2)) == ["2-0", "3-0", "4-0", "5-0"]
        finally:
            feed.close()
        assert w.hub.listener_count == 0

    run(sqlite_url, redis_prefix, scenario)


def test_feed_fills_a_gap_in_live_events_from_the_database(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        feed = await follow_session(w.log, w.hub, sid, None)
        try:
            await w.store(sid, 1, publish=False)  # committed, its publication not (yet) heard
            await w.store(sid, 2)

            assert ids(await drain(feed, 2)) == ["1-0", "2-0"]
        finally:
            feed.close()

    run(sqlite_url, redis_prefix, scenario)


def test_chunk_comes_after_the_durable_event_it_follows(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        feed = await follow_session(w.log, w.hub, sid, None)
        try:
            await w.store(sid, 1, publish=False)  # e.g. the API has not published `message.created` yet
            await w.publish_chunk(sid, after_seq=1, index=1)

            events = await drain(feed, 2)

            assert ids(events) == ["1-0", "1-1"]
            assert feed.last == 1
        finally:
            feed.close()

    run(sqlite_url, redis_prefix, scenario)


def test_feed_rereads_the_log_when_the_hub_lost_events(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        feed = await follow_session(w.log, w.hub, sid, None)
        try:
            await w.store(sid, 1, 2, publish=False)
            w.hub._signal_gap()  # what the hub does after its Redis connection came back

            assert ids(await drain(feed, 2)) == ["1-0", "2-0"]
        finally:
            feed.close()

    run(sqlite_url, redis_prefix, scenario)


def test_cursor_ahead_of_the_session_follows_from_its_newest_event(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        sid = await w.new_session()
        await w.store(sid, 1, 2)
        feed = await follow_session(w.log, w.hub, sid, "99-0")
        try:
            await w.store(sid, 3)
            assert ids(await drain(feed, 1)) == ["3-0"]
        finally:
            feed.close()

    run(sqlite_url, redis_prefix, scenario)


def test_following_an_unknown_session_is_refused_and_leaves_no_listener(sqlite_url: str, redis_prefix: str) -> None:
    async def scenario(w: World) -> None:
        with pytest.raises(SessionNotFound):
            await follow_session(w.log, w.hub, uuid.uuid4(), None)
        assert w.hub.listener_count == 0

    run(sqlite_url, redis_prefix, scenario)
