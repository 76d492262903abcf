"""Shared pieces of the benchmark scripts: scratch databases, real processes, percentiles, tables.

Benchmarks print ratios against a baseline measured in the same run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a plain script from anywhere

import redis  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402

from core.db import create_sync_engine  # noqa: E402
from core.migrations import upgrade  # noqa: E402
from core.services.agents import ensure_default_agent  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.support.processes import Stack  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new, migrated Postgres database, dropped afterwards."""
    name = f"as_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = create_sync_engine(Settings(database_url=url))
        with engine.begin() as conn:
            ensure_default_agent(conn)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextlib.contextmanager
def stack(database_url: str, name: str, workers: int = 1, pool: str = "threads", concurrency: int = 4,
          **env: str) -> Iterator[Stack]:
    """An API process (+ `workers` worker processes unless PROCESSING=inline) in its own Redis namespace."""
    prefix = f"as-bench-{uuid.uuid4().hex[:8]}-{name}:"
    processes = Stack(env={"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
                           "CELERY_QUEUE": f"bench-{name}", "ENVIRONMENT": "bench", "ALLOW_UNAUTHENTICATED": "true",
                           "RATE_LIMIT_ENABLED": "false", **env},  # the load is ours: measure, do not throttle
                      log_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    try:
        if env.get("PROCESSING") != "inline":
            for _ in range(workers):
                processes.start_worker(concurrency=concurrency, pool=pool)
        processes.start_api()
        yield processes
    finally:
        processes.stop()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {"p50": percentile(values_ms, 50), "p99": percentile(values_ms, 99),
            "mean": statistics.fmean(values_ms) if values_ms else float("nan"), "n": len(values_ms)}


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
