"""Live events on one API process: SSE chunk latency, and one broadcast reaching many /events streams.

Starts one API process and one Celery worker (common.stack: a scratch Postgres database, the local Redis under
a private prefix, rate limits off) and measures, in the same run:

1. Chunk latency. One client follows a session's `/events` stream while `--messages` messages go to the echo
   agent one after another (transport "websocket": the POST returns at once; 2 text chunks per reply), then the
   same number are sent with transport "sse" (the reply streams back on the POST, its chunks as ElizaOS's
   `chunk` events). For every chunk:
   the delay from the moment it was published to the moment the client read it.
2. Broadcast. `--subscribers` streams on ONE session's `/events`, all held by the one API process, opened by
   `--client-procs` client processes (raw asyncio sockets and a minimal HTTP/SSE parser, so the client is not
   the bottleneck). `--rounds` rounds of one message each (transport "websocket"), after one warm-up round;
   for every subscriber and round, the delay from the publication of `message.created` to that subscriber
   reading it. The next round starts once every subscriber has the reply's last event (`state.updated`).
   Baseline, in the same run: the same with 1 subscriber.
3. The API process's resident memory (RSS) and its Redis connections with 0, 1 and N subscribers.
4. The client's own ceiling: the same client processes and N streams against a trivial asyncio server that
   writes one prebuilt event to every stream (delay from the server's first write to each read).

Start points. An event envelope's `createdAt` has millisecond precision (core.clock.isoformat, truncated), and
for `message.created` it is the message's creation time in the API, before the database commit. So the main
start point is a tap: a separate process subscribed to the same Redis channels as the API's event hub, which
notes (time.time(), sub-millisecond) when Redis delivered each PUBLISH; Redis delivers it to the tap and to the
API in the same instant. Delays from `createdAt` (includes the commit for message.created; +0 to 1 ms of
truncation) and, for broadcasts, from just before the POST are printed too. Every process is on this machine,
so all clocks are the same clock.

Run from the repository root:
    .venv/bin/python tests/bench/bench_fanout.py [--subscribers 1000 --rounds 10 --messages 200]
    .venv/bin/python tests/bench/bench_fanout.py --profile /tmp/api.txt   # + py-spy of the API during the rounds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import redis
from common import REDIS_URL, percentile, print_table, scratch_postgres, stack  # type: ignore[import-not-found]

from api.resources import redis_client_name  # importable once common has put the repository root on sys.path

SESSIONS = "/api/messaging/sessions"
WATCHED = {"message.created", "message.chunk", "message.completed", "state.updated"}
NOTIFIED = {"message.created", "state.updated"}  # a client process says when all its streams have one
WAIT_SECONDS = 120.0
MB = 1_000_000
GOAL_P99_MS = 50.0
GOAL_RSS_MB = 150.0
GOAL_REDIS_CONNECTIONS = 5  # "a handful"


# --- the client side: a minimal HTTP/1.1 + chunked + SSE parser, used by the client processes and the POSTs ---

class SSEParser:
    """Feed it a response's bytes; it returns the complete server-sent events as (type, data) pairs."""

    def __init__(self) -> None:
        self._head = bytearray()
        self.status = 0
        self.headers_done = False
        self._chunked = False
        self._raw = bytearray()  # body bytes not de-chunked yet
        self._need = -1  # -1: reading a chunk-size line; -2: the CRLF after a chunk; > 0: chunk bytes left
        self._text = bytearray()  # de-chunked SSE text not split into lines yet
        self._lines: list[bytes] = []  # lines of the event being read
        self.ended = False

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        if not self.headers_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return []
            head = bytes(self._head[:end]).split(b"\r\n")
            data = bytes(self._head[end + 4:])
            self._head.clear()
            self.status = int(head[0].split()[1])
            self._chunked = any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
                                for line in head[1:])
            self.headers_done = True
        if self._chunked:
            self._dechunk(data)
        else:
            self._text += data
        return self._events()

    def _dechunk(self, data: bytes) -> None:
        buf = self._raw
        buf += data
        pos = 0
        while not self.ended:
            if self._need == -1:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                pos = eol + 2
                if size == 0:
                    self.ended = True
                else:
                    self._need = size
            elif self._need == -2:
                if len(buf) - pos < 2:
                    break
                pos += 2
                self._need = -1
            else:
                take = min(self._need, len(buf) - pos)
                if take == 0:
                    break
                self._text += buf[pos:pos + take]
                pos += take
                self._need -= take
                if self._need == 0:
                    self._need = -2
        del buf[:pos]

    def _events(self) -> list[tuple[str, bytes]]:
        events = []
        text = self._text
        pos = 0
        while (eol := text.find(b"\n", pos)) >= 0:
            line = bytes(text[pos:eol]).rstrip(b"\r")
            pos = eol + 1
            if line:
                self._lines.append(line)
                continue
            kind, data = "message", []
            for field in self._lines:
                if field.startswith(b"event:"):
                    kind = field[6:].strip().decode()
                elif field.startswith(b"data:"):
                    data.append(field[5:].removeprefix(b" "))
            self._lines = []
            if data:  # comments (keep-alive pings) carry none
                events.append((kind, b"\n".join(data)))
        del text[:pos]
        return events


