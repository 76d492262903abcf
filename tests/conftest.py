"""Shared fixtures: a scratch Postgres database and a SQLite file, a Redis namespace, real service processes.

Postgres and Redis are the machine's (loopback); every run uses its own database and key prefix, and
removes them at the end, so runs never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, make_url, text

from core.db import create_sync_engine
from core.migrations import upgrade
from core.services.agents import ensure_default_agent
from core.settings import Settings
from tests.support.processes import Stack

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def _prepare(database_url: str) -> None:
    upgrade(database_url)
    engine = create_sync_engine(Settings(database_url=database_url))
    with engine.begin() as conn:
        ensure_default_agent(conn)
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(run_id: str) -> Iterator[str]:
    name = f"as_test_{run_id}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    _prepare(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                     {"name": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'agent-sessions.db'}"
    _prepare(url)
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


def stack_env(database_url: str, prefix: str, queue: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix, "CELERY_QUEUE": queue,
            "ENVIRONMENT": "test", **extra}


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
    try:
        stack.start_worker()
        stack.start_api()
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()


@pytest.fixture()
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        yield http
