"""Shared fixtures: a scratch Postgres database and a SQLite file, a Redis namespace, real service processes.

Postgres and Redis are the machine's (loopback); every run uses its own database and key prefix, and
removes them at the end, so runs never see each other's data.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.reliability.servers import RedisServer
from tests.support.databases import REDIS_URL, prepare, scratch_postgres
from tests.support.openai_server import FakeOpenAI
from tests.support.processes import Stack, stack_env
from tests.support.tokens import AUTH_ENV


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def postgres_url(run_id: str) -> Iterator[str]:
    with scratch_postgres(f"as_test_{run_id}") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'agent-sessions.db'}"
    prepare(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_prefix(run_id: str, redis_client: redis.Redis) -> Iterator[str]:
    prefix = f"as-test-{run_id}:"
    yield prefix
    for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
        redis_client.delete(key)


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port, which it may stop and restart (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def stack(backend: str, request: pytest.FixtureRequest, redis_prefix: str, run_id: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API process and a worker process over real Redis, on SQLite or on Postgres."""
    database_url = request.getfixturevalue(f"{backend}_url")
    prefix = f"{redis_prefix}{backend}:"
    stack = Stack(env=stack_env(database_url, prefix, f"q-{run_id}-{backend}"),
                  log_dir=Path(tmp_path_factory.mktemp(f"stack-{backend}")))
    with stack.running(workers=1):
        yield stack


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible chat-completions server shared by the run (tests use their own model names)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture()
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        yield http


@pytest.fixture(scope="session")
def secure_stack(postgres_url: str, redis_prefix: str, run_id: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with authentication on (server key + JWT secret) and production settings, on Postgres.

    No worker: sends use the websocket transport (202 at once); a blocking send gives up after
    REPLY_WAIT_SECONDS and answers 202."""
    env = stack_env(postgres_url, f"{redis_prefix}secure:", f"q-{run_id}-secure", ENVIRONMENT="production",
                    RATE_LIMIT_ENABLED="false", REPLY_WAIT_SECONDS="0.5", **AUTH_ENV)
    with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("secure-stack"))).running() as stack:
        yield stack
