"""Double texting: messages sent while the previous one is being answered, per session strategy.

Real API and worker processes; the agent is ELIZA slowed down per word, so the burst lands while the first
message is being answered.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.support.factories import SESSIONS, create_session, history, send_message
from tests.support.processes import wait_until
from tests.support.sse import SSE, read_events, read_until

SLOW_WORD_MS = 300  # an ELIZA reply (4+ words) takes at least ~1 s: time for a burst to land


@pytest.fixture()
def slow_agent(client: httpx.Client) -> str:
    response = client.post("/api/agents", json={"name": f"slow-{uuid.uuid4().hex[:8]}", "provider": "eliza",
                                                "settings": {"chunk_delay_ms": SLOW_WORD_MS}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _start_burst(client: httpx.Client, strategy: str, agent_id: str) -> tuple[str, dict[str, Any]]:
    """A session whose first message is being answered right now."""
    session = create_session(client, agentId=agent_id, doubleTexting=strategy)
    assert session["doubleTexting"] == strategy
    first = send_message(client, session["sessionId"], "I feel anxious about my exams", transport="websocket")
    assert first.status_code == 202, first.text
    wait_until(lambda: _messages(client, session["sessionId"])[0]["status"] == "processing", 10,
               "the first message to be in the worker's hands")
    return session["sessionId"], first.json()["userMessage"]


def _messages(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    """The session's messages, oldest first."""
    return list(reversed(history(client, session_id, limit=100)["messages"]))


def _settled(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    wait_until(lambda: all(m["status"] in ("completed", "failed") for m in _messages(client, session_id)), 20,
               "every message to be settled")
    return _messages(client, session_id)


def _send_async(client: httpx.Client, session_id: str, content: str, key: str | None = None) -> dict[str, Any]:
    response = send_message(client, session_id, content, transport="websocket",
                            headers={"Idempotency-Key": key} if key else None)
    assert response.status_code == 202, response.text
    return response.json()["userMessage"]


def test_enqueue_answers_every_message_in_order(client: httpx.Client, slow_agent: str) -> None:
    session_id, first = _start_burst(client, "enqueue", slow_agent)
    burst = [_send_async(client, session_id, text) for text in ("My mother never listens", "I am tired")]

    messages = _settled(client, session_id)

    replies = [m for m in messages if m["role"] == "agent"]
    assert [r["replyTo"] for r in replies] == [first["id"], burst[0]["id"], burst[1]["id"]]
    assert all(m["status"] == "completed" for m in messages)


def test_reject_refuses_a_message_while_one_is_pending_then_accepts_after(client: httpx.Client,
                                                                         slow_agent: str) -> None:
    session_id, first = _start_burst(client, "reject", slow_agent)

    refused = send_message(client, session_id, "Hello? Are you there?")

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "SESSION_BUSY"
    assert refused.json()["error"]["details"]["pendingMessageId"] == first["id"]
    _settled(client, session_id)
    later = send_message(client, session_id, "Sorry, I was impatient")
    assert later.status_code == 201, later.text
    assert [m["role"] for m in _messages(client, session_id)] == ["user", "agent", "user", "agent"]


def test_interrupt_abandons_the_current_reply_and_answers_the_newest(client: httpx.Client, slow_agent: str) -> None:
    session = create_session(client, agentId=slow_agent, doubleTexting="interrupt")
    session_id = session["sessionId"]
    blocked: dict[str, httpx.Response] = {}
    waiter = threading.Thread(target=lambda: blocked.update(
        response=send_message(client, session_id, "I feel anxious about my exams")))
    waiter.start()  # a blocking client waits for the reply to its first message
    wait_until(lambda: bool(_messages(client, session_id)) and _messages(client, session_id)[0]["status"]
               == "processing", 10, "the first message to be in the worker's hands")
    second = _send_async(client, session_id, "Actually, forget that")
    newest = _send_async(client, session_id, "I dream about the sea")

    messages = _settled(client, session_id)
    waiter.join(20)

    replies = [m for m in messages if m["role"] == "agent"]
    assert [r["replyTo"] for r in replies] == [newest["id"]]
    superseded = [m for m in messages if m["role"] == "user" and m["status"] == "failed"]
    assert {m["id"] for m in superseded} == {messages[0]["id"], second["id"]}
    assert all(m["metadata"]["errorCode"] == "SUPERSEDED" for m in superseded)
    assert blocked["response"].status_code == 409, blocked["response"].text
    assert blocked["response"].json()["error"]["code"] == "MESSAGE_SUPERSEDED"


def test_coalesce_answers_the_burst_as_one_turn(client: httpx.Client, slow_agent: str) -> None:
    session_id, first = _start_burst(client, "coalesce", slow_agent)
    burst = [_send_async(client, session_id, text, key=f"burst-{index}")
             for index, text in enumerate(("Also my mother", "never listens to me", "and I feel sad"))]

    messages = _settled(client, session_id)

    replies = [m for m in messages if m["role"] == "agent"]
    assert [r["replyTo"] for r in replies] == [first["id"], burst[-1]["id"]]
    turn_reply = replies[-1]
    assert turn_reply["metadata"]["coalesced"] == [burst[0]["id"], burst[1]["id"]]
    by_id = {m["id"]: m for m in messages}
    for earlier in burst[:2]:
        assert by_id[earlier["id"]]["status"] == "completed"
        assert by_id[earlier["id"]]["metadata"]["coalescedInto"] == burst[-1]["id"]
    # A client retrying the send of an earlier message of the burst gets the turn's reply.
    retry = send_message(client, session_id, "Also my mother", transport="websocket",
                         headers={"Idempotency-Key": "burst-0"})
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == turn_reply["id"]
    assert retry.json()["userMessage"]["id"] == burst[0]["id"]


def test_sse_send_of_a_coalesced_message_ends_with_the_turns_reply(client: httpx.Client) -> None:
    # Slower still: the streamed send and the next one must both land while the first reply is written.
    slowest = client.post("/api/agents", json={"name": f"slowest-{uuid.uuid4().hex[:8]}", "provider": "eliza",
                                               "settings": {"chunk_delay_ms": 1000}}).json()["id"]
    session_id, _ = _start_burst(client, "coalesce", slowest)
    streamed: list[SSE] = []

    def stream() -> None:
        with httpx.Client(base_url=client.base_url, timeout=httpx.Timeout(60)) as http, \
                http.stream("POST", f"{SESSIONS}/{session_id}/messages",
                            json={"content": "Also my mother", "transport": "sse"}) as response:
            streamed.extend(read_until(read_events(response), lambda event: event.event in ("done", "error")))

    reader = threading.Thread(target=stream)
    reader.start()
    wait_until(lambda: len(_messages(client, session_id)) == 2, 10, "the streamed message to be stored")
    last = _send_async(client, session_id, "and I feel sad")
    reader.join(60)

    # The reply stream ends with the turn's reply, which answers this message too (it waited for a state
    # update of its own before, which a coalesced message never gets, and ended in REPLY_TIMEOUT).
    assert [event.event for event in streamed if event.event != "chunk"] == ["user_message", "done"]
    done = streamed[-1].payload
    assert done["replyTo"] == last["id"] and done["message"]["metadata"]["coalesced"] == [streamed[0].payload["id"]]


def test_unknown_strategy_is_refused(client: httpx.Client) -> None:
    response = client.post(SESSIONS, json={"agentId": "e1a2a000-0000-4000-8000-000000000001", "userId": "u-1",
                                           "doubleTexting": "ignore"})

    assert response.status_code == 400
    assert "doubleTexting" in response.text
