"""Every error case answers a JSON error with the right status and code, never a 500 (the table in docs/api.md,
"Errors")."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from core.clock import utcnow
from core.models import DEFAULT_AGENT_ID, sessions_table
from tests.support.factories import SESSIONS, create_session, send_message, unique_user
from tests.support.processes import Stack

AGENT = str(DEFAULT_AGENT_ID)
UNKNOWN = "00000000-0000-4000-8000-00000000dead"
BIG_METADATA = {"blob": "x" * 11_000}


def _session(client: httpx.Client) -> str:
    return create_session(client)["sessionId"]


def _post_raw(path: str, body: bytes) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(path, content=body, headers={"content-type": "application/json"})


def _with_session(call: Callable[[httpx.Client, str], httpx.Response]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: call(client, _session(client))


CASES: list[tuple[str, Callable[[httpx.Client], httpx.Response], int, str]] = [
    ("malformed JSON (create)", _post_raw(SESSIONS, b'{"agentId": '), 400, "INVALID_JSON"),
    ("malformed JSON (send)", _with_session(lambda c, s: c.post(f"{SESSIONS}/{s}/messages", content=b"{oops",
                                                                   headers={"content-type": "application/json"})),
     400, "INVALID_JSON"),
    ("missing agentId", lambda c: c.post(SESSIONS, json={"userId": "u1"}), 400, "INVALID_REQUEST"),
    ("agentId not a UUID", lambda c: c.post(SESSIONS, json={"agentId": "nope", "userId": "u1"}), 400,
     "INVALID_REQUEST"),
    ("missing userId", lambda c: c.post(SESSIONS, json={"agentId": AGENT}), 400, "INVALID_REQUEST"),
    ("userId with forbidden characters", lambda c: c.post(SESSIONS, json={"agentId": AGENT, "userId": "a b!"}),
     400, "INVALID_REQUEST"),
    ("unknown agent", lambda c: c.post(SESSIONS, json={"agentId": UNKNOWN, "userId": "u1"}), 404,
     "AGENT_NOT_FOUND"),
    ("timeoutMinutes out of bounds", lambda c: c.post(SESSIONS, json={
        "agentId": AGENT, "userId": "u1", "timeoutConfig": {"timeoutMinutes": 1}}), 400, "INVALID_REQUEST"),
    ("session metadata over 10 KiB", lambda c: c.post(SESSIONS, json={
        "agentId": AGENT, "userId": "u1", "metadata": BIG_METADATA}), 400, "METADATA_TOO_LARGE"),
    ("metadata not an object", lambda c: c.post(SESSIONS, json={"agentId": AGENT, "userId": "u1", "metadata": [1]}),
     400, "INVALID_REQUEST"),
    ("malformed session id", lambda c: c.get(f"{SESSIONS}/not-a-uuid"), 400, "INVALID_REQUEST"),
    ("unknown session (get)", lambda c: c.get(f"{SESSIONS}/{UNKNOWN}"), 404, "SESSION_NOT_FOUND"),
    ("unknown session (send)", lambda c: send_message(c, UNKNOWN, "hi"), 404, "SESSION_NOT_FOUND"),
    ("unknown session (history)", lambda c: c.get(f"{SESSIONS}/{UNKNOWN}/messages"), 404, "SESSION_NOT_FOUND"),
    ("empty content", _with_session(lambda c, s: send_message(c, s, "")), 400, "INVALID_CONTENT"),
    ("blank content", _with_session(lambda c, s: send_message(c, s, "   \n")), 400, "INVALID_CONTENT"),
    ("content over 4000 characters", _with_session(lambda c, s: send_message(c, s, "a" * 4001)), 400,
     "INVALID_CONTENT"),
    ("content not a string", _with_session(lambda c, s: c.post(f"{SESSIONS}/{s}/messages", json={"content": 5})),
     400, "INVALID_REQUEST"),
    ("content missing", _with_session(lambda c, s: c.post(f"{SESSIONS}/{s}/messages", json={})), 400,
     "INVALID_REQUEST"),
    ("message metadata over 10 KiB", _with_session(lambda c, s: send_message(c, s, "hi", metadata=BIG_METADATA)),
     400, "METADATA_TOO_LARGE"),
    ("unknown transport", _with_session(lambda c, s: send_message(c, s, "hi", transport="pigeon")), 400,
     "INVALID_REQUEST"),
    ("limit=0", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/messages?limit=0")), 400, "INVALID_PAGINATION"),
    ("limit=101", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/messages?limit=101")), 400,
     "INVALID_PAGINATION"),
    ("limit=abc", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/messages?limit=abc")), 400,
     "INVALID_PAGINATION"),
    ("before=yesterday", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/messages?before=yesterday")), 400,
     "INVALID_PAGINATION"),
    ("before=seq: beyond 64 bits", _with_session(lambda c, s: c.get(
        f"{SESSIONS}/{s}/messages?before=seq:99999999999999999999")), 400, "INVALID_PAGINATION"),
    ("after=seq: beyond the seq column (32 bits)", _with_session(lambda c, s: c.get(
        f"{SESSIONS}/{s}/messages?after=seq:47914331601735")), 400, "INVALID_PAGINATION"),
    ("after= a time before year 1 in UTC", _with_session(lambda c, s: c.get(
        f"{SESSIONS}/{s}/messages", params={"after": "0001-01-01T00:00:00+01:00"})), 400, "INVALID_PAGINATION"),
    ("after= a cursor naming no message", _with_session(lambda c, s: c.get(
        f"{SESSIONS}/{s}/messages?after=1705312800123.005")), 400, "INVALID_PAGINATION"),
    ("unknown session (state history)", lambda c: c.get(f"{SESSIONS}/{UNKNOWN}/state/history"), 404,
     "SESSION_NOT_FOUND"),
    ("malformed session id (state history)", lambda c: c.get(f"{SESSIONS}/nope/state/history"), 400,
     "INVALID_REQUEST"),
    ("state history limit=0", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/state/history?limit=0")), 400,
     "INVALID_PAGINATION"),
    ("state history after=tomorrow", _with_session(lambda c, s: c.get(f"{SESSIONS}/{s}/state/history?after=x")),
     400, "INVALID_PAGINATION"),
    ("stats from=yesterday", lambda c: c.get(f"{SESSIONS}/stats?from=yesterday"), 400, "INVALID_REQUEST"),
    ("stats from= before year 1 in UTC", lambda c: c.get(f"{SESSIONS}/stats", params={
        "from": "0001-01-01T00:00:00+01:00"}), 400, "INVALID_REQUEST"),
    ("stats from after to", lambda c: c.get(f"{SESSIONS}/stats?from=2025-02-01T00:00:00Z&to=2025-01-01"), 400,
     "INVALID_REQUEST"),
    ("stats agentId not a UUID", lambda c: c.get(f"{SESSIONS}/stats?agentId=eliza"), 400, "INVALID_REQUEST"),
    ("stats with unknown status", lambda c: c.get(f"{SESSIONS}/stats?status=sleeping"), 400, "INVALID_REQUEST"),
    ("list with unknown status", lambda c: c.get(f"{SESSIONS}?status=sleeping"), 400, "INVALID_REQUEST"),
    ("list with a bad cursor", lambda c: c.get(f"{SESSIONS}?cursor=zzz"), 400, "INVALID_PAGINATION"),
    ("resume a session that is not paused", _with_session(lambda c, s: c.post(f"{SESSIONS}/{s}/resume")), 409,
     "SESSION_NOT_PAUSED"),
    ("duplicate agent name", lambda c: c.post("/api/agents", json={"name": "Eliza", "provider": "echo"}), 409,
     "AGENT_NAME_TAKEN"),
    ("unknown agent provider", lambda c: c.post("/api/agents", json={"name": unique_user(), "provider": "x"}), 400,
     "INVALID_REQUEST"),
    ("unknown route", lambda c: c.get("/api/nothing-here"), 404, "NOT_FOUND"),
    ("wrong method", lambda c: c.put(SESSIONS), 405, "METHOD_NOT_ALLOWED"),
    ("body over 256 KiB", lambda c: c.post(SESSIONS, content=b"{" + b" " * 300_000 + b"}",
                                           headers={"content-type": "application/json"}), 413, "REQUEST_TOO_LARGE"),
    ("JSON nested 1,000 levels", _post_raw(SESSIONS, b"[" * 1000 + b"]" * 1000), 400, "INVALID_JSON"),
    ("metadata nested 100 levels", _post_raw(SESSIONS, b'{"agentId": "' + AGENT.encode() + b'", "userId": "u1", '
                                             b'"metadata": {"x": ' + b"[" * 100 + b"]" * 100 + b"}}"),
     400, "INVALID_JSON"),
    ("stats from a date that leaves the calendar in UTC",
     lambda c: c.get(f"{SESSIONS}/stats", params={"from": "0001-01-01T00:00:00+14:00"}), 400, "INVALID_REQUEST"),
    ("stats to a date that leaves the calendar in UTC",
     lambda c: c.get(f"{SESSIONS}/stats", params={"to": "9999-12-31T23:59:59-14:00"}), 400, "INVALID_REQUEST"),
    ("list cursor at the edge of the calendar", lambda c: c.get(SESSIONS, params={"cursor": base64.urlsafe_b64encode(
        f"9999-12-31T23:59:59-14:00|{UNKNOWN}".encode()).decode()}), 400, "INVALID_PAGINATION"),
    ("list userId with NUL", lambda c: c.get(f"{SESSIONS}?userId=%00"), 400, "INVALID_REQUEST"),
    ("static file name with NUL", lambda c: c.get("/static/chat.js%00.html"), 404, "NOT_FOUND"),
]


@pytest.mark.parametrize(("call", "status", "code"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_error_case_answers_json_error(client: httpx.Client, call: Callable[[httpx.Client], httpx.Response],
                                       status: int, code: str) -> None:
    response = call(client)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["message"] == body["error"]["message"] and body["message"]
    assert body["error"]["timestamp"].endswith("Z")


def test_ended_session_rejects_messages_with_410(client: httpx.Client) -> None:
    sid = _session(client)
    client.delete(f"{SESSIONS}/{sid}")

    response = send_message(client, sid, "still there?")

    assert (response.status_code, response.json()["error"]["code"]) == (410, "SESSION_ENDED")


def test_expired_session_rejects_messages_with_410_and_keeps_history(client: httpx.Client, stack: Stack) -> None:
    sid = _session(client)
    assert send_message(client, sid, "hello").status_code == 201
    _set_session(stack, sid, expires_at=utcnow() - timedelta(seconds=1))

    response = send_message(client, sid, "are you there?")

    assert (response.status_code, response.json()["error"]["code"]) == (410, "SESSION_EXPIRED")
    assert client.get(f"{SESSIONS}/{sid}").json()["status"] == "expired"
    assert len(client.get(f"{SESSIONS}/{sid}/messages").json()["messages"]) == 2


def test_paused_session_rejects_messages_with_409(client: httpx.Client) -> None:
    sid = _session(client)
    assert client.post(f"{SESSIONS}/{sid}/pause").status_code == 200

    response = send_message(client, sid, "hello?")

    assert (response.status_code, response.json()["error"]["code"]) == (409, "SESSION_PAUSED")


def test_repeated_idempotency_key_returns_the_first_reply_without_a_second_message(client: httpx.Client) -> None:
    sid = _session(client)
    headers = {"Idempotency-Key": "retry-1"}

    first = send_message(client, sid, "I am worried about my exams", headers=headers)
    again = send_message(client, sid, "I am worried about my exams", headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert client.get(f"{SESSIONS}/{sid}").json()["messageCount"] == 2


def test_idempotency_key_reused_with_another_body_is_422(client: httpx.Client) -> None:
    sid = _session(client)
    send_message(client, sid, "first body", headers={"Idempotency-Key": "k-2"})

    response = send_message(client, sid, "second body", headers={"Idempotency-Key": "k-2"})

    assert (response.status_code, response.json()["error"]["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")


def test_repeated_idempotency_key_on_create_returns_the_same_session(client: httpx.Client) -> None:
    body = {"agentId": AGENT, "userId": unique_user()}
    first = client.post(SESSIONS, json=body, headers={"Idempotency-Key": "create-1"})
    again = client.post(SESSIONS, json=body, headers={"Idempotency-Key": "create-1"})

    assert first.status_code == again.status_code == 201
    assert again.json()["sessionId"] == first.json()["sessionId"]


def _set_session(stack: Stack, session_id: str, **values: Any) -> None:
    engine = create_engine(stack.env["DATABASE_URL"].replace("postgresql:", "postgresql+psycopg:"))
    with engine.begin() as conn:
        conn.execute(update(sessions_table).where(sessions_table.c.id == uuid.UUID(session_id)).values(**values))
    engine.dispose()
