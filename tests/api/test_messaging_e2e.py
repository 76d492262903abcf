"""End to end over real HTTP: API process + Celery worker process + Redis, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import httpx

from tests.support.factories import SESSIONS, create_session, history, send_message, unique_user
from tests.support.processes import Stack


def test_reply_has_content_and_thought(client: httpx.Client) -> None:
    session = create_session(client, metadata={"platform": "web"})

    response = send_message(client, session["sessionId"], "Hello, I need help with my account")

    assert response.status_code == 201, response.text
    reply = response.json()
    assert reply["isAgent"] is True and reply["role"] == "agent"
    assert reply["content"]
    assert reply["metadata"]["thought"]
    assert 0 <= reply["metadata"]["confidence"] <= 1
    assert reply["userMessage"]["content"] == "Hello, I need help with my account"
    assert reply["replyTo"] == reply["userMessage"]["id"]
    assert reply["sessionStatus"]["status"] == "active"


def test_session_counts_messages_and_keeps_history_after_end(client: httpx.Client) -> None:
    session = create_session(client)
    sid = session["sessionId"]
    send_message(client, sid, "I feel tired today")

    assert client.delete(f"{SESSIONS}/{sid}").status_code == 200

    fetched = client.get(f"{SESSIONS}/{sid}").json()
    assert fetched["status"] == "ended" and fetched["messageCount"] == 2
    assert [m["role"] for m in history(client, sid)["messages"]] == ["agent", "user"]


def test_history_pages_back_with_before_after_and_limit(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    for n in range(5):
        assert send_message(client, sid, f"message number {n}").status_code == 201

    newest = history(client, sid, limit=4)
    older = history(client, sid, limit=4, before=newest["cursors"]["before"])
    forward = history(client, sid, limit=3, after=older["cursors"]["after"])

    assert [m["seq"] for m in newest["messages"]] == [10, 9, 8, 7] and newest["hasMore"] is True
    assert [m["seq"] for m in older["messages"]] == [6, 5, 4, 3] and older["hasMore"] is True
    assert [m["seq"] for m in forward["messages"]] == [9, 8, 7] and forward["hasMore"] is True
    last = history(client, sid, limit=4, before=older["cursors"]["before"])
    assert [m["seq"] for m in last["messages"]] == [2, 1] and last["hasMore"] is False


def test_history_accepts_timestamps_as_iso_and_epoch_ms(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    send_message(client, sid, "first")
    send_message(client, sid, "second")
    messages = history(client, sid)["messages"]
    second_user = next(m for m in messages if m["content"] == "second")
    moment = datetime.fromisoformat(second_user["createdAt"].replace("Z", "+00:00"))

    by_iso = history(client, sid, before=second_user["createdAt"])
    by_epoch = history(client, sid, before=str(int(moment.timestamp() * 1000)))

    assert [m["seq"] for m in by_iso["messages"]] == [2, 1]
    assert [m["seq"] for m in by_epoch["messages"]] == [2, 1]


def test_concurrent_sessions_each_message_answered_once_in_order(stack: Stack) -> None:
    sessions_count, per_session = 10, 20

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=120,
                                     limits=httpx.Limits(max_connections=200)) as http:
            ids = []
            for _ in range(sessions_count):
                created = await http.post(SESSIONS, json={"agentId": "e1a2a000-0000-4000-8000-000000000001",
                                                          "userId": unique_user()})
                ids.append(created.json()["sessionId"])
            sends = [http.post(f"{SESSIONS}/{sid}/messages", json={"content": f"turn {n} in {sid[:8]}"})
                     for n in range(per_session) for sid in ids]
            responses = await asyncio.gather(*sends)
            assert Counter(r.status_code for r in responses) == {201: sessions_count * per_session}
            return ids

    session_ids = asyncio.run(run())

    with httpx.Client(base_url=stack.base_url) as http:
        for sid in session_ids:
            messages = sorted(history(http, sid, limit=100)["messages"], key=lambda m: m["seq"])
            users = [m for m in messages if m["role"] == "user"]
            replies = [m for m in messages if m["role"] == "agent"]
            assert len(users) == per_session and len(replies) == per_session
            assert [r["replyTo"] for r in replies] == [u["id"] for u in users]  # one each, in order
            assert all(u["status"] == "completed" for u in users)
