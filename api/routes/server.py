"""The ElizaOS server routes a full ElizaOS web client calls when it starts (`/api/server/ping`, `/health`)."""

from __future__ import annotations

import time

from litestar import Controller, get

from api.dependencies import ResourcesDep, UnitOfWorkDep
from api.responses import errors
from core.clock import epoch_millis, utcnow
from core.schemas import ServerHealth, ServerPing
from core.services.health import check_server_health

HEALTH = {"access": "health"}  # open unless PUBLIC_HEALTH=false, like the sessions health route


class ServerController(Controller):
    path = "/api/server"
    tags = ("server",)

    @get("/ping", summary="Liveness: answers at once", opt=HEALTH, responses=errors(401), security=[{}])
    async def ping(self) -> ServerPing:
        return ServerPing(timestamp=epoch_millis(utcnow()))

    @get("/health", summary="Server health (the sessions health checks, in ElizaOS's server shape)", opt=HEALTH,
         responses=errors(401, 503), security=[{}])
    async def health(self, uow: UnitOfWorkDep, resources: ResourcesDep) -> ServerHealth:
        return await check_server_health(uow, resources.redis, resources.settings, utcnow(),
                                         time.monotonic() - resources.started_at, resources.hub.connected)
