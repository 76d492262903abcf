"""Migrations 0005 and 0006 on both databases: messages get an index by session and time (history cursors name
a message by its millisecond), agents `updated_at` (existing ones: their creation time, as nothing says otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from core.db import create_sync_engine
from core.migrations import alembic_config, upgrade
from core.settings import Settings
from tests.support.databases import scratch_postgres

INDEX = "ix_messages_session_id_created_at"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, run_id: str):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        with scratch_postgres(f"as_test_{run_id}_m5", migrate=False) as url:
            yield url


def test_existing_agents_get_their_creation_time_and_the_downgrade_undoes_it(database_url: str) -> None:
    upgrade(database_url, "0004")
    engine = create_sync_engine(Settings(database_url=database_url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO agents (id, name, provider, settings, created_at) VALUES "
                          "('e1a2a000-0000-4000-8000-000000000009', 'Old', 'echo', '{}', :at)"),
                     {"at": "2025-03-01 12:00:00.123456"})

    upgrade(database_url)
    with engine.connect() as conn:
        created, updated = conn.execute(text("SELECT created_at, updated_at FROM agents")).one()
    columns = {column["name"]: column for column in inspect(engine).get_columns("agents")}
    indexes = {index["name"] for index in inspect(engine).get_indexes("messages")}
    command.downgrade(alembic_config(database_url), "0004")
    engine.dispose()

    assert updated == created and columns["updated_at"]["nullable"] is False and INDEX in indexes
    assert "updated_at" not in {column["name"] for column in inspect(engine).get_columns("agents")}
    assert INDEX not in {index["name"] for index in inspect(engine).get_indexes("messages")}