Record = tuple[int, float, str, str, str | None, str | None]  # stream, read at, type, event id, message id, createdAt


def record_of(stream: int, received: float, kind: str, data: bytes) -> Record:
    envelope = orjson.loads(data)
    key = envelope["data"].get("message", {}).get("id") if kind == "message.created" else None
    return stream, received, kind, envelope.get("id"), key, envelope.get("createdAt")


class ClientProcess:
    """The state of one client process: its streams, what they read, and the pipe to the coordinator."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.records: list[Record] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.open = 0
        self.lost = 0
        self.handler_seconds = 0.0  # CPU time spent in data_received (parsing, recording, notices)
        self.reads = 0

    def on_events(self, stream: int, received: float, events: list[tuple[str, bytes]]) -> None:
        for kind, data in events:
            if kind not in WATCHED:
                continue
            record = record_of(stream, received, kind, data)
            self.records.append(record)
            if kind in NOTIFIED:
                self.counts[(kind, record[3])] += 1
                if self.counts[(kind, record[3])] == self.open:
                    self.pipe.send(("all", kind, record[3], record[4]))


class Stream(asyncio.Protocol):
    def __init__(self, owner: ClientProcess, index: int, request: bytes) -> None:
        self.owner = owner
        self.index = index
        self.request = request
        self.parser = SSEParser()
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  (uvloop's transports are not asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        received = time.time()
        cpu = time.thread_time()
        events = self.parser.feed(data)
        if events:
            self.owner.on_events(self.index, received, events)
        if self.parser.headers_done and not self.ready.done():
            self.ready.set_result(self.parser.status)
        self.owner.reads += 1
        self.owner.handler_seconds += time.thread_time() - cpu

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"stream {self.index} closed before its headers: {exc}"))


def run_loop(main: Callable[[], Any]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # forked from the coordinator, which turns it into an exit
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def client_main(pipe: Connection, port: int, path: str, count: int, first_index: int, batch: int) -> None:
    """A client process: open `count` streams (`batch` at a time), say ready, then record until told to stop."""
    owner = ClientProcess(pipe)
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
               "Cache-Control: no-cache\r\n\r\n").encode()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        streams: list[Stream] = []
        done = loop.create_future()

        async def open_one(index: int) -> None:
            _, stream = await loop.create_connection(lambda: Stream(owner, index, request), "127.0.0.1", port)
            streams.append(stream)
            status = await asyncio.wait_for(stream.ready, 60)
            if status != 200:
                raise ConnectionError(f"stream {index}: HTTP {status}")

        try:
            for start in range(0, count, batch):
                await asyncio.gather(*(open_one(first_index + i) for i in range(start, min(count, start + batch))))
        except OSError as exc:  # refused, reset, timed out, or not HTTP 200 (ConnectionError)
            pipe.send(("failed", repr(exc)))
            return
        owner.open = len(streams)
        started_cpu = time.process_time()

        def on_command() -> None:
            command = pipe.recv()
            if command == "dump":
                pipe.send(("dump", owner.records, {"cpu": time.process_time() - started_cpu, "lost": owner.lost,
                                                   "handler": owner.handler_seconds, "reads": owner.reads}))
                owner.records = []
            elif command == "stop" and not done.done():
                done.set_result(None)

        loop.add_reader(pipe.fileno(), on_command)
        os.set_blocking(pipe.fileno(), True)  # uvloop made it non-blocking: a large send would stop half-way
        pipe.send(("ready", len(streams)))
        await done
        loop.remove_reader(pipe.fileno())
        for stream in streams:
            if stream.transport is not None:
                stream.transport.close()

    run_loop(main)


class ClientPool:
    """`count` streams on `path`, spread over `procs` client processes (forked; they inherit the fd limit)."""

    def __init__(self, port: int, path: str, count: int, procs: int, batch: int = 50) -> None:
        procs = max(1, min(procs, count))
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.processes = []
        self.notices: list[list[tuple[Any, ...]]] = []
        share, extra = divmod(count, procs)
        first = 0
        for n in range(procs):
            size = share + (1 if n < extra else 0)
            ours, theirs = context.Pipe()
            process = context.Process(target=client_main, args=(theirs, port, path, size, first, batch), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
            self.notices.append([])
            first += size
        self.opened = 0
        for pipe in self.pipes:
            message = self._recv(pipe, 180)
            if message[0] != "ready":
                self.close()
                raise RuntimeError(f"a client process could not open its streams: {message}")
            self.opened += message[1]

    @staticmethod
    def _recv(pipe: Connection, timeout: float) -> tuple[Any, ...]:
        if not pipe.poll(timeout):
            raise TimeoutError(f"no word from a client process in {timeout} s")
        return pipe.recv()

    def wait_all(self, kind: str, key: str | None = None, timeout: float = WAIT_SECONDS) -> str:
        """Wait until every stream of every process has read an event of this type (and message id, if given).

        Returns the event id. Notices that do not match are dropped (they belong to an earlier exchange)."""
        deadline = time.monotonic() + timeout
        event_id = ""
        for index, pipe in enumerate(self.pipes):
            while True:
                found = next((n for n in self.notices[index] if n[1] == kind and (key is None or n[3] == key)), None)
                if found is not None:
                    self.notices[index] = self.notices[index][self.notices[index].index(found) + 1:]
                    event_id = found[2]
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not wait_connections([pipe], remaining):
                    raise TimeoutError(f"not every stream read {kind} {key or ''} within {timeout} s")
                self.notices[index].append(pipe.recv())
        return event_id

    def dump(self) -> tuple[list[Record], list[dict[str, float]]]:
        records: list[Record] = []
        stats = []
        for pipe in self.pipes:
            pipe.send("dump")
            while (message := self._recv(pipe, 60))[0] != "dump":
                pass  # a late notice
            records.extend(message[1])
            stats.append(message[2])
        return records, stats

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # the process is gone already
                pipe.send("stop")
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


# --- the tap: when Redis delivered each PUBLISH on the event channels ---

def tap_main(pipe: Connection, redis_url: str, pattern: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.psubscribe(pattern)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # subscribed once Redis confirms it
        message = pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "psubscribe":
            pipe.send("ready")
            break
    heard: list[tuple[float, bytes]] = []
    while True:
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "pmessage":
            heard.append((time.time(), message["data"]))
        if pipe.poll():
            command = pipe.recv()
            if command == "stop":
                break
            published = {}
            for at, payload in heard:
                envelope = orjson.loads(payload)
                published[(envelope["sessionId"], envelope["id"])] = at
                if envelope["type"] == "message.chunk":  # the SSE reply names a chunk by message and index
                    data = envelope["data"]
                    published[(envelope["sessionId"], f"chunk {data['messageId']} {data['index']}")] = at
                    published[(envelope["sessionId"], f"chunk {data['messageId']} {data['index']} createdAt")] = \
                        created_at(envelope["createdAt"])
            pipe.send(published)
            heard = []
    pubsub.close()
    client.close()


class Tap:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.pipe, theirs = multiprocessing.get_context("fork").Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=tap_main, args=(theirs, redis_url, f"{prefix}ev:*"), daemon=True)
        self.process.start()
        theirs.close()
        if not self.pipe.poll(30) or self.pipe.recv() != "ready":
            raise RuntimeError("the Redis tap did not subscribe")
        self.published: dict[tuple[str, str], float] = {}

    def collect(self) -> dict[tuple[str, str], float]:
        """Every (session id, event id) heard so far, with the moment Redis delivered it."""
        self.pipe.send("collect")
        self.published.update(self.pipe.recv())
        return self.published

    def close(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)


# --- the trivial server for the client's ceiling ---

def trivial_server_main(pipe: Connection, frame_size: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transports: list[Any] = []
        done = loop.create_future()

        class TrivialStream(asyncio.Protocol):
            """Answers any request with the headers of an endless chunked event stream."""

            def __init__(self) -> None:
                self.head: bytes | None = b""
                self.transport: Any = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if self.head is None:
                    return
                self.head += data
                if b"\r\n\r\n" in self.head:
                    self.head = None
                    self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                         b"transfer-encoding: chunked\r\n\r\n")
                    transports.append(self.transport)

        server = await loop.create_server(TrivialStream, "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])

        def on_command() -> None:
            command = pipe.recv()
            if command == "stop":
                done.set_result(None)
                return
            n = command
            filler = "x" * max(0, frame_size - 200)
            envelope = {"id": f"{n}-0", "type": "message.created", "sessionId": "ceiling",
                        "data": {"message": {"id": f"ceiling-{n}", "content": filler}}, "createdAt": None}
            body = b"event: message.created\r\nid: %d-0\r\ndata: " % n + orjson.dumps(envelope) + b"\r\n\r\n"
            frame = b"%x\r\n" % len(body) + body + b"\r\n"
            started = time.time()
            for transport in transports:
                transport.write(frame)
            pipe.send((started, time.time()))

        loop.add_reader(pipe.fileno(), on_command)
        os.set_blocking(pipe.fileno(), True)
        await done
        server.close()
        for transport in transports:
            transport.close()

    run_loop(main)


def client_ceiling(count: int, procs: int, rounds: int, frame_size: int) -> dict[str, Any]:
    """The same client processes against the trivial server: delay from its first write to each read, in ms."""
    context = multiprocessing.get_context("fork")
    pipe, theirs = context.Pipe()
    server = context.Process(target=trivial_server_main, args=(theirs, frame_size), daemon=True)
    server.start()
    theirs.close()
    port = pipe.recv()
    pool = ClientPool(port, "/events", count, procs)
    started: dict[str, float] = {}
    spans = []
    try:
        for n in range(rounds + 1):  # round 0 warms up
            pipe.send(n)
            first_write, last_write = pipe.recv()
            pool.wait_all("message.created", f"ceiling-{n}")
            if n:
                started[f"ceiling-{n}"] = first_write
                spans.append((last_write - first_write) * 1000)
            time.sleep(0.1)
        records, stats = pool.dump()
    finally:
        pool.close()
        pipe.send("stop")
        server.join(10)
    delays = [(received - started[key]) * 1000 for _, received, kind, _, key, _ in records
              if kind == "message.created" and key in started]
    return {"delays": delays, "spans": spans, "stats": stats}


# --- the measurements ---

def created_at(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


def figures(values_ms: list[float]) -> dict[str, float]:
    return {"p50": percentile(values_ms, 50), "p99": percentile(values_ms, 99),
            "max": max(values_ms) if values_ms else float("nan"), "n": len(values_ms)}


def api_rss_mb(api_pid: int) -> float:
    return psutil.Process(api_pid).memory_info().rss / MB


def api_redis_connections(client: redis.Redis, api_pid: int) -> int:
    name = redis_client_name(api_pid)
    return sum(1 for c in client.client_list() if c.get("name") == name)


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[pid] = times.user + times.system
    return out


def new_session(http: httpx.Client, agent: str) -> str:
    response = http.post(SESSIONS, json={"agentId": agent, "userId": "bench"})
    assert response.status_code in (200, 201), response.text
    return response.json()["sessionId"]


def send(http: httpx.Client, session: str, content: str) -> str:
    response = http.post(f"{SESSIONS}/{session}/messages", json={"content": content, "transport": "websocket"})
    assert response.status_code == 202, response.text
    return response.json()["userMessage"]["id"]


def post_sse(port: int, session: str, content: str) -> list[tuple[float, str, bytes]]:
    """POST a message with transport "sse" on a plain socket; every event with the moment it was read."""
    body = orjson.dumps({"content": content, "transport": "sse"})
    request = (f"POST {SESSIONS}/{session}/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    parser = SSEParser()
    events = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        while not parser.ended:
            data = sock.recv(65536)
            received = time.time()
            if not data:
                break
            events.extend((received, kind, payload) for kind, payload in parser.feed(data))
    assert parser.status == 200, f"POST transport sse: HTTP {parser.status}"
    return events


def chunk_latency(http: httpx.Client, port: int, agent: str, tap: Tap, messages: int) -> dict[str, list[float]]:
    """Per chunk: read time minus publish time (tap) and minus createdAt, on /events and on POST transport sse."""
    results: dict[str, list[float]] = defaultdict(list)
    filler = "lorem ipsum dolor sit amet " * 4
    session = new_session(http, agent)
    pool = ClientPool(port, f"{SESSIONS}/{session}/events", 1, 1)
    try:
        for n in range(messages):
            message_id = send(http, session, f"chunk {n} {filler}")
            pool.wait_all("message.created", message_id)
            pool.wait_all("state.updated")
        records, _ = pool.dump()
    finally:
        pool.close()
    published = tap.collect()
    for _, received, kind, event_id, _, created in records:
        if kind == "message.chunk":
            results["events_tap"].append((received - published[(session, event_id)]) * 1000)
            results["events_created"].append((received - created_at(created)) * 1000)
    session = new_session(http, agent)
    reads = []
    for n in range(messages):
        reads.extend(post_sse(port, session, f"sse {n} {filler}"))
    published = tap.collect()
    for received, kind, payload in reads:
        if kind == "chunk":  # ElizaOS's {messageId, chunk, index}: index counts from 0, the event's from 1
            data = orjson.loads(payload)
            chunk = f"chunk {data['messageId']} {data['index'] + 1}"
            results["post_tap"].append((received - published[(session, chunk)]) * 1000)
            results["post_created"].append((received - published[(session, f"{chunk} createdAt")]) * 1000)
    return results


AREAS = [("api/", "our api/"), ("core/", "our core/"), ("uvicorn/", "uvicorn"), ("litestar/", "Litestar"),
         ("sse_starlette/", "sse-starlette"), ("anyio/", "anyio/sniffio"), ("sniffio/", "anyio/sniffio"),
         ("asyncio/", "asyncio"), ("redis/", "redis-py")]  # by a Python frame's path: ours are relative


def area_of(frame: str) -> str:
    path = frame[frame.rfind("(") + 1:]
    return next((name for marker, name in AREAS if path.startswith(marker) or f"/{marker}" in path), "other")


class Profiler:
    """py-spy recording the API from start to stop(), native frames included (py-spy pauses the API for each
    sample, so a profiled run's figures are slower than an unprofiled run's)."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self.log = output.with_suffix(output.suffix + ".log").open("wb")
        py_spy = Path(sys.executable).with_name("py-spy")
        self.process = subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--native",
                                         "--format", "raw", "--output", str(output)],
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        time.sleep(1.0)  # let it attach

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def summary(self, top: int = 12) -> None:
        """Samples by the library of the innermost Python frame, and the top innermost frames (for a native one,
        with the Python line that called it)."""
        if not self.output.exists():
            print(f"py-spy wrote nothing; see {self.log.name}")
            return
        leaves: Counter[str] = Counter()
        areas: Counter[str] = Counter()
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            frames = stack.split(";")
            total += samples
            caller = next((f for f in reversed(frames) if ".py:" in f), "")
            leaf = frames[-1]
            if "gc_collect" in leaf:
                areas["CPython garbage collector"] += samples
            else:
                areas[area_of(caller)] += samples
            leaves[leaf if leaf == caller else f"{leaf.split(' (')[0]} <- {caller}"] += samples
        print_table(f"py-spy --native, API during the broadcast rounds: {total} busy samples at 200 Hz, all threads "
                    f"(raw stacks in {self.output}); by the innermost Python frame's library",
                    ["share", "library"], [[f"{100 * n / total:.1f} %", name] for name, n in areas.most_common()])
        print_table("... top innermost frames (native ones with the Python line calling them)",
                    ["share", "frame"],
                    [[f"{100 * n / total:.1f} %", frame[:140]] for frame, n in leaves.most_common(top)])


