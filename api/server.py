"""How uvicorn serves the API: the options that protect the process from clients, in one place.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but only once it has answered a
request: a connection that never sends one (or trickles its headers) is kept forever, holding a socket
and memory. Each connection here must deliver its request headers within REQUEST_HEADER_TIMEOUT_SECONDS
of being accepted; the deadline stops as soon as they are in, so long replies and streams are unaffected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import get_settings

log = structlog.get_logger(__name__)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose first request headers are late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = get_settings().request_header_timeout_seconds
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
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


def server_options() -> dict[str, Any]:
    """uvicorn's options for the API server (besides host, port and workers)."""
    return {"http": HeaderDeadlineProtocol}
