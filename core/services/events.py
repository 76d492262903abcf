"""Following a session's events from a cursor: missed durable events first, then live ones, in order, once.

The Redis Stream holds the newest durable events of a session; the database holds all of them. A
listener subscribes to the hub first, then catches up from the Stream, or from the database when the
Stream no longer reaches back to the cursor (trimmed, lost with Redis) or has a hole in the sequence.
Live durable events already delivered are dropped by their seq; a live event that skips ahead has the
skipped ones read from the database before it is delivered.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.bus import Event, EventHub, Keys, Subscription, decode_envelope, parse_event_id
from core.errors import InvalidEventId, SessionNotFound
from core.models import events_table, sessions_table

log = logging.getLogger(__name__)
E = events_table.c
PAGE_SIZE = 500  # durable events read per catch-up step, so a long replay never loads a whole history


def parse_last_event_id(raw: str | None) -> int | None:
    """The durable seq a client last saw (`<seq>-<n>` or `<seq>`), or None when it sent none."""
    if raw is None or not raw.strip():
        return None
    try:
        seq, chunk = parse_event_id(raw.strip())
    except ValueError:
        seq = chunk = -1
    if seq < 0 or chunk < 0:
        raise InvalidEventId("Last-Event-ID must be an event id this API sent, like 12-0", field="Last-Event-ID",
                           value=raw[:64])
    return seq


def is_contiguous(after: int, events: list[dict[str, Any]]) -> bool:
    """True when the events are exactly seq after+1, after+2, ... with no hole."""
    return all(parse_event_id(event["id"])[0] == after + offset for offset, event in enumerate(events, 1))


@dataclass(frozen=True)
class EventLog:
    """Reads a session's durable events: the Redis Stream when it has them, else the database."""

    redis: aredis.Redis
    keys: Keys
    engine: AsyncEngine

    async def head(self, session_id: uuid.UUID) -> int:
        """The seq of the session's newest durable event (0 before the first)."""
        async with self.engine.connect() as conn:
            seq = (await conn.execute(select(sessions_table.c.event_seq).where(
                sessions_table.c.id == session_id))).scalar()
        if seq is None:
            raise SessionNotFound(f"session {session_id} not found", sessionId=str(session_id))
        return int(seq)

    async def since(self, session_id: uuid.UUID, after: int, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """Up to `limit` durable events after seq `after`, oldest first."""
        cached = await self.from_stream(session_id, after, limit)
        if cached and is_contiguous(after, cached):
            return cached
        return await self.from_database(session_id, after, limit=limit)

    async def from_stream(self, session_id: uuid.UUID, after: int, limit: int) -> list[dict[str, Any]]:
        try:
            entries = await self.redis.xrange(self.keys.stream(session_id), min=f"({after}-0", max="+", count=limit)
        except RedisError as exc:  # Redis is a cache here: the database answers instead
            log.warning("reading the event stream of %s failed: %s", session_id, exc)
            return []
        return [decode_envelope(fields[b"e"]) for _, fields in entries or () if fields]

    async def from_database(self, session_id: uuid.UUID, after: int, *, upto: int | None = None,
                            limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        query = select(events_table).where(E.session_id == session_id, E.seq > after)
        if upto is not None:
            query = query.where(E.seq <= upto)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(E.seq).limit(limit))).all()
        return [Event(session_id=row.session_id, seq=row.seq, type=row.type, data=row.data,
                      created_at=row.created_at).envelope() for row in rows]