def broadcast(http: httpx.Client, port: int, agent: str, tap: Tap, subscribers: int, rounds: int, procs: int,
              api_pid: int, redis_client: redis.Redis, watch_pids: dict[str, list[int]],
              profile: Path | None = None) -> dict[str, Any]:
    """`subscribers` streams on one session; `rounds` messages (after one warm-up); delays per stream and round."""
    session = new_session(http, agent)
    pool = ClientPool(port, f"{SESSIONS}/{session}/events", subscribers, procs)
    out: dict[str, Any] = {"opened": pool.opened, "rss_connected": api_rss_mb(api_pid),
                           "redis_connections": api_redis_connections(redis_client, api_pid)}
    sent_at: dict[str, float] = {}
    profiler = None
    try:
        send_and_wait(http, pool, session, "warm-up")
        time.sleep(0.3)
        pids = {**watch_pids, "clients": pool.pids}
        cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
        if profile is not None:
            profiler = Profiler(api_pid, profile)
        wall = time.monotonic()
        for n in range(rounds):
            before = time.time()
            message_id = send_and_wait(http, pool, session, f"round {n}")
            sent_at[message_id] = before
            time.sleep(0.2)  # the next round starts on an idle API
        wall = time.monotonic() - wall
        cpu_after = {name: cpu_seconds(p) for name, p in pids.items()}
        out["rss_after"] = api_rss_mb(api_pid)
        out["redis_connections_after"] = api_redis_connections(redis_client, api_pid)
        records, stats = pool.dump()
    finally:
        if profiler is not None:
            profiler.stop()
        pool.close()
    published = tap.collect()
    delays: dict[str, list[float]] = defaultdict(list)
    last: dict[str, float] = defaultdict(float)
    for _, received, kind, event_id, key, created in records:
        if kind == "message.created" and key in sent_at:
            from_tap = (received - published[(session, event_id)]) * 1000
            delays["tap"].append(from_tap)
            delays["created"].append((received - created_at(created)) * 1000)
            delays["post"].append((received - sent_at[key]) * 1000)
            last[key] = max(last[key], from_tap)
        elif kind == "message.chunk" and (session, event_id) in published:
            delays["chunk_tap"].append((received - published[(session, event_id)]) * 1000)
            delays["chunk_created"].append((received - created_at(created)) * 1000)
    out["delays"] = delays
    out["last_per_round"] = sorted(last.values())
    out["rounds"] = len(sent_at)
    out["wall"] = wall
    out["cpu"] = {name: sum(cpu_after[name].get(pid, 0) - cpu_before[name].get(pid, 0) for pid in cpu_before[name])
                  for name in pids}
    out["client_busy_max"] = max(((cpu_after["clients"].get(pid, 0) - cpu_before["clients"].get(pid, 0)) / wall
                                  for pid in cpu_before["clients"]), default=0.0)
    out["client_stats"] = stats
    out["profiler"] = profiler
    return out


