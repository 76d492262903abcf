"""After a Redis restart, the API's pooled connections are dead: its first send must still reach the worker.

A real redis-server of the test's own (on a free port, restarted at will), a real API and worker over it,
and no beat, so nothing but the API's own push can get a message answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.reliability.servers import RedisServer
from tests.support.factories import create_session, send_message
from tests.support.processes import Stack, stack_env, wait_until

API_CLIENT_NAME = "agent-sessions-api-"


@pytest.fixture()
def stack_on_own_redis(own_redis: RedisServer, postgres_url: str, run_id: str, tmp_path: Path) -> Iterator[Stack]:
    env = stack_env(postgres_url, "restart:", f"q-{run_id}-restart", REDIS_URL=own_redis.url, REPLY_WAIT_SECONDS="20")
    with Stack(env=env, log_dir=tmp_path).running(workers=1) as stack:
        yield stack


def consuming_again(server: RedisServer) -> bool:
    """The worker waits on its queue again and the API's event hub has subscribed again."""
    with redis.Redis.from_url(server.url, socket_timeout=1) as client:
        try:
            clients = client.client_list()
        except redis.RedisError:
            return False
    commands = {(entry["name"].startswith(API_CLIENT_NAME), entry["cmd"]) for entry in clients}
    return (False, "brpop") in commands and (True, "psubscribe") in commands


def test_first_send_after_a_redis_restart_is_answered_without_the_sweep(own_redis: RedisServer,
                                                                        stack_on_own_redis: Stack) -> None:
    with httpx.Client(base_url=stack_on_own_redis.base_url, timeout=60) as client:
        session_id = create_session(client)["sessionId"]
        assert send_message(client, session_id, "Hello").status_code == 201  # the API now pools connections

        own_redis.stop()
        own_redis.start()
        wait_until(lambda: consuming_again(own_redis), 60, "the worker and the API to reconnect", interval=0.2)
        response = send_message(client, session_id, "Are you still there?")

    assert response.status_code == 201, response.text
    assert response.json()["replyTo"] == response.json()["userMessage"]["id"]
