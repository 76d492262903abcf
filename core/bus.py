"""Session events: envelopes, Redis key names, publishing (sync and async) and the API's fan-out hub.

Durable events are rows of `session_events`, numbered per session without gaps and committed with the
change they describe; after commit they are added to the session's capped Redis Stream (id `<seq>-0`)
and published on its channel. Text chunks are live-only: published with id `<seq>-<n>` (n >= 1), where
`seq` is the last durable event before them, and never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
import redis
import redis.asyncio as aredis

from core.clock import isoformat, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Keys:
    """Every Redis key and channel name, under one prefix."""

    prefix: str

    def stream(self, session_id: uuid.UUID | str) -> str:
        return f"{self.prefix}stream:{session_id}"

    def channel(self, session_id: uuid.UUID | str) -> str:
        """Where a session's durable events are published."""
        return f"{self.prefix}ev:{session_id}"

    def chunk_channel(self, session_id: uuid.UUID | str) -> str:
        """Where a session's streamed chunks are published: apart, so a process with nobody streaming that
        session drops them unread."""
        return f"{self.prefix}ck:{session_id}"

    @property
    def channel_pattern(self) -> str:
        return f"{self.prefix}ev:*"

    @property
    def chunk_channel_pattern(self) -> str:
        return f"{self.prefix}ck:*"

    def rate_limit(self, bucket: str, ident: uuid.UUID | str) -> str:
        return f"{self.prefix}rl:{bucket}:{ident}"

    @property
    def sweep_lock(self) -> str:
        return f"{self.prefix}lock:sweep"

    def session_requeued(self, session_id: uuid.UUID | str) -> str:
        return f"{self.prefix}requeued:{session_id}"

    def agent_breaker(self, agent_id: uuid.UUID | str) -> str:
        return f"{self.prefix}breaker:{agent_id}"

    def agent_breaker_probe(self, agent_id: uuid.UUID | str) -> str:
        return f"{self.prefix}breaker-probe:{agent_id}"

    def task_queue(self, queue: str) -> str:
        return f"{self.prefix}{queue}"


@dataclass(frozen=True)
class Event:
    session_id: uuid.UUID
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)
    chunk: int = 0  # 0 for durable events, 1.. for the live chunks that follow event `seq`

    @property
    def id(self) -> str:
        return f"{self.seq}-{self.chunk}"

    def envelope(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "sessionId": str(self.session_id), "data": self.data,
                "createdAt": isoformat(self.created_at)}

    def encode(self) -> bytes:
        return orjson.dumps(self.envelope())

    @property
    def durable(self) -> bool:
        return self.chunk == 0

    def row(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "seq": self.seq, "type": self.type, "data": self.data,
                "created_at": self.created_at}


def decode_envelope(raw: bytes | str) -> dict[str, Any]:
    envelope: dict[str, Any] = orjson.loads(raw)
    return envelope


def parse_event_id(event_id: str) -> tuple[int, int]:
    seq, _, chunk = event_id.partition("-")
    return int(seq), int(chunk or 0)


class EventPublisher:
    """Synchronous publishing, for workers and the beat."""

    def __init__(self, client: redis.Redis, keys: Keys, stream_maxlen: int, stream_ttl_seconds: int) -> None:
        self._redis = client
        self._keys = keys
        self._maxlen = stream_maxlen
        self._ttl = stream_ttl_seconds

    def publish(self, events: Iterable[Event]) -> None:
        """Best effort: durable events are already in Postgres (readers catch up from there) and chunks are
        live-only, so Redis being away must not fail the work that produced them."""
        pipe = self._redis.pipeline(transaction=False)
        queue_publish(pipe, self._keys, self._maxlen, self._ttl, events)
        try:
            # An XADD refused because a newer event got there first is fine: readers fall back to Postgres.
            pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            log.warning("could not publish events: %s", exc)


class AsyncEventPublisher:
    """The same, on the API's event loop."""

    def __init__(self, client: aredis.Redis, keys: Keys, stream_maxlen: int, stream_ttl_seconds: int) -> None:
        self._redis = client
        self._keys = keys
        self._maxlen = stream_maxlen
        self._ttl = stream_ttl_seconds

    async def publish(self, events: Iterable[Event]) -> None:
        events = list(events)

        async def send() -> None:
            pipe = self._redis.pipeline(transaction=False)
            queue_publish(pipe, self._keys, self._maxlen, self._ttl, events)
            await pipe.execute(raise_on_error=False)

        await on_a_live_connection(self._redis, send)


