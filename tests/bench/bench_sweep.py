"""Time the beat's expiry sweep with 10,000 due sessions among 100,000, then among 1,000,000 sessions.

The due sessions are found through the `(status, expires_at)` index, so the sweep should cost about the
same whatever the size of the table (goal: the two within 2x). Uses a scratch Postgres database (dropped at
the end) and a scratch Redis prefix on the local servers (BENCH_POSTGRES_URL, BENCH_REDIS_URL).

Run from the repository root: .venv/bin/python tests/bench/bench_sweep.py [--due N --small N --large N --runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import redis
from common import REDIS_URL, scratch_postgres  # type: ignore[import-not-found]
from sqlalchemy import Engine, text

from core.bus import EventPublisher, Keys
from core.clock import utcnow
from core.db import create_sync_engine
from core.models import DEFAULT_AGENT_ID
from core.settings import Settings
from core.sweeps import BeatContext, expire_due_sessions

# Every non-due session is either live with its expiry 10-30 minutes ahead, or closed long ago (the history a
# real table accumulates); the due ones expired within the last 10 minutes.
FILL = """
INSERT INTO sessions (id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew, max_duration_minutes,
    warning_threshold_minutes, created_at, last_activity_at, expires_at, renewal_count, warn_at, warned_at,
    ended_at, end_reason, message_count, state, agent_state, next_seq, event_seq)
SELECT gen_random_uuid(), :agent, CAST(:kind AS text) || '-' || n, status, '{}'::jsonb, 30, true, 720, 5,
    expires_at - interval '30 minutes', expires_at - interval '30 minutes', expires_at, 0,
    CASE WHEN status = 'active' AND :kind = 'live' THEN expires_at - interval '5 minutes' END,
    CASE WHEN :kind = 'due' THEN expires_at - interval '5 minutes' END,
    CASE WHEN status IN ('ended', 'expired') THEN expires_at END,
    CASE WHEN status IN ('ended', 'expired') THEN 'timeout' END,
    2, '{}'::jsonb, '{}'::jsonb, 2, 0
FROM (
    SELECT n,
        CASE WHEN :kind = 'due' THEN 'active' WHEN n % 10 < 3 THEN 'active' WHEN n % 10 < 6 THEN 'ended'
             ELSE 'expired' END AS status,
        CASE WHEN :kind = 'due' THEN :now - (n % 600) * interval '1 second'
             WHEN n % 10 < 3 THEN :now + interval '10 minutes' + (n % 1200) * interval '1 second'
             ELSE :now - interval '1 day' - (n % 86400) * interval '1 second' END AS expires_at
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
) AS rows
"""
RESET = """
UPDATE sessions SET status = 'active', ended_at = NULL, end_reason = NULL, event_seq = 0
WHERE user_id LIKE 'due-%'
"""


def fill(engine: Engine, kind: str, first: int, last: int) -> None:
    with engine.begin() as conn:
        conn.execute(text(FILL), {"agent": DEFAULT_AGENT_ID, "kind": kind, "first": first, "last": last,
                                  "now": utcnow()})


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE sessions"))
        conn.execute(text("VACUUM ANALYZE session_events"))


def reset(ctx: BeatContext) -> None:
    """Make the same 10,000 sessions due again, as if the last sweep had not happened."""
    with ctx.engine.begin() as conn:
        conn.execute(text(RESET))
        conn.execute(text("DELETE FROM session_events"))
    for key in ctx.redis.scan_iter(match=f"{ctx.keys.prefix}*", count=1000):
        ctx.redis.delete(key)
    vacuum(ctx.engine)


def time_sweeps(ctx: BeatContext, due: int, runs: int) -> tuple[float, list[float]]:
    timings = []
    for _ in range(runs):
        reset(ctx)
        started = time.perf_counter()
        expired = expire_due_sessions(ctx, utcnow(), ctx.settings.sweep_batch_size)
        timings.append(time.perf_counter() - started)
        assert expired == due, f"expected {due} expiries, got {expired}"
    return statistics.median(timings), timings


def plan(engine: Engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "EXPLAIN SELECT id FROM sessions WHERE status = 'active' AND expires_at <= now() "
            "ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED")).scalars().all()
    return "\n    ".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--due", type=int, default=10_000, help="due sessions")
    parser.add_argument("--small", type=int, default=100_000, help="sessions in the baseline table")
    parser.add_argument("--large", type=int, default=1_000_000, help="sessions in the large table")
    parser.add_argument("--runs", type=int, default=3, help="sweeps timed per size (median)")
    args = parser.parse_args()
    sizes = (args.small, args.large)
    prefix = f"as-bench-sweep-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    with scratch_postgres() as database_url:
        settings = Settings(_env_file=None, database_url=database_url, redis_url=REDIS_URL, redis_prefix=prefix)
        keys = Keys(settings.redis_prefix)
        engine = create_sync_engine(settings)
        ctx = BeatContext(settings=settings, engine=engine, redis=client, keys=keys,
                            publisher=EventPublisher(client, keys, settings.event_stream_maxlen,
                                                 settings.event_stream_ttl_seconds))
        results = {}
        try:
            fill(engine, "due", 1, args.due)
            filled = args.due
            for size in sizes:
                started = time.perf_counter()
                fill(engine, "live", filled + 1, size)
                filled = size
                print(f"filled to {size:,} sessions in {time.perf_counter() - started:.1f} s")
                results[size] = time_sweeps(ctx, args.due, args.runs)
                median, runs = results[size]
                print(f"  sweep expiring {args.due:,} due among {size:,}: median {median * 1000:.0f} ms "
                      f"(runs: {', '.join(f'{run * 1000:.0f}' for run in runs)} ms; "
                      f"{median / args.due * 1e6:.0f} us per session, batches of {settings.sweep_batch_size})")
            print(f"  plan of one batch:\n    {plan(engine)}")
        finally:
            engine.dispose()
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
            client.close()
    small, large = (results[size][0] for size in sizes)
    print(f"ratio {sizes[1]:,} / {sizes[0]:,} sessions: {large / small:.2f}x (goal: within 2x)")
    print("scratch database dropped")


if __name__ == "__main__":
    main()
