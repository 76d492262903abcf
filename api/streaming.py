"""Server-sent events framing.

`/events`: `event: <type>`, `id: <envelope id>` (durable events only), `data: <envelope>`. Only durable events
carry an SSE id, so the Last-Event-ID a client resumes from always names a stored event.
The SSE reply of `POST .../messages` speaks ElizaOS's vocabulary instead (see `api/sending.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import structlog
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError

from api.resources import Resources
from core.auth import Principal
from core.bus import parse_event_id
from core.clock import isoformat, utcnow
from core.services.events import SessionFeed, follow_session
from core.settings import Settings
from core.streams import StreamSlot

# Lines end with "\n" alone, as ElizaOS writes them: readers written for it split events on "\n\n"
# (sse-starlette's default "\r\n" is valid SSE too, but those readers never see an event end).
SEP = "\n"
log = structlog.get_logger(__name__)
# Starlette's ASGI types, which sse-starlette's response declares (spelled here: starlette is not ours to import).
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


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


TOKEN_EXPIRED = {"code": "TOKEN_EXPIRED",
                 "message": "the token has expired; reconnect with a fresh one (Last-Event-ID resumes from here)"}


async def event_stream(feed: SessionFeed, principal: Principal, slot: StreamSlot) -> AsyncIterator[ServerSentEvent]:
    """Every event of the session, for as long as the client listens and its credentials are valid: a user
    token's stream ends with an `error` event (TOKEN_EXPIRED) when the token expires."""
    try:
        while True:
            left = principal.seconds_left(utcnow())
            if left is not None and left <= 0:
                # Not a session event: no id, so resuming from Last-Event-ID skips nothing.
                yield sse_event({"id": None, "type": "error", "sessionId": str(feed.session_id),
                                 "data": TOKEN_EXPIRED, "createdAt": isoformat(utcnow())})
                return
            try:
                event = await feed.next(left)
            except TimeoutError:
                continue  # the token ran out while the session was quiet
            yield sse_event(event)
    finally:  # the client left (the generator is cancelled), the token expired, or the server stops
        feed.close()
        slot.release()


async def open_event_stream(resources: Resources, principal: Principal, session_id: uuid.UUID,
                            last_event_id: str | None) -> EventSourceResponse:
    """GET /events: a stream slot (429 / 503 beyond the caps), then the session's feed from Last-Event-ID."""
    slot = resources.streams.take(principal)
    try:
        feed = await follow_session(resources.events, resources.hub, session_id, last_event_id)
    except BaseException:
        slot.release()
        raise
    return sse_response(event_stream(feed, principal, slot), resources.settings)
