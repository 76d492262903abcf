"""The beat's sweep over a real database (SQLite and Postgres) and real Redis, with the time given explicitly."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, insert, select

from core import timeouts
from core.bus import EventPublisher, Keys
from core.db import create_sync_engine
from core.models import DEFAULT_AGENT_ID, events_table, messages_table, sessions_table
from core.schemas import TimeoutConfig
from core.settings import Settings
from core.sweeps import BeatContext, sweep
from tests.support.databases import REDIS_URL, prepare, scratch_postgres

MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = sessions_table.c


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 run_id: str) -> Iterator[str]:
    """A database of this module's own: sweeps act on every row, so they must not see other tests' sessions."""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('sweeps')) / 'sweeps.db'}"
        prepare(url)
        yield url
    else:
        with scratch_postgres(f"as_test_{run_id}_sweeps") as url:
            yield url


@pytest.fixture()
def ctx(database_url: str, redis_prefix: str) -> Iterator[BeatContext]:
    settings = Settings(_env_file=None, database_url=database_url, redis_url=REDIS_URL, sweep_batch_size=2,
                        redis_prefix=f"{redis_prefix}sweeps:{uuid.uuid4().hex[:8]}:", stuck_pending_seconds=30,
                        retention_days=7)
    client = redis.Redis.from_url(REDIS_URL)
    keys = Keys(settings.redis_prefix)
    engine = create_sync_engine(settings)
    with engine.begin() as conn:  # each test starts from an empty table
        conn.execute(sessions_table.delete())
    yield BeatContext(settings=settings, engine=engine, redis=client, keys=keys,
                        publisher=EventPublisher(client, keys, settings.event_stream_maxlen,
                                                 settings.event_stream_ttl_seconds))
    engine.dispose()
    client.close()


def add_session(ctx: BeatContext, *, created: datetime = T0, status: str = "active", **config: Any) -> uuid.UUID:
    """A session as the API stores it at `created`: the full idle window ahead, its warning moment set."""
    cfg = TimeoutConfig(**{"timeout_minutes": 30, "auto_renew": True, "max_duration_minutes": 720,
                           "warning_threshold_minutes": 5, **config})
    expires_at = (timeouts.hard_deadline(created, cfg, MINUTE) if status == "paused"
                  else timeouts.renewed_expiry(created, created, cfg, MINUTE))
    session_id = uuid.uuid4()
    values = {"id": session_id, "agent_id": DEFAULT_AGENT_ID, "user_id": "sweeper", "status": status, "metadata": {},
              **cfg.model_dump(), "created_at": created, "last_activity_at": created, "renewal_count": 0,
              "message_count": 0, "state": {}, "agent_state": {}, "next_seq": 0, "event_seq": 0,
              **timeouts.expiry_values(expires_at, cfg, MINUTE)}
    if status in ("ended", "expired"):
        values.update(ended_at=created, warn_at=None)
    with ctx.engine.begin() as conn:
        conn.execute(insert(sessions_table).values(values))
    return session_id


def add_message(ctx: BeatContext, session_id: uuid.UUID, *, status: str, created: datetime,
                lease_until: datetime | None = None) -> None:
    with ctx.engine.begin() as conn:
        seq = conn.scalar(select(func.count()).where(messages_table.c.session_id == session_id)) + 1
        conn.execute(insert(messages_table).values(
            id=uuid.uuid4(), session_id=session_id, seq=seq, role="user", author_id="sweeper", content="hi",
            metadata={}, status=status, created_at=created, lease_until=lease_until, attempts=0))


def events_of(ctx: BeatContext, session_id: uuid.UUID) -> list[str]:
    with ctx.engine.connect() as conn:
        return list(conn.scalars(select(events_table.c.type).where(events_table.c.session_id == session_id)
                                 .order_by(events_table.c.seq)))


def status_of(ctx: BeatContext, session_id: uuid.UUID) -> str | None:
    with ctx.engine.connect() as conn:
        return conn.scalar(select(S.status).where(S.id == session_id))


def never_enqueue(session_id: uuid.UUID) -> None:
    raise AssertionError(f"nothing should be re-queued, got {session_id}")


def test_one_warning_then_one_expiry_whatever_the_number_of_sweeps(ctx: BeatContext) -> None:
    sid = add_session(ctx, timeout_minutes=30, warning_threshold_minutes=5)
    moments = [T0 + 24 * MINUTE, T0 + 25 * MINUTE, T0 + 26 * MINUTE, T0 + 29 * MINUTE, T0 + 30 * MINUTE,
               T0 + 31 * MINUTE]

    results = [sweep(ctx, never_enqueue, now=moment) for moment in moments]

    assert [(r.warned, r.expired) for r in results] == [(0, 0), (1, 0), (0, 0), (0, 0), (0, 1), (0, 0)]
    assert events_of(ctx, sid) == ["session.expiring", "session.expired"]
    stream = ctx.redis.xrange(ctx.keys.stream(sid))
    assert [entry_id for entry_id, _ in stream] == [b"1-0", b"2-0"]
    with ctx.engine.connect() as conn:
        row = conn.execute(select(sessions_table).where(S.id == sid)).one()
    assert (row.status, row.end_reason, row.ended_at, row.warn_at) == ("expired", "timeout", T0 + 30 * MINUTE, None)


def test_every_due_session_expires_in_batches_and_no_other(ctx: BeatContext) -> None:
    due = [add_session(ctx, created=T0 - n * MINUTE, timeout_minutes=10) for n in range(5)]
    later = add_session(ctx, created=T0 + 5 * MINUTE, timeout_minutes=10)

    result = sweep(ctx, never_enqueue, now=T0 + 10 * MINUTE)  # batches of 2

    assert result.expired == 5
    assert [status_of(ctx, sid) for sid in due] == ["expired"] * 5
    assert [events_of(ctx, sid)[-1] for sid in due] == ["session.expired"] * 5
    assert status_of(ctx, later) == "active"


def test_a_session_past_its_expiry_gets_no_late_warning(ctx: BeatContext) -> None:
    sid = add_session(ctx, timeout_minutes=10)

    sweep(ctx, never_enqueue, now=T0 + 11 * MINUTE)  # the beat was down through the warning window

    assert events_of(ctx, sid) == ["session.expired"]


def test_paused_session_outlives_its_idle_timeout_and_expires_at_max_duration(ctx: BeatContext) -> None:
    sid = add_session(ctx, status="paused", timeout_minutes=10, max_duration_minutes=60)

    idle_over = sweep(ctx, never_enqueue, now=T0 + 30 * MINUTE)
    at_max = sweep(ctx, never_enqueue, now=T0 + 60 * MINUTE)

    assert (idle_over.expired, at_max.expired) == (0, 1)
    assert events_of(ctx, sid) == ["session.expired"]
    assert status_of(ctx, sid) == "expired"


def test_a_session_a_worker_holds_is_left_for_the_next_sweep(ctx: BeatContext, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has no row locks: its writers take turns on the whole database")
    sid = add_session(ctx, timeout_minutes=10)

    with ctx.engine.connect() as worker, worker.begin():
        worker.execute(select(S.id).where(S.id == sid).with_for_update())  # as a worker storing a reply does
        during = sweep(ctx, never_enqueue, now=T0 + 11 * MINUTE)
    after = sweep(ctx, never_enqueue, now=T0 + 11 * MINUTE)

    assert (during.expired, after.expired) == (0, 1)
    assert events_of(ctx, sid) == ["session.expired"]


def test_stuck_messages_are_requeued_once_per_quiet_period(ctx: BeatContext) -> None:
    now = T0 + 10 * MINUTE
    lost = add_session(ctx)
    add_message(ctx, lost, status="pending", created=now - timedelta(seconds=31))
    orphaned = add_session(ctx)
    add_message(ctx, orphaned, status="processing", created=now - MINUTE, lease_until=now - timedelta(seconds=1))
    recent = add_session(ctx)
    add_message(ctx, recent, status="pending", created=now - timedelta(seconds=5))
    leased = add_session(ctx)
    add_message(ctx, leased, status="processing", created=now - MINUTE, lease_until=now + timedelta(seconds=30))
    answered = add_session(ctx)
    add_message(ctx, answered, status="completed", created=now - MINUTE)
    enqueued: list[uuid.UUID] = []

    first = sweep(ctx, enqueued.append, now=now)
    second = sweep(ctx, enqueued.append, now=now)

    assert sorted(enqueued) == sorted([lost, orphaned])
    assert (first.requeued, second.requeued) == (2, 0)


def test_retention_purges_old_closed_sessions_only(ctx: BeatContext) -> None:
    now = T0 + timedelta(days=30)
    old_ended = add_session(ctx, created=now - timedelta(days=10), status="ended", timeout_minutes=30)
    add_message(ctx, old_ended, status="completed", created=now - timedelta(days=10))
    recent_expired = add_session(ctx, created=now - timedelta(days=2), status="expired")
    old_live = add_session(ctx, created=now - timedelta(days=10), status="paused", max_duration_minutes=30 * 24 * 60)

    result = sweep(ctx, never_enqueue, now=now)

    assert result.purged == 1
    assert [status_of(ctx, sid) for sid in (old_ended, recent_expired, old_live)] == [None, "expired", "paused"]
    with ctx.engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(messages_table.c.session_id == old_ended)) == 0


def test_without_retention_nothing_is_purged(ctx: BeatContext) -> None:
    ctx.settings = ctx.settings.model_copy(update={"retention_days": None})
    old_ended = add_session(ctx, created=T0 - timedelta(days=400), status="ended")

    assert sweep(ctx, never_enqueue, now=T0).purged == 0
    assert status_of(ctx, old_ended) == "ended"


def test_two_concurrent_sweeps_only_one_acts(ctx: BeatContext) -> None:
    stuck = add_session(ctx)
    add_message(ctx, stuck, status="pending", created=T0 - MINUTE)
    inside = threading.Event()
    let_go = threading.Event()
    results: dict[str, Any] = {}

    def slow_enqueue(session_id: uuid.UUID) -> None:
        inside.set()  # the first sweep holds the lock here...
        assert let_go.wait(10)

    first = threading.Thread(target=lambda: results.update(first=sweep(ctx, slow_enqueue, now=T0)))
    first.start()
    assert inside.wait(10)
    results["second"] = sweep(ctx, never_enqueue, now=T0)  # ...while the second one runs
    let_go.set()
    first.join(10)

    assert (results["first"].acted, results["first"].requeued) == (True, 1)
    assert (results["second"].acted, results["second"].requeued) == (False, 0)
    assert sweep(ctx, never_enqueue, now=T0).acted  # the lock is free again afterwards
