from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, func, insert, select, update

from core.agents.character import AgentPatch, Character, builtin_character, describe, load_character_dir, merge_patch
from core.agents.model_access import check_model
from core.clock import epoch_millis, utcnow
from core.errors import AgentInUse, AgentNameTaken, AgentNotFound, InvalidInput
from core.models import DEFAULT_AGENT_ID, agents_table, sessions_table
from core.schemas import AgentDeleted, AgentList, AgentPublic, AgentSummary, Deleted
from core.sessions.status import LIVE_STATUSES
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings

A = agents_table.c
S = sessions_table.c
# What a user token sees of an agent's settings: its prompt, model server and key variable are the operator's.
PUBLIC_SETTINGS = ("description",)


def agent_summary(row: Any) -> AgentSummary:
    settings = row.settings
    description = settings.get("description")
    return AgentSummary(id=row.id, name=row.name, provider=row.provider,
                        bio=settings.get("bio") or ([description] if description else []),
                        created_at=epoch_millis(row.created_at), updated_at=epoch_millis(row.updated_at))


def agent_public(row: Any, *, full: bool = True) -> AgentPublic:
    """An agent; without `full` (a user token), only the settings meant for listings."""
    settings = row.settings if full else {key: row.settings[key] for key in PUBLIC_SETTINGS if key in row.settings}
    return AgentPublic(**agent_summary(row).model_dump(), settings=settings)


async def list_agents(uow: AsyncUnitOfWork) -> AgentList:
    rows = await uow.execute(select(agents_table).order_by(A.created_at, A.name))
    return AgentList(agents=[agent_summary(row) for row in rows])  # summaries: no settings, for any caller


async def get_agent_row(uow: AsyncUnitOfWork, agent_id: uuid.UUID, *, for_update: bool = False) -> Any:
    query = select(agents_table).where(A.id == agent_id)
    row = (await uow.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise AgentNotFound(f"agent {agent_id} not found", agentId=str(agent_id))
    return row


async def get_agent(uow: AsyncUnitOfWork, agent_id: uuid.UUID, *, full: bool) -> AgentPublic:
    return agent_public(await get_agent_row(uow, agent_id), full=full)


async def _ensure_name_free(uow: AsyncUnitOfWork, name: str, agent_id: uuid.UUID | None = None) -> None:
    taken = await uow.scalar(select(A.id).where(A.name == name))
    if taken is not None and taken != agent_id:
        raise AgentNameTaken(f"an agent named {name!r} already exists", agentId=str(taken))


async def create_agent(uow: AsyncUnitOfWork, character: Character, settings: Settings) -> AgentPublic:
    check_model(character.settings.model, settings)
    await _ensure_name_free(uow, character.name)
    now = utcnow()
    values = {"id": uuid.uuid4(), "name": character.name, "provider": character.provider,
              "settings": character.stored_settings(), "created_at": now, "updated_at": now}
    await uow.execute(insert(agents_table).values(values))
    return agent_public(SimpleNamespace(**values))


async def update_agent(uow: AsyncUnitOfWork, agent_id: uuid.UUID, patch: AgentPatch,
                       settings: Settings) -> AgentPublic:
    """Apply the patch over the stored character, then validate the result as a whole."""
    row = await get_agent_row(uow, agent_id, for_update=True)
    document = {"name": patch.name if patch.name is not None else row.name,
                "provider": patch.provider or row.provider,
                "settings": merge_patch(row.settings, patch.settings_patch()) if patch.settings else row.settings}
    try:
        character = Character.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(describe(error), agentId=str(agent_id)) from None
    check_model(character.settings.model, settings)
    await _ensure_name_free(uow, character.name, agent_id)
    values = {"name": character.name, "provider": character.provider, "settings": character.stored_settings(),
              "updated_at": utcnow()}
    await uow.execute(update(agents_table).where(A.id == agent_id).values(values))
    return agent_public(SimpleNamespace(id=row.id, created_at=row.created_at, **values))


async def delete_agent(uow: AsyncUnitOfWork, agent_id: uuid.UUID, force: bool) -> AgentDeleted:
    """Delete an agent. Sessions keep a reference to their agent, so an agent with sessions is only
    deleted with `force`, which purges its sessions and their history too (as `DELETE ...?purge=true`)."""
    row = await get_agent_row(uow, agent_id, for_update=True)
    counts: dict[str, int] = dict((await uow.execute(
        select(S.status, func.count()).where(S.agent_id == agent_id).group_by(S.status))).tuples().all())
    total, live = sum(counts.values()), sum(counts.get(status, 0) for status in LIVE_STATUSES)
    if total and not force:
        raise AgentInUse(f"agent {row.name!r} has {total} sessions ({live} active or paused); delete with "
                         "?force=true to purge them and their history too", agentId=str(agent_id),
                         sessions=total, liveSessions=live)
    if total:
        await uow.execute(delete(sessions_table).where(S.agent_id == agent_id))
    await uow.execute(delete(agents_table).where(A.id == agent_id))
    return AgentDeleted(agent_id=agent_id, deleted_sessions=total, data=Deleted())


def ensure_default_agent(conn: Connection) -> None:
    """Seed the built-in agent (`characters/eliza.json`) once, with its fixed id, unless it (or an agent
    of its name) exists. Later changes made over the API are kept."""
    character = builtin_character("eliza")
    taken = conn.scalar(select(A.id).where((A.id == DEFAULT_AGENT_ID) | (A.name == character.name)))
    if taken is None:
        now = utcnow()
        conn.execute(insert(agents_table).values(id=DEFAULT_AGENT_ID, name=character.name,
                                                 provider=character.provider,
                                                 settings=character.stored_settings(), created_at=now, updated_at=now))


def sync_agent_files(conn: Connection, directory: Path) -> tuple[int, int]:
    """Upsert every character file of `directory` by name: the files win over earlier API edits.

    Every file is validated before anything is written, so one bad file changes nothing.
    Returns (created, updated).
    """
    created = updated = 0
    for character in load_character_dir(directory):
        values = {"provider": character.provider, "settings": character.stored_settings()}
        stored = conn.execute(select(A.provider, A.settings).where(A.name == character.name)).first()
        if stored is None:
            now = utcnow()
            conn.execute(insert(agents_table).values(id=uuid.uuid4(), name=character.name, created_at=now,
                                                     updated_at=now, **values))
            created += 1
        else:
            if (stored.provider, stored.settings) != (values["provider"], values["settings"]):  # keep updatedAt
                conn.execute(update(agents_table).where(A.name == character.name).values(**values,
                                                                                          updated_at=utcnow()))
            updated += 1
    return created, updated
