"""A lean load client: N HTTP/1.1 requests sent at the same moment from a process of its own, which reports its
own CPU time (on a 2-core machine the client's CPU is taken from the system it measures, so it must be small and
known).

Each request gets its own connection, opened before the start so that connecting is not part of the measurement;
then every request is written in one go. A response is read as raw bytes (content-length, chunked or until close)
and two things are noted as they arrive: the first time the load model's first-token stamp (`@<unix time>@`) is
seen, and the end of the body. No HTTP library: at N = 1,000 streams httpx took 22-28 s of CPU and aiohttp
about twice this client's (docs/benchmarks.md, "Model-backed load").
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import resource
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.support.load_model import STAMP, allow_many_connections, new_event_loop

CONNECT_AT_ONCE = 200  # connections opened concurrently while preparing (N may exceed the server's backlog)


@dataclass(frozen=True)
class Request:
    url: str  # absolute: http://127.0.0.1:PORT/path
    body: bytes
    content_type: str = "application/json"
    ok_statuses: tuple[int, ...] = (200, 201)
    ok_marker: bytes = b""  # must be in the body for the reply to count as answered (e.g. b"event: done")

    def encode(self) -> tuple[str, int, bytes]:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: {self.content_type}\r\n"
                f"content-length: {len(self.body)}\r\naccept: */*\r\n\r\n")
        return host, port, head.encode() + self.body


@dataclass
class Outcome:
    status: int = 0
    answered: bool = False
    finished_s: float = float("nan")  # from the common start to the end of the response
    first_token_delay_ms: float = float("nan")  # from the model's stamp to when the client saw it
    error: str = ""
    body_head: bytes = b""  # the first bytes, to explain a failure


@dataclass
class Run:
    outcomes: list[Outcome]
    wall_s: float  # from the common start to the last response (or the deadline)
    cpu_s: float  # the client process's own CPU during the run
    timed_out: int = 0


class Exchange(asyncio.Protocol):
    """One request and its response on a connection of its own."""

    def __init__(self, request: Request, payload: bytes) -> None:
        self.request = request
        self.payload = payload
        self.transport: asyncio.Transport | None = None
        self.outcome = Outcome()
        self.done = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()  # not yet parsed
        self.body = bytearray()
        self.mode = "head"
        self.remaining = 0  # bytes left in the body (length) or in the current chunk, CRLF included (chunked)
        self.look_for_stamp = True
        self.started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, started: float) -> None:
        self.started = started
        assert self.transport is not None
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        if self.look_for_stamp:
            self._spot_stamp(data)
        self.buffer += data
        try:
            self._parse()
        except ValueError as failure:
            self._finish(f"unreadable response: {failure}")

    def _spot_stamp(self, data: bytes) -> None:
        window = bytes(self.body[-48:]) + bytes(self.buffer[-48:]) + data  # a stamp cut across two reads
        found = STAMP.search(window)
        if found:
            self.outcome.first_token_delay_ms = (time.time() - float(found.group(1))) * 1000
            self.look_for_stamp = False

    def _parse(self) -> None:
        while self.buffer and not self.done.done():
            if self.mode == "head":
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
                del self.buffer[:end + 4]
                self.outcome.status = int(lines[0].split(" ", 2)[1])
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.mode, self.remaining = "chunk-size", 0
                elif "content-length" in headers:
                    self.mode, self.remaining = "length", int(headers["content-length"])
                    if self.remaining == 0:
                        return self._finish()
                else:
                    self.mode = "close"
            elif self.mode == "length" or self.mode == "close":
                taken = bytes(self.buffer) if self.mode == "close" else bytes(self.buffer[:self.remaining])
                self.body += taken
                del self.buffer[:len(taken)]
                self.remaining -= len(taken)
                if self.mode == "length" and self.remaining <= 0:
                    return self._finish()
            elif self.mode == "chunk-size":
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
                del self.buffer[:end + 2]
                if size == 0:
                    return self._finish()  # trailers, if any, are not read: the connection is closed
                self.mode, self.remaining = "chunk", size + 2
            else:  # chunk data, then its CRLF
                taken = bytes(self.buffer[:self.remaining])
                del self.buffer[:len(taken)]
                self.remaining -= len(taken)
                self.body += taken[:-2] if self.remaining == 0 else taken  # (a split CRLF: harmless bytes)
                if self.remaining == 0:
                    self.mode = "chunk-size"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.mode == "close":
            self._finish()
        else:
            self._finish(f"connection closed early: {exc or 'by the server'}")

    def _finish(self, error: str = "") -> None:
        if self.done.done():
            return
        outcome = self.outcome
        outcome.finished_s = time.perf_counter() - self.started
        outcome.error = error
        outcome.answered = (not error and outcome.status in self.request.ok_statuses
                            and self.request.ok_marker in self.body)
        outcome.body_head = bytes(self.body[:300])
        self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def _prepare(requests: list[Request]) -> list[Exchange]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def connect(request: Request) -> Exchange:
        host, port, payload = request.encode()
        async with gate:
            _, exchange = await loop.create_connection(lambda: Exchange(request, payload), host, port)
        return exchange

    return list(await asyncio.gather(*(connect(request) for request in requests)))


async def _run(requests: list[Request], deadline_s: float, go: multiprocessing.connection.Connection) -> Run:
    exchanges = await _prepare(requests)
    go.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, go.recv)  # the parent takes its "before" readings
    cpu_before = _cpu()
    started = time.perf_counter()
    for exchange in exchanges:
        exchange.send(started)
    pending = [exchange.done for exchange in exchanges]
    _, not_done = await asyncio.wait(pending, timeout=deadline_s)
    wall = time.perf_counter() - started
    cpu = _cpu() - cpu_before
    for exchange in exchanges:
        if not exchange.done.done():
            exchange._finish(f"no complete response within {deadline_s:g} s")
    return Run([exchange.outcome for exchange in exchanges], wall, cpu, timed_out=len(not_done))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(requests: list[Request], deadline_s: float, pipe: multiprocessing.connection.Connection) -> None:
    allow_many_connections()
    loop = new_event_loop("auto")
    try:
        pipe.send(loop.run_until_complete(_run(requests, deadline_s, pipe)))
    except BaseException as failure:  # the parent must hear of it rather than wait
        pipe.send(f"{type(failure).__name__}: {failure}")
        raise
    finally:
        loop.close()


class LoadClient:
    """The client process: `prepare()` connects, `go()` starts and waits for the outcome.

    Between the two the caller takes its readings (CPU, memory, the model server's stats), so that they cover
    the run only."""

    def __init__(self, requests: list[Request], deadline_s: float) -> None:
        context = multiprocessing.get_context("spawn")  # a clean process: nothing inherited from the bench
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(target=_child, args=(requests, deadline_s, child_end), daemon=True)
        self.deadline_s = deadline_s
        self.prepare_timeout_s = 60 + len(requests) / 50

    def prepare(self) -> None:
        self.process.start()
        self._expect("ready", self.prepare_timeout_s)

    def go(self) -> Run:
        self.pipe.send("go")
        run = self._expect(Run, self.deadline_s + 60)
        self.process.join(10)
        return run

    def _expect(self, what: Any, timeout: float) -> Any:
        if not self.pipe.poll(timeout):
            self.process.kill()
            raise RuntimeError(f"the load client gave no answer within {timeout:g} s")
        message = self.pipe.recv()
        if (what == "ready" and message != "ready") or (what is Run and not isinstance(message, Run)):
            self.process.join(5)
            raise RuntimeError(f"the load client failed: {message}")
        return message


def run_load(requests: list[Request], deadline_s: float) -> Run:
    """Prepare and run at once, for callers with no readings to take in between."""
    client = LoadClient(requests, deadline_s)
    client.prepare()
    return client.go()

