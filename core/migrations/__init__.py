"""Alembic migrations, applied by `agent-sessions migrate` (and by `dev` on start), written by
`agent-sessions makemigration` (see CONTRIBUTING.md)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, pool
from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from core.settings import get_settings

_HERE = Path(__file__).parent

# How the migrations are compared with the models, by `makemigration` (through env.py) and by `schema_drift`
# alike. Batch mode lets the same migrations alter tables on SQLite.
COMPARE_OPTIONS: dict[str, Any] = {"render_as_batch": True, "compare_type": True, "compare_server_default": True}


def alembic_config(database_url: str | None = None, script_location: Path = _HERE) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database_url or get_settings().sync_database_url)
    return config


def upgrade(database_url: str | None = None, revision: str = "head", script_location: Path = _HERE) -> None:
    command.upgrade(alembic_config(database_url, script_location), revision)


def schema_drift(database_url: str, metadata: MetaData | None = None) -> list[Any]:
    """What the database lacks or has beyond the models (Alembic's autogenerate diff); empty when they agree."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
            return list(compare_metadata(context, metadata if metadata is not None else SQLModel.metadata))
    finally:
        engine.dispose()


def make_migration(message: str, empty: bool = False, script_location: Path = _HERE) -> Path | None:
    """Write the next migration: what the models have that the migrations lack, found by migrating a scratch
    SQLite database to head and comparing it with the models. `empty` writes a blank one (data changes).

    Returns the new file, or None when the models and the migrations already agree (nothing written)."""
    with tempfile.TemporaryDirectory(prefix="agent-sessions-makemigration-") as scratch:
        config = alembic_config(f"sqlite:///{Path(scratch) / 'scratch.db'}", script_location)
        command.upgrade(config, "head")
        written = command.revision(config, message=message, autogenerate=not empty,
                                   rev_id=_next_revision_id(ScriptDirectory.from_config(config)),
                                   process_revision_directives=None if empty else _skip_when_unchanged)
    # One script, or an empty list when `_skip_when_unchanged` cancelled it.
    return Path(written.path) if written and not isinstance(written, list) else None


def _next_revision_id(scripts: ScriptDirectory) -> str:
    """Revisions are numbered 0001, 0002, ...: the next number after the highest one."""
    numbers = [int(match.group()) for revision in scripts.walk_revisions()
               if (match := re.match(r"\d+", revision.revision))]
    return f"{max(numbers, default=0) + 1:04d}"


def _skip_when_unchanged(_context: Any, _revision: Any, directives: list[Any]) -> None:
    if directives[0].upgrade_ops.is_empty():
        directives.clear()
