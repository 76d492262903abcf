"""Engines and column types shared by the API (async) and the workers (sync).

Engines come from factories called at start-up (Litestar lifespan, Celery worker_process_init),
never at import time, so forked processes never share a connection pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine

from core.settings import Settings

JSONColumn = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Transactions are begun by `_begin_immediate` below, not by the driver.
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    # Take the write lock up front: a transaction that reads and then writes would otherwise fail with
    # "database is locked" when another process committed in between, instead of waiting its turn.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_sqlite(engine: Engine) -> None:
    event.listen(engine, "connect", _tune_sqlite)
    event.listen(engine, "begin", _begin_immediate)


def create_sync_engine(settings: Settings, **overrides: Any) -> Engine:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if not settings.is_sqlite:
        options.update(pool_size=5, max_overflow=5)
    options.update(overrides)
    engine = create_engine(settings.sync_database_url, **options)
    if settings.is_sqlite:
        _configure_sqlite(engine)
    return engine


def create_async_db_engine(settings: Settings) -> AsyncEngine:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if not settings.is_sqlite:
        options.update(pool_size=10, max_overflow=10)
    engine = create_async_engine(settings.async_database_url, **options)
    if settings.is_sqlite:
        _configure_sqlite(engine.sync_engine)
    return engine
