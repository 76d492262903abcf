"""The client's reading of event streams, on the wire format streaming serves (an httpx transport plays
the server): the SSE reply in ElizaOS's vocabulary turned into typed events, keep-alives, errors, resuming
/events by Last-Event-ID."""

from __future__ import annotations

import json

import httpx
import pytest

from agent_sessions_client import (
    AgentFailed,
    MessageChunk,
    MessageCompleted,
    MessageCreated,
    SessionsClient,
    StateUpdated,
)

SID = "5f1c6a58-8a86-4d47-9d6c-0d4f0c9d7a11"


def sse(event: str, data: dict, event_id: str | None = None) -> str:
    envelope = {"id": event_id or "0-1", "type": event, "sessionId": SID, "data": data,
                "createdAt": "2026-01-01T00:00:00Z"}
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + f"data: {json.dumps(envelope)}\n\n"


def reply_sse(event: str, data: dict, event_id: str | None = None) -> str:
    """An event of an SSE reply: ElizaOS's names, the payload itself as data."""
    return f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "") + f"data: {json.dumps(data)}\n\n"


U1, A1 = "9b0f6a3e-1111-4d47-9d6c-0d4f0c9d7a11", "9b0f6a3e-2222-4d47-9d6c-0d4f0c9d7a11"
USER = {"id": U1, "sessionId": SID, "seq": 1, "role": "user", "isAgent": False, "authorId": "alice",
        "content": "Hi", "status": "pending", "createdAt": "2026-01-01T00:00:00Z", "metadata": {}}
AGENT = {**USER, "id": A1, "seq": 2, "role": "agent", "isAgent": True, "content": "Hello there",
         "status": "completed", "replyTo": U1}
REPLY_STREAM = "".join([
    reply_sse("user_message", USER, "1-0"),
    ": ping\n\n",
    reply_sse("chunk", {"messageId": A1, "replyTo": U1, "index": 0, "chunk": "Hello "}),
    reply_sse("chunk", {"messageId": A1, "replyTo": U1, "index": 1, "chunk": "there"}),
    reply_sse("done", {"text": "Hello there", "thought": "", "actions": [], "messageId": A1, "replyTo": U1,
                       "message": AGENT, "sessionStatus": {"state": {"stage": "greeting"}}, "lastEventId": "3-0"},
              "3-0"),
])


def client_for(handler) -> SessionsClient:  # type: ignore[no-untyped-def]
    return SessionsClient("http://server.test", reconnect_delay=0, transport=httpx.MockTransport(handler))


def event_stream(text: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)


def test_stream_yields_typed_events_and_skips_keep_alives() -> None:
    sent = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return event_stream(REPLY_STREAM)

    events = list(client_for(server).stream(SID, "Hi"))

    assert sent == [{"content": "Hi", "transport": "sse"}]
    assert [type(e) for e in events[:5]] == [MessageCreated, MessageChunk, MessageChunk, MessageCompleted,
                                            StateUpdated]
    assert "".join(e.delta for e in events if isinstance(e, MessageChunk)) == events[3].message.content
    assert events[0].message.content == "Hi" and events[-1].type == "done"


def test_stream_raises_the_error_event_after_message_failed() -> None:
    failed = "".join([
        reply_sse("user_message", USER, "1-0"),
        reply_sse("error", {"error": "model down", "code": "AGENT_FAILED", "message": "model down", "messageId": U1},
                  "2-0"),
    ])
    seen = []

    events = client_for(lambda request: event_stream(failed)).stream(SID, "Hi")
    with pytest.raises(AgentFailed, match="model down"):
        seen.extend(event.type for event in events)  # keeps the types that came before the error

    assert seen == ["message.created", "message.failed"]


def test_events_reconnect_with_the_last_durable_event_id() -> None:
    requests: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        requests.append(request.headers.get("Last-Event-ID"))
        if len(requests) == 1:  # the connection drops after two events and a chunk
            return event_stream(sse("message.created", {"message": USER}, "1-0") + sse("session.renewed", {}, "2-0")
                                + sse("message.chunk", {"delta": "x"}))
        return event_stream(sse("session.paused", {}, "3-0"))

    events = client_for(server).events(SID, last_event_id="0-0", max_reconnects=1)
    kinds = [next(events).type for _ in range(4)]

    assert kinds == ["message.created", "session.renewed", "message.chunk", "session.paused"]
    assert requests == ["0-0", "2-0"]
