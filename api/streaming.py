"""Server-sent events framing: `event: <type>`, `id: <envelope id>` (durable events only), `data: <envelope>`.

Only durable events carry an SSE id, so the Last-Event-ID a client resumes from always names a stored
event. Chunks and the `done`/`error` events that end an SSE reply carry none.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from litestar.types import Receive, Scope, Send
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError

from core.bus import parse_event_id
from core.clock import isoformat, utcnow
from core.services.events import SessionFeed
from core.settings import Settings

log = structlog.get_logger(__name__)


class EventStreamResponse(EventSourceResponse):
    """sse-starlette's response; a client dropped for taking no data (SSE_SEND_TIMEOUT_SECONDS) is one log line.

    sse-starlette raises SendTimeoutError out of the response, which the ASGI server would log as an
    application error with a traceback: dropping a slow reader is the intended behaviour, not a fault.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning("dropped an event-stream client that took no data", path=scope.get("path"),
                        send_timeout_seconds=self.send_timeout)


def sse_response(events: AsyncIterator[ServerSentEvent], settings: Settings) -> EventSourceResponse:
    return EventStreamResponse(events, ping=settings.sse_ping_seconds, send_timeout=settings.sse_send_timeout_seconds)


def sse_event(envelope: dict[str, Any]) -> ServerSentEvent:
    event_id = envelope.get("id")
    durable = event_id is not None and parse_event_id(event_id)[1] == 0
    return ServerSentEvent(data=orjson.dumps(envelope).decode(), event=envelope["type"],
                           id=event_id if durable else None)


def terminal_event(kind: str, session_id: uuid.UUID, data: dict[str, Any]) -> ServerSentEvent:
    """`done` or `error`: not session events, so no id (resuming /events skips nothing because of them)."""
    return sse_event({"id": None, "type": kind, "sessionId": str(session_id), "data": data,
                      "createdAt": isoformat(utcnow())})


async def event_stream(feed: SessionFeed) -> AsyncIterator[ServerSentEvent]:
    """Every event of the session, for as long as the client listens."""
    try:
        while True:
            yield sse_event(await feed.next())
    finally:  # the client left (the generator is cancelled) or the server stops
        feed.close()
