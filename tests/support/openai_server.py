"""A local server speaking the OpenAI chat-completions wire protocol, for tests (stdlib only).

`POST .../chat/completions`, streaming (SSE `data: {chunk}` lines, then `data: [DONE]`) or not. Checks
the bearer key, knows only models it was told about (404 otherwise), records every request, and plays
a programmed script per model: failures with a status code, delays, dropped connections. Plans are
kept per model name, so tests sharing one server (each with its own agent and model) never interfere.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_KEY = "sk-test-local-good-key"
WRONG_KEY = "sk-test-local-wrong-key"
WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str = "stop"
    reasoning: str | None = None


@dataclass(frozen=True)
class Fail:
    status: int
    message: str = "simulated failure"
    code: str | None = None


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Reply | Fail | None = None  # None: the default reply


@dataclass(frozen=True)
class Drop:
    """Close the connection: before any response, or after `after_chunks` streamed chunks."""

    after_chunks: int | None = None


Step = Reply | Fail | Delay | Drop


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])


def default_reply(body: dict[str, Any]) -> Reply:
    last_user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return Reply(f"The model heard: {last_user}")


@dataclass
class FakeOpenAI:
    """Start with `start()`; `base_url` is what a character's `baseUrl` should say."""

    models: set[str] = field(default_factory=set)
    api_key: str = GOOD_KEY
    requests: list[Recorded] = field(default_factory=list)
    _plans: dict[str, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    _latency: dict[str, float] = field(default_factory=dict)  # seconds before every unplanned reply, per model
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def add_model(self, name: str, *steps: Step, latency: float = 0.0) -> str:
        """A model playing `steps` first, then default replies, each after `latency` seconds (a slow model)."""
        with self._lock:
            self.models.add(name)
            self._plans[name].extend(steps)
            self._latency[name] = latency
        return name

    def plan(self, model: str, *steps: Step) -> None:
        with self._lock:
            self._plans[model].extend(steps)

    def requests_for(self, model: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.body.get("model") == model]

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                # the client gave up (a timeout under test): nothing to answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _next_step(self, model: str) -> Step | None:
        with self._lock:
            plan = self._plans.get(model)
            return plan.popleft() if plan else None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append(Recorded(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body))
        if not handler.path.endswith("/chat/completions"):
            return _error(handler, 404, f"no route {handler.path}")
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(handler, 401, "Incorrect API key provided.", "invalid_api_key")
        model = body.get("model")
        if model not in self.models:
            return _error(handler, 404, f"The model `{model}` does not exist.", "model_not_found")
        step = self._next_step(model)
        if step is None and self._latency.get(model):
            step = Delay(self._latency[model])
        if isinstance(step, Delay):
            time.sleep(step.seconds)
            step = step.then
        if isinstance(step, Fail):
            return _error(handler, step.status, step.message, step.code)
        if isinstance(step, Drop) and step.after_chunks is None:
            return _drop(handler)
        reply = step if isinstance(step, Reply) else default_reply(body)
        drop_after = step.after_chunks if isinstance(step, Drop) else None
        if body.get("stream"):
            _stream(handler, model, reply, drop_after)
        else:
            _complete(handler, model, reply)


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _error(handler: BaseHTTPRequestHandler, status: int, message: str, code: str | None = None) -> None:
    _send_json(handler, status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                           "code": code}})


def _drop(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)
    handler.wfile = io.BytesIO()  # the handler's own final flush must not fail on the closed socket


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    payload = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _stream(handler: BaseHTTPRequestHandler, model: str, reply: Reply, drop_after: int | None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
    handler.wfile.write(_chunk(model, {"role": "assistant", "content": ""}))
    if reply.reasoning:
        handler.wfile.write(_chunk(model, {"reasoning_content": reply.reasoning}))
    for index, token in enumerate(WORD.findall(reply.text)):
        if drop_after is not None and index == drop_after:
            return _drop(handler)
        handler.wfile.write(_chunk(model, {"content": token}))
        handler.wfile.flush()
    handler.wfile.write(_chunk(model, {}, reply.finish_reason))
    handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()


def _complete(handler: BaseHTTPRequestHandler, model: str, reply: Reply) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    _send_json(handler, 200, {
        "id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })
