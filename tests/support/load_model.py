"""A load model server: OpenAI-compatible chat completions that take time like a real model, for load tests and
benchmarks. One asyncio process carries thousands of concurrent streams.

    python -m tests.support.load_model --port 8001 [--ttft-ms 300 --tokens 40 --gap-ms 25]

`POST .../chat/completions`, streaming (HTTP/1.1 chunked, SSE `data: {chunk}` lines, a chunk with the
`finish_reason`, then `data: [DONE]`) or not (the whole reply once the last token is due). How a reply takes
its time: `ttft` ms until the first token, then `tokens` tokens `gap` ms apart (one reply lasts
ttft + (tokens - 1) * gap). Each setting comes from, first to last:
- the request's own fields `ttft_ms`, `tokens`, `gap_ms` (the openai SDK sends them with `extra_body`);
- the model name, `load-ttft300-n40-gap25` (any of the three, any order); `-stamp` in the name, or
  `"stamp": true` in the request, makes the first token `@<unix time it was sent>@ `, so a client further down
  the line can tell how long the first token took to reach it;
- the server's defaults (command line).
`max_tokens` (or `max_completion_tokens`) caps the reply, which then ends with finish_reason "length".

GET /stats: calls so far, calls in flight, the peak number in flight, completed and abandoned calls, tokens
sent, and how late the server sent tokens (its own lag: a load server that falls behind spoils a benchmark).
POST /stats/reset zeroes them (the peak restarts from the calls in flight). Any key is accepted: checking keys,
scripted failures and recorded requests are tests/support/openai_server.py's job.

Lean on purpose: a raw asyncio protocol (no HTTP framework), one timer per stream, chunks built from
pre-encoded bytes (no JSON encoding per token), uvloop when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod",
         "tempor", "incididunt", "ut", "labore", "et")
NAME_SETTING = re.compile(r"(ttft|n|gap)(\d+(?:\.\d+)?)(?=-|$)")
STAMP = re.compile(rb"@(\d{9,}\.\d+)@")
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
CREATED = int(time.time())


@dataclass(frozen=True)
class Timing:
    ttft_ms: float = 300.0
    tokens: int = 40
    gap_ms: float = 25.0
    stamp: bool = False

    @property
    def seconds(self) -> float:
        """One reply's own duration: from the request to its last token."""
        return (self.ttft_ms + (self.tokens - 1) * self.gap_ms) / 1000


class BadRequest(Exception):
    pass


def timing_for(body: dict[str, Any], default: Timing) -> Timing:
    """The request's timing: its own fields, else what its model name says, else the server's defaults."""
    model = str(body.get("model") or "")
    named = dict(NAME_SETTING.findall(model))
    timing = Timing(ttft_ms=float(named.get("ttft", default.ttft_ms)),
                    tokens=int(float(named.get("n", default.tokens))), gap_ms=float(named.get("gap", default.gap_ms)),
                    stamp=default.stamp or model.endswith("-stamp") or "-stamp-" in model)
    try:
        timing = Timing(ttft_ms=float(body.get("ttft_ms", timing.ttft_ms)),
                        tokens=int(body.get("tokens", timing.tokens)), gap_ms=float(body.get("gap_ms", timing.gap_ms)),
                        stamp=bool(body.get("stamp", timing.stamp)))
    except (TypeError, ValueError) as error:
        raise BadRequest(f"ttft_ms, tokens and gap_ms must be numbers: {error}") from None
    if timing.ttft_ms < 0 or timing.gap_ms < 0 or timing.tokens < 1:
        raise BadRequest("ttft_ms and gap_ms must be >= 0 and tokens >= 1")
    return timing


def token_text(index: int) -> str:
    return WORDS[index % len(WORDS)] + " "


def reply_text(tokens: int) -> str:
    """The text of an unstamped reply of `tokens` tokens."""
    return "".join(token_text(i) for i in range(tokens))


def stamp_of(data: bytes) -> float | None:
    """The unix time a stamped first token was sent, if `data` holds it."""
    found = STAMP.search(data)
    return float(found.group(1)) if found else None


@dataclass
class Stats:
    calls: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    completed: int = 0
    abandoned: int = 0  # the client went away before the reply ended
    tokens: int = 0
    late_writes: int = 0  # token writes, for the lag figures
    lag_total_s: float = 0.0
    lag_max_s: float = 0.0

    def begin(self) -> None:
        self.calls += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, completed: bool) -> None:
        self.in_flight -= 1
        if completed:
            self.completed += 1
        else:
            self.abandoned += 1

    def wrote(self, count: int, lag_s: float) -> None:
        self.tokens += count
        self.late_writes += 1
        self.lag_total_s += lag_s
        self.lag_max_s = max(self.lag_max_s, lag_s)

    def reset(self) -> None:
        self.calls = self.completed = self.abandoned = self.tokens = self.late_writes = 0
        self.lag_total_s = self.lag_max_s = 0.0
        self.peak_in_flight = self.in_flight

    def public(self) -> dict[str, Any]:
        return {"calls": self.calls, "inFlight": self.in_flight, "peakInFlight": self.peak_in_flight,
                "completed": self.completed, "abandoned": self.abandoned, "tokens": self.tokens,
                "lagMeanMs": round(1000 * self.lag_total_s / self.late_writes, 3) if self.late_writes else 0.0,
                "lagMaxMs": round(1000 * self.lag_max_s, 3)}


