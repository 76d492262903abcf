"""Redis commands and SQL work per message on the hot path (echo agent, blocking sends), queue vs inline.

Redis: every command that names this run's keys or channels, read with MONITOR. SQL: Postgres' own
statistics for the scratch database (transactions, index/sequential scans, rows inserted/updated).
Run: .venv/bin/python tests/bench/bench_calls.py [--messages 200]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter

import httpx
import redis
from common import REDIS_URL, print_table, scratch_postgres, stack  # type: ignore[import-not-found]
from sqlalchemy import create_engine, make_url, text

TABLE_STATS = ("SELECT coalesce(sum(idx_scan + seq_scan), 0), coalesce(sum(n_tup_ins), 0), "
               "coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables")
DB_STATS = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :name"


class RedisMonitor:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.commands: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        with client.monitor() as monitor:
            for entry in monitor.listen():
                if self._stop.is_set():
                    return
                if self.prefix in entry["command"]:
                    self.commands[entry["command"].split(" ", 1)[0].upper()] += 1

    def __enter__(self) -> RedisMonitor:
        self._thread.start()
        time.sleep(0.5)  # MONITOR must be attached before the measured traffic starts
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        redis.Redis.from_url(REDIS_URL).ping()  # wake the monitor so it sees the stop flag


def sql_counters(database_url: str) -> tuple[int, int, int, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        reads, inserts, updates = conn.execute(text(TABLE_STATS)).one()
        transactions = conn.execute(text(DB_STATS), {"name": make_url(database_url).database}).scalar()
    engine.dispose()
    return int(transactions), int(reads), int(inserts), int(updates)


def run(database_url: str, name: str, messages: int, **env: str) -> dict[str, float]:
    with stack(database_url, name, **env) as running, httpx.Client(base_url=running.base_url, timeout=30) as http:
        agent = http.post("/api/agents", json={"name": f"echo-{name}", "provider": "echo"}).json()["id"]
        sid = http.post("/api/messaging/sessions", json={"agentId": agent, "userId": "calls"}).json()["sessionId"]
        url = f"/api/messaging/sessions/{sid}/messages"
        http.post(url, json={"content": "warm-up"})
        time.sleep(1.5)  # let Postgres flush its statistics of the warm-up
        before = sql_counters(database_url)
        with RedisMonitor(running.env["REDIS_PREFIX"]) as monitor:
            for n in range(messages):
                assert http.post(url, json={"content": f"message {n}"}).status_code == 201
            time.sleep(1.5)
        after = sql_counters(database_url)
    per = [(a - b) / messages for a, b in zip(after, before, strict=True)]
    return {"redis": sum(monitor.commands.values()) / messages, "transactions": per[0], "reads": per[1],
            "inserts": per[2], "updates": per[3], "top": ", ".join(
                f"{cmd} {count / messages:.1f}" for cmd, count in monitor.commands.most_common(8))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with scratch_postgres() as database_url:
        rows = [[name, *run(database_url, name, args.messages, **env).values()]
                for name, env in (("queue", {}), ("inline", {"PROCESSING": "inline"}))]
    print_table("Calls per message (blocking send, echo agent)",
                ["path", "Redis cmds", "SQL xacts", "index/seq scans", "rows inserted", "rows updated",
                 "Redis commands by kind"], rows)


if __name__ == "__main__":
    main()
