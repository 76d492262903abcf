"""Time GET /sessions/stats' query (`conversation_stats`) over many sessions, against a plain
`count(*)` with the same filters measured in the same run (the cost of reading the JSON state and grouping).

Run from the repository root, on a scratch database (it is migrated and filled):
    .venv/bin/python tests/bench/bench_stats.py                       # a temporary SQLite file
    .venv/bin/python tests/bench/bench_stats.py postgresql+psycopg://postgres@127.0.0.1:5432/scratch
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a plain script from anywhere

from sqlalchemy import func, insert, select

from core.analysis import analyze_exchange
from core.db import create_async_db_engine, create_sync_engine
from core.migrations import upgrade
from core.models import agents_table, sessions_table
from core.services.conversation import conversation_stats
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings

SESSIONS = 100_000
AGENTS = 10
DAYS = 30
REPEATS = 5
LINES = [
    "Hello!", "Hi, my name is Sam", "My app keeps crashing when I upload photos", "Is there a fix?", "ok",
    "This is ridiculous, I want a refund", "Thanks, that fixed it!", "I love the design but it is slow", "Bye!",
]
S = sessions_table.c
START = datetime(2025, 1, 1, tzinfo=UTC)


def sample_states(rng: random.Random, count: int = 300) -> list[dict]:
    states = [{}]  # sessions nobody has written in yet
    for _ in range(count):
        state, sent_at = None, START
        for _ in range(rng.randint(1, 8)):
            sent_at += timedelta(seconds=rng.randint(5, 300))
            state, _ = analyze_exchange(state, rng.choice(LINES), "Here is what you can try.", rng.random(), sent_at)
        states.append(state)
    return states


def fill(settings: Settings, rng: random.Random) -> list[uuid.UUID]:
    engine = create_sync_engine(settings)
    agents = [uuid.uuid4() for _ in range(AGENTS)]
    states = sample_states(rng)
    with engine.begin() as conn:
        conn.execute(insert(agents_table), [{"id": agent, "name": f"bench-{agent.hex[:8]}", "provider": "echo",
                                             "settings": {}, "created_at": START} for agent in agents])
        for offset in range(0, SESSIONS, 5000):
            rows = []
            for _ in range(min(5000, SESSIONS - offset)):
                created = START + timedelta(seconds=rng.randint(0, DAYS * 86400))
                rows.append({
                    "id": uuid.uuid4(), "agent_id": rng.choice(agents), "user_id": f"u{rng.randint(1, 5000)}",
                    "status": rng.choice(("active", "ended", "expired")), "metadata": {}, "timeout_minutes": 30,
                    "auto_renew": True, "max_duration_minutes": 720, "warning_threshold_minutes": 5,
                    "created_at": created, "last_activity_at": created, "expires_at": created + timedelta(hours=1),
                    "renewal_count": 0, "message_count": 0, "state": rng.choice(states), "agent_state": {},
                    "next_seq": 0, "event_seq": 0,
                })
            conn.execute(insert(sessions_table), rows)
    engine.dispose()
    return agents


def median_ms(timings: list[float]) -> float:
    return statistics.median(timings) * 1000


async def measure(settings: Settings, agents: list[uuid.UUID]) -> None:
    engine = create_async_db_engine(settings)
    now = START + timedelta(days=DAYS)
    week = (START + timedelta(days=7), START + timedelta(days=14))
    cases = {
        "all sessions": ({}, []),
        "one agent": ({"agent_id": agents[0]}, [S.agent_id == agents[0]]),
        "one agent, one week": ({"agent_id": agents[0], "created_from": week[0], "created_to": week[1]},
                                [S.agent_id == agents[0], S.created_at >= week[0], S.created_at < week[1]]),
    }
    print(f"{SESSIONS} sessions on {engine.dialect.name}, median of {REPEATS} in ms")
    for name, (filters, where) in cases.items():
        stats_s, count_s, total = [], [], 0
        for _ in range(REPEATS):
            uow = AsyncUnitOfWork(engine, publisher=None, tasks=None)  # type: ignore[arg-type]  # reads only
            started = time.perf_counter()
            stats = await conversation_stats(uow, now, **{"owner": None, "agent_id": None, "created_from": None,
                                                          "created_to": None, "status": None, **filters})
            stats_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            total = await uow.scalar(select(func.count()).select_from(sessions_table).where(*where))
            count_s.append(time.perf_counter() - started)
            await uow.rollback()
            assert stats.total == total
        ratio = statistics.median(stats_s) / statistics.median(count_s)
        print(f"{name:>20} ({total:>6} sessions): stats {median_ms(stats_s):8.1f}   "
              f"count(*) baseline {median_ms(count_s):7.1f}   ratio {ratio:.1f}")
    await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{scratch}/bench-stats.db"
        settings = Settings(database_url=url)
        upgrade(url)
        started = time.perf_counter()
        agents = fill(settings, random.Random(11))
        print(f"filled in {time.perf_counter() - started:.1f} s")
        asyncio.run(measure(settings, agents))


if __name__ == "__main__":
    main()
