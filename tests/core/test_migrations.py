"""The migrations build exactly the models' schema, on SQLite and on Postgres, and `makemigration` writes the
missing one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, create_engine, text
from sqlmodel import SQLModel

from core.migrations import alembic_config, schema_drift, upgrade
from tests.support.databases import scratch_postgres

MIGRATIONS = Path(__file__).resolve().parents[2] / "core" / "migrations"

# Alembic's comparison ignores index predicates (the partial ix_messages_unanswered) and constraint bodies:
# these catalog queries list them, to compare a migrated database with one created from the models.
CATALOG = {
    "postgresql": """
        SELECT 'column', table_name || '.' || column_name, data_type || ' ' || coalesce(character_maximum_length, 0)
               || ' ' || is_nullable || ' ' || coalesce(column_default, '')
          FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'alembic_version'
        UNION ALL SELECT 'index', indexname, indexdef
          FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'alembic_version'
        UNION ALL SELECT 'constraint', conrelid::regclass || '.' || conname, pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'alembic_version'
        ORDER BY 1, 2""",
    # SQLite keeps each table's CREATE statement, whose column order differs after a batch migration: the
    # indexes are what Alembic does not already compare.
    "sqlite": "SELECT type, name, sql FROM sqlite_master WHERE type = 'index' AND name NOT LIKE '%alembic%' "
              "ORDER BY name",
}


@pytest.fixture()
def empty_database(backend: str, run_id: str, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet, on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        with scratch_postgres(f"as_test_{run_id}_{uuid.uuid4().hex[:8]}", migrate=False) as url:
            yield url


def _catalog(database_url: str) -> list[tuple[str, ...]]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(text(CATALOG[engine.dialect.name]))]
    engine.dispose()
    return rows


def test_the_migrations_build_the_models_schema(empty_database: str) -> None:
    upgrade(empty_database)

    assert schema_drift(empty_database) == []


def test_a_model_column_without_a_migration_is_reported(empty_database: str) -> None:
    upgrade(empty_database)
    models = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(models)
    models.tables["sessions"].append_column(Column("column_without_migration", String(16), nullable=True))

    assert [(op[0], op[2], op[3].name) for op in schema_drift(empty_database, models)] == \
        [("add_column", "sessions", "column_without_migration")]


def test_the_migrated_indexes_and_constraints_are_the_models(empty_database: str, tmp_path: Path,
                                                             backend: str, run_id: str) -> None:
    upgrade(empty_database)
    if backend == "sqlite":
        created = f"sqlite:///{tmp_path / 'created.db'}"
        SQLModel.metadata.create_all(engine := create_engine(created))
        engine.dispose()
        assert _catalog(empty_database) == _catalog(created)
    else:
        with scratch_postgres(f"as_test_{run_id}_{uuid.uuid4().hex[:8]}", migrate=False) as created:
            SQLModel.metadata.create_all(engine := create_engine(created))
            engine.dispose()
            assert _catalog(empty_database) == _catalog(created)


# A model change nobody wrote a migration for, then `makemigration` against a copy of the migrations.
MAKE_MIGRATION_FOR_A_NEW_COLUMN = """
import sys
from pathlib import Path
from sqlalchemy import Column, String
from core.migrations import make_migration, schema_drift, upgrade
from core.models import sessions_table

sessions_table.append_column(Column("nickname", String(40), nullable=True))
location = Path(sys.argv[1])
written = make_migration("sessions.nickname", script_location=location)
upgrade(f"sqlite:///{location / 'check.db'}", script_location=location)
print(written.name, len(schema_drift(f"sqlite:///{location / 'check.db'}")))
"""


def test_makemigration_writes_the_next_revision_that_makes_the_database_match_the_models(tmp_path: Path) -> None:
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory.from_config(alembic_config(script_location=location)).get_current_head()

    made = subprocess.run([sys.executable, "-c", MAKE_MIGRATION_FOR_A_NEW_COLUMN, str(location)],
                          capture_output=True, text=True, timeout=120, check=True)

    name, drift = made.stdout.split()[-2:]
    written = (location / "versions" / name).read_text()
    assert name.startswith(f"{int(head) + 1:04d}_sessions_nickname")
    assert f"down_revision: str | None = '{head}'" in written and "add_column(sa.Column('nickname'" in written
    assert drift == "0"


def test_makemigration_writes_nothing_when_the_migrations_match_the_models() -> None:
    before = sorted((MIGRATIONS / "versions").glob("*.py"))

    made = subprocess.run([sys.executable, "-m", "agent_sessions.cli", "makemigration", "nothing changed"],
                          capture_output=True, text=True, timeout=120)

    assert made.returncode == 1 and "nothing written" in made.stderr
    assert sorted((MIGRATIONS / "versions").glob("*.py")) == before