def send_and_wait(http: httpx.Client, pool: ClientPool, session: str, content: str) -> str:
    message_id = send(http, session, content)
    pool.wait_all("message.created", message_id)
    pool.wait_all("state.updated")  # the exchange is over: the session takes the next message
    return message_id


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft limit on open files (children inherit it); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        sys.exit(f"open files limit {soft} (hard {hard}) is below the {needed} this run needs")
    return soft


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000, help="streams on one session (default 1000)")
    parser.add_argument("--rounds", type=int, default=10, help="broadcast rounds, after one warm-up (default 10)")
    parser.add_argument("--messages", type=int, default=200,
                        help="messages for the chunk latency, on /events and again on POST sse (default 200)")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes holding the streams")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the client's ceiling (trivial server)")
    parser.add_argument("--profile", type=Path, help="record the API with py-spy --native during the N-subscriber "
                                                     "rounds (raw stacks to this file) and print where time goes; "
                                                     "py-spy slows the API, so profile in a run of its own")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    # Killed (SIGTERM): unwind, so the stack stops and the scratch database and Redis keys go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fd_limit = raise_fd_limit(args.subscribers * 2 + 1024)  # API and clients: a socket per stream each, and more
    redis_client = redis.Redis.from_url(REDIS_URL)
    with scratch_postgres() as database_url, stack(database_url, "fanout") as processes:
        api = next(s for s in processes.services if s.name == "api")
        worker = next(s for s in processes.services if s.name == "worker")
        api_pid = api.process.pid
        port = processes.port
        tap = Tap(REDIS_URL, processes.env["REDIS_PREFIX"])
        try:
            with httpx.Client(base_url=processes.base_url, timeout=60) as http:
                agent = http.post("/api/agents", json={"name": f"echo-{time.time_ns()}", "provider": "echo"}
                                  ).json()["id"]
                warm = new_session(http, agent)
                for n in range(20):
                    assert http.post(f"{SESSIONS}/{warm}/messages", json={"content": f"warm {n}"}).status_code == 201
                chunks = chunk_latency(http, port, agent, tap, args.messages)
                rss_idle = api_rss_mb(api_pid)
                redis_idle = api_redis_connections(redis_client, api_pid)
                watch = {"api": [api_pid], "worker": [worker.process.pid]}
                one = broadcast(http, port, agent, tap, 1, args.rounds, 1, api_pid, redis_client, watch)
                many = broadcast(http, port, agent, tap, args.subscribers, args.rounds, args.client_procs, api_pid,
                                 redis_client, watch, args.profile)
        except BaseException:
            print(processes.logs())
            raise
        finally:
            tap.close()
    redis_client.close()
    ceiling = None if args.no_ceiling else client_ceiling(args.subscribers, args.client_procs, args.rounds, 700)
    report(args, fd_limit, load_at_start, chunks, rss_idle, redis_idle, one, many, ceiling)


