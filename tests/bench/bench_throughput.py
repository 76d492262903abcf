"""Throughput at 16 and 64 concurrent sessions (messages/s, p99), echo agent: queue with 1 and 2 workers vs
the inline baseline, plus the load generator's own ceiling against a trivial HTTP server.

Run from the repository root: .venv/bin/python tests/bench/bench_throughput.py [--seconds 10]
The load generator runs in separate processes (asyncio + httpx), each session sending sequentially.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import psutil
from common import percentile, print_table, scratch_postgres, stack  # type: ignore[import-not-found]

CLIENT_PROCESSES = 2
Request = Callable[[str, int], dict[str, Any]]


def our_message(url: str, n: int) -> dict[str, Any]:
    """httpx request arguments for message `n` of one session; the peers' bench passes its own builder."""
    return {"url": url, "json": {"content": f"message {n}"}}


async def _drive(base_url: str, urls: list[str], seconds: float, request: Request) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=len(urls), max_keepalive_connections=len(urls))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        async def session_loop(url: str) -> None:
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                n += 1
                try:
                    response = await http.post(**request(url, n))
                except httpx.HTTPError:  # a failed request is not counted; it must not stop the run
                    continue
                if response.status_code in (200, 201):
                    latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.gather(*(session_loop(url) for url in urls))
    return latencies


def _client_process(base_url: str, urls: list[str], seconds: float, request: Request,
                    queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(asyncio.run(_drive(base_url, urls, seconds, request)))


def load(base_url: str, urls: list[str], seconds: float, request: Request = our_message) -> tuple[float, float, float]:
    """(messages/s, p50 ms, p99 ms) with the sessions spread over the client processes."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    shares = [urls[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    started = time.perf_counter()
    processes = [multiprocessing.Process(target=_client_process, args=(base_url, share, seconds, request, queue))
                 for share in shares if share]
    for process in processes:
        process.start()
    latencies = [value for _ in processes for value in queue.get(timeout=seconds + 120)]
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, percentile(latencies, 50), percentile(latencies, 99)


def sessions(base_url: str, count: int, chunk_delay_ms: int = 0) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        agent = http.post("/api/agents", json={"name": f"echo-{time.time_ns()}", "provider": "echo",
                                               "settings": {"chunkDelayMs": chunk_delay_ms}}).json()["id"]
        ids = [http.post("/api/messaging/sessions", json={"agentId": agent, "userId": f"bench-{n}"}).json()["sessionId"]
               for n in range(count)]
    return [f"/api/messaging/sessions/{sid}/messages" for sid in ids]


async def _trivial_server(port: int) -> None:
    body = b'{"ok":true}'
    response = (b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                await reader.readexactly(length)
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def client_ceiling(concurrency: int, seconds: float) -> float:
    from tests.support.processes import free_port, wait_until

    port = free_port()
    server = multiprocessing.Process(target=lambda: asyncio.run(_trivial_server(port)), daemon=True)
    server.start()
    wait_until(lambda: _answers(port), 10, "the trivial server")
    try:
        rate, _, _ = load(f"http://127.0.0.1:{port}", [f"/s{n}" for n in range(concurrency)], seconds)
    finally:
        server.terminate()
    return rate


def _answers(port: int) -> bool:
    try:
        httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def cpu_seconds_by_role(services: list[Any]) -> Counter[str]:
    """CPU seconds used so far by the stack's API and worker processes and by the Postgres and Redis servers.

    Exited processes count through their parent's children times: Postgres backends of connections a pool
    closed during the run are in the postmaster's."""
    used: Counter[str] = Counter()

    def add(role: str, times: Any) -> None:
        used[role] += times.user + times.system + times.children_user + times.children_system

    for service in services:
        with contextlib.suppress(psutil.Error):
            add(service.name, psutil.Process(service.process.pid).cpu_times())
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        role = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis-server") else None
        if role and process.info["cpu_times"]:
            add(role, process.info["cpu_times"])
    return used


def cpu_busy_percent(before: psutil._common.scputimes, after: psutil._common.scputimes) -> float:
    total = sum(after) - sum(before)
    return 100 * (1 - (after.idle - before.idle) / total) if total else float("nan")


ROLES = ("api", "worker", "postgres", "redis")
CPU_COLUMN = "CPU ms per message: API / worker / Postgres / Redis"
CONFIGS = [("inline (no queue)", {"PROCESSING": "inline"}, 0), ("queue, 1 worker", {}, 1), ("queue, 2 workers", {}, 2)]


def measure(database_url: str, concurrency: int, seconds: float, chunk_delay_ms: int = 0) -> list[list[object]]:
    """One row per setup: sessions, setup, msg/s, p50, p99, ratio to the first setup (inline), CPU busy %."""
    rows: list[list[object]] = []
    baseline = None
    for name, env, workers in CONFIGS:
        with stack(database_url, f"tp{concurrency}-{workers}-{chunk_delay_ms}", workers=workers, **env) as running:
            urls = sessions(running.base_url, concurrency, chunk_delay_ms)
            load(running.base_url, urls, 2)  # warm-up
            cpu_before, used_before, started = psutil.cpu_times(), cpu_seconds_by_role(running.services), \
                time.perf_counter()
            rate, p50, p99 = load(running.base_url, urls, seconds)
            messages = rate * (time.perf_counter() - started)
            cpu = cpu_busy_percent(cpu_before, psutil.cpu_times())
            used = cpu_seconds_by_role(running.services) - used_before
        baseline = baseline or rate
        per_message = " / ".join(f"{1000 * used[role] / messages:.1f}" for role in ROLES) if messages else "-"
        rows.append([concurrency, name, rate, p50, p99, rate / baseline, cpu, per_message])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[16, 64])
    parser.add_argument("--waiting-agent-ms", type=int, default=50,
                        help="also measure an echo agent pausing this long before each of its 2 chunks, at the "
                             "largest concurrency: an agent that waits (like a model) rather than uses our CPU; "
                             "0 to skip")
    args = parser.parse_args()
    rows = []
    with scratch_postgres() as database_url:
        for concurrency in args.concurrency:
            rows += measure(database_url, concurrency, args.seconds)
            rows.append([concurrency, "load generator ceiling", client_ceiling(concurrency, args.seconds / 2),
                         float("nan"), float("nan"), float("nan"), float("nan"), "-"])
        print_table(f"Throughput, echo agent, {os.cpu_count()} cores, {args.seconds:.0f} s per cell",
                    ["sessions", "setup", "msg/s", "p50 ms", "p99 ms", "vs inline", "CPU busy %", CPU_COLUMN], rows)
        if args.waiting_agent_ms:
            concurrency = max(args.concurrency)
            waiting = measure(database_url, concurrency, args.seconds, args.waiting_agent_ms)
            one_worker = waiting[1][2]
            print_table(f"Throughput, echo agent waiting {args.waiting_agent_ms} ms before each chunk, "
                        f"{concurrency} sessions, worker pool threads -c 4",
                        ["sessions", "setup", "msg/s", "p50 ms", "p99 ms", "vs inline", "CPU busy %", CPU_COLUMN,
                         "vs 1 worker"], [[*row, row[2] / one_worker] for row in waiting])


if __name__ == "__main__":
    main()
