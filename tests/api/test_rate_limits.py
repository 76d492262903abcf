"""Rate limits are shared by every API process: two API processes on one database and Redis prefix."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

import httpx
import pytest

from core.models import DEFAULT_AGENT_ID
from tests.support.factories import SESSIONS, unique_user
from tests.support.processes import Stack, free_port, stack_env, wait_until

WINDOW_SECONDS = 2
PER_SESSION, PER_USER, SESSIONS_PER_USER = 4, 6, 3


@pytest.fixture(scope="module")
def two_apis(postgres_url: str, redis_prefix: str, run_id: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[httpx.Client]]:
    env = stack_env(postgres_url, f"{redis_prefix}limits:", f"q-{run_id}-limits", RATE_LIMIT_ENABLED="true",
                    RATE_LIMIT_WINDOW_SECONDS=str(WINDOW_SECONDS),
                    RATE_LIMIT_MESSAGES_PER_SESSION=str(PER_SESSION), RATE_LIMIT_MESSAGES_PER_USER=str(PER_USER),
                    RATE_LIMIT_SESSIONS_PER_USER=str(SESSIONS_PER_USER))
    stack = Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("limits-stack")))
    try:
        apis = stack.start_apis(stack.port, free_port())
        clients = [httpx.Client(base_url=api.base_url, timeout=30) for api in apis]
        yield clients
        for client in clients:
            client.close()
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()


def _create(client: httpx.Client, user: str) -> httpx.Response:
    return client.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": user})


def _send(client: httpx.Client, sid: str) -> httpx.Response:
    # websocket transport: 202 at once, no worker needed to count messages.
    return client.post(f"{SESSIONS}/{sid}/messages", json={"content": "hi", "transport": "websocket"})


def test_messages_per_session_are_limited_across_processes_and_recover(two_apis: list[httpx.Client]) -> None:
    a, b = two_apis
    sid = _create(a, unique_user()).json()["sessionId"]
    accepted = [_send(client, sid).status_code for client, _ in zip(cycle(two_apis), range(PER_SESSION))]

    refused = [_send(b, sid), _send(a, sid)]

    assert accepted == [202] * PER_SESSION
    for response in refused:
        assert response.status_code == 429, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= WINDOW_SECONDS
        assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert response.json()["error"]["details"]["bucket"] == "messages per session"
    wait_until(lambda: _send(b, sid).status_code == 202, WINDOW_SECONDS + 3, "the window to pass", interval=0.2)
    stored = a.get(f"{SESSIONS}/{sid}").json()["messageCount"]
    assert stored == PER_SESSION + 1  # refused messages were never stored


def test_messages_per_user_count_all_of_the_users_sessions(two_apis: list[httpx.Client]) -> None:
    a, b = two_apis
    user = unique_user()
    first, second = (_create(a, user).json()["sessionId"], _create(b, user).json()["sessionId"])
    for _ in range(PER_SESSION):
        assert _send(a, first).status_code == 202
    for _ in range(PER_USER - PER_SESSION):
        assert _send(b, second).status_code == 202

    refused = _send(a, second)

    assert refused.status_code == 429 and refused.json()["error"]["details"]["bucket"] == "messages per user"
    assert _send(b, _create(b, unique_user()).json()["sessionId"]).status_code == 202  # other users unaffected


def test_sessions_created_per_user_are_limited_across_processes(two_apis: list[httpx.Client]) -> None:
    user = unique_user()
    created = [_create(client, user).status_code for client, _ in zip(cycle(two_apis), range(SESSIONS_PER_USER))]

    refused = _create(two_apis[1], user)

    assert created == [201] * SESSIONS_PER_USER
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert refused.json()["error"]["details"]["bucket"] == "sessions per user"
    assert _create(two_apis[0], unique_user()).status_code == 201
