"""The readiness route answers 503 while a backing service is down, so a load balancer can tell; /health keeps
its ElizaOS shape and status code. A real API over a redis-server of the test's own, stopped and started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.servers import RedisServer
from tests.support.factories import SESSIONS
from tests.support.processes import Stack, stack_env, wait_until

READY = f"{SESSIONS}/health/ready"


@pytest.fixture()
def api_on_own_redis(own_redis: RedisServer, postgres_url: str, run_id: str, tmp_path: Path) -> Iterator[Stack]:
    env = stack_env(postgres_url, "ready:", f"q-{run_id}-ready", REDIS_URL=own_redis.url)
    with Stack(env=env, log_dir=tmp_path).running() as stack:
        yield stack


def test_ready_answers_503_while_redis_is_down_and_200_again_after(own_redis: RedisServer,
                                                                  api_on_own_redis: Stack) -> None:
    with httpx.Client(base_url=api_on_own_redis.base_url, timeout=10) as client:
        up = client.get(READY)
        own_redis.stop()
        wait_until(lambda: client.get(READY).status_code == 503, 10, "readiness to report Redis down")
        down, health = client.get(READY), client.get(f"{SESSIONS}/health")
        own_redis.start()
        wait_until(lambda: client.get(READY).status_code == 200, 20, "readiness to recover")

    assert up.status_code == 200 and up.json()["status"] == "healthy"
    assert down.status_code == 503
    assert down.json()["status"] == "degraded" and down.json()["components"]["redis"]["status"] == "down"
    # The health route keeps answering 200 with its ElizaOS body; only readiness refuses.
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert set(down.json()) == set(health.json())
