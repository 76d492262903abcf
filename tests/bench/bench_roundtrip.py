"""Blocking reply round trip, echo agent, one client sending sequentially: queue vs inline baseline.

Run from the repository root: .venv/bin/python tests/bench/bench_roundtrip.py [--messages 300]
Both stacks run on the same scratch Postgres database and Redis, one after the other, in the same minute.
"""

from __future__ import annotations

import argparse
import time

import httpx
from common import print_table, scratch_postgres, stack, summary  # type: ignore[import-not-found]


def measure(base_url: str, messages: int, warmup: int) -> list[float]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        agent = http.post("/api/agents", json={"name": f"echo-{time.time_ns()}", "provider": "echo"}).json()["id"]
        session = http.post("/api/messaging/sessions", json={"agentId": agent, "userId": "bench"}).json()
        url = f"/api/messaging/sessions/{session['sessionId']}/messages"
        timings = []
        for n in range(warmup + messages):
            started = time.perf_counter()
            response = http.post(url, json={"content": f"message {n}"})
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 201, response.text
            if n >= warmup:
                timings.append(elapsed)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    results = {}
    with scratch_postgres() as database_url:
        with stack(database_url, "inline", PROCESSING="inline") as inline:
            results["inline (no queue)"] = summary(measure(inline.base_url, args.messages, args.warmup))
        with stack(database_url, "queue") as queued:
            results["queue (Celery, solo worker)"] = summary(measure(queued.base_url, args.messages, args.warmup))
    base = results["inline (no queue)"]
    print_table("Blocking round trip, echo agent, sequential client (ms)", ["path", "p50", "p99", "p50 / inline"],
                [[name, r["p50"], r["p99"], r["p50"] / base["p50"]] for name, r in results.items()])


if __name__ == "__main__":
    main()
