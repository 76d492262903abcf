"""Publishing a runtime's events to Redis: in order, batched, durable ones never dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import redis.asyncio as aredis
import structlog
from redis.exceptions import RedisError

from core import metrics
from core.bus import Event, Keys, queue_publish

log = structlog.get_logger(__name__)
RETRY_MAX_SECONDS = 2.0
# Live chunks waiting while Redis is away are dropped past this many (they only matter while they are live).
MAX_WAITING_CHUNKS = 100_000


class OrderedPublisher:
    """One queue per process: whatever accumulated while the previous batch was on its way goes out as the
    next batch, in one pipeline. At low load an event leaves at once; under load one round trip carries the
    events of every turn of the process.

    Durable events are in the database already, but a blocking request waits for its `message.completed`:
    while Redis is away they are kept, in order, and sent again until they get through. Chunks are live-only
    and dropped then.
    """

    def __init__(self, client: aredis.Redis, keys: Keys, stream_maxlen: int, stream_ttl_seconds: int) -> None:
        self._redis = client
        self._keys = keys
        self._maxlen = stream_maxlen
        self._ttl = stream_ttl_seconds
        self._waiting: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._warned_at = 0.0
        self.failed_attempts = 0  # batches Redis refused (each is sent again, its durable events at least)

    def send(self, events: Sequence[Event]) -> None:
        """Queue events for publishing (returns at once)."""
        if not events:
            return
        self._waiting.extend(events)
        self._idle.clear()
        self._wake.set()

    async def publish(self, events: Sequence[Event]) -> None:
        """The unit of work's after-commit publishing: queued behind the chunks that preceded it."""
        self.send(events)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._deliver(batch)
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued event went out (or `timeout` passed); True when none is left."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    async def _deliver(self, batch: list[Event]) -> None:
        backoff = 0.05
        while batch:
            try:
                pipe = self._redis.pipeline(transaction=False)
                queue_publish(pipe, self._keys, self._maxlen, self._ttl, batch)
                # An XADD refused because a newer event got there first is fine: readers fall back to Postgres.
                await pipe.execute(raise_on_error=False)
                return
            except RedisError as exc:
                self.failed_attempts += 1
                metrics.PUBLISH_FAILURES.inc()
                batch = [event for event in batch if event.durable]
                if len(self._waiting) > MAX_WAITING_CHUNKS:
                    self._waiting = [event for event in self._waiting if event.durable]
                self._warn(exc, len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)

    def _warn(self, exc: Exception, durable: int) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 5:  # one line every few seconds while Redis is away, not one per batch
            self._warned_at = now
            log.warning("Redis refused events; retrying the durable ones, in order", error=str(exc),
                        durable_waiting=durable + sum(1 for event in self._waiting if event.durable))
