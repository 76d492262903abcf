"""How uvicorn serves the API: the options that protect the process from clients, in one place.

- A request head must arrive in time: uvicorn closes an idle keep-alive connection after `timeout_keep_alive`,
  but only once it has answered a request, so a connection that never sends one (or trickles its headers) was
  kept forever. Each connection here must deliver its request headers within REQUEST_HEADER_TIMEOUT_SECONDS of
  being accepted; the deadline stops as soon as they are in, so long replies and streams are unaffected.
- A request head is bounded as its bytes arrive: httptools (llhttp) puts no bound on a request line or a
  header, and both uvicorn's protocol and httptools grow a bytes object piece by piece, so one 96 MB
  `Authorization` header was read whole, copied over and over, and held the event loop for seconds. Each head
  is measured before the parser sees it: over HEADER_MAX_BYTES or with more than HEADER_MAX_COUNT header lines
  it is answered 431, a request line over REQUEST_LINE_MAX_BYTES 414, in the usual JSON error shape, and the
  connection is closed. Bodies stay Litestar's business (REQUEST_BODY_MAX_BYTES).
- Websocket messages (socket.io's) are at most SOCKETIO_MAX_MESSAGE_BYTES: uvicorn reads a whole message before
  handing it over (16 MiB by default).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import error_body
from api.headers import COMMON
from core.settings import Settings, get_settings

log = structlog.get_logger(__name__)
HEAD_END = (b"\r\n\r\n", b"\n\n")
# After a refusal the rest of what the client already sent is read and dropped for this long before the
# connection closes, so the client reads the answer instead of a reset.
LINGER_SECONDS = 2.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose first request headers are late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = get_settings().request_header_timeout_seconds
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn declares it
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_late)

    def on_headers_complete(self) -> None:
        self._stop_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        super().connection_lost(exc)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            # Debug only: thousands of idle sockets (a flood) must not turn into thousands of log lines.
            log.debug("closed a connection that sent no request headers in time", timeout_seconds=self._header_timeout)
            self.transport.close()


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    limit: int


@dataclass
class HeadMeter:
    """Measures one request head (request line, header lines, the blank line ending it) as its bytes arrive."""

    max_bytes: int
    max_count: int
    max_line: int
    size: int = 0
    newlines: int = 0
    request_line: int = 0
    request_line_done: bool = False
    complete: bool = False
    _tail: bytes = b""  # the last bytes seen, where a head's end may start

    @classmethod
    def of(cls, settings: Settings) -> HeadMeter:
        return cls(settings.header_max_bytes, settings.header_max_count, settings.request_line_max_bytes)

    def feed(self, data: bytes) -> Refusal | None:
        """Count the head's share of `data` (what follows the head, a body, is not counted)."""
        window = self._tail + data
        ends = [found + len(marker) for marker in HEAD_END if (found := window.find(marker)) >= 0]
        head = data if not ends else data[:max(0, min(ends) - len(self._tail))]
        self.complete = bool(ends)
        self._tail = window[-3:]
        self.size += len(head)
        self.newlines += head.count(b"\n")
        if not self.request_line_done:
            end = head.find(b"\n")
            self.request_line += len(head) if end < 0 else end
            self.request_line_done = end >= 0
        if self.request_line > self.max_line:
            return Refusal(414, "URI_TOO_LONG", f"the request line is longer than {self.max_line} bytes",
                           self.max_line)
        if self.size > self.max_bytes:
            return Refusal(431, "HEADERS_TOO_LARGE", f"the request headers are larger than {self.max_bytes} bytes",
                           self.max_bytes)
        headers = self.newlines - 1 - int(self.complete)  # minus the request line and the blank line
        if headers > self.max_count:
            return Refusal(431, "TOO_MANY_HEADERS", f"the request has more than {self.max_count} headers",
                           self.max_count)
        return None


class HeadLimitedProtocol(HeaderDeadlineProtocol):
    """The API's protocol: request headers in time, and oversized request heads refused before they reach
    the parser."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = get_settings()
        self._meter = HeadMeter.of(self._settings)
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # dropped: the answer is sent, the connection closes after LINGER_SECONDS
        if not self._meter.complete:
            refusal = self._meter.feed(data)
            if refusal is not None:
                self._refuse(refusal)
                return
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._meter = HeadMeter.of(self._settings)  # the next request on this connection has a head of its own

    def _refuse(self, refusal: Refusal) -> None:
        self._refused = True
        self._stop_header_deadline()  # what the client sends now is dropped; the connection closes below
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        log.warning("request head refused", reason=refusal.message, client=client, code=refusal.code)
        body = orjson.dumps(error_body(refusal.code, refusal.message, {"limit": refusal.limit}))
        head = [f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}", "content-type: application/json",
                f"content-length: {len(body)}", "connection: close",
                *(f"{name.lower()}: {value}" for name, value in COMMON.items())]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._unset_keepalive_if_required()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def server_options() -> dict[str, Any]:
    """uvicorn's options for the API server (besides host, port and workers)."""
    return {"http": HeadLimitedProtocol, "ws_max_size": get_settings().socketio_max_message_bytes}
