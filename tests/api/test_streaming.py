"""Streaming over real HTTP: SSE replies and the resumable /events stream (API + worker processes)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import redis

from tests.support.factories import SESSIONS, create_session, history, send_message
from tests.support.processes import Stack
from tests.support.sse import SSE, read_events, read_until

STREAM_TIMEOUT = httpx.Timeout(30, read=20)  # a stalled stream fails the test instead of hanging it
SLOW_CHUNK_MS = 200


def slow_agent(client: httpx.Client) -> str:
    """An ELIZA agent pausing between words, so a reply takes a while to stream."""
    response = client.post("/api/agents", json={"name": f"slow-eliza-{uuid.uuid4().hex[:8]}", "provider": "eliza",
                                                "settings": {"chunk_delay_ms": SLOW_CHUNK_MS}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stream_reply(client: httpx.Client, session_id: str, body: dict[str, Any],
                 headers: dict[str, str] | None = None) -> list[SSE]:
    with client.stream("POST", f"{SESSIONS}/{session_id}/messages", json=body, headers=headers,
                       timeout=STREAM_TIMEOUT) as response:
        return read_until(read_events(response), lambda e: e.event in ("done", "error"))


def test_sse_reply_streams_chunks_before_the_reply_is_stored(client: httpx.Client) -> None:
    sid = create_session(client, agentId=slow_agent(client))["sessionId"]
    stored_when_first_chunk: list[str] | None = None
    events: list[SSE] = []

    with client.stream("POST", f"{SESSIONS}/{sid}/messages", timeout=STREAM_TIMEOUT,
                       json={"content": "I am sad because my job is hard", "transport": "sse"}) as response:
        for event in read_events(response):
            events.append(event)
            if event.event == "chunk" and stored_when_first_chunk is None:
                stored_when_first_chunk = [m["role"] for m in history(client, sid)["messages"]]
            if event.event in ("done", "error"):
                break

    assert [e.event for e in events if e.event != "chunk"] == ["user_message", "done"]
    assert stored_when_first_chunk == ["user"]  # the agent's message did not exist yet
    chunks = [e.payload for e in events if e.event == "chunk"]
    done = events[-1].payload
    assert len(chunks) > 3 and [chunk["index"] for chunk in chunks] == list(range(len(chunks)))
    assert "".join(chunk["chunk"] for chunk in chunks) == done["text"] == done["message"]["content"]
    assert {chunk["messageId"] for chunk in chunks} == {done["messageId"]}
    assert [m["content"] for m in history(client, sid)["messages"] if m["role"] == "agent"] == [done["text"]]


def test_sse_reply_speaks_elizaos_event_names_and_payloads(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    events = stream_reply(client, sid, {"content": "Hello there", "transport": "sse"})

    user_message, done = events[0], events[-1]
    assert user_message.event == "user_message" and user_message.payload["content"] == "Hello there"
    assert done.event == "done" and done.payload["text"] and done.payload["thought"]
    assert isinstance(done.payload["actions"], list)
    assert done.payload["replyTo"] == user_message.payload["id"] and done.payload["message"]["isAgent"] is True
    assert done.payload["sessionStatus"]["status"] == "active" and done.payload["sessionStatus"]["wasRenewed"]
    # Ids only where the event stands for a stored one: /events resumes after `done`'s without repeating it.
    assert user_message.id and done.id == done.payload["lastEventId"]
    assert all(event.id is None for event in events if event.event == "chunk")


@pytest.mark.parametrize("ask", [{"body": {"mode": "stream"}}, {"headers": {"Accept": "text/event-stream"}}])
def test_sse_reply_by_mode_or_accept_header(client: httpx.Client, ask: dict[str, Any]) -> None:
    sid = create_session(client)["sessionId"]

    events = stream_reply(client, sid, {"content": "I need help", **ask.get("body", {})}, ask.get("headers"))

    assert events[0].event == "user_message" and events[-1].event == "done"


def test_sse_reply_retry_with_idempotency_key_replays_the_same_exchange(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    body, headers = {"content": "I dream of cats", "transport": "sse"}, {"Idempotency-Key": uuid.uuid4().hex}

    first = stream_reply(client, sid, body, headers)
    again = stream_reply(client, sid, body, headers)

    durable = [(e.event, e.id) for e in first if e.id]
    assert [event for event, _ in durable] == ["user_message", "done"]
    assert [(e.event, e.id) for e in again if e.id] == durable
    assert again[-1].payload["text"] == first[-1].payload["text"]
    assert [m["role"] for m in history(client, sid)["messages"]] == ["agent", "user"]


def test_sse_reply_ends_with_an_error_when_the_agent_fails(client: httpx.Client) -> None:
    # Its API key variable (designated by its MODEL_KEY_ prefix) is not set in the worker: the agent cannot answer.
    broken = client.post("/api/agents", json={"name": f"unavailable-{uuid.uuid4().hex[:8]}", "provider": "openai",
                                              "settings": {"model": {"name": "m", "baseUrl": "http://127.0.0.1:9/v1",
                                                                     "apiKeyEnv": "MODEL_KEY_AS_TEST_UNSET"}}})
    sid = create_session(client, agentId=broken.json()["id"])["sessionId"]

    events = stream_reply(client, sid, {"content": "Hello?", "transport": "sse"})

    assert [e.event for e in events] == ["user_message", "error"]
    error = events[-1].payload
    assert error["code"] == "AGENT_MISCONFIGURED" and "MODEL_KEY_AS_TEST_UNSET" in error["message"]
    assert error["error"] == error["message"]  # what ElizaOS readers read


def test_sse_reply_errors_before_the_stream_are_json(client: httpx.Client) -> None:
    response = client.post(f"{SESSIONS}/{uuid.uuid4()}/messages", json={"content": "hi", "transport": "sse"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "SESSION_NOT_FOUND"


def follow(client: httpx.Client, session_id: str, last_event_id: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Last-Event-ID": last_event_id} if last_event_id else None
    return client.stream("GET", f"{SESSIONS}/{session_id}/events", headers=headers, timeout=STREAM_TIMEOUT)


def exchange_done(user_message_id: str):  # type: ignore[no-untyped-def]
    return lambda e: e.event == "state.updated" and e.data["messageId"] == user_message_id


def send(client: httpx.Client, session_id: str, content: str) -> str:
    response = send_message(client, session_id, content)
    assert response.status_code == 201, response.text
    return response.json()["userMessage"]["id"]


@pytest.mark.parametrize("stream_state", ["kept", "trimmed", "deleted"])
def test_events_resume_after_disconnect_with_every_missed_event_once(
        client: httpx.Client, stack: Stack, redis_client: redis.Redis, stream_state: str) -> None:
    sid = create_session(client)["sessionId"]
    with follow(client, sid) as response:
        events = read_events(response)
        first = send(client, sid, "Hello, I feel anxious")
        seen = read_until(events, exchange_done(first))
    last_id = [e.id for e in seen if e.id][-1]
    missed_ids = [send(client, sid, "I worry about my family"), send(client, sid, "My mother is ill")]
    stream_key = f"{stack.env['REDIS_PREFIX']}stream:{sid}"
    if stream_state == "trimmed":
        redis_client.xtrim(stream_key, maxlen=1, approximate=False)
    elif stream_state == "deleted":
        redis_client.delete(stream_key)

    with follow(client, sid, last_id) as response:
        events = read_events(response)
        caught_up = read_until(events, exchange_done(missed_ids[-1]))
        live_id = send(client, sid, "Goodbye")
        live = read_until(events, exchange_done(live_id))

    durable = [e for e in caught_up + live if e.id]
    last_seq = int(last_id.split("-")[0])
    assert [e.id for e in durable] == [f"{seq}-0" for seq in range(last_seq + 1, last_seq + 1 + len(durable))]
    assert [e.event for e in durable] == ["message.created", "message.completed", "state.updated"] * 3
    created = [e.data["message"]["id"] for e in durable if e.event == "message.created"]
    assert created == [*missed_ids, live_id]
    assert all(e.event == "message.chunk" for e in caught_up + live if not e.id)


def test_events_accepts_last_event_id_as_a_query_parameter(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    user_id = send(client, sid, "Hello")

    with client.stream("GET", f"{SESSIONS}/{sid}/events", params={"lastEventId": "0"},
                       timeout=STREAM_TIMEOUT) as response:
        replayed = read_until(read_events(response), exchange_done(user_id))

    assert [e.id for e in replayed] == ["1-0", "2-0", "3-0"]


@pytest.mark.parametrize(("path", "headers", "status"), [
    (f"{SESSIONS}/{uuid.uuid4()}/events", None, 404),
    (f"{SESSIONS}/not-a-uuid/events", None, 400),
])
def test_events_refused_before_streaming(client: httpx.Client, path: str, headers: Any, status: int) -> None:
    response = client.get(path, headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"]


def test_events_malformed_last_event_id_is_a_400(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    response = client.get(f"{SESSIONS}/{sid}/events", headers={"Last-Event-ID": "yesterday"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_EVENT_ID"


def test_slow_agent_setting_is_validated(client: httpx.Client) -> None:
    response = client.post("/api/agents", json={"name": f"too-slow-{uuid.uuid4().hex[:6]}",
                                                "settings": {"chunk_delay_ms": 60_000}})

    assert response.status_code == 400
