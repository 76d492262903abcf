"""Periodic maintenance run by the beat: warn of and record expiries, re-queue unanswered messages, purge.

Every step works in bounded batches chosen through an index on what is due (`(status, warn_at)`,
`(status, expires_at)`, `(status, created_at)` of messages), so a sweep costs what is due, not the table.
One sweep acts at a time (a Redis lock with a lease); yet each step is also safe beside another sweep or
the workers: rows are claimed with `FOR UPDATE SKIP LOCKED` and changed only while still due, and a stuck
message is only handed back to the queue, never answered here. Workers recover a dead worker's turn within
seconds themselves (`core/runtime`); the sweep's re-queue is the backstop for tasks lost on the way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import Engine, delete, select

from core.bus import EventPublisher, Keys
from core.clock import isoformat, utcnow
from core.db import create_sync_engine
from core.locks import LeaseLock
from core.models import messages_table, sessions_table
from core.sessions import statements as sql
from core.sessions.status import CLOSED_STATUSES, LIVE_STATUSES, MessageStatus, SessionStatusName
from core.sessions.uow import UnitOfWork
from core.settings import Settings
from core.timeouts import time_remaining_ms

S = sessions_table.c
M = messages_table.c


@dataclass
class BeatContext:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    keys: Keys
    publisher: EventPublisher


def build_beat_context(settings: Settings) -> BeatContext:
    """Connections for the sweep (pools are created lazily, on first use)."""
    client = redis.Redis.from_url(settings.redis_url or "", health_check_interval=30)
    keys = Keys(settings.redis_prefix)
    return BeatContext(settings=settings, engine=create_sync_engine(settings), redis=client, keys=keys,
                       publisher=EventPublisher(client, keys, settings.event_stream_maxlen,
                                                settings.event_stream_ttl_seconds))


@dataclass(frozen=True)
class SweepResult:
    acted: bool  # False when another sweep held the lock
    warned: int = 0
    expired: int = 0
    requeued: int = 0
    purged: int = 0


def sweep(ctx: BeatContext, enqueue: Callable[[uuid.UUID], object], now: datetime | None = None) -> SweepResult:
    lock = LeaseLock(ctx.redis, ctx.keys.sweep_lock, ctx.settings.sweep_lock_seconds)
    if not lock.acquire():
        return SweepResult(acted=False)
    try:
        now = now or utcnow()
        batch = ctx.settings.sweep_batch_size
        return SweepResult(acted=True, warned=warn_expiring_sessions(ctx, now, batch),
                           expired=expire_due_sessions(ctx, now, batch),
                           requeued=requeue_stuck_messages(ctx, enqueue, now, batch),
                           purged=purge_closed_sessions(ctx, now, batch))
    finally:
        lock.release()


def _unit_of_work(ctx: BeatContext) -> UnitOfWork:
    def no_task(session_id: uuid.UUID) -> None:
        raise AssertionError("lifecycle changes ask no worker")

    return UnitOfWork(ctx.engine, ctx.publisher, no_task)


def warn_expiring_sessions(ctx: BeatContext, now: datetime, batch_size: int) -> int:
    """`session.expiring` once per expiry: the warning moment is cleared as it is sent, set again on renewal."""
    warned = 0
    for status in LIVE_STATUSES:
        while True:
            with _unit_of_work(ctx) as uow:
                due = sql.due_sessions(S.status == status, S.warn_at <= now, order_by=S.warn_at,
                                       batch_size=batch_size)
                still_live = S.expires_at > now  # past its expiry a session gets the expiry event instead
                rows = uow.update_due_sessions(
                    due, {"warn_at": None}, "session.expiring", lambda row: {
                        "sessionId": str(row.id), "expiresAt": isoformat(row.expires_at),
                        "timeRemaining": time_remaining_ms(row.expires_at, now),
                        "warningThresholdMinutes": row.warning_threshold_minutes,
                    }, at=now, announce=still_live, stamp={"warned_at": now})
            warned += sum(1 for row in rows if row.announced)
            if len(rows) < batch_size:
                break
    return warned


def expire_due_sessions(ctx: BeatContext, now: datetime, batch_size: int) -> int:
    """Record the expiry of live sessions past their deadline (paused ones only reach it at max duration)."""
    expired = 0
    for status in LIVE_STATUSES:
        while True:
            with _unit_of_work(ctx) as uow:
                due = sql.due_sessions(S.status == status, S.expires_at <= now, order_by=S.expires_at,
                                       batch_size=batch_size)
                rows = uow.update_due_sessions(
                    due, {"status": SessionStatusName.EXPIRED.value, "ended_at": S.expires_at,
                          "end_reason": "timeout", "warn_at": None}, "session.expired", lambda row: {
                        "sessionId": str(row.id), "reason": "timeout", "expiredAt": isoformat(row.expires_at),
                    }, at=now)
            expired += len(rows)
            if len(rows) < batch_size:
                break
    return expired


def requeue_stuck_messages(ctx: BeatContext, enqueue: Callable[[uuid.UUID], object], now: datetime,
                           limit: int) -> int:
    """Ask for processing again where a task was lost (still `pending`) or a worker died (lease passed).

    A session handed back is not handed back again for `STUCK_PENDING_SECONDS`, so a busy queue does not
    fill with copies of the same task.
    """
    pending_before = now - timedelta(seconds=ctx.settings.stuck_pending_seconds)
    with ctx.engine.connect() as conn:
        lost = conn.scalars(select(M.session_id).where(sql.message_is(MessageStatus.PENDING),
                                                       M.created_at < pending_before).distinct().limit(limit)).all()
        orphaned = conn.scalars(sql.ORPHANED_SESSIONS, {"now": now, "limit": limit}).all()
    requeued = 0
    quiet_ms = max(1, int(ctx.settings.stuck_pending_seconds * 1000))
    for session_id in dict.fromkeys([*orphaned, *lost]):
        if ctx.redis.set(ctx.keys.session_requeued(session_id), 1, nx=True, px=quiet_ms):
            enqueue(session_id)
            requeued += 1
    return requeued


def purge_closed_sessions(ctx: BeatContext, now: datetime, batch_size: int) -> int:
    """Delete sessions closed more than `RETENTION_DAYS` ago, with their messages and events (off by default).

    Selected through the expiry index: a session ended early goes once its planned expiry is old too.
    """
    if ctx.settings.retention_days is None:
        return 0
    cutoff = now - timedelta(days=ctx.settings.retention_days)
    purged = 0
    for status in CLOSED_STATUSES:
        while True:
            with ctx.engine.begin() as conn:
                due = sql.due_sessions(S.status == status, S.expires_at < cutoff, S.ended_at < cutoff,
                                       order_by=S.expires_at, batch_size=batch_size)
                ids = conn.scalars(delete(sessions_table).where(S.id.in_(due)).returning(S.id)).all()
            if ids:
                ctx.redis.delete(*(ctx.keys.stream(session_id) for session_id in ids))
            purged += len(ids)
            if len(ids) < batch_size:
                break
    return purged
