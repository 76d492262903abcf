"""Coalescing streamed text into chunk events, published through the runtime's publisher to real Redis."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
import redis
import redis.asyncio as aredis

from core.bus import Keys
from core.runtime.chunks import ChunkCoalescer
from core.runtime.publisher import OrderedPublisher
from tests.support.processes import wait_until


def a_turn() -> Any:
    """What a chunk stream reads of its turn."""
    message_id = uuid.uuid4()
    return SimpleNamespace(session_id=uuid.uuid4(), event_seq=7, reply_id=uuid.uuid5(message_id, "reply"),
                           message=SimpleNamespace(id=message_id))


def chunks_heard(redis_url: str, keys: Keys, turn: Any, feed: Any) -> list[dict[str, Any]]:
    """Run `feed(stream)` on a fresh loop and return the chunk events published for the turn, in order."""
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.subscribe(keys.chunk_channel(turn.session_id))
    wait_until(lambda: listener.get_message(timeout=0.1) is not None, 5, "the subscription")

    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url)
        publisher = OrderedPublisher(client, keys, 100, 3600)
        coalescer = ChunkCoalescer(publisher, window_seconds=0.05, max_chars=20)
        tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(coalescer.run())]
        stream = coalescer.stream(turn)
        await feed(stream)
        stream.close()
        assert await publisher.drain(5)
        for task in tasks:
            task.cancel()
        await client.aclose()

    asyncio.run(scenario())
    heard: list[dict[str, Any]] = []

    def quiet() -> bool:
        message = listener.get_message(timeout=0.2)
        if message is None:
            return True
        heard.append(orjson.loads(message["data"]))
        return False

    wait_until(quiet, 10, "the chunks to stop coming")
    listener.close()
    return heard


def test_the_first_text_goes_at_once_and_the_rest_is_gathered_per_window(redis_url: str, redis_prefix: str) -> None:
    keys, turn = Keys(f"{redis_prefix}chunks:{uuid.uuid4().hex[:6]}:"), a_turn()

    async def tokens(stream: Any) -> None:
        for token in ("Hel", "lo", " the", "re"):  # all within one window: the first alone, the rest together
            stream.add(token)

    heard = chunks_heard(redis_url, keys, turn, tokens)

    assert [event["data"]["delta"] for event in heard] == ["Hel", "lo there"]
    assert [event["data"]["index"] for event in heard] == [1, 2]
    assert [event["id"] for event in heard] == ["7-1", "7-2"]
    assert all(event["data"]["messageId"] == str(turn.reply_id) for event in heard)


def test_text_past_the_size_limit_goes_without_waiting_for_the_window(redis_url: str, redis_prefix: str) -> None:
    keys, turn = Keys(f"{redis_prefix}chunks:{uuid.uuid4().hex[:6]}:"), a_turn()
    words = [f"word{n} " for n in range(12)]

    async def tokens(stream: Any) -> None:
        for word in words:
            stream.add(word)

    heard = chunks_heard(redis_url, keys, turn, tokens)

    deltas = [event["data"]["delta"] for event in heard]
    assert "".join(deltas) == "".join(words)  # nothing lost, nothing repeated, in order
    assert len(deltas) < len(words) and all(len(delta) <= 20 + len(words[-1]) for delta in deltas[1:])
    assert [event["data"]["index"] for event in heard] == list(range(1, len(heard) + 1))


def test_text_spread_over_windows_is_sent_once_per_window(redis_url: str, redis_prefix: str) -> None:
    keys, turn = Keys(f"{redis_prefix}chunks:{uuid.uuid4().hex[:6]}:"), a_turn()

    async def tokens(stream: Any) -> None:
        for n in range(30):  # 30 tokens 5 ms apart: about 150 ms, three 50 ms windows
            stream.add(f"t{n} ")
            await asyncio.sleep(0.005)

    heard = chunks_heard(redis_url, keys, turn, tokens)

    assert "".join(event["data"]["delta"] for event in heard) == "".join(f"t{n} " for n in range(30))
    assert 2 <= len(heard) <= 10  # one per window, give or take a scheduler's slack, not one per token
