from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from core.agents.character import AgentPatch, Character
from core.schemas import AgentDeleted, AgentList, AgentPublic, ErrorResponse
from core.services import agents
from core.uow import AsyncUnitOfWork
from core.validation import parse_uuid

# Declared on every route: Litestar reads `responses` from route decorators, not from a Controller attribute.
INVALID = {400: ResponseSpec(ErrorResponse, description="Invalid character, id or parameter")}
UNKNOWN = {404: ResponseSpec(ErrorResponse, description="Unknown agent")}
NAME_TAKEN = {409: ResponseSpec(ErrorResponse, description="Name already taken")}
IN_USE = {409: ResponseSpec(ErrorResponse, description="The agent has sessions (use ?force=true)")}
AgentId = Annotated[str, Parameter(description="the agent's uuid",
                                   pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                                           r"[0-9a-fA-F]{12}$")]


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]

    @get("/", summary="List agents")
    async def list_agents(self, uow: AsyncUnitOfWork) -> AgentList:
        return await agents.list_agents(uow)

    @post("/", status_code=201, summary="Create an agent from a character", responses={**INVALID, **NAME_TAKEN})
    async def create(self, data: Character, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.create_agent(uow, data)

    @get("/{agent_id:str}", summary="Get an agent", responses={**INVALID, **UNKNOWN})
    async def get_agent(self, agent_id: AgentId, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.get_agent(uow, parse_uuid(agent_id, "agentId"))

    @patch("/{agent_id:str}", summary="Change an agent (settings are a JSON merge patch)",
           responses={**INVALID, **UNKNOWN, **NAME_TAKEN})
    async def update(self, agent_id: AgentId, data: AgentPatch, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.update_agent(uow, parse_uuid(agent_id, "agentId"), data)

    @delete("/{agent_id:str}", status_code=200, summary="Delete an agent (?force=true also purges its sessions)",
            responses={**INVALID, **UNKNOWN, **IN_USE})
    async def remove(self, agent_id: AgentId, uow: AsyncUnitOfWork,
                     force: Annotated[bool, Parameter(query="force")] = False) -> AgentDeleted:
        return await agents.delete_agent(uow, parse_uuid(agent_id, "agentId"), force)
