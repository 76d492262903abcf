"""Server-sent events framing: `event: <type>`, `id: <envelope id>` (durable events only), `data: <envelope>`.

Only durable events carry an SSE id, so the Last-Event-ID a client resumes from always names a stored
event. Chunks and the `done`/`error` events that end an SSE reply carry none.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.resources import Resources
from core.auth import Principal
from core.bus import parse_event_id
from core.clock import isoformat, utcnow
from core.services.events import SessionFeed, follow_session
from core.settings import Settings
from core.streams import StreamSlot

# A client that takes no data for this long is dropped: its events would otherwise pile up in memory.
SEND_TIMEOUT_SECONDS = 30.0


def sse_response(events: AsyncIterator[ServerSentEvent], settings: Settings) -> EventSourceResponse:
    return EventSourceResponse(events, ping=settings.sse_ping_seconds, send_timeout=SEND_TIMEOUT_SECONDS)


def sse_event(envelope: dict[str, Any]) -> ServerSentEvent:
    event_id = envelope.get("id")
    durable = event_id is not None and parse_event_id(event_id)[1] == 0
    return ServerSentEvent(data=orjson.dumps(envelope).decode(), event=envelope["type"],
                           id=event_id if durable else None)


def terminal_event(kind: str, session_id: uuid.UUID, data: dict[str, Any]) -> ServerSentEvent:
    """`done` or `error`: not session events, so no id (resuming /events skips nothing because of them)."""
    return sse_event({"id": None, "type": kind, "sessionId": str(session_id), "data": data,
                      "createdAt": isoformat(utcnow())})


TOKEN_EXPIRED = {"code": "TOKEN_EXPIRED",
                 "message": "the token has expired; reconnect with a fresh one (Last-Event-ID resumes from here)"}


async def event_stream(feed: SessionFeed, principal: Principal, slot: StreamSlot) -> AsyncIterator[ServerSentEvent]:
    """Every event of the session, for as long as the client listens and its credentials are valid: a user
    token's stream ends with an `error` event (TOKEN_EXPIRED) when the token expires."""
    try:
        while True:
            left = principal.seconds_left(utcnow())
            if left is not None and left <= 0:
                yield terminal_event("error", feed.session_id, TOKEN_EXPIRED)
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
