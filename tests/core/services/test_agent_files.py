"""Seeding the built-in agent and upserting AGENTS_DIR character files (what `agent-sessions migrate` does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from core.agents.character import CharacterFileError
from core.db import create_sync_engine
from core.migrations import upgrade
from core.models import DEFAULT_AGENT_ID, agents_table
from core.services.agents import ensure_default_agent, sync_agent_files
from core.settings import Settings


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    upgrade(url)
    engine = create_sync_engine(Settings(database_url=url))
    yield engine
    engine.dispose()


def agents(engine: Engine) -> dict[str, tuple[str, dict]]:
    with engine.connect() as conn:
        return {row.name: (row.provider, row.settings) for row in conn.execute(select(agents_table))}


def write(directory: Path, name: str, document: dict) -> None:
    (directory / name).write_text(json.dumps(document))


def test_builtin_agent_is_seeded_from_its_character_file_with_its_fixed_id(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_default_agent(conn)
        ensure_default_agent(conn)  # idempotent

    with engine.connect() as conn:
        row = conn.execute(select(agents_table)).one()
    assert (row.id, row.name, row.provider, row.settings["script"]) == (DEFAULT_AGENT_ID, "Eliza", "eliza", "doctor")


def test_files_are_upserted_by_name(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "agents"
    directory.mkdir()
    write(directory, "helper.json", {"name": "Helper", "provider": "echo", "settings": {"description": "v1"}})
    (directory / "notes.txt").write_text("not a character")
    with engine.begin() as conn:
        assert sync_agent_files(conn, directory) == (1, 0)

    write(directory, "helper.json", {"name": "Helper", "provider": "echo", "settings": {"description": "v2"}})
    (directory / "tutor.yaml").write_text("name: Tutor\nprovider: openai\nsettings:\n  model: {name: m}\n")
    with engine.begin() as conn:
        assert sync_agent_files(conn, directory) == (1, 1)

    assert agents(engine) == {"Helper": ("echo", {"description": "v2"}),
                              "Tutor": ("openai", {"model": {"name": "m"}})}


def test_one_invalid_file_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"name": "Good", "provider": "echo"})
    write(tmp_path, "b.json", {"name": "Bad", "provider": "openai"})

    with pytest.raises(CharacterFileError, match=r"b\.json: provider 'openai' needs settings\.model"), \
            engine.begin() as conn:
        sync_agent_files(conn, tmp_path)

    assert agents(engine) == {}
