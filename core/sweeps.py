"""Periodic maintenance run by the beat: expire idle sessions, re-queue messages nobody is answering."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update

from core.bus import Event
from core.clock import utcnow
from core.models import events_table, messages_table, sessions_table
from core.processing import WorkerContext

S = sessions_table.c
M = messages_table.c


@dataclass(frozen=True)
class SweepResult:
    expired: int
    requeued: int


def sweep(ctx: WorkerContext, enqueue: Callable[[uuid.UUID], None], now: datetime | None = None,
          batch_size: int = 500) -> SweepResult:
    now = now or utcnow()
    return SweepResult(expired=expire_due_sessions(ctx, now, batch_size),
                       requeued=requeue_stuck_messages(ctx, enqueue, now, batch_size))


def expire_due_sessions(ctx: WorkerContext, now: datetime, batch_size: int) -> int:
    """Expire sessions past their deadline, a bounded batch at a time (the status/expires_at index)."""
    expired = 0
    while True:
        events = []
        with ctx.engine.begin() as conn:
            due = select(S.id, S.event_seq).where(S.status.in_(("active", "paused")), S.expires_at <= now) \
                .order_by(S.expires_at).limit(batch_size).with_for_update(skip_locked=True)
            rows = conn.execute(due).all()
            for row in rows:
                conn.execute(update(sessions_table).where(S.id == row.id).values(
                    status="expired", ended_at=now, end_reason="timeout", event_seq=row.event_seq + 1))
                events.append(Event(session_id=row.id, seq=row.event_seq + 1, type="session.expired", created_at=now,
                                    data={"sessionId": str(row.id), "reason": "timeout"}))
            if events:
                conn.execute(insert(events_table), [event.row() for event in events])
        ctx.publisher.publish(events)
        expired += len(rows)
        if len(rows) < batch_size:
            return expired


def requeue_stuck_messages(ctx: WorkerContext, enqueue: Callable[[uuid.UUID], None], now: datetime,
                           limit: int) -> int:
    """Ask for processing again where a task was lost (still `pending`) or a worker died (lease passed)."""
    pending_before = now - timedelta(seconds=ctx.settings.stuck_pending_seconds)
    with ctx.engine.connect() as conn:
        session_ids = conn.scalars(select(M.session_id).where(or_(
            (M.status == "pending") & (M.created_at < pending_before),
            (M.status == "processing") & (M.lease_until < now),
        )).distinct().limit(limit)).all()
    for session_id in session_ids:
        enqueue(session_id)
    return len(session_ids)
