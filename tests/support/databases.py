"""Scratch databases: a Postgres database of its own (dropped afterwards) or a SQLite file, migrated and seeded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text

from core.db import create_sync_engine
from core.migrations import upgrade
from core.services.agents import ensure_default_agent
from core.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def prepare(database_url: str) -> None:
    upgrade(database_url)
    engine = create_sync_engine(Settings(database_url=database_url))
    with engine.begin() as conn:
        ensure_default_agent(conn)
    engine.dispose()


@contextmanager
def scratch_postgres(name: str, migrate: bool = True) -> Iterator[str]:
    """A new database on the test server, dropped on exit (whatever connections are still open)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            prepare(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