class ChunkBytes:
    """The SSE chunks of one model name, encoded once: a token's chunk is a lookup, not a JSON encoding."""

    def __init__(self, model: str) -> None:
        self.prefix = (b'data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":%d,"model":%s,'
                       b'"choices":[{"index":0,"delta":' % (CREATED, json.dumps(model).encode()))
        self.role = self.delta({"role": "assistant", "content": ""})
        self.words = [self.delta({"content": token_text(i)}) for i in range(len(WORDS))]
        self.finish = {reason: self.delta({}, reason) for reason in ("stop", "length")}
        self.usage_prefix = (b'data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":%d,"model":%s,'
                             b'"choices":[],"usage":' % (CREATED, json.dumps(model).encode()))

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        ending = b',"finish_reason":%s}]}\n\n' % json.dumps(finish_reason).encode()
        return self.prefix + json.dumps(delta).encode() + ending

    def usage(self, tokens: int) -> bytes:
        usage = b'{"prompt_tokens":1,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (tokens, tokens + 1)
        return self.usage_prefix + usage


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
               b"transfer-encoding: chunked\r\n\r\n")
STREAM_END = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           431: "Request Header Fields Too Large"}


class LoadModel:
    """The server's state: default timing, stats, and the encoded chunks of each model name seen."""

    def __init__(self, default: Timing) -> None:
        self.default = default
        self.stats = Stats()
        self._chunks: dict[str, ChunkBytes] = {}

    def chunks(self, model: str) -> ChunkBytes:
        chunks = self._chunks.get(model)
        if chunks is None:
            chunks = self._chunks[model] = ChunkBytes(model)
        return chunks

    async def serve(self, host: str, port: int, backlog: int = 4096) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: Connection(self), host, port, backlog=backlog)


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests one after another (keep-alive), one reply at a time."""

    def __init__(self, model: LoadModel) -> None:
        self.model = model
        self.stats = model.stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.keep_alive = True
        self.call: Call | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.call is not None:
            self.call.abandon()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.call is None:
            self.next_request()

    def next_request(self) -> None:
        while self.call is None and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.respond_json(431, error("request head too large"), close=True)
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                return self.respond_json(400, error("malformed request line"), close=True)
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(":") for line in lines[1:])}
            declared = headers.get("content-length", "0")
            length = int(declared) if declared.isdigit() else -1
            if length < 0 or "chunked" in headers.get("transfer-encoding", ""):
                return self.respond_json(400, error("send the body with a content-length"), close=True)
            if length > MAX_BODY_BYTES:
                return self.respond_json(413, error("body too large"), close=True)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            self.keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            self.dispatch(method, target.split("?", 1)[0], body)

    def dispatch(self, method: str, path: str, body: bytes) -> None:
        if path.endswith("/chat/completions"):
            if method != "POST":
                return self.respond_json(405, error("use POST"))
            return self.chat(body)
        if path == "/stats" and method == "GET":
            return self.respond_json(200, self.stats.public())
        if path == "/stats/reset" and method == "POST":
            self.stats.reset()
            return self.respond_json(200, self.stats.public())
        if path in ("/health", "/v1/models", "/models") and method == "GET":
            return self.respond_json(200, {"object": "list", "data": []})
        self.respond_json(404, error(f"no route {method} {path}"))

    def chat(self, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            timing = timing_for(body, self.model.default)
        except (ValueError, BadRequest) as failure:
            return self.respond_json(400, error(f"invalid request: {failure}"))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish_reason = "stop"
        if isinstance(limit, int) and 0 < limit < timing.tokens:
            timing, finish_reason = replace(timing, tokens=limit), "length"
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        call_type = StreamedCall if body.get("stream") else WholeCall
        self.call = call_type(self, str(body.get("model") or ""), timing, finish_reason, usage)
        self.call.start()

    def finished(self, close: bool = False) -> None:
        """The current reply was sent: serve the next request on this connection, if any."""
        self.call = None
        if close or not self.keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if self.buffer:
            self.next_request()

    def respond_json(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
        assert self.transport is not None
        data = json.dumps(payload).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
                             % (status, REASONS.get(status, "Error").encode(), len(data),
                                b"connection: close\r\n" if close else b"", data))
        if close:
            self.keep_alive = False
            self.transport.close()


def error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


class Call:
    """One chat completion in flight; counts in the stats from its request to its last byte (or the client's
    departure)."""

    def __init__(self, connection: Connection, model: str, timing: Timing, finish_reason: str, usage: bool) -> None:
        self.connection = connection
        self.model = model
        self.timing = timing
        self.finish_reason = finish_reason
        self.usage = usage
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def start(self) -> None:
        self.connection.stats.begin()

    def due(self, index: int) -> float:
        return self.started + (self.timing.ttft_ms + index * self.timing.gap_ms) / 1000

    def first_token(self) -> str:
        return f"@{time.time():.6f}@ " if self.timing.stamp else token_text(0)

    def finish(self) -> None:
        self.done = True
        self.connection.stats.end(completed=True)
        self.connection.finished()

    def abandon(self) -> None:
        if not self.done:
            self.done = True
            if self.timer is not None:
                self.timer.cancel()
            self.connection.stats.end(completed=False)


class StreamedCall(Call):
    def start(self) -> None:
        super().start()
        assert self.connection.transport is not None
        self.connection.transport.write(STREAM_HEAD)  # headers at once, tokens when they are due (as vLLM does)
        self.chunks = self.connection.model.chunks(self.model)
        self.timer = self.loop.call_at(self.due(0), self.send, 0)

    def send(self, index: int) -> None:
        transport = self.connection.transport
        if self.done or transport is None:
            return
        chunks = self.chunks
        if index == 0:
            data = chunks.role + chunks.delta({"content": self.first_token()})
        else:
            data = chunks.words[index % len(WORDS)]
        last = index == self.timing.tokens - 1
        if last:
            data += chunks.finish[self.finish_reason]
            if self.usage:
                data += chunks.usage(self.timing.tokens)
        transport.write(_http_chunk(data) + STREAM_END if last else _http_chunk(data))
        self.connection.stats.wrote(1, max(0.0, self.loop.time() - self.due(index)))
        if last:
            self.finish()
        else:
            self.timer = self.loop.call_at(self.due(index + 1), self.send, index + 1)


class WholeCall(Call):
    def start(self) -> None:
        super().start()
        self.stamp = f"@{time.time() + self.timing.ttft_ms / 1000:.6f}@ "  # when the first token would have been made
        self.timer = self.loop.call_at(self.due(self.timing.tokens - 1), self.send)

    def send(self) -> None:
        if self.done or self.connection.transport is None:
            return
        text = reply_text(self.timing.tokens)
        if self.timing.stamp:
            text = self.stamp + text.removeprefix(token_text(0))
        self.connection.respond_json(200, {
            "id": "chatcmpl-load", "object": "chat.completion", "created": CREATED, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": self.finish_reason}],
            "usage": {"prompt_tokens": 1, "completion_tokens": self.timing.tokens,
                      "total_tokens": self.timing.tokens + 1},
        })
        self.connection.stats.wrote(self.timing.tokens, max(0.0, self.loop.time() - self.due(self.timing.tokens - 1)))
        self.finish()


# --- running it ---------------------------------------------------------------------------------------------------

def allow_many_connections() -> None:
    """Raise this process's open-file limit to the most allowed: each connection is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _main(args: argparse.Namespace) -> None:
    model = LoadModel(Timing(args.ttft_ms, args.tokens, args.gap_ms, args.stamp))
    server = await model.serve(args.host, args.port, args.backlog)
    port = server.sockets[0].getsockname()[1]
    print(f"load model listening on http://{args.host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--ttft-ms", type=float, default=Timing.ttft_ms, help="default time to the first token")
    parser.add_argument("--tokens", type=int, default=Timing.tokens, help="default tokens per reply")
    parser.add_argument("--gap-ms", type=float, default=Timing.gap_ms, help="default time between tokens")
    parser.add_argument("--stamp", action="store_true", help="stamp every first token with its send time")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop: uvloop when installed (auto), or the standard one")
    parser.add_argument("--backlog", type=int, default=4096, help="listen backlog: N clients connect at once")
    args = parser.parse_args(argv)
    allow_many_connections()
    loop = new_event_loop(args.loop)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(_main(args))


@dataclass
class LoadModelProcess:
    process: subprocess.Popen[str]
    base_url: str  # what an OpenAI client (or an agent's `baseUrl`) takes: http://127.0.0.1:PORT/v1

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.root_url}/stats", timeout=10).raise_for_status().json()

    def reset_stats(self) -> dict[str, Any]:
        return httpx.post(f"{self.root_url}/stats/reset", timeout=10).raise_for_status().json()


@contextlib.contextmanager
def running(*args: str) -> Iterator[LoadModelProcess]:
    """A load model server in a child process (its own CPU) for the duration; `args` as on the command line."""
    listening = "load model listening on "
    process = subprocess.Popen([sys.executable, "-m", "tests.support.load_model", "--port", "0", *args],
                               cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once it listens
        if not line.startswith(listening):
            raise RuntimeError(f"the load model server did not start (exit code {process.wait(5)}): {line!r}")
        yield LoadModelProcess(process, line.removeprefix(listening).strip())
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
