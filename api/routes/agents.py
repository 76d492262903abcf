from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from api.dependencies import PrincipalDep, ResourcesDep, UnitOfWorkDep
from api.responses import GUARDED, WITH_BODY, errors
from core.agents.character import AgentPatch, Character
from core.schemas import AgentDeleted, AgentList, AgentPublic
from core.services import agents
from core.validation import parse_uuid

AgentId = Annotated[str, PathParameter(description="the agent's uuid",
                                       pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                                               r"[0-9a-fA-F]{12}$")]
# Any valid credentials may read agents (a user token sees no settings but the description); only the server
# key sees all of them and changes agents.
ANY = {"access": "any"}
ADMIN = {"access": "admin"}


class AgentController(Controller):
    path = "/api/agents"
    tags = ("agents",)

    @get("/", summary="List agents", opt=ANY, responses=errors(*GUARDED))
    async def list_agents(self, uow: UnitOfWorkDep) -> AgentList:
        return await agents.list_agents(uow)

    @post("/", status_code=201, summary="Create an agent from a character (server key only)", opt=ADMIN,
          responses=errors(*WITH_BODY, 409))
    async def create(self, data: JSONBody[Character], uow: UnitOfWorkDep, resources: ResourcesDep) -> AgentPublic:
        return await agents.create_agent(uow, data, resources.settings)

    @get("/{agent_id:str}", summary="Get an agent", opt=ANY, responses=errors(*GUARDED, 404))
    async def get_agent(self, agent_id: AgentId, uow: UnitOfWorkDep, principal: PrincipalDep) -> AgentPublic:
        return await agents.get_agent(uow, parse_uuid(agent_id, "agentId"), full=principal.role == "admin")

    @patch("/{agent_id:str}", summary="Change an agent (settings are a JSON merge patch; server key only)",
           opt=ADMIN, responses=errors(*WITH_BODY, 404, 409))
    async def update(self, agent_id: AgentId, data: JSONBody[AgentPatch], uow: UnitOfWorkDep,
                     resources: ResourcesDep) -> AgentPublic:
        return await agents.update_agent(uow, parse_uuid(agent_id, "agentId"), data, resources.settings)

    @delete("/{agent_id:str}", status_code=200, opt=ADMIN, responses=errors(*GUARDED, 404, 409),
            summary="Delete an agent (?force=true also purges its sessions; server key only)")
    async def remove(self, agent_id: AgentId, uow: UnitOfWorkDep,
                     force: Annotated[bool, QueryParameter(name="force")] = False) -> AgentDeleted:
        return await agents.delete_agent(uow, parse_uuid(agent_id, "agentId"), force)
