"""Periodic maintenance run by the beat: warn of and record expiries, re-queue unanswered messages, purge.

Every step works in bounded batches chosen through an index on what is due (`(status, warn_at)`,
`(status, expires_at)`, `(status, created_at)` of messages), so a sweep costs what is due, not the table.
One sweep acts at a time (a Redis lock with a lease); yet each step is also safe beside another sweep or
the workers: rows are claimed with `FOR UPDATE SKIP LOCKED` and changed only while still due, and a stuck
message is only handed back to the queue, never answered here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, select, update

from core.bus import Event
from core.clock import isoformat, utcnow
from core.locks import SessionLock
from core.models import events_table, messages_table, sessions_table
from core.processing import WorkerContext
from core.timeouts import LIVE_STATUSES, time_remaining_ms

S = sessions_table.c
M = messages_table.c
CLOSED_STATUSES = ("ended", "expired")


@dataclass(frozen=True)
class SweepResult:
    acted: bool  # False when another sweep held the lock
    warned: int = 0
    expired: int = 0
    requeued: int = 0
    purged: int = 0


def sweep(ctx: WorkerContext, enqueue: Callable[[uuid.UUID], None], now: datetime | None = None) -> SweepResult:
    lock = SessionLock(ctx.redis, ctx.keys.sweep_lock, ctx.settings.sweep_lock_seconds)
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


def _due(*conditions: object, order_by: object, batch_size: int) -> object:
    """Ids of a batch of due sessions, oldest first, locked; rows another transaction holds wait for the next sweep.

    Callers ask for one status at a time, so the index yields the batch in order and the scan stops there.
    """
    return select(S.id).where(*conditions).order_by(order_by).limit(batch_size) \
        .with_for_update(skip_locked=True).scalar_subquery()


def warn_expiring_sessions(ctx: WorkerContext, now: datetime, batch_size: int) -> int:
    """`session.expiring` once per expiry: the warning moment is cleared as it is sent, set again on renewal."""
    warned = 0
    for status in LIVE_STATUSES:
        while True:
            with ctx.engine.begin() as conn:
                due = _due(S.status == status, S.warn_at <= now, order_by=S.warn_at, batch_size=batch_size)
                still_live = S.expires_at > now  # past its expiry a session gets the expiry event instead
                rows = conn.execute(update(sessions_table).where(S.id.in_(due)).values(
                    warn_at=None, warned_at=case((still_live, now), else_=S.warned_at),
                    event_seq=case((still_live, S.event_seq + 1), else_=S.event_seq),
                ).returning(S.id, S.event_seq, S.expires_at, S.warning_threshold_minutes)).all()
                events = [Event(session_id=row.id, seq=row.event_seq, type="session.expiring", created_at=now, data={
                    "sessionId": str(row.id), "expiresAt": isoformat(row.expires_at),
                    "timeRemaining": time_remaining_ms(row.expires_at, now),
                    "warningThresholdMinutes": row.warning_threshold_minutes,
                }) for row in rows if row.expires_at > now]
                if events:
                    conn.execute(insert(events_table), [event.row() for event in events])
            ctx.publisher.publish(events)
            warned += len(events)
            if len(rows) < batch_size:
                break
    return warned


def expire_due_sessions(ctx: WorkerContext, now: datetime, batch_size: int) -> int:
    """Record the expiry of live sessions past their deadline (paused ones only reach it at max duration)."""
    expired = 0
    for status in LIVE_STATUSES:
        while True:
            with ctx.engine.begin() as conn:
                due = _due(S.status == status, S.expires_at <= now, order_by=S.expires_at, batch_size=batch_size)
                rows = conn.execute(update(sessions_table).where(S.id.in_(due)).values(
                    status="expired", ended_at=S.expires_at, end_reason="timeout", warn_at=None,
                    event_seq=S.event_seq + 1,
                ).returning(S.id, S.event_seq, S.expires_at)).all()
                events = [Event(session_id=row.id, seq=row.event_seq, type="session.expired", created_at=now,
                                data={"sessionId": str(row.id), "reason": "timeout",
                                      "expiredAt": isoformat(row.expires_at)}) for row in rows]
                if events:
                    conn.execute(insert(events_table), [event.row() for event in events])
            ctx.publisher.publish(events)
            expired += len(rows)
            if len(rows) < batch_size:
                break
    return expired


def requeue_stuck_messages(ctx: WorkerContext, enqueue: Callable[[uuid.UUID], None], now: datetime,
                           limit: int) -> int:
    """Ask for processing again where a task was lost (still `pending`) or a worker died (lease passed).

    A session handed back is not handed back again for `STUCK_PENDING_SECONDS`, so a busy queue does not
    fill with copies of the same task.
    """
    pending_before = now - timedelta(seconds=ctx.settings.stuck_pending_seconds)
    with ctx.engine.connect() as conn:
        lost = conn.scalars(select(M.session_id).where(M.status == "pending", M.created_at < pending_before)
                            .distinct().limit(limit)).all()
        orphaned = conn.scalars(select(M.session_id).where(M.status == "processing", M.lease_until < now)
                                .distinct().limit(limit)).all()
    requeued = 0
    quiet_ms = max(1, int(ctx.settings.stuck_pending_seconds * 1000))
    for session_id in dict.fromkeys([*orphaned, *lost]):
        if ctx.redis.set(ctx.keys.session_requeued(session_id), 1, nx=True, px=quiet_ms):
            enqueue(session_id)
            requeued += 1
    return requeued


def purge_closed_sessions(ctx: WorkerContext, now: datetime, batch_size: int) -> int:
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
                due = _due(S.status == status, S.expires_at < cutoff, S.ended_at < cutoff, order_by=S.expires_at,
                           batch_size=batch_size)
                ids = conn.scalars(delete(sessions_table).where(S.id.in_(due)).returning(S.id)).all()
            if ids:
                ctx.redis.delete(*(ctx.keys.stream(session_id) for session_id in ids))
            purged += len(ids)
            if len(ids) < batch_size:
                break
    return purged
