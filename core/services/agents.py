from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, insert, select

from core.clock import utcnow
from core.errors import AgentNameTaken, AgentNotFound
from core.models import DEFAULT_AGENT_ID, DEFAULT_AGENT_NAME, agents_table
from core.schemas import AgentCreate, AgentList, AgentPublic
from core.settings import Settings
from core import timeouts
from core.uow import AsyncUnitOfWork

DEFAULT_AGENT_SETTINGS: dict[str, Any] = {
    "script": "doctor",
    "description": "A classic ELIZA-style conversation partner: offline, deterministic, always available.",
}


def agent_public(row: Any) -> AgentPublic:
    return AgentPublic(id=row.id, name=row.name, provider=row.provider, settings=row.settings,
                       created_at=row.created_at)


async def list_agents(uow: AsyncUnitOfWork) -> AgentList:
    rows = await uow.execute(select(agents_table).order_by(agents_table.c.created_at, agents_table.c.name))
    return AgentList(agents=[agent_public(row) for row in rows])


async def get_agent_row(uow: AsyncUnitOfWork, agent_id: uuid.UUID) -> Any:
    row = (await uow.execute(select(agents_table).where(agents_table.c.id == agent_id))).first()
    if row is None:
        raise AgentNotFound(f"agent {agent_id} not found", agentId=str(agent_id))
    return row


async def get_agent(uow: AsyncUnitOfWork, agent_id: uuid.UUID) -> AgentPublic:
    return agent_public(await get_agent_row(uow, agent_id))


async def create_agent(uow: AsyncUnitOfWork, settings: Settings, data: AgentCreate) -> AgentPublic:
    # The agent's timeout defaults must make a valid config over the global ones, checked now rather than
    # at each session start.
    timeouts.resolve(settings, data.settings, None)
    values = {"id": uuid.uuid4(), "name": data.name, "provider": data.provider, "settings": data.settings,
              "created_at": utcnow()}
    exists = await uow.scalar(select(agents_table.c.id).where(agents_table.c.name == data.name))
    if exists is not None:
        raise AgentNameTaken(f"an agent named {data.name!r} already exists", agentId=str(exists))
    await uow.execute(insert(agents_table).values(values))
    return AgentPublic(**values)


def ensure_default_agent(conn: Connection) -> None:
    """Seed the default agent once, with its fixed id, unless it (or an agent of its name) exists."""
    taken = conn.scalar(select(agents_table.c.id).where(
        (agents_table.c.id == DEFAULT_AGENT_ID) | (agents_table.c.name == DEFAULT_AGENT_NAME)))
    if taken is None:
        conn.execute(insert(agents_table).values(id=DEFAULT_AGENT_ID, name=DEFAULT_AGENT_NAME, provider="eliza",
                                                 settings=DEFAULT_AGENT_SETTINGS, created_at=utcnow()))
