"""Fan-out of one session event to many /events streams, against one stream, on a real API + worker.

Starts its own API and worker (SQLite in a temporary directory, the local Redis under a private prefix),
opens N streams on one session, sends a message and times until every stream has its `message.created`.
Prints the median over rounds and the ratio to N = 1, plus the API's Redis connections.

Run from the repository root: .venv/bin/python tests/bench/bench_fanout.py [N ...]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a plain script from anywhere

import httpx  # noqa: E402
import redis  # noqa: E402

from api.resources import redis_client_name  # noqa: E402
from core.db import create_sync_engine  # noqa: E402
from core.migrations import upgrade  # noqa: E402
from core.models import DEFAULT_AGENT_ID  # noqa: E402
from core.services.agents import ensure_default_agent  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.support.processes import Stack  # noqa: E402

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SESSIONS = "/api/messaging/sessions"
ROUNDS = 5


async def created_seen(lines: AsyncIterator[str], message_id: str) -> None:
    async for line in lines:
        if line.startswith("data:") and '"message.created"' in line and message_id in line:
            return


async def fan_out(base_url: str, streams: int) -> list[float]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        created = await http.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": "bench"})
        sid = created.json()["sessionId"]
        responses = await asyncio.gather(*(http.send(http.build_request("GET", f"{SESSIONS}/{sid}/events"),
                                                     stream=True) for _ in range(streams)))
        lines = [response.aiter_lines() for response in responses]  # one reader per stream, kept across rounds
        timings = []
        try:
            for n in range(ROUNDS):
                started = time.perf_counter()
                sent = await http.post(f"{SESSIONS}/{sid}/messages", json={"content": f"round {n}",
                                                                            "transport": "websocket"})
                message_id = sent.json()["userMessage"]["id"]
                await asyncio.gather(*(created_seen(reader, message_id) for reader in lines))
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            await asyncio.gather(*(r.aclose() for r in responses))
        return timings


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [1, 100, 500]
    prefix = f"as-bench-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    with tempfile.TemporaryDirectory() as scratch:
        database_url = f"sqlite:///{scratch}/bench.db"
        upgrade(database_url)
        engine = create_sync_engine(Settings(database_url=database_url))
        with engine.begin() as conn:
            ensure_default_agent(conn)
        engine.dispose()
        stack = Stack(env={"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix,
                           "CELERY_QUEUE": f"{prefix}q", "ENVIRONMENT": "bench"}, log_dir=Path(scratch))
        try:
            stack.start_worker()
            api = stack.start_api()
            baseline = None
            for streams in [1, *[c for c in counts if c != 1]]:
                median = statistics.median(asyncio.run(fan_out(stack.base_url, streams)))
                baseline = baseline or median
                connections = sum(1 for c in client.client_list()
                                  if c.get("name") == redis_client_name(api.process.pid))
                print(f"{streams:5d} streams: send -> all got message.created {median:7.1f} ms median "
                      f"({median / baseline:5.1f}x one stream); API Redis connections: {connections}")
        finally:
            stack.stop()
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)


if __name__ == "__main__":
    main()