def report(args: argparse.Namespace, fd_limit: int, load_at_start: tuple[float, float, float],
           chunks: dict[str, list[float]], rss_idle: float, redis_idle: int, one: dict[str, Any], many: dict[str, Any],
           ceiling: dict[str, Any] | None) -> None:
    n = args.subscribers
    print(f"\nOne API process + one Celery worker (threads, 4), Postgres, echo agent; open-files limit {fd_limit}; "
          f"{os.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in load_at_start)} at the start, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.")
    print("Start points: 'publish' = when Redis delivered the event's PUBLISH to a tap subscribed like the API "
          "(sub-ms); 'createdAt' = the envelope's createdAt, which has millisecond precision only (truncated: "
          "reads +0-1 ms late; for message.created it is set in the API before the commit); 'POST' = just before "
          "the client sent the message.")
    rows = []
    for label, key in [("/events stream, from publish", "events_tap"),
                       ("/events stream, from createdAt", "events_created"),
                       ("POST transport sse, from publish", "post_tap"),
                       ("POST transport sse, from createdAt", "post_created")]:
        f = figures(chunks[key])
        rows.append([label, f["n"], ms(f["p50"]), ms(f["p99"]), ms(f["max"])])
    print_table(f"SSE chunk latency, one client, {args.messages} messages per path (echo: 2 chunks each), ms",
                ["path and start point", "chunks", "p50", "p99", "max"], rows)

    def pair(key: str, stat: str) -> tuple[float, float]:
        return figures(one["delays"][key])[stat], figures(many["delays"][key])[stat]

    def ratio(a: float, b: float) -> str:
        return "n/a" if not a or math.isnan(a) or math.isnan(b) else f"{b / a:.1f}x"

    rows = []
    for label, key, stat, goal in [
        ("message.created delivery p50, from publish", "tap", "p50", ""),
        ("message.created delivery p99, from publish", "tap", "p99", f"< {GOAL_P99_MS:.0f} ms"),
        ("message.created delivery max, from publish", "tap", "max", ""),
        ("message.created delivery p99, from createdAt", "created", "p99", ""),
        ("message.created delivery p99, from POST", "post", "p99", ""),
        ("message.chunk delivery p99, from publish", "chunk_tap", "p99", ""),
        ("message.chunk delivery p99, from createdAt", "chunk_created", "p99", ""),
    ]:
        a, b = pair(key, stat)
        met = "" if not goal else verdict(b < GOAL_P99_MS)
        rows.append([label + " (ms)", ms(a), ms(b), ratio(a, b), goal, met])
    last_one = percentile(one["last_per_round"], 50)
    last_many = percentile(many["last_per_round"], 50)
    rows.append(["last stream of a round, median over rounds (ms)", ms(last_one), ms(last_many),
                 ratio(last_one, last_many), "", ""])
    cpu_one = one["cpu"]["api"] / max(1, one["rounds"]) * 1000
    cpu_many = many["cpu"]["api"] / max(1, many["rounds"]) * 1000
    rows.append(["API CPU per round, whole exchange (ms)", ms(cpu_one), ms(cpu_many), ratio(cpu_one, cpu_many), "", ""])
    rows.append([f"API RSS, MB (0 streams: {rss_idle:.1f})", f"{one['rss_after']:.1f}",
                 f"{many['rss_connected']:.1f} / {many['rss_after']:.1f} after rounds",
                 ratio(rss_idle, many["rss_after"]) + " of 0", f"< {GOAL_RSS_MB:.0f} MB",
                 verdict(many["rss_after"] < GOAL_RSS_MB)])
    rows.append([f"API Redis connections (0 streams: {redis_idle})", str(one["redis_connections_after"]),
                 f"{many['redis_connections']} / {many['redis_connections_after']} after rounds", "",
                 "a handful", verdict(many["redis_connections_after"] <= GOAL_REDIS_CONNECTIONS)])
    print_table(f"Broadcast on one session: {args.rounds} rounds after a warm-up; {many['opened']} streams on one "
                f"API process from {min(args.client_procs, n)} client processes; {len(many['delays']['tap'])} "
                "deliveries", ["measure", "1 stream", f"{n} streams", "ratio", "goal", "verdict"], rows)

    print(f"Last stream of each round, from publish, sorted (ms): "
          f"{', '.join(ms(x) for x in many['last_per_round'])}")

    stats = many["client_stats"]
    reads = sum(s["reads"] for s in stats)
    handler = sum(s["handler"] for s in stats)
    lost = sum(s["lost"] for s in stats)
    rows = [["client read handler CPU, per read (us)", f"{handler / max(1, reads) * 1e6:.1f}", f"{reads} reads"],
            ["busiest client process, CPU over the rounds", f"{100 * many['client_busy_max']:.1f} %",
             f"{many['wall']:.1f} s of rounds"],
            ["all client processes, CPU over the rounds", f"{100 * many['cpu']['clients'] / many['wall']:.1f} %",
             "of one CPU"],
            ["API process, CPU over the rounds", f"{100 * many['cpu']['api'] / many['wall']:.1f} %", "of one CPU"],
            ["worker process, CPU over the rounds", f"{100 * many['cpu']['worker'] / many['wall']:.1f} %",
             "of one CPU"],
            ["streams lost during the rounds", str(lost), ""]]
    if ceiling is not None:
        f = figures(ceiling["delays"])
        spans = ceiling["spans"]
        rows.append([f"client ceiling: trivial server, {n} streams, p50 / p99 / max (ms)",
                     f"{ms(f['p50'])} / {ms(f['p99'])} / {ms(f['max'])}",
                     f"server's write loop {ms(percentile(spans, 50))} ms (median)"])
    print_table("Is the client the bottleneck? (N-stream run)", ["measure", "value", "note"], rows)
    if many["profiler"] is not None:
        many["profiler"].summary()


if __name__ == "__main__":
    main()