def redis_client(url: str, *, max_connections: int, pool_wait_seconds: float,
                 client_name: str | None = None) -> aredis.Redis:
    """The asyncio Redis client of an API process or a worker: a bounded pool whose callers wait up to
    `pool_wait_seconds` for a connection.

    No socket timeout: with one, redis-py 8 writes every command under `asyncio.wait_for`, and on Python 3.11
    `wait_for` drops a cancellation that arrives as the write completes (180-249 of 400 in
    tests/core/test_bus.py): a superseded generation, a closed stream's bridge or a shutdown would go on.
    Callers that must not wait long bound their command with `asyncio.timeout`; redis-py's default TCP
    keepalive (on since 8.0) closes an idle connection to a Redis that vanished.
    """
    pool = aredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_wait_seconds, health_check_interval=30,
        client_name=client_name, socket_timeout=None)
    return aredis.Redis.from_pool(pool)


async def on_a_live_connection(client: aredis.Redis, command: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis command, once more on a fresh connection if the pooled one was dead.

    After a Redis restart every idle pooled connection is dead, and redis-py finds out only by using it
    ("Connection closed by server"). A dead socket means the command never reached the new server, so
    trying again is safe; the pool's other idle connections are dropped too, so the next callers do not
    each pay one failure.
    """
    try:
        return await command()
    except redis.ConnectionError:
        with contextlib.suppress(redis.RedisError, OSError):
            await client.connection_pool.disconnect(inuse_connections=False)
        return await command()


def queue_publish(pipe: Any, keys: Keys, maxlen: int, ttl: int, events: Iterable[Event]) -> None:
    streams: set[str] = set()
    for event in events:
        payload = event.encode()
        if event.durable:
            stream = keys.stream(event.session_id)
            pipe.xadd(stream, {"e": payload}, id=event.id, maxlen=maxlen, approximate=True)
            streams.add(stream)
        pipe.publish(keys.channel(event.session_id) if event.durable else keys.chunk_channel(event.session_id),
                     payload)
    for stream in streams:  # idle sessions' Streams go away; a reader past them falls back to the database
        pipe.expire(stream, ttl)


class Subscription:
    """One listener's view of a session's live events, fed by the hub (chunks only if it asked for them)."""

    def __init__(self, hub: EventHub, session_id: str, chunks: bool) -> None:
        self._hub = hub
        self.session_id = session_id
        self.chunks = chunks
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next live event, or None when the hub may have lost events (re-read them from the log).

        Raises TimeoutError when nothing came within `timeout` seconds.
        """
        if not self.queue.empty():
            return self.queue.get_nowait()
        if timeout is None:
            return await self.queue.get()
        async with asyncio.timeout(timeout):  # unlike wait_for (Python 3.11), no task per call
            return await self.queue.get()

    def close(self) -> None:
        self._hub._remove(self)


class EventHub:
    """One pattern subscription per API process, fanned out to every local listener.

    Thousands of waiting requests and streams share this one Redis connection. When the connection
    drops, listeners get a `None` so they can re-read what they may have missed from the database.
    """

    def __init__(self, client: aredis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._listeners: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.connected = False
        self._durable_prefix = keys.channel_pattern[:-1]
        self._chunk_prefix = keys.chunk_channel_pattern[:-1]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        # Wait for the first subscription so no event published after start-up is missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def listen(self, session_id: uuid.UUID | str, *, chunks: bool = True) -> Subscription:
        """Start hearing a session's events at once; the caller must `close()` the subscription. Without
        `chunks`, only its durable events (a blocking request waits for the reply, not for its text)."""
        subscription = Subscription(self, str(session_id), chunks)
        self._listeners[subscription.session_id].add(subscription)
        return subscription

    @property
    def listener_count(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    def _remove(self, subscription: Subscription) -> None:
        group = self._listeners.get(subscription.session_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._listeners[subscription.session_id]

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        name = channel.decode()
        chunk = name.startswith(self._chunk_prefix)
        group = self._listeners.get(name[len(self._chunk_prefix if chunk else self._durable_prefix):])
        if not group:
            return
        listeners = [subscription for subscription in group if subscription.chunks] if chunk else group
        if not listeners:
            return  # nobody here streams this session's text: not even decoded
        event = decode_envelope(payload)
        for subscription in listeners:
            subscription.queue.put_nowait(event)

    def _signal_gap(self) -> None:
        for group in self._listeners.values():
            for subscription in group:
                subscription.queue.put_nowait(None)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._keys.channel_pattern, self._keys.chunk_channel_pattern)
                if self.connected is False and self._ready.is_set():
                    self._signal_gap()  # events may have been published while we were away
                self.connected = True
                self._ready.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: tell listeners, then reconnect
                log.warning("event hub lost its Redis subscription: %s", exc)
                self.connected = False
                self._ready.set()
                self._signal_gap()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
