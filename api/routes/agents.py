from __future__ import annotations

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec

from api.resources import Resources
from core.schemas import AgentCreate, AgentList, AgentPublic, ErrorResponse
from core.services import agents
from core.uow import AsyncUnitOfWork
from core.validation import parse_uuid


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]
    responses = {400: ResponseSpec(ErrorResponse, description="Invalid input"),  # type: ignore[assignment]
                 404: ResponseSpec(ErrorResponse, description="Unknown agent"),
                 409: ResponseSpec(ErrorResponse, description="Name already taken")}

    @get("/", summary="List agents")
    async def list_agents(self, uow: AsyncUnitOfWork) -> AgentList:
        return await agents.list_agents(uow)

    @post("/", status_code=201, summary="Create an agent")
    async def create(self, data: AgentCreate, uow: AsyncUnitOfWork, resources: Resources) -> AgentPublic:
        return await agents.create_agent(uow, resources.settings, data)

    @get("/{agent_id:str}", summary="Get an agent")
    async def get_agent(self, agent_id: str, uow: AsyncUnitOfWork) -> AgentPublic:
        return await agents.get_agent(uow, parse_uuid(agent_id, "agentId"))
