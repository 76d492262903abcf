"""Per-request context: a request id (the caller's `X-Request-ID` or a new one) bound to every log line of
the request, echoed in the response, and handed to the worker with the tasks the request enqueues; and the
request's latency, by route template and status, for `/metrics`."""

from __future__ import annotations

import time

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ApiMetrics
from core import logs

REQUEST_ID_HTTP_HEADER = "x-request-id"
log = structlog.get_logger("api.request")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        assert scope["type"] == ScopeType.HTTP  # the only scope type this middleware is given (`scopes`)
        started = time.perf_counter()
        request_id = logs.accepted_request_id(_header(scope, REQUEST_ID_HTTP_HEADER.encode()))
        logs.clear()
        logs.bind(request_id=request_id, session_id=scope.get("path_params", {}).get("session_id"))
        status = 500
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(key == b"content-type" and value.startswith(b"text/event-stream")
                                for key, value in message.get("headers", []))
                message["headers"] = [*message.get("headers", []),
                                      (REQUEST_ID_HTTP_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template") or scope["path"]
            if not streaming:  # an event stream lasts as long as its client: not a latency (see open_streams)
                self.metrics.observe_request(scope["method"], route, status, seconds)
            log.info("request", method=scope["method"], route=route, status=status,
                     duration_ms=round(seconds * 1000, 2))
            logs.clear()