class SessionFeed:
    """One listener's events of one session after a cursor: durable events exactly once, in seq order,
    and live chunks as they come. Owns its hub subscription: `close()` it."""

    def __init__(self, log: EventLog, subscription: Subscription, after: int, *, catch_up: bool) -> None:
        self._log = log
        self._subscription = subscription
        self.session_id = uuid.UUID(subscription.session_id)
        self.last = after  # the newest durable seq delivered (or known to the listener)
        self._ready: deque[dict[str, Any]] = deque()
        self._behind = catch_up

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event to deliver; raises TimeoutError when no live event came within `timeout` seconds."""
        while not self._ready:
            if self._behind:
                page = await self._log.since(self.session_id, self.last)
                self._behind = len(page) == PAGE_SIZE
                self._accept(page)
                continue
            event = await self._subscription.next(timeout)
            if event is None:  # the hub may have dropped events while reconnecting
                self._behind = True
                continue
            seq, chunk = parse_event_id(event["id"])
            if chunk == 0 and seq <= self.last:
                continue  # delivered already (catch-up overlaps with live events)
            # A chunk follows durable event `seq`; a durable event follows `seq - 1`. Deliver those first.
            before = seq if chunk else seq - 1
            while before > self.last:
                filled = await self._log.from_database(self.session_id, self.last, upto=before)
                if not filled:
                    break
                self._accept(filled)
            self._ready.append(event)
            if chunk == 0:
                self.last = seq
        return self._ready.popleft()

    def _accept(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            seq = parse_event_id(event["id"])[0]
            if seq > self.last:
                self._ready.append(event)
                self.last = seq

    def close(self) -> None:
        self._subscription.close()


def concerns(event: dict[str, Any], user_message_id: str) -> bool:
    """Whether a session event belongs to the exchange started by this user message."""
    data = event["data"]
    if event["type"] == "message.created":
        return bool(data.get("message", {}).get("id") == user_message_id)
    # A coalesced turn's reply answers the whole burst: it names the earlier messages in `coalesced`.
    return user_message_id in (data.get("replyTo"), data.get("messageId")) or \
        user_message_id in data.get("coalesced", ())


class ExchangeFeed:
    """The events of one exchange (a user message and its reply) for a sender waiting on it.

    Its events come from one worker, in order, so unlike `SessionFeed` it needs no gap filling: it
    skips other exchanges' events and re-reads the log only when the hub may have lost events.
    Owns its hub subscription: `close()` it.
    """

    def __init__(self, log: EventLog, subscription: Subscription, user_message_id: uuid.UUID, after: int, *,
                 catch_up: bool) -> None:
        self._log = log
        self._subscription = subscription
        self.session_id = uuid.UUID(subscription.session_id)
        self._wanted = str(user_message_id)
        self._after = after  # re-reads start after this durable seq
        self._floor = after  # durable events up to here were delivered (or are not wanted)
        self._delivered: set[int] = set()
        self._ready: deque[dict[str, Any]] = deque()
        self._behind = catch_up

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The exchange's next event; raises TimeoutError when none came within `timeout` seconds.

        `timeout` is a deadline: the session's other events (another exchange, a heartbeat's renewal),
        skipped here, do not restart it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._behind:
                page = await self._log.since(self.session_id, self._after)
                self._behind = len(page) == PAGE_SIZE
                if page:
                    self._after = parse_event_id(page[-1]["id"])[0]
                for event in page:
                    self._offer(event)
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            arrived = await self._subscription.next(remaining)
            if arrived is None:
                self._behind = True
            else:
                self._offer(arrived)
        return self._ready.popleft()

    def _offer(self, event: dict[str, Any]) -> None:
        seq, chunk = parse_event_id(event["id"])
        if not concerns(event, self._wanted) or (chunk == 0 and (seq <= self._floor or seq in self._delivered)):
            return
        if chunk == 0:
            self._delivered.add(seq)
        self._ready.append(event)

    def close(self) -> None:
        self._subscription.close()


async def follow_session(log: EventLog, hub: EventHub, session_id: uuid.UUID, last_event_id: str | None) -> SessionFeed:
    """A feed of every event of the session after the client's Last-Event-ID (live only without one).

    Subscribes before reading anything, so an event published meanwhile is either read or heard.
    """
    after = parse_last_event_id(last_event_id)
    subscription = hub.listen(session_id)
    try:
        head = await log.head(session_id)
    except BaseException:
        subscription.close()
        raise
    if after is None or after >= head:  # nothing missed (an id from the future cannot be ahead of us)
        return SessionFeed(log, subscription, head, catch_up=False)
    return SessionFeed(log, subscription, after, catch_up=True)
