"""Server-sent events framing.

`/events`: `event: <type>`, `id: <envelope id>` (durable events only), `data: <envelope>`. Only durable events
carry an SSE id, so the Last-Event-ID a client resumes from always names a stored event.
The SSE reply of `POST .../messages` speaks ElizaOS's vocabulary instead (see `api/sending.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from litestar.types import Receive, Scope, Send
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError

from core.bus import parse_event_id
from core.services.events import SessionFeed
from core.settings import Settings

# Lines end with "\n" alone, as ElizaOS writes them: readers written for it split events on "\n\n"
# (sse-starlette's default "\r\n" is valid SSE too, but those readers never see an event end).
SEP = "\n"
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
    return EventStreamResponse(events, ping=settings.sse_ping_seconds, send_timeout=settings.sse_send_timeout_seconds,
                               sep=SEP)


def sse_event(envelope: dict[str, Any]) -> ServerSentEvent:
    event_id = envelope.get("id")
    durable = event_id is not None and parse_event_id(event_id)[1] == 0
    return ServerSentEvent(data=orjson.dumps(envelope).decode(), event=envelope["type"],
                           id=event_id if durable else None, sep=SEP)


def reply_event(kind: str, data: dict[str, Any], event_id: str | None = None) -> ServerSentEvent:
    """An event of an SSE reply, framed as ElizaOS frames it: the payload itself as data, no envelope.
    `event_id` is the durable event it stands for (user_message, done, a failure's error), if any."""
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=kind, id=event_id, sep=SEP)


def reply_error(code: str, message: str, message_id: str, event_id: str | None = None) -> ServerSentEvent:
    """ElizaOS readers read `error`; ours read `code` and `message`."""
    return reply_event("error", {"error": message, "code": code, "message": message, "messageId": message_id},
                       event_id)


async def event_stream(feed: SessionFeed) -> AsyncIterator[ServerSentEvent]:
    """Every event of the session, for as long as the client listens."""
    try:
        while True:
            yield sse_event(await feed.next())
    finally:  # the client left (the generator is cancelled) or the server stops
        feed.close()
