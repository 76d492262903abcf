"""Authorization matrix: every route × every kind of caller, against an API with authentication on.

Each row is one route and the status each caller gets, in the order of CALLERS. A new route is one row.
User A owns the session under test; user B is another user; the read-only token is user A's with
only `sessions:read`. A refused request must leave the session exactly as it was. Responses are read
as streams, so an event-stream route (`/events`) is one row too: its status is checked, its body not.
The socket.io `join` runs the real npm socket.io-client with the caller's credentials in the handshake's
`auth`; its outcome is written as the HTTP status it stands for (401 handshake refused, 404/403 join refused).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.models import DEFAULT_AGENT_ID
from tests.support.factories import SESSIONS, unique_user
from tests.support.node import NodeProcess, node_client_package
from tests.support.processes import Stack
from tests.support.tokens import SERVER, bearer, user_token

USER_A = unique_user()
USER_B = unique_user()
CALLERS = {
    "no credentials": {},
    "wrong key": {"X-API-KEY": "not-the-server-key"},
    "server key": SERVER,
    "user A": bearer(user_token(USER_A)),
    "user B": bearer(user_token(USER_B)),
    "expired token": bearer(user_token(USER_A, expires_in=-120)),
    "read-only token": bearer(user_token(USER_A, scope="sessions:read")),
}
SESSION = f"{SESSIONS}/{{sid}}"
JOIN = "SOCKET.IO JOIN"
STATUS_OF_JOIN_ERROR = {"SESSION_NOT_FOUND": 404, "INSUFFICIENT_SCOPE": 403}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {sid}: a fresh session of user A; {agent}: a fresh agent
    expect: str  # one status per caller, in the order of CALLERS
    body: dict[str, Any] | None = None
    paused: bool = False  # pause the session first (as the server key)


ROUTES = {
    # route                   method   path                       none wrong key  A    B   exp  read
    "create session": Route("POST", SESSIONS, "401 401 201 201 403 401 403",
                            {"agentId": str(DEFAULT_AGENT_ID), "userId": USER_A}),
    "list sessions": Route("GET", SESSIONS, "401 401 200 200 200 401 200"),
    "health": Route("GET", f"{SESSIONS}/health", "200 200 200 200 200 200 200"),
    "get session": Route("GET", SESSION, "401 401 200 200 404 401 200"),
    "history": Route("GET", f"{SESSION}/messages", "401 401 200 200 404 401 200"),
    "state history": Route("GET", f"{SESSION}/state/history", "401 401 200 200 404 401 200"),
    "stats": Route("GET", f"{SESSIONS}/stats", "401 401 200 200 200 401 200"),
    "events": Route("GET", f"{SESSION}/events", "401 401 200 200 404 401 200"),
    "socket.io join": Route(JOIN, "{sid}", "401 401 200 200 404 401 200"),
    "send message": Route("POST", f"{SESSION}/messages", "401 401 202 202 404 401 403",
                          {"content": "hello", "transport": "websocket"}),
    "pause": Route("POST", f"{SESSION}/pause", "401 401 200 200 404 401 403"),
    "resume": Route("POST", f"{SESSION}/resume", "401 401 200 200 404 401 403", paused=True),
    "renew": Route("POST", f"{SESSION}/renew", "401 401 200 200 404 401 403"),
    "heartbeat": Route("POST", f"{SESSION}/heartbeat", "401 401 200 200 404 401 403"),
    "timeout": Route("PATCH", f"{SESSION}/timeout", "401 401 200 200 404 401 403", {"timeoutMinutes": 45}),
    "end session": Route("DELETE", SESSION, "401 401 200 200 404 401 403"),
    "list agents": Route("GET", "/api/agents", "401 401 200 200 200 401 200"),
    "get agent": Route("GET", f"/api/agents/{DEFAULT_AGENT_ID}", "401 401 200 200 200 401 200"),
    "create agent": Route("POST", "/api/agents", "401 401 201 403 403 401 403", {"name": "agent-{uid}"}),
    "update agent": Route("PATCH", "/api/agents/{agent}", "401 401 200 403 403 401 403", {"name": "agent-{uid}"}),
    "delete agent": Route("DELETE", "/api/agents/{agent}", "401 401 200 403 403 401 403"),
    "mint token": Route("POST", "/api/auth/token", "401 401 201 403 403 401 403", {"userId": USER_A}),
    "openapi document": Route("GET", "/schema/openapi.json", "200 200 200 200 200 200 200"),
}
# The error code behind each refusal, so a 404 is "not found" and not a routing accident.
CODES = {401: {"UNAUTHORIZED", "TOKEN_EXPIRED"}, 403: {"FORBIDDEN", "INSUFFICIENT_SCOPE"}, 404: {"SESSION_NOT_FOUND"}}
# Fields of a session that change only when something happens to it.
STABLE_FIELDS = ("status", "messageCount", "renewalCount", "expiresAt", "lastActivity", "timeoutConfig", "endedAt")


@pytest.fixture(scope="module")
def http(secure_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secure_stack.base_url, timeout=30) as client:
        yield client


def _session_of_a(http: httpx.Client, paused: bool) -> dict[str, Any]:
    response = http.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": USER_A}, headers=SERVER)
    assert response.status_code == 201, response.text
    session = response.json()
    if paused:
        session = http.post(f"{SESSIONS}/{session['sessionId']}/pause", headers=SERVER).json()
    return session


def _fill(http: httpx.Client, value: Any, sid: str) -> Any:
    if isinstance(value, str):
        if "{agent}" in value:
            created = http.post("/api/agents", json={"name": f"agent-{uuid.uuid4().hex[:12]}"}, headers=SERVER)
            value = value.replace("{agent}", created.json()["id"])
        return value.replace("{sid}", sid).replace("{uid}", uuid.uuid4().hex[:12])
    if isinstance(value, dict):
        return {key: _fill(http, item, sid) for key, item in value.items()}
    return value


CASES = [pytest.param(name, caller, id=f"{name} | {caller}") for name in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("route_name", "caller"), CASES)
def test_route_answers_each_caller_as_the_matrix_says(http: httpx.Client, route_name: str, caller: str) -> None:
    route = ROUTES[route_name]
    expected = int(route.expect.split()[list(CALLERS).index(caller)])
    before = _session_of_a(http, route.paused)
    sid = before["sessionId"]

    if route.method == JOIN:
        status, code = _join_over_socketio(str(http.base_url), CALLERS[caller], sid)
        assert (status, code in CODES.get(status, {code})) == (expected, True), code
        return
    with http.stream(route.method, _fill(http, route.path, sid), json=_fill(http, route.body, sid),
                     headers=CALLERS[caller]) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()

    assert response.status_code == expected, response.text if response.is_stream_consumed else ""
    if expected in CODES:
        assert response.json()["error"]["code"] in CODES[expected]
    if expected == 401 and caller == "expired token":
        assert response.json()["error"]["code"] == "TOKEN_EXPIRED"
    if expected == 403 and caller == "read-only token":
        admin_only = route.path.startswith(("/api/agents", "/api/auth"))
        assert response.json()["error"]["code"] == ("FORBIDDEN" if admin_only else "INSUFFICIENT_SCOPE")
    if response.status_code >= 400 and SESSION in route.path:
        after = http.get(f"{SESSIONS}/{sid}", headers=SERVER).json()
        assert {f: after[f] for f in STABLE_FIELDS} == {f: before[f] for f in STABLE_FIELDS}
    if route_name == "stats" and caller == "user B":
        assert response.json()["total"] == 0  # B owns no session: A's are not counted
    if route_name == "list sessions" and expected == 200:
        listed = response.json()["sessions"]
        assert (sid in {s["sessionId"] for s in listed}) == (caller in ("server key", "user A", "read-only token"))
        if caller.startswith("user") or caller == "read-only token":
            owner = USER_B if caller == "user B" else USER_A
            assert {s["userId"] for s in listed} <= {owner}


def _join_over_socketio(base_url: str, headers: dict[str, str], sid: str) -> tuple[int, str | None]:
    """(status it stands for, error code) of connecting with these credentials and joining the session."""
    auth = {"apiKey": headers["X-API-KEY"]} if "X-API-KEY" in headers else {}
    if "Authorization" in headers:
        auth["token"] = headers["Authorization"].removeprefix("Bearer ")
    node = NodeProcess(node_client_package() / "socket-driver.mjs",
                       {**os.environ, "SERVER_URL": base_url.rstrip("/"), "SOCKET_AUTH": json.dumps(auth)})
    try:
        handshake = node.wait_for(lambda line: line["kind"] in ("connect", "connect_error"), 20, "the handshake")
        if handshake["kind"] == "connect_error":
            return 401, (handshake["payload"]["data"] or {}).get("code")
        node.send({"emit": "join", "data": {"roomId": sid}})
        ack = node.wait_for(lambda line: line["kind"] == "ack", 20, "the join's ack")["payload"]["ack"]
    finally:
        node.stop()
    if ack["ok"]:
        return 200, None
    return STATUS_OF_JOIN_ERROR.get(ack["error"]["code"], 500), ack["error"]["code"]


def test_user_list_ignores_a_userid_filter_for_someone_else(http: httpx.Client) -> None:
    _session_of_a(http, paused=False)

    response = http.get(SESSIONS, params={"userId": USER_A}, headers=CALLERS["user B"])

    assert response.status_code == 200
    assert response.json()["sessions"] == [] and response.json()["stats"]["total"] == 0
