"""The partial index of unanswered messages (migration 0004): a claim reads what is waiting in its session,
not the session's whole history, however many messages other sessions have waiting."""

from __future__ import annotations

import json
import uuid
from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect, text

from core.db import create_sync_engine
from core.migrations import alembic_config, upgrade
from core.sessions.statements import OLDEST_UNANSWERED
from core.settings import Settings
from tests.support.databases import scratch_postgres

INDEX = "ix_messages_unanswered"
HISTORY = 20_000
WAITING_ELSEWHERE = 2_000


def index_names(engine: Engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("messages")}


def test_the_migration_creates_the_index_on_sqlite_and_its_downgrade_drops_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade(url)
    engine = create_sync_engine(Settings(database_url=url))
    assert INDEX in index_names(engine)

    command.downgrade(alembic_config(url), "0003")
    engine.dispose()
    assert INDEX not in index_names(engine)


def fill_long_session_and_a_backlog(engine: Engine) -> uuid.UUID:
    """One session with a long answered history and one waiting message; many sessions with one waiting each."""
    session_columns = ("INSERT INTO sessions (id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew, "
                       "max_duration_minutes, warning_threshold_minutes, created_at, last_activity_at, expires_at, "
                       "renewal_count, message_count, state, agent_state, next_seq, event_seq) ")
    session_values = ("gen_random_uuid(), (SELECT id FROM agents LIMIT 1), 'u' || g, 'active', '{}', 30, true, 600, "
                      "5, now(), now(), now() + interval '1 day', 0, 0, '{}', '{}', 0, 0")
    message = ("INSERT INTO messages (id, session_id, seq, role, author_id, content, metadata, status, created_at, "
               "attempts) SELECT gen_random_uuid(), :session, g, 'user', 'u', 'hi', '{}', :status, now(), 0 "
               "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g")
    with engine.begin() as conn:
        conn.execute(text(session_columns + f"SELECT {session_values} FROM generate_series(1, CAST(:n AS integer)) g"),
                     {"n": WAITING_ELSEWHERE + 1})
        long, *others = conn.execute(text("SELECT id FROM sessions")).scalars()
        conn.execute(text(message), {"session": long, "status": "completed", "first": 1, "last": HISTORY})
        conn.execute(text(message), {"session": long, "status": "pending", "first": HISTORY + 1, "last": HISTORY + 1})
        for other in others:
            conn.execute(text(message), {"session": other, "status": "pending", "first": 1, "last": 1})
        conn.execute(text("ANALYZE"))
    return long


def test_a_claim_in_a_long_session_reads_only_its_waiting_message_on_postgres(run_id: str) -> None:
    with scratch_postgres(f"as_test_{run_id}_ix") as url:
        engine = create_sync_engine(Settings(database_url=url))
        session_id = fill_long_session_and_a_backlog(engine)
        query = str(OLDEST_UNANSWERED.compile(engine)).replace("%(session_id)s::UUID", "$1") \
            .replace("%(param_1)s::INTEGER", "1")
        with engine.connect() as conn:
            # The plan the worker gets once psycopg prepares the statement: generic, parameters unknown.
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql(f"PREPARE claim(uuid) AS {query}")
            [[plan]] = conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim('{session_id}')").fetchall()
        engine.dispose()
    scan = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]["Plans"][0]
    assert scan["Index Name"] == INDEX
    assert scan.get("Rows Removed by Filter", 0) == 0 and scan["Actual Rows"] == 1
