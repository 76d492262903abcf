"""Push connections against a real API process with authentication on and small caps: streams end when their
token expires, streams and sockets are capped per user token and per process, and an engine.io connection
gets little before it authenticates."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from core.models import DEFAULT_AGENT_ID
from tests.support.factories import SESSIONS, unique_user
from tests.support.node import NodeProcess, node_client_package
from tests.support.processes import Stack, stack_env, wait_until
from tests.support.sse import read_events
from tests.support.tokens import AUTH_ENV, SERVER, bearer, user_token

PER_USER = 2
PER_PROCESS = 5
WAIT = 20.0


@pytest.fixture(scope="module")
def limited(postgres_url: str, redis_prefix: str, run_id: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = stack_env(postgres_url, f"{redis_prefix}limited:", f"q-{run_id}-limited", ENVIRONMENT="production",
                    RATE_LIMIT_ENABLED="false", REPLY_WAIT_SECONDS="0.5", JWT_LEEWAY_SECONDS="0",
                    STREAMS_PER_USER=str(PER_USER), STREAMS_PER_PROCESS=str(PER_PROCESS),
                    SOCKETIO_CONNECT_TIMEOUT_SECONDS="1", **AUTH_ENV)
    with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("limited-stack"))).running() as stack:
        yield stack


@pytest.fixture()
def http(limited: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.base_url, timeout=WAIT) as client:
        yield client


def new_session(http: httpx.Client, user: str) -> str:
    response = http.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": user}, headers=SERVER)
    assert response.status_code == 201, response.text
    return response.json()["sessionId"]


def expiring_token(user: str, seconds: int) -> str:
    return user_token(user, expires_in=seconds)


@contextlib.contextmanager
def socket_client(stack: Stack, auth: dict[str, str]) -> Iterator[NodeProcess]:
    node = NodeProcess(node_client_package() / "socket-driver.mjs",
                       {**os.environ, "SERVER_URL": stack.base_url, "SOCKET_AUTH": json.dumps(auth)})
    try:
        yield node
    finally:
        node.stop()


def test_an_event_stream_ends_when_its_token_expires(http: httpx.Client) -> None:
    user = unique_user()
    sid = new_session(http, user)
    token = expiring_token(user, 3)

    with http.stream("GET", f"{SESSIONS}/{sid}/events", headers=bearer(token)) as response:
        events = read_events(response)
        assert http.post(f"{SESSIONS}/{sid}/renew", headers=SERVER).status_code == 200
        assert next(events).event == "session.renewed"  # live while the token is valid
        last = next(events)  # waits for the token to run out

        assert (last.event, last.data["code"]) == ("error", "TOKEN_EXPIRED")
        assert last.id is None  # not a session event: resuming from Last-Event-ID skips nothing
        assert list(events) == []  # the server ended the stream


def test_a_socket_is_disconnected_when_its_token_expires(limited: Stack, http: httpx.Client) -> None:
    user = unique_user()
    sid = new_session(http, user)

    with socket_client(limited, {"token": expiring_token(user, 8)}) as node:  # time for Node to start
        node.wait_for(lambda line: line["kind"] == "connect", WAIT, "the connection")
        assert node.emit("join", {"roomId": sid}, WAIT)["ok"] is True
        error = node.wait_for(lambda line: line["kind"] == "error", WAIT, "the expiry notice")["payload"]
        gone = node.wait_for(lambda line: line["kind"] == "disconnect", WAIT, "the disconnection")["payload"]
        http.post(f"{SESSIONS}/{sid}/renew", headers=SERVER)  # nothing may reach the expired socket any more

    assert error["code"] == "TOKEN_EXPIRED" and gone == "io server disconnect"
    assert not any(line["kind"] == "sessionRenewed" for line in node.seen)


def test_event_streams_are_capped_per_user_token(limited: Stack, http: httpx.Client) -> None:
    user = unique_user()
    sid, token = new_session(http, user), bearer(user_token(user))
    with contextlib.ExitStack() as held:
        for _ in range(PER_USER):
            assert held.enter_context(http.stream("GET", f"{SESSIONS}/{sid}/events", headers=token)).status_code == 200

        refused = http.get(f"{SESSIONS}/{sid}/events", headers=token)
        with socket_client(limited, {"token": user_token(user)}) as node:
            socket_refused = node.wait_for(lambda line: line["kind"] in ("connect", "connect_error"), WAIT,
                                           "the handshake")
        other_user = unique_user()
        other = http.stream("GET", f"{SESSIONS}/{new_session(http, other_user)}/events",
                            headers=bearer(user_token(other_user)))
        with other as response:
            assert response.status_code == 200  # another user is not affected

    assert refused.status_code == 429 and refused.json()["error"]["code"] == "TOO_MANY_STREAMS"
    assert socket_refused["kind"] == "connect_error"
    assert socket_refused["payload"]["data"]["code"] == "TOO_MANY_STREAMS"

    def reopened() -> bool:  # the closed streams gave their slots back
        with http.stream("GET", f"{SESSIONS}/{sid}/events", headers=token) as again:
            return again.status_code == 200

    wait_until(reopened, WAIT, "the user's streams to be released")


def test_streams_are_capped_per_process(http: httpx.Client) -> None:
    sid = new_session(http, unique_user())
    with contextlib.ExitStack() as held:
        def one_more() -> httpx.Response:
            return held.enter_context(http.stream("GET", f"{SESSIONS}/{sid}/events", headers=SERVER))

        opened = [one_more().status_code for _ in range(PER_PROCESS)]
        refused = one_more()
        refused.read()

    assert opened == [200] * PER_PROCESS
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "STREAM_CAPACITY_REACHED"
    assert refused.headers["Retry-After"]


def engine_handshake(http: httpx.Client) -> dict[str, Any]:
    """An engine.io v4 long-polling handshake, without any credentials (the socket.io connect comes after)."""
    response = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert response.status_code == 200, response.text
    return json.loads(response.text[1:])  # "0{...}": the OPEN packet


def test_an_unauthenticated_engine_io_connection_gets_a_small_payload_limit(limited: Stack) -> None:
    url = f"ws://127.0.0.1:{limited.port}/socket.io/?EIO=4&transport=websocket"
    with connect(url, max_size=None) as websocket:
        opened = json.loads(str(websocket.recv(timeout=WAIT))[1:])  # "0{...}": the OPEN packet
        # A socket.io CONNECT whose `auth` is 100 kB, sent before any credentials were checked.
        websocket.send("40" + json.dumps({"token": "x" * 100_000}))
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=WAIT)

    assert opened["maxPayload"] == 16 * 1024
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big: never processed


def test_an_engine_io_connection_that_never_authenticates_is_closed(http: httpx.Client) -> None:
    sid = engine_handshake(http)["sid"]

    def closed() -> bool:
        try:
            poll = http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": sid}, timeout=2)
        except httpx.ReadTimeout:  # a long poll still waiting: the connection is alive
            return False
        return poll.status_code == 400

    started = time.monotonic()
    wait_until(closed, WAIT, "the server to close the anonymous engine.io connection")
    assert time.monotonic() - started < WAIT


def test_socket_io_http_answers_carry_security_headers(http: httpx.Client) -> None:
    response = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_engine_io_handshakes_beyond_the_process_cap_are_refused(http: httpx.Client) -> None:
    # Last in this module: it fills the process with anonymous connections (closed after 1 s).
    answers = []
    for _ in range(PER_PROCESS + 1):  # anonymous ones are closed after 1 s: open them in a burst
        answers.append(http.get("/socket.io/", params={"EIO": "4", "transport": "polling"}))
        if answers[-1].status_code != 200:
            break

    refused = answers[-1]
    assert refused.status_code == 401, [answer.status_code for answer in answers]
    assert refused.json()["code"] == "STREAM_CAPACITY_REACHED"
