from __future__ import annotations

import socketio
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.pydantic import PydanticPlugin

from api.errors import EXCEPTION_HANDLERS
from api.metrics import ApiMetrics
from api.observability import RequestContextMiddleware
from api.openapi import complete_strict_schemas
from api.realtime import Realtime
from api.resources import lifespan, provide_resources, provide_uow
from api.routes.agents import AgentController
from api.routes.metrics import serve_metrics
from api.routes.page import chat_page, static_files
from api.routes.sessions import SessionController
from core.logs import configure_logging
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None, realtime: Realtime | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    metrics = ApiMetrics()
    app = Litestar(
        route_handlers=[SessionController, AgentController, serve_metrics, chat_page, static_files],
        lifespan=[lifespan(settings, metrics), *([realtime.lifespan] if realtime else [])],
        dependencies={"resources": Provide(provide_resources, sync_to_thread=False), "uow": Provide(provide_uow)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[RequestContextMiddleware(metrics)],
        logging_config=None,  # ours (core.logs), not Litestar's default handlers
        plugins=[PydanticPlugin(prefer_alias=True)],
        openapi_config=OpenAPIConfig(title="Agent Sessions", version="0.1.0",
                                     description="Persistent, stateful chat sessions with AI agents."),
        cors_config=CORSConfig(allow_origins=settings.cors_origins),
        request_max_body_size=settings.request_body_max_bytes,
    )
    complete_strict_schemas(app)
    return app


def create_server(settings: Settings | None = None) -> socketio.ASGIApp:
    """What the server runs: the HTTP API with socket.io (`/socket.io/`) on the same port."""
    settings = settings or get_settings()
    realtime = Realtime(settings)
    return socketio.ASGIApp(realtime.sio, other_asgi_app=create_app(settings, realtime))
