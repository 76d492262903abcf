"""The runtime's publisher against real Redis servers: in order, batched, durable events kept through an outage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

from core.bus import Event, Keys
from core.runtime.publisher import OrderedPublisher
from tests.reliability.servers import RedisServer
from tests.support.processes import wait_until


def events(session_id: uuid.UUID, *ids: str) -> list[Event]:
    """Durable events (`<seq>-0`) and chunks (`<seq>-<n>`) by their ids."""
    made = []
    for event_id in ids:
        seq, chunk = (int(part) for part in event_id.split("-"))
        made.append(Event(session_id=session_id, seq=seq, chunk=chunk, data={"n": event_id},
                          type="message.chunk" if chunk else "message.completed"))
    return made


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110  polls any condition, under the deadline above
            await asyncio.sleep(0.01)


def messages(listener: Any, count: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    def more() -> bool:
        message = listener.get_message(timeout=0.1)
        if message is not None:
            received.append(message)
        return len(received) >= count

    wait_until(more, 5, f"{count} messages")
    return received


def test_durable_events_sent_while_redis_is_away_arrive_in_order_once_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    keys, session_id = Keys("pub-test:"), uuid.uuid4()
    loop = asyncio.new_event_loop()
    client = aredis.Redis.from_url(server.url, socket_connect_timeout=0.2)
    publisher = OrderedPublisher(client, keys, 100, 3600)
    runner = loop.create_task(publisher.run())
    try:
        server.stop()
        publisher.send(events(session_id, "1-0", "1-1", "1-2", "2-0"))
        loop.run_until_complete(until(lambda: publisher.failed_attempts > 0))  # refused by the stopped server
        server.start()  # same port, empty

        assert loop.run_until_complete(publisher.drain(10))

        stream = redis.Redis.from_url(server.url).xrange(keys.stream(session_id))
        assert [entry_id for entry_id, _ in stream] == [b"1-0", b"2-0"]  # the chunks were dropped, not retried
    finally:
        runner.cancel()
        loop.run_until_complete(client.aclose())
        loop.close()
        server.stop()


def test_events_queued_together_go_out_in_one_batch_in_their_order(redis_url: str, redis_prefix: str) -> None:
    keys, session_id = Keys(f"{redis_prefix}pub:{uuid.uuid4().hex[:6]}:"), uuid.uuid4()
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.psubscribe(f"{keys.prefix}*")
    wait_until(lambda: listener.get_message(timeout=0.1) is not None, 5, "the subscription")

    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url)
        publisher = OrderedPublisher(client, keys, 100, 3600)
        task = asyncio.create_task(publisher.run())
        publisher.send(events(session_id, "3-0", "3-1"))
        publisher.send(events(session_id, "3-2", "4-0"))
        assert await publisher.drain(5)
        task.cancel()
        await client.aclose()

    asyncio.run(scenario())
    received = [message["channel"] for message in messages(listener, 4)]
    assert received == [keys.channel(session_id).encode(), keys.chunk_channel(session_id).encode(),
                        keys.chunk_channel(session_id).encode(), keys.channel(session_id).encode()]
    listener.close()
