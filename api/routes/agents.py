from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from api.responses import GUARDED, WITH_BODY, errors
from core.schemas import AgentCreate, AgentList, AgentPublic
from core.services import agents
from core.uow import AsyncUnitOfWork
from core.validation import parse_uuid

AgentId = Annotated[str, Parameter(description="The agent's id (a UUID)", schema_extra={"format": "uuid"})]
# Any valid credentials may read agents (they hold no user data); only the server key creates them.
ANY = {"access": "any"}


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]

    @get("/", summary="List agents", opt=ANY, responses=errors(*GUARDED))
    async def list_agents(self, uow: AsyncUnitOfWork) -> AgentList:
        return await agents.list_agents(uow)

    @post("/", status_code=201, summary="Create an agent (server key only)", opt={"access": "admin"},
          responses=errors(*WITH_BODY, 409))
    async def create(self, data: AgentCreate, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.create_agent(uow, data)

    @get("/{agent_id:str}", summary="Get an agent", opt=ANY, responses=errors(*GUARDED, 404))
    async def get_agent(self, agent_id: AgentId, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.get_agent(uow, parse_uuid(agent_id, "agentId"))
